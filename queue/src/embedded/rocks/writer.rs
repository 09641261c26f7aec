//! The one thread that writes to RocksDB. Whatever was handed to it while
//! it wrote the last group goes into one `WriteBatch`, synced when it holds
//! entries or dead letters (one WAL `fdatasync` for the group); only then
//! are the entries put in the index (visible to consumers) and the callers
//! answered. Acks ride along as deletes and wait for no disk.

use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use rocksdb::{WriteBatch, WriteOptions};
use tokio::sync::oneshot;

use super::state::{CF_DEAD, CF_ENTRIES, Shared, db_err, entry_key};
use crate::error::QueueError;

/// Most jobs the writer takes into one group commit.
const MAX_GROUP: usize = 4096;

pub(super) enum Job {
    /// Entries (partition, key, payload, messages) of one enqueue call;
    /// answered once they are on disk.
    Append {
        entries: Vec<(u32, u64, Vec<u8>, u32)>,
        done: oneshot::Sender<Result<(), QueueError>>,
    },
    /// Acks to record (nobody waits for them).
    Acks(Vec<(u32, u64)>),
    /// A dead letter (its bytes) for entry (partition, key), which it
    /// replaces; answered once on disk.
    DeadLetter {
        partition: u32,
        key: u64,
        body: Vec<u8>,
        done: oneshot::Sender<Result<(), QueueError>>,
    },
}

/// The one thread that writes to RocksDB.
pub(super) struct Writer {
    shared: Arc<Shared>,
    /// The sequence number of the next dead letter.
    next_dead: u64,
}

impl Writer {
    pub(super) fn new(shared: Arc<Shared>, next_dead: u64) -> Self {
        Self { shared, next_dead }
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            jobs.extend(rx.try_iter().take(MAX_GROUP - 1));
            if let Err(e) = self.commit(jobs) {
                tracing::error!(error = %e, "embedded queue write failed; enqueuers will see a closed queue");
                self.shared.failed.store(true, Ordering::SeqCst);
                // Later jobs are answered Closed as their senders drop.
                return;
            }
        }
    }

    /// Writes one group as one batch, synced when anyone waits for it; then
    /// publishes and answers.
    fn commit(&mut self, jobs: Vec<Job>) -> Result<(), QueueError> {
        let shared = &*self.shared;
        let (entries, dead) = (shared.cf(CF_ENTRIES), shared.cf(CF_DEAD));
        let mut batch = WriteBatch::default();
        let mut placed = Vec::new();
        let mut replaced = Vec::new();
        let mut waiters = Vec::new();
        for job in jobs {
            match job {
                Job::Append { entries: es, done } => {
                    for (p, key, payload, messages) in es {
                        batch.put_cf(entries, entry_key(p, key), payload);
                        placed.push((p, key, messages));
                    }
                    waiters.push(done);
                }
                Job::Acks(acks) => {
                    for (p, key) in acks {
                        batch.delete_cf(entries, entry_key(p, key));
                    }
                }
                Job::DeadLetter {
                    partition,
                    key,
                    body,
                    done,
                } => {
                    batch.put_cf(dead, self.next_dead.to_be_bytes(), body);
                    self.next_dead += 1;
                    batch.delete_cf(entries, entry_key(partition, key));
                    replaced.push((partition, key));
                    waiters.push(done);
                }
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(!waiters.is_empty());
        let started = Instant::now();
        if let Err(e) = shared.db.write_opt(batch, &opts) {
            for w in waiters {
                let _ = w.send(Err(QueueError::Closed));
            }
            return Err(db_err(e));
        }
        if !waiters.is_empty() {
            if let Some(h) = shared.commit_seconds.get() {
                h.observe(started.elapsed().as_secs_f64());
            }
            shared.all_durable();
        }
        if !placed.is_empty() || !replaced.is_empty() {
            let mut index = shared.index();
            let mut added = 0u64;
            for (p, key, messages) in &placed {
                index[*p as usize].insert(*key, *messages);
                added += u64::from(*messages);
            }
            shared.waiting.fetch_add(added, Ordering::SeqCst);
            for (p, key) in replaced {
                if let Some(messages) = index[p as usize].remove(&key) {
                    shared.waiting.fetch_sub(u64::from(messages), Ordering::SeqCst);
                }
            }
        }
        if !placed.is_empty() {
            shared.arrived.notify_waiters();
        }
        for w in waiters {
            let _ = w.send(Ok(()));
        }
        Ok(())
    }
}
