//! The sending side of the log: messages validated and grouped per
//! partition (one entry per partition and call, an envelope when several),
//! keyed in order, handed to the writer thread; the call returns once they
//! are on disk.

use std::sync::atomic::Ordering;

use prost::Message;
use tokio::sync::oneshot;

use super::queue::EmbeddedQueue;
use super::record::{NewEntry, messages_in};
use super::writer::Job;
use crate::envelope::{QueuedBatch, QueuedMessage, encode, partitions_of};
use crate::error::QueueError;
use crate::producer::Producer;

impl EmbeddedQueue {
    /// Enqueues raw payloads into one partition (tests use this to inject
    /// malformed payloads; production code goes through [`Producer`]).
    pub async fn enqueue_raw(&self, partition: u32, payloads: &[Vec<u8>]) -> Result<(), QueueError> {
        if partition >= self.inner.partitions {
            return Err(QueueError::Invalid(format!("no partition {partition}")));
        }
        let entries = payloads
            .iter()
            .map(|p| (partition, p.clone(), messages_in(p)))
            .collect();
        self.append(entries).await
    }

    /// Hands entries (partition, payload, messages) to the writer, keyed in
    /// order, and waits until they are on disk.
    async fn append(&self, entries: Vec<(u32, Vec<u8>, u32)>) -> Result<(), QueueError> {
        if entries.is_empty() {
            return Ok(());
        }
        if self.inner.shared.failed.load(Ordering::SeqCst) {
            return Err(QueueError::Closed);
        }
        let (done, answer) = oneshot::channel();
        {
            let mut submit = self.inner.submit();
            let entries = entries
                .into_iter()
                .map(|(partition, payload, messages)| {
                    let next = &mut submit.next[partition as usize];
                    let key = *next;
                    *next += 1;
                    NewEntry {
                        partition,
                        key,
                        payload,
                        messages,
                    }
                })
                .collect();
            submit
                .tx
                .send(Job::Append { entries, done })
                .map_err(|_| QueueError::Closed)?;
        }
        answer.await.map_err(|_| QueueError::Closed)?
    }
}

impl Producer for EmbeddedQueue {
    async fn enqueue(&self, msgs: &[QueuedMessage]) -> Result<(), QueueError> {
        let parts = partitions_of(msgs, self.partitions(), self.inner.max_body_bytes)?;
        let mut by_part: Vec<Vec<QueuedMessage>> = vec![Vec::new(); self.inner.partitions as usize];
        for (m, p) in msgs.iter().zip(parts) {
            by_part[p as usize].push(m.clone());
        }
        let entries = by_part
            .into_iter()
            .enumerate()
            .filter(|(_, m)| !m.is_empty())
            .map(|(p, mut messages)| {
                let n = messages.len() as u32;
                let payload = match messages.len() {
                    1 => encode(&messages.remove(0)),
                    _ => QueuedBatch { messages }.encode_to_vec(),
                };
                (p as u32, payload, n)
            })
            .collect();
        self.append(entries).await
    }
}
