//! The embedded queue: the queue inside the persist process, on its disk,
//! on one of two engines with the same interface and semantics:
//!
//! - `rocksdb` ([`Engine::Rocksdb`], the default; the crate's `rocksdb`
//!   feature, which persist enables): entries in a RocksDB under
//!   `dir/rocksdb`; RocksDB's WAL brings the checksums, torn-tail recovery
//!   and compaction.
//! - `log` ([`Engine::Log`]): an append-only log of our own (segments of
//!   CRC-checked records, replayed at open) in `dir` itself.
//!
//! Both: an enqueue call stores its messages of one partition as one entry
//! (a `QueuedBatch` envelope when several, as RabbitMQ does), keyed in
//! order per partition; one writer thread group-commits whatever was handed
//! to it during its last write with one sync, and only then are the entries
//! visible to consumers and the enqueue calls answered. Acks are written
//! without waiting for the disk (a lost ack is a redelivery, which the
//! writers' idempotent insert absorbs); a dead letter is durable before its
//! entry is acked. Reopening delivers again what was not acked (or whose
//! ack had not reached the disk). Payloads stay on disk; memory holds an
//! index of the keys. Gateways reach the queue through the gRPC
//! `QueueService`.
//!
//! Opening one engine over a directory where the other holds messages not
//! yet acked is refused (they would never be delivered); the other's dead
//! letters stay readable by opening it.
//!
//! Files: `handle` (the [`EmbeddedQueue`] and [`EmbeddedConsumer`] persist
//! uses, over either engine), `shared` (what both engines use), `log/`,
//! `rocks/`.

mod handle;
mod log;
#[cfg(feature = "rocksdb")]
mod rocks;
mod shared;

pub use handle::{EmbeddedConsumer, EmbeddedQueue, Engine, MEMORY_PARTS, OpenOptions};
pub use log::{SEGMENT_BYTES, SegmentScan, scan_segment};
pub use shared::{DeadLetter, Durable, DurableObserver, EmbeddedToken};
