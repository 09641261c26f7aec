//! The meta state: the cluster map (nodes, shards with slot ranges, replicas
//! and epochs) and the gateways with their incarnations.
//!
//! Lease *timing* is not here: time is not deterministic across replicas. The
//! meta leader keeps lease deadlines in memory (see `lease.rs`) and proposes
//! [`MetaCommand::ExpireGateway`] when one runs out; a new leader grants every
//! gateway a full lease from its own election, so no lease ends early.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use crate::ids::NodeId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeRecordState {
    Up,
    Draining,
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: NodeId,
    pub addr: String,
    pub state: NodeRecordState,
}

/// `conf_ver` grows when replicas change, `version` when slot ranges change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Epoch {
    pub conf_ver: u64,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub id: u32,
    /// Half-open slot ranges [start, end).
    pub ranges: Vec<(u32, u32)>,
    pub replicas: Vec<NodeId>,
    pub epoch: Epoch,
}

impl ShardRecord {
    pub fn owns_slot(&self, slot: u32) -> bool {
        self.ranges.iter().any(|&(s, e)| s <= slot && slot < e)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayRecord {
    pub gateway_id: u64,
    pub addr: String,
    pub incarnation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Writes the initial map once; later copies are ignored.
    Bootstrap {
        slots: u32,
        nodes: Vec<NodeRecord>,
        shards: Vec<ShardRecord>,
    },
    AddNode {
        id: NodeId,
        addr: String,
    },
    RegisterGateway {
        gateway_id: u64,
        addr: String,
    },
    /// The lease of this incarnation ran out (or it deregistered): its
    /// sessions are to be purged from every shard.
    ExpireGateway {
        gateway_id: u64,
        incarnation: u64,
    },
    /// Every shard has purged the incarnation.
    PurgeDone {
        gateway_id: u64,
        incarnation: u64,
    },
    /// Marks a node draining (the rebalancer moves everything off it) or up
    /// again.
    SetNodeState {
        id: NodeId,
        state: NodeRecordState,
    },
    /// Takes a node out of the map; refused while it holds a replica.
    RemoveNode {
        id: NodeId,
    },
    /// A shard's replica set changed (a move): bumps its `conf_ver`.
    SetReplicas {
        shard_id: u32,
        replicas: Vec<NodeId>,
    },
    /// The live incarnation of a gateway may make ids with times up to
    /// `until_ms` (Unix ms). Reservations only grow and outlive the
    /// gateway: the next incarnation under the same id starts above them.
    ReserveIds {
        gateway_id: u64,
        incarnation: u64,
        until_ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaReply {
    Ok,
    /// `Bootstrap` found a map already there.
    AlreadyBootstrapped,
    Registered {
        incarnation: u64,
        /// The highest id time (Unix ms) any earlier incarnation under this
        /// id may have used: the new one makes its ids above it.
        ids_from_ms: u64,
    },
    /// A live gateway at another address holds this id.
    GatewayIdTaken {
        addr: String,
    },
    /// The reservation now in force (Unix ms).
    Reserved {
        until_ms: u64,
    },
    /// The gateway incarnation named is not the live one.
    UnknownGateway,
    /// The command names a shard the map does not have.
    UnknownShard,
    /// The command names a node the map does not have.
    UnknownNode,
    /// The node still holds replicas of these shards.
    NodeHoldsReplicas(Vec<u32>),
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    pub slots: u32,
    pub nodes: BTreeMap<NodeId, NodeRecord>,
    pub shards: BTreeMap<u32, ShardRecord>,
    pub gateways: BTreeMap<u64, GatewayRecord>,
    /// Incarnations whose sessions still have to be purged: gateway -> highest.
    pub pending_purges: BTreeMap<u64, u64>,
    pub next_incarnation: u64,
    /// Grows on every change of nodes or shards.
    pub version: u64,
    /// Per gateway id: the id times (Unix ms) reserved so far.
    pub id_reservations: BTreeMap<u64, u64>,
}

/// The meta state as builds before id reservations stored it (snapshots
/// written by them still decode; see `group.rs`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaStateV1 {
    pub slots: u32,
    pub nodes: BTreeMap<NodeId, NodeRecord>,
    pub shards: BTreeMap<u32, ShardRecord>,
    pub gateways: BTreeMap<u64, GatewayRecord>,
    pub pending_purges: BTreeMap<u64, u64>,
    pub next_incarnation: u64,
    pub version: u64,
}

impl From<MetaStateV1> for MetaState {
    fn from(v: MetaStateV1) -> Self {
        MetaState {
            slots: v.slots,
            nodes: v.nodes,
            shards: v.shards,
            gateways: v.gateways,
            pending_purges: v.pending_purges,
            next_incarnation: v.next_incarnation,
            version: v.version,
            id_reservations: BTreeMap::new(),
        }
    }
}

impl MetaState {
    pub fn apply(&mut self, cmd: &MetaCommand) -> MetaReply {
        match cmd {
            MetaCommand::Bootstrap { slots, nodes, shards } => {
                if self.is_bootstrapped() {
                    return MetaReply::AlreadyBootstrapped;
                }
                self.slots = *slots;
                self.nodes = nodes.iter().map(|n| (n.id, n.clone())).collect();
                self.shards = shards.iter().map(|s| (s.id, s.clone())).collect();
                self.version += 1;
                MetaReply::Ok
            }
            MetaCommand::AddNode { id, addr } => {
                let record = NodeRecord {
                    id: *id,
                    addr: addr.clone(),
                    state: NodeRecordState::Up,
                };
                if self.nodes.get(id) != Some(&record) {
                    self.nodes.insert(*id, record);
                    self.version += 1;
                }
                MetaReply::Ok
            }
            MetaCommand::RegisterGateway { gateway_id, addr } => {
                // One live gateway per id: another address under a live id
                // is a second process configured with the same id (ids it
                // made would collide). The same address is a restart.
                if let Some(live) = self.gateways.get(gateway_id)
                    && live.addr != *addr
                {
                    return MetaReply::GatewayIdTaken {
                        addr: live.addr.clone(),
                    };
                }
                self.next_incarnation += 1;
                let incarnation = self.next_incarnation;
                let old = self.gateways.insert(
                    *gateway_id,
                    GatewayRecord {
                        gateway_id: *gateway_id,
                        addr: addr.clone(),
                        incarnation,
                    },
                );
                if let Some(old) = old {
                    self.schedule_purge(old.gateway_id, old.incarnation);
                }
                MetaReply::Registered {
                    incarnation,
                    ids_from_ms: self.id_reservations.get(gateway_id).copied().unwrap_or(0),
                }
            }
            MetaCommand::ReserveIds {
                gateway_id,
                incarnation,
                until_ms,
            } => match self.gateways.get(gateway_id) {
                Some(g) if g.incarnation == *incarnation => {
                    let held = self.id_reservations.entry(*gateway_id).or_insert(0);
                    *held = (*held).max(*until_ms);
                    MetaReply::Reserved { until_ms: *held }
                }
                _ => MetaReply::UnknownGateway,
            },
            MetaCommand::ExpireGateway {
                gateway_id,
                incarnation,
            } => match self.gateways.get(gateway_id) {
                Some(g) if g.incarnation == *incarnation => {
                    self.gateways.remove(gateway_id);
                    self.schedule_purge(*gateway_id, *incarnation);
                    MetaReply::Ok
                }
                _ => MetaReply::UnknownGateway,
            },
            MetaCommand::PurgeDone {
                gateway_id,
                incarnation,
            } => {
                if self.pending_purges.get(gateway_id) == Some(incarnation) {
                    self.pending_purges.remove(gateway_id);
                }
                MetaReply::Ok
            }
            MetaCommand::SetNodeState { id, state } => {
                let Some(node) = self.nodes.get_mut(id) else {
                    return MetaReply::UnknownNode;
                };
                if node.state != *state {
                    node.state = *state;
                    self.version += 1;
                }
                MetaReply::Ok
            }
            MetaCommand::RemoveNode { id } => {
                let held: Vec<u32> = self
                    .shards
                    .values()
                    .filter(|s| s.replicas.contains(id))
                    .map(|s| s.id)
                    .collect();
                if !held.is_empty() {
                    return MetaReply::NodeHoldsReplicas(held);
                }
                if self.nodes.remove(id).is_some() {
                    self.version += 1;
                }
                MetaReply::Ok
            }
            MetaCommand::SetReplicas { shard_id, replicas } => {
                let Some(shard) = self.shards.get_mut(shard_id) else {
                    return MetaReply::UnknownShard;
                };
                if &shard.replicas != replicas {
                    shard.replicas = replicas.clone();
                    shard.epoch.conf_ver += 1;
                    self.version += 1;
                }
                MetaReply::Ok
            }
        }
    }

    fn schedule_purge(&mut self, gateway_id: u64, incarnation: u64) {
        let entry = self.pending_purges.entry(gateway_id).or_insert(incarnation);
        *entry = (*entry).max(incarnation);
    }

    pub fn is_bootstrapped(&self) -> bool {
        self.slots > 0
    }

    /// The shard that owns `slot`, if the map has one.
    pub fn shard_of_slot(&self, slot: u32) -> Option<&ShardRecord> {
        self.shards.values().find(|s| s.owns_slot(slot))
    }

    pub fn node_addr(&self, id: NodeId) -> Option<&str> {
        self.nodes.get(&id).map(|n| n.addr.as_str())
    }
}

/// The initial layout: `shards` equal slot ranges, replicas placed round-robin
/// over the sorted node ids so replica and first-replica counts are even.
pub fn initial_shards(slots: u32, shards: u32, replicas: usize, nodes: &[NodeId]) -> Vec<ShardRecord> {
    let mut ids = nodes.to_vec();
    ids.sort_unstable();
    let r = replicas.min(ids.len()).max(1);
    (0..shards)
        .map(|i| {
            let start = (u64::from(slots) * u64::from(i) / u64::from(shards)) as u32;
            let end = (u64::from(slots) * u64::from(i + 1) / u64::from(shards)) as u32;
            let replicas = (0..r).map(|k| ids[(i as usize + k) % ids.len()]).collect();
            ShardRecord {
                id: i + 1,
                ranges: vec![(start, end)],
                replicas,
                epoch: Epoch {
                    conf_ver: 1,
                    version: 1,
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_layout_covers_every_slot_once_with_even_replicas() {
        let shards = initial_shards(4096, 16, 3, &[3, 1, 2]);
        assert_eq!(shards.len(), 16);
        let mut covered = vec![0u8; 4096];
        for s in &shards {
            for &(a, b) in &s.ranges {
                for slot in a..b {
                    covered[slot as usize] += 1;
                }
            }
            assert_eq!(s.replicas.len(), 3);
        }
        assert!(covered.iter().all(|&c| c == 1));
        let firsts: Vec<_> = shards.iter().map(|s| s.replicas[0]).collect();
        for n in 1..=3 {
            let c = firsts.iter().filter(|&&f| f == n).count();
            assert!((5..=6).contains(&c), "node {n} leads {c} shards");
        }
    }

    #[test]
    fn fewer_nodes_than_replicas_uses_every_node_once() {
        let shards = initial_shards(64, 4, 3, &[1]);
        assert!(shards.iter().all(|s| s.replicas == vec![1]));
    }

    #[test]
    fn bootstrap_happens_once() {
        let mut st = MetaState::default();
        let cmd = MetaCommand::Bootstrap {
            slots: 64,
            nodes: vec![],
            shards: initial_shards(64, 2, 1, &[1]),
        };
        assert_eq!(st.apply(&cmd), MetaReply::Ok);
        assert_eq!(st.apply(&cmd), MetaReply::AlreadyBootstrapped);
        assert_eq!(st.shard_of_slot(40).map(|s| s.id), Some(2));
    }

    #[test]
    fn a_live_gateway_id_is_refused_to_another_address() {
        let mut st = MetaState::default();
        let register = |addr: &str| MetaCommand::RegisterGateway {
            gateway_id: 3,
            addr: addr.into(),
        };
        let MetaReply::Registered { incarnation, .. } = st.apply(&register("a:1")) else {
            panic!("first registration refused");
        };
        assert_eq!(
            st.apply(&register("b:2")),
            MetaReply::GatewayIdTaken { addr: "a:1".into() }
        );
        assert_eq!(
            st.gateways[&3].incarnation, incarnation,
            "the live one is untouched"
        );
        // The same address again is a restart of the same gateway.
        assert!(matches!(st.apply(&register("a:1")), MetaReply::Registered { .. }));
        // Once expired, the id is free for any address.
        let live = st.gateways[&3].incarnation;
        st.apply(&MetaCommand::ExpireGateway {
            gateway_id: 3,
            incarnation: live,
        });
        assert!(matches!(st.apply(&register("b:2")), MetaReply::Registered { .. }));
    }

    #[test]
    fn id_reservations_grow_and_outlive_the_incarnation() {
        let mut st = MetaState::default();
        let register = MetaCommand::RegisterGateway {
            gateway_id: 4,
            addr: "a".into(),
        };
        let MetaReply::Registered {
            incarnation,
            ids_from_ms,
        } = st.apply(&register)
        else {
            panic!("refused");
        };
        assert_eq!(ids_from_ms, 0, "a new id starts anywhere");
        let reserve = |incarnation, until_ms| MetaCommand::ReserveIds {
            gateway_id: 4,
            incarnation,
            until_ms,
        };
        assert_eq!(
            st.apply(&reserve(incarnation, 5_000)),
            MetaReply::Reserved { until_ms: 5_000 }
        );
        // Never shrinks (a clock that stepped back asks for less).
        assert_eq!(
            st.apply(&reserve(incarnation, 4_000)),
            MetaReply::Reserved { until_ms: 5_000 }
        );
        assert_eq!(
            st.apply(&reserve(incarnation + 9, 9_000)),
            MetaReply::UnknownGateway
        );
        st.apply(&MetaCommand::ExpireGateway {
            gateway_id: 4,
            incarnation,
        });
        let MetaReply::Registered { ids_from_ms, .. } = st.apply(&register) else {
            panic!("refused");
        };
        assert_eq!(
            ids_from_ms, 5_000,
            "the next incarnation starts above the last reservation"
        );
    }

    #[test]
    fn gateway_lifecycle_schedules_purges() {
        let mut st = MetaState::default();
        let reg = |st: &mut MetaState| match st.apply(&MetaCommand::RegisterGateway {
            gateway_id: 5,
            addr: "a".into(),
        }) {
            MetaReply::Registered { incarnation, .. } => incarnation,
            other => panic!("{other:?}"),
        };
        let first = reg(&mut st);
        let second = reg(&mut st);
        assert!(second > first);
        // Re-registering schedules the purge of the old incarnation.
        assert_eq!(st.pending_purges.get(&5), Some(&first));
        // Expiring a stale incarnation is refused.
        let stale = MetaCommand::ExpireGateway {
            gateway_id: 5,
            incarnation: first,
        };
        assert_eq!(st.apply(&stale), MetaReply::UnknownGateway);
        let live = MetaCommand::ExpireGateway {
            gateway_id: 5,
            incarnation: second,
        };
        assert_eq!(st.apply(&live), MetaReply::Ok);
        assert!(st.gateways.is_empty());
        assert_eq!(st.pending_purges.get(&5), Some(&second));
        // A late PurgeDone for the older one does not clear the newer one.
        st.apply(&MetaCommand::PurgeDone {
            gateway_id: 5,
            incarnation: first,
        });
        assert_eq!(st.pending_purges.get(&5), Some(&second));
        st.apply(&MetaCommand::PurgeDone {
            gateway_id: 5,
            incarnation: second,
        });
        assert!(st.pending_purges.is_empty());
    }
}
