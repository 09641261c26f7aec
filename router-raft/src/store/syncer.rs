//! Group commit for the WAL: every append of every group writes its batch
//! without sync and hands its completion here; one thread fsyncs the WAL once
//! for all the completions queued meanwhile, then reports them durable.

use std::io;
use std::sync::Arc;
use std::sync::Weak;
use std::sync::mpsc;
use std::time::Instant;

use rocksdb::DB;

use crate::metrics;

/// What to run once the WAL holding a write is on disk.
pub type Completion = Box<dyn FnOnce(io::Result<()>) + Send>;

#[derive(Clone)]
pub struct WalSyncer {
    tx: mpsc::Sender<Completion>,
}

impl WalSyncer {
    pub(crate) fn start(db: &Arc<DB>) -> Self {
        let (tx, rx) = mpsc::channel::<Completion>();
        // A weak handle: if this thread held the last reference, RocksDB's
        // destructor would run here, racing the process's exit-time
        // destructors (an abort with "pthread lock: Invalid argument").
        let db = Arc::downgrade(db);
        let spawned = std::thread::Builder::new()
            .name("wal-sync".into())
            .spawn(move || sync_loop(&db, &rx));
        if let Err(error) = spawned {
            // Without the thread every completion would hang; fail loudly instead.
            panic!("cannot start the WAL sync thread: {error}");
        }
        Self { tx }
    }

    /// Queues `done` to run after the next WAL fsync.
    pub fn after_sync(&self, done: Completion) {
        if let Err(mpsc::SendError(done)) = self.tx.send(done) {
            done(Err(io::Error::other("WAL syncer stopped")));
        }
    }

    /// Waits until everything written so far is on disk.
    pub async fn sync(&self) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.after_sync(Box::new(move |res| {
            let _ = tx.send(res);
        }));
        rx.await.map_err(|_| io::Error::other("WAL syncer stopped"))?
    }
}

fn sync_loop(db: &Weak<DB>, rx: &mpsc::Receiver<Completion>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let started = Instant::now();
        let res = match db.upgrade() {
            Some(db) => db.flush_wal(true).map_err(|e| e.to_string()),
            None => Err("the database is closed".to_string()),
        };
        metrics::WAL_SYNC_SECONDS.observe(started.elapsed().as_secs_f64());
        metrics::WAL_SYNC_BATCH.observe(batch.len() as f64);
        for done in batch {
            done(res.clone().map_err(io::Error::other));
        }
    }
}
