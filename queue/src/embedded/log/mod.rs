//! The embedded queue's `log` engine: an append-only log of our own.
//!
//! On disk, `dir` holds numbered segments (`seg-NNNNNNNNNNNNNNNN.log`), a
//! `partitions` file (the partition count, fixed at creation), a
//! `dead-letters.log` and a `lock` file. A segment is a sequence of records
//! `[len u32][crc32 u32][body]` (little-endian): an entry (partition, key,
//! payload) or the acks of entries. An enqueue call stores its messages of
//! one partition as one entry (a `QueuedBatch` envelope when there are
//! several, as RabbitMQ does).
//!
//! One writer thread appends: whatever was handed to it while it wrote the
//! last group goes out in one `write` and one `fdatasync` (group commit);
//! only then are the entries visible to consumers and the enqueue calls
//! answered. Acks are appended without waiting for the disk: a lost ack
//! means a redelivery, which the writers' idempotent insert absorbs. A
//! segment is deleted once every entry in it and in every older segment is
//! acked (its acks of older entries must outlive them; never the one being
//! written). A segment is synced before the next one starts (at a rotation,
//! and at open the last one, after cutting its torn tail), so only the last
//! can end in a torn record. Reopening replays the segments: entries not
//! acked are delivered again; a torn record at the end of the last segment
//! (a crash mid-write, never acknowledged) is cut off, as is one at the end
//! of the dead letters.
//!
//! In memory there is only an index (partition -> key -> where the payload
//! lies); payloads are read back from the segment when delivered, so a
//! queue that grows during a database outage grows on disk, not in memory.
//!
//! The files, one concern each: `record` (the byte format), `segment` (the
//! segment files), `index` (the in-memory index the threads share),
//! `replay` (reading the log back), `open` (opening a directory), `writer`
//! (the group-commit thread), `queue` (the handle), `producer` (the
//! hand-over to the writer), `consumer` (deliver and ack), `dead_letter`
//! (poison set aside).

mod consumer;
mod dead_letter;
mod index;
mod open;
mod producer;
mod queue;
mod record;
mod replay;
mod segment;
mod writer;

pub use consumer::LogConsumer;
pub use queue::LogQueue;
pub use replay::{SegmentScan, scan_segment};
pub use segment::SEGMENT_BYTES;
