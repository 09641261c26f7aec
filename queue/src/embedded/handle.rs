//! The embedded queue as persist sees it: one handle and one consumer over
//! either engine, the engine picked at open, and the check that keeps one
//! engine from opening over messages the other still holds.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use super::log::{LogConsumer, LogQueue, SEGMENT_BYTES};
#[cfg(feature = "rocksdb")]
use super::rocks::{RocksConsumer, RocksQueue};
use super::shared::{DeadLetter, DurableObserver, EmbeddedToken, Pending, entries_of, raw_entries};
use crate::consumer::{Consumer, Delivery};
use crate::envelope::QueuedMessage;
use crate::error::QueueError;
use crate::producer::Producer;

/// Where the embedded queue keeps its entries. The default is RocksDB when
/// the crate is built with it (feature `rocksdb`), else the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// `log`: the append-only log of our own, in the directory itself.
    #[cfg_attr(not(feature = "rocksdb"), default)]
    Log,
    /// `rocksdb`: RocksDB, in the directory's `rocksdb/`.
    #[cfg_attr(feature = "rocksdb", default)]
    Rocksdb,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Log => "log",
            Engine::Rocksdb => "rocksdb",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Engine {
    type Err = QueueError;

    fn from_str(s: &str) -> Result<Self, QueueError> {
        match s {
            "log" => Ok(Engine::Log),
            "rocksdb" => Ok(Engine::Rocksdb),
            _ => Err(QueueError::Invalid(format!(
                "embedded queue engine {s:?}: \"log\" or \"rocksdb\""
            ))),
        }
    }
}

/// How to open an embedded queue.
#[derive(Clone, Default)]
pub struct OpenOptions {
    pub engine: Engine,
    /// `log`: a segment past this size is closed and the next started (0:
    /// [`SEGMENT_BYTES`]; tests use small ones to see segments come and go).
    pub segment_bytes: u64,
    /// Told what each sync made durable, right after it (a test seam: see
    /// [`Durable`](super::Durable)).
    pub durable: Option<DurableObserver>,
}

/// The parts [`EmbeddedQueue::memory`] reports, in its order.
pub const MEMORY_PARTS: [&str; 3] = ["memtables", "table_readers", "block_cache"];

/// Handle on an open embedded queue; cheap to clone.
#[derive(Clone)]
pub struct EmbeddedQueue {
    engine: Handle,
    max_body_bytes: usize,
}

#[derive(Clone)]
enum Handle {
    Log(LogQueue),
    #[cfg(feature = "rocksdb")]
    Rocks(RocksQueue),
}

/// Calls `$f` on the engine's handle.
macro_rules! each {
    ($self:expr, $q:ident => $f:expr) => {
        match &$self.engine {
            Handle::Log($q) => $f,
            #[cfg(feature = "rocksdb")]
            Handle::Rocks($q) => $f,
        }
    };
}

impl EmbeddedQueue {
    /// Opens (or creates) the queue of the default engine in `dir`.
    pub fn open(dir: &Path, partitions: u32, max_body_bytes: usize) -> Result<Self, QueueError> {
        Self::open_with(dir, partitions, max_body_bytes, &OpenOptions::default())
    }

    /// Opens a `log` queue with segments of `segment_bytes`.
    pub fn open_segmented(
        dir: &Path,
        partitions: u32,
        max_body_bytes: usize,
        segment_bytes: u64,
    ) -> Result<Self, QueueError> {
        let options = OpenOptions {
            engine: Engine::Log,
            segment_bytes,
            durable: None,
        };
        Self::open_with(dir, partitions, max_body_bytes, &options)
    }

    /// Opens (or creates) the queue in `dir`. The partition count is fixed
    /// at creation: reopening with another count fails, as does opening a
    /// directory another process holds open, or one where the other engine
    /// holds messages not yet acked (they would never be delivered).
    pub fn open_with(
        dir: &Path,
        partitions: u32,
        max_body_bytes: usize,
        options: &OpenOptions,
    ) -> Result<Self, QueueError> {
        if let Some((other, waiting)) = other_engine(dir, partitions, options.engine)?
            && waiting > 0
        {
            return Err(QueueError::Invalid(format!(
                "embedded queue in {}: the {other} engine holds {waiting} messages not yet written; run with \
                 queue.embedded_engine = \"{other}\" until they are (or move the directory away)",
                dir.display()
            )));
        }
        let durable = options.durable.clone();
        let engine = match options.engine {
            Engine::Log => {
                let segment_bytes = match options.segment_bytes {
                    0 => SEGMENT_BYTES,
                    n => n,
                };
                Handle::Log(LogQueue::open(dir, partitions, segment_bytes, durable)?)
            }
            #[cfg(feature = "rocksdb")]
            Engine::Rocksdb => Handle::Rocks(RocksQueue::open(dir, partitions, durable)?),
            #[cfg(not(feature = "rocksdb"))]
            Engine::Rocksdb => return Err(no_rocksdb(dir)),
        };
        Ok(Self {
            engine,
            max_body_bytes,
        })
    }

    pub fn engine(&self) -> Engine {
        match self.engine {
            Handle::Log(_) => Engine::Log,
            #[cfg(feature = "rocksdb")]
            Handle::Rocks(_) => Engine::Rocksdb,
        }
    }

    pub fn partitions(&self) -> u32 {
        each!(self, q => q.partitions())
    }

    /// True once a write failed (disk full, I/O error): every enqueue is
    /// refused from then on, and only a restart (which reads back what was
    /// durable) brings the queue back.
    pub fn failed(&self) -> bool {
        each!(self, q => q.failed())
    }

    /// Messages waiting (delivered or not, not acked) in all partitions.
    pub fn len(&self) -> usize {
        each!(self, q => q.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reports the seconds of every group commit (write + fdatasync) to
    /// `h` from now on (the first histogram given stays).
    pub fn observe_commits(&self, h: prometheus::Histogram) {
        each!(self, q => q.observe_commits(h))
    }

    /// The files holding entries now on disk: the log's segments (the one
    /// being written included), RocksDB's write-ahead logs and tables.
    pub fn segments(&self) -> usize {
        match &self.engine {
            Handle::Log(q) => q.segments(),
            #[cfg(feature = "rocksdb")]
            Handle::Rocks(q) => q.data_files(),
        }
    }

    /// What the engine holds in memory by part ([`MEMORY_PARTS`]), in
    /// bytes: RocksDB's memtables, table readers and block cache; nothing
    /// for the log, whose memory is its index of waiting entries.
    pub fn memory(&self) -> Vec<(&'static str, u64)> {
        match &self.engine {
            Handle::Log(_) => Vec::new(),
            #[cfg(feature = "rocksdb")]
            Handle::Rocks(q) => {
                let m = q.memory();
                MEMORY_PARTS
                    .into_iter()
                    .zip([m.memtables, m.table_readers, m.block_cache])
                    .collect()
            }
        }
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        each!(self, q => q.dead_letters())
    }

    /// A consumer of the given partitions.
    pub fn consumer(&self, partitions: Vec<u32>) -> EmbeddedConsumer {
        EmbeddedConsumer(match &self.engine {
            Handle::Log(q) => ConsumerOf::Log(q.consumer(partitions)),
            #[cfg(feature = "rocksdb")]
            Handle::Rocks(q) => ConsumerOf::Rocks(q.consumer(partitions)),
        })
    }

    /// Enqueues raw payloads into one partition (tests use this to inject
    /// malformed payloads; production code goes through [`Producer`]).
    pub async fn enqueue_raw(&self, partition: u32, payloads: &[Vec<u8>]) -> Result<(), QueueError> {
        self.append(raw_entries(partition, self.partitions(), payloads)?)
            .await
    }

    async fn append(&self, entries: Vec<Pending>) -> Result<(), QueueError> {
        each!(self, q => q.append(entries).await)
    }
}

impl Producer for EmbeddedQueue {
    /// One entry per partition of the call (an envelope when several of its
    /// messages share one); Ok once all are durable.
    async fn enqueue(&self, msgs: &[QueuedMessage]) -> Result<(), QueueError> {
        self.append(entries_of(msgs, self.partitions(), self.max_body_bytes)?)
            .await
    }
}

/// The engine other than `engine` when `dir` holds its files, and the
/// messages it holds not yet acked (opened to count them).
fn other_engine(dir: &Path, partitions: u32, engine: Engine) -> Result<Option<(Engine, usize)>, QueueError> {
    if engine == Engine::Log && dir.join("rocksdb").exists() {
        return Ok(Some((Engine::Rocksdb, rocks_waiting(dir, partitions)?)));
    }
    if engine == Engine::Rocksdb && has_segments(dir)? {
        let waiting = LogQueue::open(dir, partitions, SEGMENT_BYTES, None)?.len();
        return Ok(Some((Engine::Log, waiting)));
    }
    Ok(None)
}

/// Messages the RocksDB queue in `dir` holds not yet acked.
#[cfg(feature = "rocksdb")]
fn rocks_waiting(dir: &Path, partitions: u32) -> Result<usize, QueueError> {
    Ok(RocksQueue::open(dir, partitions, None)?.len())
}

#[cfg(not(feature = "rocksdb"))]
fn rocks_waiting(dir: &Path, _partitions: u32) -> Result<usize, QueueError> {
    Err(no_rocksdb(dir))
}

/// The error of a build without the RocksDB engine asked for it.
#[cfg(not(feature = "rocksdb"))]
fn no_rocksdb(dir: &Path) -> QueueError {
    QueueError::Invalid(format!(
        "embedded queue in {}: this build has no RocksDB engine (confab-queue's feature rocksdb)",
        dir.display()
    ))
}

/// True if `dir` holds segments of the log.
fn has_segments(dir: &Path) -> Result<bool, QueueError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("seg-")))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Consumes some partitions of an [`EmbeddedQueue`].
pub struct EmbeddedConsumer(ConsumerOf);

enum ConsumerOf {
    Log(LogConsumer),
    #[cfg(feature = "rocksdb")]
    Rocks(RocksConsumer),
}

/// Calls `$f` on the engine's consumer.
macro_rules! each_consumer {
    ($self:expr, $c:ident => $f:expr) => {
        match &mut $self.0 {
            ConsumerOf::Log($c) => $f,
            #[cfg(feature = "rocksdb")]
            ConsumerOf::Rocks($c) => $f,
        }
    };
}

impl Consumer for EmbeddedConsumer {
    type Token = EmbeddedToken;

    async fn next_batch(
        &mut self,
        max: usize,
        linger: Duration,
    ) -> Result<Vec<Delivery<EmbeddedToken>>, QueueError> {
        each_consumer!(self, c => c.next_batch(max, linger).await)
    }

    async fn ack(&mut self, tokens: Vec<EmbeddedToken>) -> Result<(), QueueError> {
        each_consumer!(self, c => c.ack(tokens).await)
    }

    async fn dead_letter(&mut self, d: Delivery<EmbeddedToken>, reason: &str) -> Result<(), QueueError> {
        each_consumer!(self, c => c.dead_letter(d, reason).await)
    }

    async fn dead_letter_part(
        &mut self,
        d: Delivery<EmbeddedToken>,
        part: Vec<u8>,
        reason: &str,
    ) -> Result<(), QueueError> {
        each_consumer!(self, c => c.dead_letter_part(d, part, reason).await)
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}
