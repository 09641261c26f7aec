//! The client's cached view of the cluster: the map, the shard index, the
//! leader per Raft group and the address per node, and how failures update it.

use std::collections::HashMap;

use confab_proto::router::{ClusterMap, NodeState};

use crate::error::Result;
use crate::keyspace::ShardMap;
use crate::plan::pick_node;
use crate::retry::Failure;

/// The meta group's id; shards are 1..=N.
pub const META_GROUP: u32 = 0;

/// The routing cache. Guarded by a `std::sync::RwLock` in the client and never
/// held across an await.
#[derive(Debug, Default)]
pub(crate) struct Routing {
    /// The last map installed (its shard list is stale after epoch updates;
    /// [`Routing::cluster_map`] merges the fresher descriptors back in).
    map: ClusterMap,
    pub(crate) shards: ShardMap,
    /// Raft group -> leader node id, as last learned.
    leaders: HashMap<u32, u64>,
    /// Node id -> address, from the map and from redirect hints.
    addrs: HashMap<u64, String>,
    /// Grows on every installed map: lets concurrent refreshes collapse.
    pub(crate) generation: u64,
}

impl Routing {
    /// True once a map has been installed.
    pub(crate) fn loaded(&self) -> bool {
        self.generation > 0
    }

    /// The version of the installed map.
    pub(crate) fn version(&self) -> u64 {
        self.map.version
    }

    /// Replaces the view with `map`.
    pub(crate) fn install(&mut self, map: ClusterMap) -> Result<()> {
        let shards = ShardMap::new(map.slots, map.shards.iter().cloned())?;
        let mut leaders = HashMap::new();
        for desc in &map.shards {
            if desc.leader != 0 {
                leaders.insert(desc.shard_id, desc.leader);
            }
        }
        if map.meta_leader != 0 {
            leaders.insert(META_GROUP, map.meta_leader);
        }
        // Keep learned leaders the new map does not know (leader 0).
        for (group, leader) in &self.leaders {
            let member = *group == META_GROUP
                || shards
                    .descriptor(*group)
                    .is_some_and(|d| d.replicas.contains(leader));
            if member {
                leaders.entry(*group).or_insert(*leader);
            }
        }
        self.addrs = map.nodes.iter().map(|n| (n.id, n.addr.clone())).collect();
        self.shards = shards;
        self.leaders = leaders;
        self.map = map;
        self.generation += 1;
        Ok(())
    }

    /// The installed map with the freshest shard descriptors and leaders.
    pub(crate) fn cluster_map(&self) -> ClusterMap {
        let mut map = self.map.clone();
        map.shards = self
            .shards
            .descriptors()
            .map(|d| {
                let mut d = d.clone();
                d.leader = self.leader(d.shard_id).unwrap_or(0);
                d
            })
            .collect();
        map.meta_leader = self.leader(META_GROUP).unwrap_or(0);
        map
    }

    /// The address of node `id`.
    pub(crate) fn addr(&self, id: u64) -> Option<&str> {
        self.addrs.get(&id).map(String::as_str)
    }

    /// Every node address except removed nodes, by node id.
    pub(crate) fn live_nodes(&self) -> Vec<(u64, String)> {
        let mut nodes: Vec<_> = self
            .map
            .nodes
            .iter()
            .filter(|n| n.state != NodeState::Removed as i32)
            .map(|n| (n.id, n.addr.clone()))
            .collect();
        nodes.sort_unstable();
        nodes
    }

    /// The cached leader of `group`.
    pub(crate) fn leader(&self, group: u32) -> Option<u64> {
        self.leaders.get(&group).copied()
    }

    /// The nodes that can answer for `group`: the replicas of a shard, every
    /// live node for the meta group. `None` when the shard is unknown.
    pub(crate) fn members(&self, group: u32) -> Option<Vec<u64>> {
        if group == META_GROUP {
            return Some(self.live_nodes().into_iter().map(|(id, _)| id).collect());
        }
        self.shards.descriptor(group).map(|d| d.replicas.clone())
    }

    /// The node (id, address) to ask for `group` on try `rotation`.
    pub(crate) fn target(&self, group: u32, rotation: usize) -> Option<(u64, String)> {
        let members = self.members(group)?;
        let node = pick_node(&members, self.leader(group), rotation, |id| {
            self.addrs.contains_key(&id)
        })?;
        Some((node, self.addr(node)?.to_owned()))
    }

    /// True when `node` is not the cached leader of `group`.
    pub(crate) fn leader_differs(&self, group: u32, node: u64) -> bool {
        self.leader(group) != Some(node)
    }

    /// Records `node` as the leader of `group` (it just served a leader-only
    /// request, or leadership was handed to it).
    pub(crate) fn set_leader(&mut self, group: u32, node: u64) {
        if node != 0 {
            self.leaders.insert(group, node);
        }
    }

    /// Applies the cache updates a failure carries. `node` is the node that
    /// was called for `group`.
    pub(crate) fn apply(&mut self, group: u32, node: u64, failure: &Failure) {
        match failure {
            Failure::NotLeader {
                group_id,
                leader: Some((leader, addr)),
            } => {
                self.leaders.insert(*group_id, *leader);
                if !addr.is_empty() {
                    self.addrs.insert(*leader, addr.clone());
                }
            }
            Failure::NotLeader {
                group_id,
                leader: None,
            } => {
                self.leaders.remove(group_id);
            }
            Failure::EpochNotMatch { current } => {
                for desc in current {
                    if desc.leader != 0 {
                        self.leaders.insert(desc.shard_id, desc.leader);
                    } else if self
                        .leader(desc.shard_id)
                        .is_some_and(|l| !desc.replicas.contains(&l))
                    {
                        // The cached leader's replica moved away.
                        self.leaders.remove(&desc.shard_id);
                    }
                }
                self.shards.update(current.iter().cloned());
            }
            // The node holds no replica (any more): do not ask it again
            // as the leader; the map refresh that follows names the replicas.
            Failure::Transient { .. } | Failure::ShardNotFound { .. } if self.leader(group) == Some(node) => {
                self.leaders.remove(&group);
            }
            Failure::Moved {
                owner, owner_addr, ..
            } if *owner != 0 && !owner_addr.is_empty() => {
                self.addrs.entry(*owner).or_insert_with(|| owner_addr.clone());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_proto::router::{NodeInfo, ShardDescriptor, ShardEpoch, SlotRange};

    fn sample() -> ClusterMap {
        ClusterMap {
            slots: 8,
            nodes: (1..=3)
                .map(|id| NodeInfo {
                    id,
                    addr: format!("127.0.0.1:710{id}"),
                    state: NodeState::Up as i32,
                })
                .collect(),
            shards: vec![ShardDescriptor {
                shard_id: 1,
                ranges: vec![SlotRange { start: 0, end: 8 }],
                replicas: vec![1, 2, 3],
                epoch: Some(ShardEpoch {
                    conf_ver: 1,
                    version: 1,
                }),
                leader: 2,
            }],
            meta_leader: 1,
            version: 7,
        }
    }

    #[test]
    fn install_and_target() {
        let mut r = Routing::default();
        r.install(sample()).expect("install");
        assert!(r.loaded());
        assert_eq!(r.target(1, 0), Some((2, "127.0.0.1:7102".into())));
        assert_eq!(r.target(META_GROUP, 5), Some((1, "127.0.0.1:7101".into())));
        assert_eq!(r.target(9, 0), None);
    }

    #[test]
    fn a_redirect_to_new_replicas_forgets_the_old_leader() {
        let mut r = Routing::default();
        r.install(sample()).expect("install");
        assert_eq!(r.target(1, 0).map(|t| t.0), Some(2));
        // Shard 1 moved from node 2 to node 4; the answer names no leader.
        let mut moved = sample().shards[0].clone();
        moved.replicas = vec![1, 4, 3];
        moved.epoch = Some(ShardEpoch {
            conf_ver: 2,
            version: 1,
        });
        moved.leader = 0;
        r.apply(1, 2, &Failure::EpochNotMatch { current: vec![moved] });
        assert_eq!(r.leader(1), None);
        assert_ne!(
            r.target(1, 0).map(|t| t.0),
            Some(2),
            "node 2 holds no replica any more"
        );
    }

    #[test]
    fn failures_update_leaders() {
        let mut r = Routing::default();
        r.install(sample()).expect("install");
        let hint = Failure::NotLeader {
            group_id: 1,
            leader: Some((3, "127.0.0.1:7999".into())),
        };
        r.apply(1, 2, &hint);
        assert_eq!(r.target(1, 0), Some((3, "127.0.0.1:7999".into())));
        let down = Failure::Transient {
            code: tonic::Code::Unavailable,
            message: String::new(),
        };
        r.apply(1, 3, &down);
        assert_eq!(r.leader(1), None);
        // A node that no longer holds the shard is not asked again as its leader.
        r.apply(1, 2, &hint);
        r.apply(1, 3, &Failure::ShardNotFound { shard_id: 1 });
        assert_eq!(r.leader(1), None);
        assert_eq!(r.target(1, 1).map(|t| t.0), Some(2));
        // A re-installed map keeps a learned leader only if the map knows none.
        r.apply(1, 2, &hint);
        let mut map = sample();
        map.shards[0].leader = 0;
        r.install(map).expect("install");
        assert_eq!(r.leader(1), Some(3));
        assert_eq!(r.cluster_map().shards[0].leader, 3);
    }
}
