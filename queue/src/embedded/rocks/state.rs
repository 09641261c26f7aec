//! What the writer thread and the handles of the RocksDB engine share:
//! the database, the in-memory index, the flags and counters; and the key
//! layout.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Mutex, MutexGuard, OnceLock};

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{Cache, ColumnFamily, DB};
use tokio::sync::Notify;

use crate::embedded::shared::{Durable, DurableObserver};
use crate::error::QueueError;

pub(super) const CF_ENTRIES: &str = "entries";
pub(super) const CF_DEAD: &str = "dead_letters";
/// The key of the partition count in the default column family.
pub(super) const PARTITIONS: &[u8] = b"partitions";

/// What the writer thread and the handles share.
pub(super) struct Shared {
    pub(super) db: DB,
    /// Per partition, the durable entries not yet acked: key -> messages.
    pub(super) index: Mutex<Vec<BTreeMap<u64, u32>>>,
    pub(super) arrived: Notify,
    pub(super) failed: AtomicBool,
    /// Messages in the entries not yet acked.
    pub(super) waiting: AtomicU64,
    pub(super) commit_seconds: OnceLock<prometheus::Histogram>,
    pub(super) durable: Option<DurableObserver>,
    /// The database's directory.
    pub(super) path: PathBuf,
    /// The block cache every column family shares.
    pub(super) cache: Cache,
}

impl Shared {
    pub(super) fn index(&self) -> MutexGuard<'_, Vec<BTreeMap<u64, u32>>> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn cf(&self, name: &str) -> &ColumnFamily {
        // Both families are created at open; their absence is a bug.
        self.db.cf_handle(name).expect("column family created at open")
    }

    /// Tells the observer, if any, that everything written is on disk.
    pub(super) fn all_durable(&self) {
        if let Some(observe) = &self.durable {
            let checkpoint = |to: &Path| {
                Checkpoint::new(&self.db)
                    .and_then(|c| c.create_checkpoint_with_log_size(to, u64::MAX))
                    .map_err(db_err)
            };
            observe(Durable::Everything {
                dir: &self.path,
                checkpoint: &checkpoint,
            });
        }
    }
}

/// A RocksDB error as the queue's storage error.
pub(super) fn db_err(e: rocksdb::Error) -> QueueError {
    QueueError::Storage(io::Error::other(e))
}

/// The key of entry `key` of partition `p`: big-endian, so a partition's
/// entries sort together and in key order.
pub(super) fn entry_key(p: u32, key: u64) -> [u8; 12] {
    let mut k = [0; 12];
    k[..4].copy_from_slice(&p.to_be_bytes());
    k[4..].copy_from_slice(&key.to_be_bytes());
    k
}
