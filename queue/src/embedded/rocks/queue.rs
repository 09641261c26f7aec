//! The handle on an open RocksDB queue and its opening: the partition
//! count checked or recorded, the index rebuilt from `entries`, the writer
//! thread started.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, IteratorMode, Options, ReadOptions, WriteOptions,
};
use tokio::sync::{Notify, oneshot};

use super::state::{CF_DEAD, CF_ENTRIES, PARTITIONS, Shared, db_err};
use super::writer::{Job, Writer};
use crate::embedded::shared::{DeadLetter, DurableObserver, Pending, messages_in, parse_dead_letter};
use crate::error::QueueError;

/// Handle on an open RocksDB queue; cheap to clone.
#[derive(Clone)]
pub struct RocksQueue {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) shared: Arc<Shared>,
    /// Key assignment and hand-over to the writer under one lock, so the
    /// writer sees each partition's keys in order.
    submit: Mutex<Submit>,
    partitions: u32,
    writer: Option<std::thread::JoinHandle<()>>,
}

struct Submit {
    /// Per partition, the key the next entry gets.
    next: Vec<u64>,
    tx: mpsc::Sender<Job>,
}

impl Drop for Inner {
    /// Lets the writer finish what it was handed (acks included) before the
    /// database closes.
    fn drop(&mut self) {
        let submit = self.submit.get_mut().unwrap_or_else(|e| e.into_inner());
        submit.tx = mpsc::channel().0;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// Memtables of [`MEMTABLE_BYTES`], two at most per column family, where
/// RocksDB's default is 64 MiB: what the queue holds live is the traffic
/// not yet written to SQL, seconds of it, and entries are deleted as they
/// are acked. A 64 MiB memtable of puts and their deletes kept persist's
/// memory growing for the first minutes of a steady load (a 30-minute
/// soak: +5.6 % after its 3-minute warm-up), for nothing a consumer reads.
///
/// Table blocks go to `cache`, one small cache for every column family in
/// place of RocksDB's default of 32 MiB each. Nothing needs more: entries
/// are read once, by a consumer, without filling the cache (see
/// [`RocksQueue::read_options`]); each table's index and filter stay with
/// its reader and go when compaction drops the table. In the block cache
/// they would stay until evicted: a 30-minute soak with them there saw the
/// cache climb 0.4 MB a minute with the blocks of tables long deleted.
fn column_family_options(cache: &Cache) -> Options {
    let mut o = Options::default();
    o.set_write_buffer_size(MEMTABLE_BYTES);
    o.set_max_write_buffer_number(2);
    let mut tables = BlockBasedOptions::default();
    tables.set_block_cache(cache);
    o.set_block_based_table_factory(&tables);
    o
}

/// One memtable's size (see [`column_family_options`]).
const MEMTABLE_BYTES: usize = 8 << 20;

/// The block cache all column families share (see
/// [`column_family_options`]): what the queue's own reads do not fill.
const BLOCK_CACHE_BYTES: usize = 1 << 20;

/// What RocksDB holds in memory, in bytes (see [`RocksQueue::memory`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RocksMemory {
    /// Every column family's memtables, the one being written and those
    /// waiting to be flushed.
    pub memtables: u64,
    /// Open tables' readers, their index and filter blocks included.
    pub table_readers: u64,
    /// The shared block cache's use.
    pub block_cache: u64,
}

impl RocksQueue {
    /// Opens (or creates) the queue in `dir/rocksdb`. The partition count is
    /// fixed at creation: reopening with another count fails, as does
    /// opening a directory another process holds open. `durable` is told
    /// what each sync made durable.
    pub fn open(dir: &Path, partitions: u32, durable: Option<DurableObserver>) -> Result<Self, QueueError> {
        let invalid =
            |what: String| QueueError::Invalid(format!("embedded queue in {}: {what}", dir.display()));
        if partitions == 0 {
            return Err(invalid("the partition count must be at least 1".into()));
        }
        let path = dir.join("rocksdb");
        std::fs::create_dir_all(&path)?;
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let mut opts = column_family_options(&cache);
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let cfs = [CF_ENTRIES, CF_DEAD]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, column_family_options(&cache)));
        let db = DB::open_cf_descriptors(&opts, &path, cfs).map_err(db_err)?;

        match db.get(PARTITIONS).map_err(db_err)? {
            Some(v) => {
                let stored = <[u8; 4]>::try_from(v.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| invalid(format!("unreadable partition count {v:?}")))?;
                if stored != partitions {
                    return Err(invalid(format!(
                        "has {stored} partitions, config says {partitions}"
                    )));
                }
            }
            None => {
                let mut sync = WriteOptions::default();
                sync.set_sync(true);
                db.put_opt(PARTITIONS, partitions.to_be_bytes(), &sync)
                    .map_err(db_err)?;
            }
        }

        let mut index = vec![BTreeMap::new(); partitions as usize];
        let mut next = vec![1u64; partitions as usize];
        let mut waiting = 0u64;
        let entries = db.cf_handle(CF_ENTRIES).expect("column family created at open");
        for item in db.iterator_cf_opt(entries, Self::read_options(), IteratorMode::Start) {
            let (k, v) = item.map_err(db_err)?;
            let (p, key) = match <[u8; 12]>::try_from(&*k) {
                Ok(k) => (
                    u32::from_be_bytes([k[0], k[1], k[2], k[3]]),
                    u64::from_be_bytes(k[4..].try_into().unwrap_or_default()),
                ),
                Err(_) => return Err(invalid(format!("bad entry key {k:?}"))),
            };
            if p >= partitions || key == u64::MAX {
                return Err(invalid(format!("bad entry key {k:?}")));
            }
            let messages = messages_in(&v);
            index[p as usize].insert(key, messages);
            next[p as usize] = key + 1;
            waiting += u64::from(messages);
        }
        let dead = db.cf_handle(CF_DEAD).expect("column family created at open");
        let next_dead = match db.iterator_cf(dead, IteratorMode::End).next() {
            Some(item) => {
                let (k, _) = item.map_err(db_err)?;
                <[u8; 8]>::try_from(&*k)
                    .map(u64::from_be_bytes)
                    .map_err(|_| invalid(format!("bad dead letter key {k:?}")))?
                    + 1
            }
            None => 1,
        };

        let shared = Arc::new(Shared {
            db,
            index: Mutex::new(index),
            arrived: Notify::new(),
            failed: AtomicBool::new(false),
            waiting: AtomicU64::new(waiting),
            commit_seconds: OnceLock::new(),
            durable,
            path,
            cache,
        });
        shared.all_durable();
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(shared.clone(), next_dead);
        let writer = std::thread::Builder::new()
            .name("queue-rocksdb".into())
            .spawn(move || writer.run(rx))?;
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                submit: Mutex::new(Submit { next, tx }),
                partitions,
                writer: Some(writer),
            }),
        })
    }

    pub fn partitions(&self) -> u32 {
        self.inner.partitions
    }

    /// True once a write failed: every enqueue is refused from then on.
    pub fn failed(&self) -> bool {
        self.inner.shared.failed.load(Ordering::SeqCst)
    }

    /// Messages waiting (delivered or not, not acked) in all partitions.
    pub fn len(&self) -> usize {
        self.inner.shared.waiting.load(Ordering::SeqCst) as usize
    }

    /// Reports the seconds of every synced group commit to `h` from now on
    /// (the first histogram given stays).
    pub fn observe_commits(&self, h: prometheus::Histogram) {
        let _ = self.inner.shared.commit_seconds.set(h);
    }

    /// What RocksDB holds in memory now: memtables and table readers of
    /// every column family (the default one included) and the block cache.
    pub fn memory(&self) -> RocksMemory {
        let shared = &self.inner.shared;
        let db = &shared.db;
        let sum = |name: &rocksdb::properties::PropName| -> u64 {
            let default = db.property_int_value(name).ok().flatten().unwrap_or(0);
            [CF_ENTRIES, CF_DEAD]
                .into_iter()
                .filter_map(|cf| db.property_int_value_cf(shared.cf(cf), name).ok().flatten())
                .sum::<u64>()
                + default
        };
        RocksMemory {
            memtables: sum(rocksdb::properties::CUR_SIZE_ALL_MEM_TABLES),
            table_readers: sum(rocksdb::properties::ESTIMATE_TABLE_READERS_MEM),
            block_cache: shared.cache.get_usage() as u64,
        }
    }

    /// How the queue reads entries: each is read once (by a consumer, or
    /// at open), so its blocks are not kept in the block cache.
    pub(super) fn read_options() -> ReadOptions {
        let mut o = ReadOptions::default();
        o.fill_cache(false);
        o
    }

    /// RocksDB's files holding entries now on disk: write-ahead logs and
    /// tables.
    pub fn data_files(&self) -> usize {
        std::fs::read_dir(&self.inner.shared.path).map_or(0, |d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    let p = e.path();
                    p.extension().is_some_and(|x| x == "log" || x == "sst")
                })
                .count()
        })
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let shared = &self.inner.shared;
        shared
            .db
            .iterator_cf(shared.cf(CF_DEAD), IteratorMode::Start)
            .map(|item| parse_dead_letter(&item.map_err(db_err)?.1))
            .collect()
    }

    /// Hands entries (partition, payload, messages) to the writer, keyed in
    /// order, and waits until they are on disk.
    pub(crate) async fn append(&self, entries: Vec<Pending>) -> Result<(), QueueError> {
        if entries.is_empty() {
            return Ok(());
        }
        if self.failed() {
            return Err(QueueError::Closed);
        }
        let (done, answer) = oneshot::channel();
        {
            let mut submit = self.inner.submit.lock().unwrap_or_else(|e| e.into_inner());
            let entries = entries
                .into_iter()
                .map(|(partition, payload, messages)| {
                    let next = &mut submit.next[partition as usize];
                    let key = *next;
                    *next += 1;
                    (partition, key, payload, messages)
                })
                .collect();
            submit
                .tx
                .send(Job::Append { entries, done })
                .map_err(|_| QueueError::Closed)?;
        }
        answer.await.map_err(|_| QueueError::Closed)?
    }

    /// Hands a job that answers nobody to the writer.
    pub(super) fn send(&self, job: Job) -> Result<(), QueueError> {
        let submit = self.inner.submit.lock().unwrap_or_else(|e| e.into_inner());
        submit.tx.send(job).map_err(|_| QueueError::Closed)
    }
}
