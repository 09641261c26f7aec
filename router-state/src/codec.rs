//! The bytes of the router's Raft plane: every value goes through postcard.
//! Raft messages travel as the payload of a `RaftRequest` (the RPC names
//! the kind), snapshots as encoded [`GroupData`] (in `InstallSnapshot` and
//! in the node's database, inside a [`StoredSnapshot`]).
//!
//! Decoding never trusts a length in the input: postcard reads a sequence
//! element by element and fails at the end of the bytes, so a huge length
//! costs at most what the input holds.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::group::GroupData;
use crate::group::StoredSnapshot;
use crate::types::SnapshotMeta;
use crate::types::TypeConfig;
use crate::types::Vote;

/// `AppendEntries` as it travels.
pub type AppendEntries = openraft::raft::AppendEntriesRequest<TypeConfig>;
/// `Vote` and `PreVote` as they travel.
pub type VoteRequest = openraft::raft::VoteRequest<TypeConfig>;
/// `InstallSnapshot` as it travels: the sender's vote, the snapshot's meta
/// and its data (encoded [`GroupData`]).
pub type InstallSnapshot = (Vote, SnapshotMeta, Vec<u8>);

/// Encodes a value (an I/O error, as storage reports it).
pub fn encode<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Decodes a value; bytes that are not one are `InvalidData`.
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> io::Result<T> {
    postcard::from_bytes(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A snapshot's data, as `InstallSnapshot` and a restart read it.
pub fn decode_group_data(b: &[u8]) -> io::Result<GroupData> {
    decode(b)
}

/// A snapshot as the node's database holds it.
pub fn decode_stored_snapshot(b: &[u8]) -> io::Result<StoredSnapshot> {
    decode(b)
}

#[cfg(test)]
mod tests {
    use openraft::entry::RaftEntry;
    use openraft::testing::log_id;
    use proptest::prelude::*;

    use super::*;
    use crate::meta::{MetaCommand, NodeRecordState};
    use crate::shard::{DevicePolicy, SessionRecord, ShardCommand};
    use crate::types::{Command, Entry};

    fn session() -> impl Strategy<Value = SessionRecord> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            0..4i32,
            "[a-z0-9]{0,12}",
            any::<i64>(),
        )
            .prop_map(
                |(session_id, gateway_id, gateway_incarnation, device_kind, device_id, login_at_ms)| {
                    SessionRecord {
                        session_id,
                        gateway_id,
                        gateway_incarnation,
                        device_kind,
                        device_id,
                        login_at_ms,
                    }
                },
            )
    }

    fn single_shard_command() -> impl Strategy<Value = ShardCommand> {
        let policy = prop_oneof![
            Just(DevicePolicy::AllowAll),
            Just(DevicePolicy::OnePerKind),
            Just(DevicePolicy::OneInAll)
        ];
        prop_oneof![
            (1..50u64, session(), policy).prop_map(|(uid, session, policy)| ShardCommand::Login {
                uid,
                session,
                policy
            }),
            (1..50u64, any::<u64>()).prop_map(|(uid, session_id)| ShardCommand::Logout { uid, session_id }),
            (any::<u64>(), any::<u64>()).prop_map(|(gateway_id, incarnation)| ShardCommand::PurgeGateway {
                gateway_id,
                incarnation
            }),
        ]
    }

    fn shard_command() -> impl Strategy<Value = ShardCommand> {
        prop_oneof![
            3 => single_shard_command(),
            1 => proptest::collection::vec(single_shard_command(), 0..6).prop_map(ShardCommand::Batch),
        ]
    }

    fn meta_command() -> impl Strategy<Value = MetaCommand> {
        let state = prop_oneof![
            Just(NodeRecordState::Up),
            Just(NodeRecordState::Draining),
            Just(NodeRecordState::Removed)
        ];
        prop_oneof![
            (1..8u64, "[a-z0-9.:]{0,20}").prop_map(|(id, addr)| MetaCommand::AddNode { id, addr }),
            (1..8u64, "[a-z0-9.:]{0,20}")
                .prop_map(|(gateway_id, addr)| MetaCommand::RegisterGateway { gateway_id, addr }),
            (1..8u64, 0..4u64).prop_map(|(gateway_id, incarnation)| MetaCommand::ExpireGateway {
                gateway_id,
                incarnation
            }),
            (1..8u64, 0..4u64).prop_map(|(gateway_id, incarnation)| MetaCommand::PurgeDone {
                gateway_id,
                incarnation
            }),
            (1..8u64, state).prop_map(|(id, state)| MetaCommand::SetNodeState { id, state }),
            (1..8u64).prop_map(|id| MetaCommand::RemoveNode { id }),
            (1..8u32, proptest::collection::vec(1..8u64, 0..4))
                .prop_map(|(shard_id, replicas)| MetaCommand::SetReplicas { shard_id, replicas }),
            (1..8u64, 0..4u64, any::<u64>()).prop_map(|(gateway_id, incarnation, until_ms)| {
                MetaCommand::ReserveIds {
                    gateway_id,
                    incarnation,
                    until_ms,
                }
            }),
        ]
    }

    fn command() -> impl Strategy<Value = Command> {
        prop_oneof![
            meta_command().prop_map(Command::Meta),
            shard_command().prop_map(Command::Shard)
        ]
    }

    /// The group data after applying `cmds` to an empty group of their kind.
    fn group_data(meta: bool, cmds: &[Command]) -> GroupData {
        let mut d = GroupData::empty_for(if meta { 0 } else { 1 });
        for c in cmds {
            d.apply(c);
        }
        d
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_decode_or_fail_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<AppendEntries>(&b);
            let _ = decode::<VoteRequest>(&b);
            let _ = decode::<InstallSnapshot>(&b);
            let _ = decode_group_data(&b);
            let _ = decode_stored_snapshot(&b);
            let _ = decode::<Command>(&b);
        }

        #[test]
        fn commands_and_entries_round_trip(cmds in proptest::collection::vec(command(), 0..8), term in 1..100u64) {
            for c in &cmds {
                prop_assert_eq!(&decode::<Command>(&encode(c)?)?, c);
            }
            let entries: Vec<Entry> = cmds
                .iter()
                .enumerate()
                .map(|(i, c)| Entry::new_normal(log_id::<TypeConfig>(term, 1, i as u64 + 1), c.clone()))
                .collect();
            let req = AppendEntries {
                vote: Vote::new_committed(term, 1),
                prev_log_id: Some(log_id::<TypeConfig>(term, 1, 0)),
                entries,
                leader_commit: None,
            };
            let bytes = encode(&req)?;
            let back: AppendEntries = decode(&bytes)?;
            prop_assert_eq!(back.entries.len(), cmds.len());
            prop_assert_eq!(encode(&back)?, bytes, "decoded and encoded again, the same bytes");
            let vote = VoteRequest {
                vote: Vote::new(term, 2),
                last_log_id: Some(log_id::<TypeConfig>(term, 1, 7)),
                leadership_transfer: term % 2 == 0,
            };
            let back: VoteRequest = decode(&encode(&vote)?)?;
            prop_assert_eq!(back.vote, vote.vote);
            prop_assert_eq!(back.last_log_id, vote.last_log_id);
            prop_assert_eq!(back.leadership_transfer, vote.leadership_transfer);
        }

        #[test]
        fn snapshots_round_trip(meta in any::<bool>(), cmds in proptest::collection::vec(command(), 0..24)) {
            let data = group_data(meta, &cmds);
            let bytes = encode(&data)?;
            prop_assert_eq!(&decode_group_data(&bytes)?, &data);
            let snap = StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: Some(log_id::<TypeConfig>(3, 1, cmds.len() as u64)),
                    last_membership: Default::default(),
                },
                data: bytes.clone(),
            };
            let back = decode_stored_snapshot(&encode(&snap)?)?;
            prop_assert_eq!(back.meta.last_log_id, snap.meta.last_log_id);
            prop_assert_eq!(decode_group_data(&back.data)?, data);
            let install: InstallSnapshot = (Vote::new_committed(3, 1), snap.meta.clone(), bytes.clone());
            let (_, _, again) = decode::<InstallSnapshot>(&encode(&install)?)?;
            prop_assert_eq!(again, bytes);
        }
    }

    /// A batch inside a batch inside ... as deep as the bytes allow: refused
    /// with an error, not a stack overflow.
    #[test]
    fn deeply_nested_batches_are_refused() {
        let mut b = vec![1u8]; // Command::Shard
        for _ in 0..200_000 {
            b.extend_from_slice(&[3, 1]); // ShardCommand::Batch, one element
        }
        b.extend_from_slice(&[1, 1, 1]); // ShardCommand::Logout { 1, 1 }
        assert!(decode::<Command>(&b).is_err());
    }

    /// A batch in a batch (which applying refuses) still decodes as it did;
    /// one level deeper does not.
    #[test]
    fn a_batch_in_a_batch_decodes_and_deeper_is_refused() {
        let logout = ShardCommand::Logout {
            uid: 1,
            session_id: 2,
        };
        let nested = Command::Shard(ShardCommand::Batch(vec![
            logout.clone(),
            ShardCommand::Batch(vec![logout.clone()]),
        ]));
        assert_eq!(decode::<Command>(&encode(&nested).unwrap()).unwrap(), nested);
        let deeper = Command::Shard(ShardCommand::Batch(vec![ShardCommand::Batch(vec![
            ShardCommand::Batch(vec![logout]),
        ])]));
        assert!(decode::<Command>(&encode(&deeper).unwrap()).is_err());
    }

    /// Writes the seed corpus of the fuzz target `raft_decode` under
    /// `$CONFAB_FUZZ_SEEDS` (`make fuzz-seeds`).
    #[test]
    #[ignore = "writes the fuzz seed corpus"]
    fn write_fuzz_seeds() {
        let Some(root) = std::env::var_os("CONFAB_FUZZ_SEEDS") else {
            return;
        };
        let dir = std::path::PathBuf::from(root).join("raft_decode");
        std::fs::create_dir_all(&dir).expect("dir");
        let write = |name: &str, b: Vec<u8>| std::fs::write(dir.join(name), b).expect("write");
        let login = ShardCommand::Login {
            uid: 5,
            session: SessionRecord {
                session_id: 9,
                gateway_id: 1,
                gateway_incarnation: 1,
                device_kind: 1,
                device_id: "phone".into(),
                login_at_ms: 1,
            },
            policy: DevicePolicy::OnePerKind,
        };
        let cmds = [
            Command::Shard(login.clone()),
            Command::Shard(ShardCommand::Batch(vec![
                login,
                ShardCommand::Logout {
                    uid: 5,
                    session_id: 9,
                },
            ])),
            Command::Meta(MetaCommand::RegisterGateway {
                gateway_id: 1,
                addr: "127.0.0.1:7000".into(),
            }),
        ];
        write("command", encode(&cmds[1]).unwrap());
        let entries = cmds
            .iter()
            .enumerate()
            .map(|(i, c)| Entry::new_normal(log_id::<TypeConfig>(2, 1, i as u64 + 1), c.clone()))
            .collect();
        let append = AppendEntries {
            vote: Vote::new_committed(2, 1),
            prev_log_id: None,
            entries,
            leader_commit: Some(log_id::<TypeConfig>(2, 1, 1)),
        };
        write("append-entries", encode(&append).unwrap());
        let vote = VoteRequest {
            vote: Vote::new(3, 2),
            last_log_id: Some(log_id::<TypeConfig>(2, 1, 3)),
            leadership_transfer: false,
        };
        write("vote", encode(&vote).unwrap());
        let shard = group_data(false, &cmds[..1]);
        write("group-data", encode(&shard).unwrap());
        let meta = SnapshotMeta {
            last_log_id: Some(log_id::<TypeConfig>(2, 1, 3)),
            last_membership: Default::default(),
        };
        let data = encode(&shard).unwrap();
        write(
            "install-snapshot",
            encode(&(Vote::new_committed(2, 1), meta.clone(), data.clone())).unwrap(),
        );
        write("stored-snapshot", encode(&StoredSnapshot { meta, data }).unwrap());
    }
}
