//! Request planning, as pure functions: split uids per shard, pick the node to
//! ask for a group, and group shard parts by node (one Lookup RPC per node).

use std::collections::{BTreeMap, BTreeSet};

use crate::keyspace::ShardMap;

/// The uids of one request split by owning shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// shard id -> its uids, each uid once, in first-seen order.
    pub parts: BTreeMap<u32, Vec<u64>>,
    /// uids whose slot no shard owns in `map` (the map is incomplete or stale).
    pub unassigned: Vec<u64>,
}

/// Splits `uids` by the shard that owns each one; duplicates are dropped.
pub fn split_by_shard(uids: &[u64], map: &ShardMap) -> Split {
    let mut seen = BTreeSet::new();
    let mut split = Split::default();
    for &uid in uids {
        if !seen.insert(uid) {
            continue;
        }
        match map.shard_of_uid(uid) {
            Some(desc) => split.parts.entry(desc.shard_id).or_default().push(uid),
            None => split.unassigned.push(uid),
        }
    }
    split
}

/// The node to ask for a group: the known leader, else the replica at
/// `rotation` (so successive retries walk the replicas), skipping replicas
/// whose address is unknown. `None` when no candidate has an address.
pub fn pick_node(
    replicas: &[u64],
    leader: Option<u64>,
    rotation: usize,
    has_addr: impl Fn(u64) -> bool,
) -> Option<u64> {
    if let Some(leader) = leader.filter(|&id| id != 0 && has_addr(id)) {
        return Some(leader);
    }
    let n = replicas.len();
    (0..n)
        .map(|i| replicas[(rotation + i) % n])
        .find(|&id| has_addr(id))
}

/// Shard parts (shard id, payload) grouped by node, and the parts left over.
pub type Grouped<K, V> = (BTreeMap<K, Vec<(u32, V)>>, Vec<(u32, V)>);

/// Groups shard parts by the node each should go to. Parts for which
/// `node_of` has no answer are returned apart.
pub fn group_by_node<K: Ord, V>(
    parts: impl IntoIterator<Item = (u32, V)>,
    mut node_of: impl FnMut(u32) -> Option<K>,
) -> Grouped<K, V> {
    let mut grouped: BTreeMap<K, Vec<(u32, V)>> = BTreeMap::new();
    let mut orphans = Vec::new();
    for (shard, value) in parts {
        match node_of(shard) {
            Some(node) => grouped.entry(node).or_default().push((shard, value)),
            None => orphans.push((shard, value)),
        }
    }
    (grouped, orphans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_proto::router::{ShardDescriptor, SlotRange};

    fn map_of_four() -> ShardMap {
        let shards = (0..4u32).map(|i| ShardDescriptor {
            shard_id: i + 1,
            ranges: vec![SlotRange {
                start: i * 16,
                end: (i + 1) * 16,
            }],
            ..Default::default()
        });
        ShardMap::new(64, shards).expect("map")
    }

    #[test]
    fn split_covers_every_uid_once() {
        let map = map_of_four();
        let uids: Vec<u64> = (0..200).chain(0..50).collect();
        let split = split_by_shard(&uids, &map);
        assert!(split.unassigned.is_empty());
        let total: usize = split.parts.values().map(Vec::len).sum();
        assert_eq!(total, 200);
        for (shard, uids) in &split.parts {
            for uid in uids {
                assert_eq!(map.shard_of_uid(*uid).map(|d| d.shard_id), Some(*shard));
            }
        }
    }

    #[test]
    fn split_reports_unassigned_slots() {
        let shards = vec![ShardDescriptor {
            shard_id: 1,
            ranges: vec![SlotRange { start: 0, end: 32 }],
            ..Default::default()
        }];
        let map = ShardMap::new(64, shards).expect("map");
        let split = split_by_shard(&(0..100).collect::<Vec<_>>(), &map);
        assert!(!split.unassigned.is_empty());
        assert_eq!(
            split.unassigned.len() + split.parts.get(&1).map_or(0, Vec::len),
            100
        );
    }

    #[test]
    fn pick_prefers_leader_then_rotates() {
        let all = |_| true;
        assert_eq!(pick_node(&[1, 2, 3], Some(2), 0, all), Some(2));
        assert_eq!(pick_node(&[1, 2, 3], None, 0, all), Some(1));
        assert_eq!(pick_node(&[1, 2, 3], None, 4, all), Some(2));
        assert_eq!(pick_node(&[1, 2, 3], Some(0), 2, all), Some(3));
        // Unknown addresses are skipped, the leader's too.
        let known = |id| id != 2;
        assert_eq!(pick_node(&[1, 2, 3], Some(2), 1, known), Some(3));
        assert_eq!(pick_node(&[], None, 0, all), None);
        assert_eq!(pick_node(&[2], None, 0, known), None);
    }

    #[test]
    fn groups_parts_by_leader_node() {
        let leaders = BTreeMap::from([(1u32, "a"), (2, "b"), (3, "a")]);
        let parts = vec![(1u32, vec![10u64]), (2, vec![20]), (3, vec![30]), (4, vec![40])];
        let (grouped, orphans) = group_by_node(parts, |shard| leaders.get(&shard).copied());
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped["a"], vec![(1, vec![10]), (3, vec![30])]);
        assert_eq!(grouped["b"], vec![(2, vec![20])]);
        assert_eq!(orphans, vec![(4, vec![40])]);
    }
}
