//! The embedded queue's `rocksdb` engine: the entries in a RocksDB under
//! `dir/rocksdb`, which brings the write-ahead log, its checksums and
//! torn-tail recovery, and compaction.
//!
//! Column families: `entries` (partition u32 BE ++ key u64 BE -> payload:
//! each partition's entries contiguous and in key order), `dead_letters`
//! (sequence u64 BE -> reason length, reason, payload) and the default one
//! (`partitions` -> the partition count, u32 BE, fixed at creation).
//!
//! One writer thread writes: whatever was handed to it while it wrote the
//! last group goes into one `WriteBatch`, written with `sync` when it holds
//! entries or dead letters (group commit: one WAL `fdatasync` for all);
//! only then are the entries put in the in-memory index (visible to
//! consumers) and the enqueue calls answered. Acks are deletes in the
//! batches, written without waiting for the disk (a lost ack is a
//! redelivery, as in the log); the next synced batch makes them durable with
//! it. A dead letter and the delete of its entry are one synced batch.
//!
//! In memory there is only the index (partition -> key -> messages in the
//! entry); payloads are read back from RocksDB when delivered (from the
//! memtable while the writers keep up). Memtables are 8 MiB, not RocksDB's
//! 64 MiB: the live data is seconds of traffic (`queue.rs`). Opening rebuilds the index from
//! `entries`: what is there was never acked.
//!
//! Files: `state` (what the threads share, the key layout), `queue` (the
//! handle, opening), `writer` (the group-commit thread), `consumer`
//! (deliver, ack, dead letters).

mod consumer;
mod queue;
mod state;
mod writer;

pub use consumer::RocksConsumer;
pub use queue::RocksQueue;
