//! The receiving side of the log: a consumer walks its partitions'
//! entries in key order from the index (a fair share each, round-robin),
//! reads the payloads back from the segments, and acks by key; an ack
//! takes the entries out of the index, records the acks in the log and
//! deletes the segments it drained.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::index::{Entry, lock};
use super::queue::LogQueue;
use super::segment::unlink;
use super::writer::Job;
use crate::consumer::{Consumer, Delivery};
use crate::embedded::shared::{EmbeddedToken, encoding_of, next_batch_with};
use crate::error::QueueError;

/// Consumes some partitions of an [`LogQueue`].
pub struct LogConsumer {
    queue: LogQueue,
    /// Per partition, the last key delivered.
    cursors: Vec<(u32, Option<u64>)>,
    /// Round-robin start, so no partition starves.
    start: usize,
}

impl LogQueue {
    /// A consumer of the given partitions.
    pub fn consumer(&self, partitions: Vec<u32>) -> LogConsumer {
        LogConsumer {
            queue: self.clone(),
            cursors: partitions.into_iter().map(|p| (p, None)).collect(),
            start: 0,
        }
    }

    /// Forgets acked entries and records the acks; deletes segments left
    /// with nothing to deliver, on a blocking thread: unlinking 64 MiB takes
    /// 15-20 ms here (ext4), a stall for every task of a runtime worker.
    async fn ack_keys(&self, keys: Vec<(u32, u64)>) -> Result<(), QueueError> {
        let drained = self.forget(keys)?;
        if !drained.is_empty() {
            // Awaited, so that an ack returns with the files gone; a failed
            // unlink only leaves a drained segment the next open deletes.
            let _ = tokio::task::spawn_blocking(move || unlink(&drained)).await;
        }
        Ok(())
    }

    /// The bookkeeping of [`Self::ack_keys`]: returns the segment files to
    /// delete.
    fn forget(&self, keys: Vec<(u32, u64)>) -> Result<Vec<PathBuf>, QueueError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let drained = {
            let mut state = lock(&self.inner.shared.state);
            let state = &mut *state;
            for &(p, k) in &keys {
                let Some(e) = state.parts.get_mut(p as usize).and_then(|m| m.remove(&k)) else {
                    continue;
                };
                self.inner
                    .shared
                    .waiting
                    .fetch_sub(u64::from(e.messages), Ordering::SeqCst);
                if let Some(s) = state.segments.get_mut(&e.segment) {
                    s.live -= 1;
                }
            }
            state
                .take_drained()
                .into_iter()
                .map(|s| s.path)
                .collect::<Vec<_>>()
        };
        // Unlinked outside the lock (readers keep their open handles).
        let submit = self.inner.submit();
        submit.tx.send(Job::Acks(keys)).map_err(|_| QueueError::Closed)?;
        Ok(drained)
    }
}

impl LogConsumer {
    fn scan(&mut self, max: usize, out: &mut Vec<Delivery<EmbeddedToken>>) -> Result<(), QueueError> {
        let n = self.cursors.len();
        if n == 0 {
            return Ok(());
        }
        // Where the payloads lie, taken under the lock; read after it.
        let mut found: Vec<(u32, u64, Entry, Arc<File>)> = Vec::new();
        {
            let state = lock(&self.queue.inner.shared.state);
            // A fair share per partition first, then whatever room is left.
            for round in 0..2 {
                for i in 0..n {
                    let room = max.saturating_sub(out.len() + found.len());
                    if room == 0 {
                        break;
                    }
                    let share = if round == 0 { room.div_ceil(n).max(1) } else { room };
                    let idx = (self.start + i) % n;
                    let (p, cursor) = &mut self.cursors[idx];
                    let Some(part) = state.parts.get(*p as usize) else {
                        continue;
                    };
                    let lower = cursor.map_or(0, |k| k + 1);
                    for (&key, e) in part.range(lower..).take(share) {
                        let file = state
                            .segments
                            .get(&e.segment)
                            .map(|s| s.file.clone())
                            .ok_or_else(|| {
                                QueueError::Invalid(format!("entry {p}/{key} lost its segment"))
                            })?;
                        *cursor = Some(key);
                        found.push((*p, key, *e, file));
                    }
                }
            }
        }
        for (partition, key, e, file) in found {
            let mut payload = vec![0; e.len as usize];
            file.read_exact_at(&mut payload, e.offset)?;
            out.push(Delivery {
                encoding: encoding_of(&payload),
                payload,
                partition,
                token: EmbeddedToken { partition, key },
            });
        }
        self.start = (self.start + 1) % n;
        Ok(())
    }
}

impl Consumer for LogConsumer {
    type Token = EmbeddedToken;

    async fn next_batch(
        &mut self,
        max: usize,
        linger: Duration,
    ) -> Result<Vec<Delivery<EmbeddedToken>>, QueueError> {
        let queue = self.queue.clone();
        next_batch_with(
            &queue.inner.shared.arrived,
            || queue.inner.shared.failed.load(Ordering::SeqCst),
            max,
            linger,
            |max, out| self.scan(max, out),
        )
        .await
    }

    async fn ack(&mut self, tokens: Vec<EmbeddedToken>) -> Result<(), QueueError> {
        self.queue
            .ack_keys(tokens.into_iter().map(|t| (t.partition, t.key)).collect())
            .await
    }

    async fn dead_letter(&mut self, d: Delivery<EmbeddedToken>, reason: &str) -> Result<(), QueueError> {
        self.queue.set_aside(&d.payload, reason).await?;
        self.queue.ack_keys(vec![(d.token.partition, d.token.key)]).await
    }

    async fn dead_letter_part(
        &mut self,
        d: Delivery<EmbeddedToken>,
        part: Vec<u8>,
        reason: &str,
    ) -> Result<(), QueueError> {
        self.queue.set_aside(&part, reason).await?;
        self.queue.ack_keys(vec![(d.token.partition, d.token.key)]).await
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}
