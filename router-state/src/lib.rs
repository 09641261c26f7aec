//! confab-router-state: what a router's Raft groups replicate, and the
//! bytes it travels and rests as. The ids of nodes and groups ([`ids`]),
//! the state machines' data and commands ([`meta`]: the cluster map and
//! gateway registry; [`shard`]: the online-state table of one shard), the
//! Raft type configuration ([`types`]), a group's data by kind and the
//! stored snapshot ([`group`]), and the postcard codec of Raft messages and
//! snapshots ([`codec`]).
//!
//! It holds no storage and no network: confab-router keeps the logs and
//! snapshots in RocksDB and speaks gRPC; the codec's decoders can be
//! exercised (property tests, fuzzing) without either.

pub mod codec;
pub mod group;
pub mod ids;
pub mod meta;
pub mod shard;
pub mod types;
