//! A group's replicated data, by kind, and the snapshot as stored.

use serde::Deserialize;
use serde::Serialize;

use crate::ids::GroupId;
use crate::ids::META_GROUP;
use crate::meta::{MetaState, MetaStateV1};
use crate::shard::ShardState;
use crate::types::Command;
use crate::types::Reply;
use crate::types::SnapshotMeta;

/// The data of a group, by kind. Encoded as [`Stored`] says: the meta
/// state's current layout under its own variant, so that snapshots written
/// before it changed still decode.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "Stored")]
pub enum GroupData {
    Meta(MetaState),
    Shard(ShardState),
}

/// [`GroupData`] as encoded: variants are never reordered or removed, a
/// new layout of a kind gets a new variant at the end.
#[derive(Deserialize)]
enum Stored {
    MetaV1(MetaStateV1),
    Shard(ShardState),
    Meta(MetaState),
}

impl From<Stored> for GroupData {
    fn from(s: Stored) -> Self {
        match s {
            Stored::MetaV1(m) => GroupData::Meta(m.into()),
            Stored::Shard(st) => GroupData::Shard(st),
            Stored::Meta(m) => GroupData::Meta(m),
        }
    }
}

impl Serialize for GroupData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The indices of `Stored`'s variants.
        match self {
            GroupData::Shard(st) => s.serialize_newtype_variant("Stored", 1, "Shard", st),
            GroupData::Meta(m) => s.serialize_newtype_variant("Stored", 2, "Meta", m),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_group_data, encode};
    use crate::meta::GatewayRecord;

    /// How builds before id reservations encoded the meta group.
    #[derive(Serialize)]
    enum OldGroupData {
        Meta(MetaStateV1),
        #[allow(dead_code)]
        Shard(ShardState),
    }

    #[test]
    fn a_meta_snapshot_of_the_older_layout_still_decodes() {
        let mut old = MetaStateV1 {
            slots: 64,
            next_incarnation: 7,
            version: 3,
            ..MetaStateV1::default()
        };
        old.gateways.insert(
            2,
            GatewayRecord {
                gateway_id: 2,
                addr: "a:1".into(),
                incarnation: 7,
            },
        );
        let bytes = encode(&OldGroupData::Meta(old.clone())).expect("encode");
        let GroupData::Meta(now) = decode_group_data(&bytes).expect("decode") else {
            panic!("not meta");
        };
        assert_eq!(now, MetaState::from(old));
        assert!(now.id_reservations.is_empty());
    }

    #[test]
    fn both_kinds_round_trip() {
        let mut meta = MetaState::default();
        meta.id_reservations.insert(1, 99);
        for data in [GroupData::Meta(meta), GroupData::Shard(ShardState::default())] {
            let bytes = encode(&data).expect("encode");
            assert_eq!(decode_group_data(&bytes).expect("decode"), data);
        }
    }
}
