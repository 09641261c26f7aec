//! The Raft type configuration shared by every group of a router node, and the
//! commands and replies its state machines speak.
//!
//! One type configuration serves the meta group and the shard groups alike: a
//! command is either a [`MetaCommand`] or a [`ShardCommand`], and the state
//! machine of a group accepts only its own kind.

use std::fmt;
use std::io::Cursor;

use serde::Deserialize;
use serde::Serialize;

use crate::meta::MetaCommand;
use crate::meta::MetaReply;
use crate::shard::ShardCommand;
use crate::shard::ShardReply;

pub use crate::ids::GroupId;
pub use crate::ids::META_GROUP;
pub use crate::ids::NodeId;

/// Snapshot bytes as they travel and rest.
pub type SnapshotData = Cursor<Vec<u8>>;

openraft::declare_raft_types!(
    /// The Raft types of Confab's router.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = NodeId,
        Node = openraft::BasicNode,
);

pub type Entry = <TypeConfig as openraft::RaftTypeConfig>::Entry;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = <TypeConfig as openraft::RaftTypeConfig>::Vote;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type RaftMetrics = openraft::RaftMetrics<TypeConfig>;
pub type RaftError<E = openraft::errors::Infallible> = openraft::errors::RaftError<TypeConfig, E>;
pub type RpcError<E = openraft::errors::Infallible> = openraft::errors::RPCError<TypeConfig, E>;
pub type ClientWriteError = openraft::errors::ClientWriteError<TypeConfig>;
pub type ForwardToLeader = openraft::errors::ForwardToLeader<TypeConfig>;

/// A command proposed to a group's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Meta(MetaCommand),
    Shard(ShardCommand),
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Meta(c) => write!(f, "meta:{c:?}"),
            Command::Shard(c) => write!(f, "shard:{c:?}"),
        }
    }
}

/// What applying a command answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Reply {
    /// Blank and membership entries.
    #[default]
    None,
    Meta(MetaReply),
    Shard(ShardReply),
    /// The command was sent to a group of the other kind; nothing changed.
    WrongGroup,
}
