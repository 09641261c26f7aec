//! The receiving side of the RocksDB engine: a consumer walks its
//! partitions' keys in order from the index (a fair share each,
//! round-robin) and reads the payloads from RocksDB; an ack takes the keys
//! out of the index and hands their deletes to the writer; a dead letter
//! and the delete of its entry are one synced batch.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::oneshot;

use super::queue::RocksQueue;
use super::state::{CF_ENTRIES, db_err, entry_key};
use super::writer::Job;
use crate::consumer::{Consumer, Delivery};
use crate::embedded::shared::{EmbeddedToken, dead_letter_body, encoding_of, next_batch_with};
use crate::error::QueueError;

/// Consumes some partitions of a [`RocksQueue`].
pub struct RocksConsumer {
    queue: RocksQueue,
    /// Per partition, the last key delivered.
    cursors: Vec<(u32, Option<u64>)>,
    /// Round-robin start, so no partition starves.
    start: usize,
}

impl RocksQueue {
    /// A consumer of the given partitions.
    pub fn consumer(&self, partitions: Vec<u32>) -> RocksConsumer {
        RocksConsumer {
            queue: self.clone(),
            cursors: partitions.into_iter().map(|p| (p, None)).collect(),
            start: 0,
        }
    }

    /// Forgets acked entries and hands their deletes to the writer.
    fn ack_keys(&self, keys: Vec<(u32, u64)>) -> Result<(), QueueError> {
        if keys.is_empty() {
            return Ok(());
        }
        let shared = &self.inner.shared;
        {
            let mut index = shared.index();
            for &(p, key) in &keys {
                if let Some(messages) = index.get_mut(p as usize).and_then(|m| m.remove(&key)) {
                    shared.waiting.fetch_sub(u64::from(messages), Ordering::SeqCst);
                }
            }
        }
        self.send(Job::Acks(keys))
    }

    /// Puts `payload` among the dead letters with `reason` and deletes the
    /// entry of `token`, in one synced batch.
    async fn set_aside(&self, token: &EmbeddedToken, payload: &[u8], reason: &str) -> Result<(), QueueError> {
        let mut body = Vec::with_capacity(4 + reason.len().min(4096) + payload.len());
        dead_letter_body(&mut body, payload, reason);
        let (done, answer) = oneshot::channel();
        self.send(Job::DeadLetter {
            partition: token.partition,
            key: token.key,
            body,
            done,
        })?;
        answer.await.map_err(|_| QueueError::Closed)?
    }
}

impl RocksConsumer {
    fn scan(&mut self, max: usize, out: &mut Vec<Delivery<EmbeddedToken>>) -> Result<(), QueueError> {
        let n = self.cursors.len();
        if n == 0 {
            return Ok(());
        }
        let shared = &self.queue.inner.shared;
        // Which keys, taken under the lock; read after it.
        let mut found: Vec<(u32, u64)> = Vec::new();
        {
            let index = shared.index();
            // A fair share per partition first, then whatever room is left.
            for round in 0..2 {
                for i in 0..n {
                    let room = max.saturating_sub(out.len() + found.len());
                    if room == 0 {
                        break;
                    }
                    let share = if round == 0 { room.div_ceil(n).max(1) } else { room };
                    let (p, cursor) = &mut self.cursors[(self.start + i) % n];
                    let Some(part) = index.get(*p as usize) else {
                        continue;
                    };
                    let lower = cursor.map_or(0, |k| k + 1);
                    for &key in part.range(lower..).take(share).map(|(k, _)| k) {
                        *cursor = Some(key);
                        found.push((*p, key));
                    }
                }
            }
        }
        if found.is_empty() {
            return Ok(());
        }
        let entries = shared.cf(CF_ENTRIES);
        let keys: Vec<[u8; 12]> = found.iter().map(|&(p, k)| entry_key(p, k)).collect();
        let payloads = shared
            .db
            .batched_multi_get_cf_opt(entries, &keys, false, &RocksQueue::read_options());
        for ((partition, key), payload) in found.into_iter().zip(payloads) {
            let payload = payload
                .map_err(db_err)?
                .ok_or_else(|| QueueError::Invalid(format!("entry {partition}/{key} is gone")))?;
            out.push(Delivery {
                encoding: encoding_of(&payload),
                payload: payload.to_vec(),
                partition,
                token: EmbeddedToken { partition, key },
            });
        }
        self.start = (self.start + 1) % n;
        Ok(())
    }
}

impl Consumer for RocksConsumer {
    type Token = EmbeddedToken;

    async fn next_batch(
        &mut self,
        max: usize,
        linger: Duration,
    ) -> Result<Vec<Delivery<EmbeddedToken>>, QueueError> {
        let queue = self.queue.clone();
        next_batch_with(
            &queue.inner.shared.arrived,
            || queue.failed(),
            max,
            linger,
            |max, out| self.scan(max, out),
        )
        .await
    }

    async fn ack(&mut self, tokens: Vec<EmbeddedToken>) -> Result<(), QueueError> {
        self.queue
            .ack_keys(tokens.into_iter().map(|t| (t.partition, t.key)).collect())
    }

    async fn dead_letter(&mut self, d: Delivery<EmbeddedToken>, reason: &str) -> Result<(), QueueError> {
        self.queue.set_aside(&d.token, &d.payload, reason).await
    }

    async fn dead_letter_part(
        &mut self,
        d: Delivery<EmbeddedToken>,
        part: Vec<u8>,
        reason: &str,
    ) -> Result<(), QueueError> {
        self.queue.set_aside(&d.token, &part, reason).await
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}
