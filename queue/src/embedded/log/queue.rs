//! The handle on an open log: what its clones share (the index, the
//! hand-over to the writer thread, the dead-letter file, the directory
//! lock) and the questions one may ask it. Opening, enqueueing and
//! consuming are in their own files.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};

use super::index::{Shared, lock};
use super::writer::Job;

/// Handle on an open embedded queue; cheap to clone.
#[derive(Clone)]
pub struct LogQueue {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) dir: PathBuf,
    pub(super) shared: Arc<Shared>,
    /// Key assignment and hand-over to the writer under one lock, so the
    /// writer sees each partition's keys in order.
    pub(super) submit: Mutex<Submit>,
    pub(super) dead: Mutex<File>,
    pub(super) partitions: u32,
    pub(super) writer: Option<std::thread::JoinHandle<()>>,
    /// Held (locked) while the queue is open: one process per directory.
    pub(super) _lock: File,
}

impl Drop for Inner {
    /// Lets the writer finish what it was handed (acks included) before the
    /// directory is released to the next opener.
    fn drop(&mut self) {
        let submit = self.submit.get_mut().unwrap_or_else(|e| e.into_inner());
        submit.tx = mpsc::channel().0;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

pub(super) struct Submit {
    /// Per partition, the key the next entry gets.
    pub(super) next: Vec<u64>,
    pub(super) tx: mpsc::Sender<Job>,
}

impl Inner {
    /// The hand-over to the writer, locked.
    pub(super) fn submit(&self) -> std::sync::MutexGuard<'_, Submit> {
        self.submit.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl LogQueue {
    pub fn partitions(&self) -> u32 {
        self.inner.partitions
    }

    /// True once a write to the log failed (disk full, I/O error): every
    /// enqueue is refused from then on, and only a restart (which replays
    /// what was durable) brings the queue back.
    pub fn failed(&self) -> bool {
        self.inner.shared.failed.load(Ordering::SeqCst)
    }

    /// Messages waiting (delivered or not, not acked) in all partitions.
    pub fn len(&self) -> usize {
        self.inner.shared.waiting.load(Ordering::SeqCst) as usize
    }

    /// Reports the seconds of every group commit (write + fdatasync) to
    /// `h` from now on (the first histogram given stays).
    pub fn observe_commits(&self, h: prometheus::Histogram) {
        let _ = self.inner.shared.commit_seconds.set(h);
    }

    /// The log's segment files now on disk (the one being written
    /// included).
    pub fn segments(&self) -> usize {
        lock(&self.inner.shared.state).segments.len()
    }
}
