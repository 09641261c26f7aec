//! The sending side of the log: entries (an enqueue call's messages grouped
//! per partition, see `shared::entries_of`) keyed in order and handed to
//! the writer thread; the call returns once they are on disk.

use std::sync::atomic::Ordering;

use tokio::sync::oneshot;

use super::queue::LogQueue;
use super::record::NewEntry;
use super::writer::Job;
use crate::embedded::shared::Pending;
use crate::error::QueueError;

impl LogQueue {
    /// Hands entries (partition, payload, messages) to the writer, keyed in
    /// order, and waits until they are on disk.
    pub(crate) async fn append(&self, entries: Vec<Pending>) -> Result<(), QueueError> {
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
