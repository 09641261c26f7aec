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
//!
//! Leaderships ([`plan_leaders`]) follow: off nodes that are not up first,
//! then until the up nodes' leader counts differ by at most one. A leadership
//! can only go to a voter of its shard, so evening out may need a chain
//! (A leads s1 which B also holds, B leads s2 which C holds: A -> B -> C); the
//! planner finds the shortest such chain.

use std::collections::BTreeMap;
use std::collections::VecDeque;

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

/// The nodes of `meta` that are up (neither draining nor removed).
pub fn up_nodes(meta: &MetaState) -> Vec<NodeId> {
    meta.nodes
        .values()
        .filter(|n| n.state == NodeRecordState::Up)
        .map(|n| n.id)
        .collect()
}

/// The moves that balance `meta`, in the order to run them.
pub fn plan(meta: &MetaState) -> Vec<PlannedMove> {
    let up = up_nodes(meta);
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

/// A leadership to move: shard `shard_id` from its leader `from` to its
/// voter `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LeaderTransfer {
    pub shard_id: u32,
    pub from: NodeId,
    pub to: NodeId,
}

/// The leader transfers, in order, that take every leadership off nodes that
/// are not in `up` and then make the leader counts of the `up` nodes differ
/// by at most one. `groups`: shard -> (its leader, its voters).
pub fn plan_leaders(groups: &BTreeMap<u32, (NodeId, Vec<NodeId>)>, up: &[NodeId]) -> Vec<LeaderTransfer> {
    let mut leader: BTreeMap<u32, NodeId> = groups.iter().map(|(&s, (l, _))| (s, *l)).collect();
    let count = |leader: &BTreeMap<u32, NodeId>, n: NodeId| leader.values().filter(|&&l| l == n).count();
    let mut out = Vec::new();
    // 1. Off the nodes that are not up, to the least-leading up voter.
    for (&shard, (_, voters)) in groups {
        let from = leader[&shard];
        if up.contains(&from) {
            continue;
        }
        let to = voters
            .iter()
            .copied()
            .filter(|v| up.contains(v))
            .min_by_key(|&v| (count(&leader, v), v));
        if let Some(to) = to {
            leader.insert(shard, to);
            out.push(LeaderTransfer {
                shard_id: shard,
                from,
                to,
            });
        }
    }
    // 2. Even out, one chain at a time: each takes one leadership from a
    //    node leading at least two more than the chain's end.
    for _ in 0..groups.len() * 2 + 1 {
        let counts: BTreeMap<NodeId, usize> = up.iter().map(|&n| (n, count(&leader, n))).collect();
        let (Some(&min), Some(&max)) = (counts.values().min(), counts.values().max()) else {
            break;
        };
        if max <= min + 1 {
            break;
        }
        let mut sources: Vec<NodeId> = up.iter().copied().filter(|n| counts[n] >= min + 2).collect();
        sources.sort_by_key(|n| (std::cmp::Reverse(counts[n]), *n));
        let chain = sources
            .into_iter()
            .find_map(|src| shortest_chain(groups, &leader, up, src, |n| counts[&n] + 2 <= counts[&src]));
        let Some(chain) = chain else { break };
        for t in chain {
            leader.insert(t.shard_id, t.to);
            out.push(t);
        }
    }
    out
}

/// Breadth-first over "u leads a shard of which v is a voter" from `src` to
/// the nearest up node that `sink` accepts; the transfers along the way.
fn shortest_chain(
    groups: &BTreeMap<u32, (NodeId, Vec<NodeId>)>,
    leader: &BTreeMap<u32, NodeId>,
    up: &[NodeId],
    src: NodeId,
    sink: impl Fn(NodeId) -> bool,
) -> Option<Vec<LeaderTransfer>> {
    let mut came_from: BTreeMap<NodeId, LeaderTransfer> = BTreeMap::new();
    let mut queue = VecDeque::from([src]);
    while let Some(u) = queue.pop_front() {
        if u != src && sink(u) {
            let mut chain = Vec::new();
            let mut at = u;
            while at != src {
                let t = came_from[&at];
                chain.push(t);
                at = t.from;
            }
            chain.reverse();
            return Some(chain);
        }
        for (&shard, (_, voters)) in groups {
            if leader[&shard] != u {
                continue;
            }
            for &v in voters {
                if v == src || v == u || !up.contains(&v) || came_from.contains_key(&v) {
                    continue;
                }
                came_from.insert(
                    v,
                    LeaderTransfer {
                        shard_id: shard,
                        from: u,
                        to: v,
                    },
                );
                queue.push_back(v);
            }
        }
    }
    None
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

    fn leader_counts(
        groups: &BTreeMap<u32, (NodeId, Vec<NodeId>)>,
        plan: &[LeaderTransfer],
        nodes: &[NodeId],
    ) -> BTreeMap<NodeId, usize> {
        let mut leader: BTreeMap<u32, NodeId> = groups.iter().map(|(&s, (l, _))| (s, *l)).collect();
        for t in plan {
            assert_eq!(leader[&t.shard_id], t.from, "{t:?} starts at the current leader");
            assert!(groups[&t.shard_id].1.contains(&t.to), "{t:?} goes to a voter");
            leader.insert(t.shard_id, t.to);
        }
        nodes
            .iter()
            .map(|&n| (n, leader.values().filter(|&&l| l == n).count()))
            .collect()
    }

    #[test]
    fn leaders_even_out_through_a_chain() {
        // Node 1 leads three shards; node 3 leads none but holds none of
        // node 1's shards: a leadership has to go 1 -> 2 and another 2 -> 3.
        let groups: BTreeMap<u32, (NodeId, Vec<NodeId>)> = [
            (1, (1, vec![1, 2])),
            (2, (1, vec![1, 2])),
            (3, (1, vec![1, 2])),
            (4, (2, vec![2, 3])),
        ]
        .into_iter()
        .collect();
        let plan = plan_leaders(&groups, &[1, 2, 3]);
        let counts = leader_counts(&groups, &plan, &[1, 2, 3]);
        let (min, max) = (counts.values().min(), counts.values().max());
        assert!(
            max.zip(min).is_some_and(|(a, b)| a - b <= 1),
            "{counts:?} after {plan:?}"
        );
        assert_eq!(counts[&3], 1, "{plan:?}");
    }

    #[test]
    fn leaders_leave_nodes_that_are_not_up_and_balanced_needs_nothing() {
        let groups: BTreeMap<u32, (NodeId, Vec<NodeId>)> = (1..=6)
            .map(|s| (s, (4, vec![4, 1 + s as u64 % 3, 1 + (s as u64 + 1) % 3])))
            .collect();
        let plan = plan_leaders(&groups, &[1, 2, 3]);
        let counts = leader_counts(&groups, &plan, &[1, 2, 3, 4]);
        assert_eq!(counts[&4], 0, "{plan:?}");
        assert!([1, 2, 3].iter().all(|n| counts[n] == 2), "{counts:?}");
        let balanced: BTreeMap<u32, (NodeId, Vec<NodeId>)> =
            (1..=6).map(|s| (s, (1 + s as u64 % 3, vec![1, 2, 3]))).collect();
        assert!(plan_leaders(&balanced, &[1, 2, 3]).is_empty());
    }

    #[test]
    fn five_nodes_after_a_grow_lead_two_or_one_each() {
        // 16 shards led by the three old nodes, replicas spread over five.
        let meta = map(&[(1, Up), (2, Up), (3, Up), (4, Up), (5, Up)], &[1, 2, 3]);
        let mut replicas: BTreeMap<u32, Vec<NodeId>> =
            meta.shards.values().map(|s| (s.id, s.replicas.clone())).collect();
        for m in plan(&meta) {
            for n in replicas.get_mut(&m.shard_id).expect("shard").iter_mut() {
                if *n == m.from {
                    *n = m.to;
                }
            }
        }
        let groups: BTreeMap<u32, (NodeId, Vec<NodeId>)> = replicas
            .iter()
            .map(|(&s, r)| (s, (*r.iter().find(|&&n| n <= 3).expect("an old node"), r.clone())))
            .collect();
        let plan = plan_leaders(&groups, &[1, 2, 3, 4, 5]);
        let counts = leader_counts(&groups, &plan, &[1, 2, 3, 4, 5]);
        // 16 shards over 5 nodes: 3 or 4 each.
        assert!(
            counts.values().all(|&c| (3..=4).contains(&c)),
            "{counts:?} after {plan:?}"
        );
    }
}
