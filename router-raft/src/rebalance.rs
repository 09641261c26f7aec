//! The rebalancer's plan: which replica moves make replica counts even
//! across the nodes that are up and empty the draining ones. Pure: it reads
//! a map and returns moves; the meta leader carries them out one by one
//! (`moves.rs`), so an interrupted rebalance is finished by running it again.
//!
//! Rules: a move never puts two replicas of a shard on one node and never
//! lowers a shard's replica count (moves add the new replica before the old
//! one leaves); draining nodes are emptied first, to the least-loaded up node
//! that lacks the shard; then, while the most-loaded up node holds at least
//! two more replicas than the least-loaded, one replica moves between them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::sm::meta::MetaState;
use crate::sm::meta::NodeRecordState;
use crate::types::NodeId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlannedMove {
    pub shard_id: u32,
    pub from: NodeId,
    pub to: NodeId,
}

/// The moves that balance `meta`, in the order to run them.
pub fn plan(meta: &MetaState) -> Vec<PlannedMove> {
    let up: Vec<NodeId> = meta
        .nodes
        .values()
        .filter(|n| n.state == NodeRecordState::Up)
        .map(|n| n.id)
        .collect();
    if up.is_empty() {
        return Vec::new();
    }
    let mut replicas: BTreeMap<u32, Vec<NodeId>> =
        meta.shards.values().map(|s| (s.id, s.replicas.clone())).collect();
    let load = |replicas: &BTreeMap<u32, Vec<NodeId>>, node: NodeId| {
        replicas.values().filter(|r| r.contains(&node)).count()
    };
    let mut moves = Vec::new();
    let bound = replicas.values().map(Vec::len).sum::<usize>() * 2 + 1;
    for _ in 0..bound {
        // The least-loaded up node that lacks `shard`.
        let target = |replicas: &BTreeMap<u32, Vec<NodeId>>, shard: u32| {
            up.iter()
                .copied()
                .filter(|n| !replicas[&shard].contains(n))
                .min_by_key(|&n| (load(replicas, n), n))
        };
        // 1. Empty nodes that are not up (draining, or gone from the map).
        let leaving = replicas
            .iter()
            .find_map(|(&shard, r)| r.iter().find(|n| !up.contains(n)).map(|&n| (shard, n)));
        let next = match leaving {
            Some((shard, from)) => target(&replicas, shard).map(|to| PlannedMove {
                shard_id: shard,
                from,
                to,
            }),
            None => {
                // 2. Even out the up nodes.
                let most = up.iter().copied().max_by_key(|&n| (load(&replicas, n), n));
                let least = up.iter().copied().min_by_key(|&n| (load(&replicas, n), n));
                match (most, least) {
                    (Some(most), Some(least)) if load(&replicas, most) >= load(&replicas, least) + 2 => {
                        replicas
                            .iter()
                            .find(|(_, r)| r.contains(&most) && !r.contains(&least))
                            .map(|(&shard, _)| PlannedMove {
                                shard_id: shard,
                                from: most,
                                to: least,
                            })
                    }
                    _ => None,
                }
            }
        };
        let Some(m) = next else { break };
        let r = replicas.get_mut(&m.shard_id).expect("planned shard exists");
        for n in r.iter_mut() {
            if *n == m.from {
                *n = m.to;
            }
        }
        moves.push(m);
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sm::meta::NodeRecord;
    use crate::sm::meta::initial_shards;

    fn map(nodes: &[(NodeId, NodeRecordState)], shard_nodes: &[NodeId]) -> MetaState {
        let mut meta = MetaState {
            slots: 4096,
            ..MetaState::default()
        };
        for &(id, state) in nodes {
            meta.nodes.insert(
                id,
                NodeRecord {
                    id,
                    addr: format!("n{id}"),
                    state,
                },
            );
        }
        meta.shards = initial_shards(4096, 16, 3, shard_nodes)
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        meta
    }

    fn loads(meta: &MetaState, moves: &[PlannedMove]) -> BTreeMap<NodeId, usize> {
        let mut replicas: BTreeMap<u32, Vec<NodeId>> =
            meta.shards.values().map(|s| (s.id, s.replicas.clone())).collect();
        for m in moves {
            let r = replicas.get_mut(&m.shard_id).expect("shard");
            assert!(r.contains(&m.from), "{m:?} moves a replica that is not there");
            assert!(!r.contains(&m.to), "{m:?} doubles a replica");
            for n in r.iter_mut() {
                if *n == m.from {
                    *n = m.to;
                }
            }
            assert_eq!(r.len(), 3);
        }
        let mut out: BTreeMap<NodeId, usize> = meta.nodes.keys().map(|&n| (n, 0)).collect();
        for r in replicas.values() {
            for n in r {
                *out.entry(*n).or_default() += 1;
            }
        }
        out
    }

    use NodeRecordState::{Draining, Up};

    #[test]
    fn a_balanced_map_needs_nothing() {
        let meta = map(&[(1, Up), (2, Up), (3, Up)], &[1, 2, 3]);
        assert!(plan(&meta).is_empty());
    }

    #[test]
    fn growing_from_three_to_five_spreads_replicas_evenly() {
        let meta = map(&[(1, Up), (2, Up), (3, Up), (4, Up), (5, Up)], &[1, 2, 3]);
        let moves = plan(&meta);
        let l = loads(&meta, &moves);
        // 48 replicas over 5 nodes: 9 or 10 each.
        assert!(l.values().all(|&c| (9..=10).contains(&c)), "{l:?}");
        // Every move lands on a new node: nothing shuffles between old ones.
        assert_eq!(moves.len(), l[&4] + l[&5], "{moves:?}");
        assert!(moves.iter().all(|m| m.to >= 4 && m.from <= 3), "{moves:?}");
    }

    #[test]
    fn a_draining_node_is_emptied_onto_the_others() {
        let meta = map(&[(1, Up), (2, Up), (3, Up), (4, Draining)], &[1, 2, 3, 4]);
        let moves = plan(&meta);
        let l = loads(&meta, &moves);
        assert_eq!(l[&4], 0, "{l:?}");
        assert!([1, 2, 3].iter().all(|n| l[n] == 16), "{l:?}");
    }

    #[test]
    fn draining_below_the_replication_factor_moves_nothing_it_cannot() {
        // Three nodes, three replicas each: nowhere to put node 3's replicas.
        let meta = map(&[(1, Up), (2, Up), (3, Draining)], &[1, 2, 3]);
        assert!(plan(&meta).is_empty());
    }
}
