//! The one thread that appends to the log. Whatever was handed to it while
//! it wrote the last group goes out in one `write` and one `fdatasync`
//! (group commit); only then are the entries put in the index (visible to
//! consumers) and the enqueue calls answered. Acks ride along in the same
//! write and wait for no disk. Past the segment size it starts the next
//! segment.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use tokio::sync::oneshot;

use super::index::{Entry, Shared, lock};
use super::record::{NewEntry, put_acks, put_entry};
use super::segment::{Segment, create_segment, segment_path, unlink};
use crate::embedded::shared::Durable;
use crate::error::QueueError;

/// Most jobs the writer takes into one group commit.
const MAX_GROUP: usize = 4096;

pub(super) enum Job {
    /// Entries of one enqueue call; answered once they are on disk.
    Append {
        entries: Vec<NewEntry>,
        done: oneshot::Sender<Result<(), QueueError>>,
    },
    /// Acks to record (nobody waits for them).
    Acks(Vec<(u32, u64)>),
}

/// The one thread that appends to the log.
pub(super) struct Writer {
    dir: PathBuf,
    shared: Arc<Shared>,
    file: File,
    size: u64,
    /// The active segment holds bytes not yet synced (acks).
    unsynced: bool,
    active: u64,
    segment_bytes: u64,
    /// Threads deleting drained segments; joined when the writer stops, so
    /// that a reopen in the same process never lists a file being deleted.
    unlinking: Vec<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// A writer that appends to `file`, the empty segment `active` of `dir`.
    pub(super) fn new(dir: &Path, shared: Arc<Shared>, file: File, active: u64, segment_bytes: u64) -> Self {
        Self {
            dir: dir.to_owned(),
            shared,
            file,
            size: 0,
            unsynced: false,
            active,
            segment_bytes,
            unlinking: Vec::new(),
        }
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<Job>) {
        let mut buf = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.commit(&mut buf, jobs) {
                tracing::error!(error = %e, "embedded queue write failed; enqueuers will see a closed queue");
                self.shared.failed.store(true, Ordering::SeqCst);
                // Later jobs are answered Closed as their senders drop.
                break;
            }
        }
        for t in self.unlinking.drain(..) {
            let _ = t.join();
        }
    }

    /// Writes one group: every entry and ack in one write, then one
    /// fdatasync when entries wait for it; then publishes and answers.
    fn commit(&mut self, buf: &mut Vec<u8>, jobs: Vec<Job>) -> Result<(), QueueError> {
        if self.size >= self.segment_bytes {
            self.rotate()?;
        }
        buf.clear();
        let mut placed = Vec::new();
        let mut waiters = Vec::new();
        for job in jobs {
            match job {
                Job::Append { entries, done } => {
                    for e in entries {
                        let at = put_entry(buf, &e);
                        placed.push((e.partition, e.key, at, e.payload.len(), e.messages));
                    }
                    waiters.push(done);
                }
                Job::Acks(acks) => put_acks(buf, &acks),
            }
        }
        let base = self.size;
        let started = Instant::now();
        let written = self.file.write_all_at(buf, base).and_then(|_| {
            if waiters.is_empty() {
                Ok(())
            } else {
                self.file.sync_data()
            }
        });
        if let Err(e) = written {
            for w in waiters {
                let _ = w.send(Err(QueueError::Closed));
            }
            return Err(e.into());
        }
        if let Some(observe) = &self.shared.durable
            && !waiters.is_empty()
        {
            observe(Durable::File {
                path: &segment_path(&self.dir, self.active),
                len: base + buf.len() as u64,
            });
        }
        if let Some(h) = self.shared.commit_seconds.get()
            && !waiters.is_empty()
        {
            h.observe(started.elapsed().as_secs_f64());
        }
        self.size += buf.len() as u64;
        self.unsynced = waiters.is_empty() && (self.unsynced || !buf.is_empty());
        let placed_any = !placed.is_empty();
        if placed_any {
            let mut state = lock(&self.shared.state);
            let state = &mut *state;
            let n = placed.len();
            let messages: u64 = placed.iter().map(|p| u64::from(p.4)).sum();
            self.shared.waiting.fetch_add(messages, Ordering::SeqCst);
            for (p, key, at, len, messages) in placed {
                state.parts[p as usize].insert(
                    key,
                    Entry {
                        segment: self.active,
                        offset: base + at as u64,
                        len: len as u32,
                        messages,
                    },
                );
            }
            if let Some(s) = state.segments.get_mut(&self.active) {
                s.live += n;
            }
        }
        if placed_any {
            self.shared.arrived.notify_waiters();
        }
        for w in waiters {
            let _ = w.send(Ok(()));
        }
        Ok(())
    }

    /// Closes the active segment (synced: a crash must not tear a segment
    /// that is not the last) and starts the next one.
    fn rotate(&mut self) -> Result<(), QueueError> {
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
            if let Some(observe) = &self.shared.durable {
                observe(Durable::File {
                    path: &segment_path(&self.dir, self.active),
                    len: self.size,
                });
            }
        }
        let id = self.active + 1;
        let (file, path) = create_segment(&self.dir, id)?;
        if let Some(observe) = &self.shared.durable {
            observe(Durable::Dir { path: &self.dir });
        }
        let reader = Arc::new(file.try_clone()?);
        let mut state = lock(&self.shared.state);
        state.active = id;
        state.segments.insert(
            id,
            Segment {
                file: reader,
                path,
                live: 0,
            },
        );
        let paths: Vec<_> = state.take_drained().into_iter().map(|s| s.path).collect();
        drop(state);
        if !paths.is_empty() {
            // Not on this thread: every enqueue waits for its next commit.
            let spawned = std::thread::Builder::new()
                .name("queue-unlink".into())
                .spawn(move || unlink(&paths));
            match spawned {
                Ok(t) => {
                    self.unlinking.retain(|t| !t.is_finished());
                    self.unlinking.push(t);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a thread to delete a drained queue segment")
                }
            }
        }
        self.file = file;
        self.size = 0;
        self.active = id;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::log::index::State;
    use crate::embedded::log::segment::SEGMENT_BYTES;

    #[tokio::test]
    async fn a_failed_write_answers_closed_and_marks_the_queue_failed() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("seg-0000000000000001.log");
        File::create(&path).expect("create");
        // A handle the writer cannot write through, as a disk that refuses.
        let file = File::open(&path).expect("open read-only");
        let shared = Arc::new(Shared::new(State::new(1), 0, None));
        let writer = Writer::new(dir.path(), shared.clone(), file, 1, SEGMENT_BYTES);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || writer.run(rx));
        let (done, answer) = oneshot::channel();
        let entry = NewEntry {
            partition: 0,
            key: 1,
            payload: b"x".to_vec(),
            messages: 1,
        };
        tx.send(Job::Append {
            entries: vec![entry],
            done,
        })
        .expect("send");
        let r = answer.await.expect("answered");
        assert!(matches!(r, Err(QueueError::Closed)), "{r:?}");
        thread.join().expect("writer ends");
        assert!(shared.failed.load(Ordering::SeqCst));
        assert!(
            lock(&shared.state).parts[0].is_empty(),
            "nothing undurable is delivered"
        );
    }
}
