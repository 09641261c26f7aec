//! A group's replicated data, by kind, and the snapshot as stored.

use serde::Deserialize;
use serde::Serialize;

use crate::ids::GroupId;
use crate::ids::META_GROUP;
use crate::meta::MetaState;
use crate::shard::ShardState;
use crate::types::Command;
use crate::types::Reply;
use crate::types::SnapshotMeta;

/// The data of a group, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupData {
    Meta(MetaState),
    Shard(ShardState),
}

impl GroupData {
    /// The data of a group nothing was applied to yet.
    pub fn empty_for(group: GroupId) -> Self {
        if group == META_GROUP {
            GroupData::Meta(MetaState::default())
        } else {
            GroupData::Shard(ShardState::default())
        }
    }

    /// Applies `cmd`; a command of the other kind changes nothing.
    pub fn apply(&mut self, cmd: &Command) -> Reply {
        match (self, cmd) {
            (GroupData::Meta(st), Command::Meta(c)) => Reply::Meta(st.apply(c)),
            (GroupData::Shard(st), Command::Shard(c)) => Reply::Shard(st.apply(c)),
            _ => Reply::WrongGroup,
        }
    }
}

/// A snapshot as a node keeps it: openraft's meta and the encoded
/// [`GroupData`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSnapshot {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}
