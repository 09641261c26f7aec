//! The ids every layer of the router names: nodes and Raft groups.

/// A router node's Raft id. A wiped node rejoins with a new one.
pub type NodeId = u64;

/// A Raft group: [`META_GROUP`] or a shard id (1..).
pub type GroupId = u32;

/// The group that holds the cluster map.
pub const META_GROUP: GroupId = 0;
