//! The key space: which slot a uid hashes to and which shard owns a slot.
//!
//! Both the router server and every client call [`slot_of`], so the two sides
//! hash identically. Never change the hash, its seed or the byte order: that
//! would move every user to another shard.

use std::collections::BTreeMap;

use confab_proto::router::ShardDescriptor;
use xxhash_rust::xxh64::xxh64;

use crate::error::KeySpaceError;

/// The slot count used when a cluster map does not say otherwise.
pub const DEFAULT_SLOTS: u32 = 4096;

/// The largest slot count a [`ShardMap`] accepts (its table is one `u32` per slot).
pub const MAX_SLOTS: u32 = 1 << 20;

/// Marks a slot no shard owns in the slot table (shard ids start at 1).
const NO_SHARD: u32 = 0;

/// The slot of `uid`: `xxh64(uid as little-endian bytes, seed 0) % slots`.
///
/// `slots` must be non-zero; 0 is treated as 1 (every uid in slot 0) rather than
/// panicking, and [`ShardMap::new`] rejects a zero slot count anyway.
pub fn slot_of(uid: u64, slots: u32) -> u32 {
    let hash = xxh64(&uid.to_le_bytes(), 0);
    // The remainder is < slots <= u32::MAX, so the conversion cannot fail.
    u32::try_from(hash % u64::from(slots.max(1))).unwrap_or(0)
}

/// Shard descriptors indexed by slot: answers "which shard owns this uid".
#[derive(Debug, Clone, Default)]
pub struct ShardMap {
    slots: u32,
    /// slot -> shard id, [`NO_SHARD`] when unassigned.
    owner: Vec<u32>,
    shards: BTreeMap<u32, ShardDescriptor>,
}

impl ShardMap {
    /// Builds the index. Fails on a zero or huge slot count, a shard id 0, a
    /// duplicated shard id, a range outside `0..slots` or ranges that overlap.
    pub fn new(slots: u32, shards: impl IntoIterator<Item = ShardDescriptor>) -> Result<Self, KeySpaceError> {
        if slots == 0 || slots > MAX_SLOTS {
            return Err(KeySpaceError::InvalidMap(format!(
                "slot count {slots} not in 1..={MAX_SLOTS}"
            )));
        }
        let mut map = ShardMap {
            slots,
            owner: vec![NO_SHARD; slots as usize],
            shards: BTreeMap::new(),
        };
        for desc in shards {
            let id = desc.shard_id;
            if id == NO_SHARD {
                return Err(KeySpaceError::InvalidMap("shard id 0 is reserved".into()));
            }
            if map.shards.contains_key(&id) {
                return Err(KeySpaceError::InvalidMap(format!("shard {id} listed twice")));
            }
            for range in &desc.ranges {
                if range.start > range.end || range.end > slots {
                    return Err(KeySpaceError::InvalidMap(format!(
                        "shard {id}: range [{}, {}) outside 0..{slots}",
                        range.start, range.end
                    )));
                }
                for slot in range.start..range.end {
                    let cell = &mut map.owner[slot as usize];
                    if *cell != NO_SHARD {
                        return Err(KeySpaceError::InvalidMap(format!(
                            "slot {slot} owned by shards {} and {id}",
                            *cell
                        )));
                    }
                    *cell = id;
                }
            }
            map.shards.insert(id, desc);
        }
        Ok(map)
    }

    /// The number of slots of the key space.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// The slot of `uid` in this key space.
    pub fn slot_of(&self, uid: u64) -> u32 {
        slot_of(uid, self.slots)
    }

    /// The shard that owns `slot`, if any.
    pub fn shard_of_slot(&self, slot: u32) -> Option<&ShardDescriptor> {
        let id = *self.owner.get(slot as usize)?;
        self.shards.get(&id)
    }

    /// The shard that owns `uid`, if any.
    pub fn shard_of_uid(&self, uid: u64) -> Option<&ShardDescriptor> {
        self.shard_of_slot(self.slot_of(uid))
    }

    /// The descriptor of shard `shard_id`.
    pub fn descriptor(&self, shard_id: u32) -> Option<&ShardDescriptor> {
        self.shards.get(&shard_id)
    }

    /// Every descriptor, by shard id.
    pub fn descriptors(&self) -> impl Iterator<Item = &ShardDescriptor> {
        self.shards.values()
    }

    /// How many slots no shard owns (non-zero only while a map is incomplete).
    pub fn unassigned_slots(&self) -> usize {
        self.owner.iter().filter(|&&id| id == NO_SHARD).count()
    }

    /// Installs fresher descriptors (the `current` of an `EpochNotMatch`).
    ///
    /// A descriptor whose epoch is older than the cached one in either component
    /// is ignored. An installed descriptor takes its slots from whichever shard
    /// held them. Ranges past the slot count are clipped. Returns how many
    /// descriptors were installed.
    pub fn update(&mut self, current: impl IntoIterator<Item = ShardDescriptor>) -> usize {
        let mut installed = 0;
        for desc in current {
            let id = desc.shard_id;
            if id == NO_SHARD {
                continue;
            }
            if let Some(old) = self.shards.get(&id)
                && is_older(&desc, old)
            {
                continue;
            }
            for cell in self.owner.iter_mut().filter(|cell| **cell == id) {
                *cell = NO_SHARD;
            }
            for range in &desc.ranges {
                let end = range.end.min(self.slots);
                for slot in range.start.min(end)..end {
                    self.owner[slot as usize] = id;
                }
            }
            self.shards.insert(id, desc);
            installed += 1;
        }
        installed
    }
}

/// True when `new`'s epoch is behind `old`'s in either component.
fn is_older(new: &ShardDescriptor, old: &ShardDescriptor) -> bool {
    let (n, o) = (new.epoch.unwrap_or_default(), old.epoch.unwrap_or_default());
    n.conf_ver < o.conf_ver || n.version < o.version
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_proto::router::{ShardEpoch, SlotRange};

    fn desc(id: u32, ranges: &[(u32, u32)], version: u64) -> ShardDescriptor {
        ShardDescriptor {
            shard_id: id,
            ranges: ranges
                .iter()
                .map(|&(start, end)| SlotRange { start, end })
                .collect(),
            replicas: vec![1, 2, 3],
            epoch: Some(ShardEpoch { conf_ver: 1, version }),
            leader: 0,
        }
    }

    fn equal_shards(count: u32, slots: u32) -> Vec<ShardDescriptor> {
        let width = slots / count;
        (0..count)
            .map(|i| {
                let end = if i + 1 == count { slots } else { (i + 1) * width };
                desc(i + 1, &[(i * width, end)], 1)
            })
            .collect()
    }

    #[test]
    fn slot_of_is_pinned() {
        // Computed once (and cross-checked with an independent XXH64) and
        // pinned: a change here moves every user to another shard.
        let pinned = [
            (0u64, 3003u32),
            (1, 2453),
            (42, 851),
            (1_000_000, 2590),
            (u64::MAX, 1737),
        ];
        for (uid, slot) in pinned {
            assert_eq!(slot_of(uid, DEFAULT_SLOTS), slot, "uid {uid}");
        }
        assert_eq!(xxh64(&1u64.to_le_bytes(), 0) % 4096, u64::from(slot_of(1, 4096)));
    }

    #[test]
    fn slot_of_zero_slots_does_not_panic() {
        assert_eq!(slot_of(7, 0), 0);
    }

    #[test]
    fn distribution_over_16_shards_is_even() {
        let map = ShardMap::new(DEFAULT_SLOTS, equal_shards(16, DEFAULT_SLOTS)).expect("map");
        let mut counts = [0u32; 16];
        let users = 160_000u64;
        for uid in 0..users {
            let shard = map.shard_of_uid(uid).expect("assigned").shard_id;
            counts[(shard - 1) as usize] += 1;
        }
        let expected = (users / 16) as f64;
        for (i, &count) in counts.iter().enumerate() {
            let skew = (f64::from(count) - expected).abs() / expected;
            assert!(skew < 0.05, "shard {} has {count} users", i + 1);
        }
    }

    #[test]
    fn rejects_bad_maps() {
        assert!(ShardMap::new(0, vec![]).is_err());
        assert!(ShardMap::new(MAX_SLOTS + 1, vec![]).is_err());
        assert!(ShardMap::new(16, vec![desc(0, &[(0, 16)], 1)]).is_err());
        assert!(ShardMap::new(16, vec![desc(1, &[(0, 17)], 1)]).is_err());
        assert!(ShardMap::new(16, vec![desc(1, &[(0, 8)], 1), desc(2, &[(7, 16)], 1)]).is_err());
        assert!(ShardMap::new(16, vec![desc(1, &[(0, 8)], 1), desc(1, &[(8, 16)], 1)]).is_err());
    }

    #[test]
    fn lookup_by_slot_and_gaps() {
        let map =
            ShardMap::new(16, vec![desc(1, &[(0, 4), (8, 12)], 1), desc(2, &[(4, 8)], 1)]).expect("map");
        assert_eq!(map.shard_of_slot(9).map(|d| d.shard_id), Some(1));
        assert_eq!(map.shard_of_slot(5).map(|d| d.shard_id), Some(2));
        assert!(map.shard_of_slot(12).is_none());
        assert!(map.shard_of_slot(99).is_none());
        assert_eq!(map.unassigned_slots(), 4);
    }

    #[test]
    fn update_moves_slots_and_ignores_stale_epochs() {
        let mut map = ShardMap::new(16, vec![desc(1, &[(0, 8)], 1), desc(2, &[(8, 16)], 1)]).expect("map");
        // Shard 2 takes slots 4..8 from shard 1 (a newer version of both).
        let installed = map.update(vec![desc(1, &[(0, 4)], 2), desc(2, &[(4, 16)], 2)]);
        assert_eq!(installed, 2);
        assert_eq!(map.shard_of_slot(5).map(|d| d.shard_id), Some(2));
        assert_eq!(map.shard_of_slot(3).map(|d| d.shard_id), Some(1));
        // A stale descriptor is ignored.
        assert_eq!(map.update(vec![desc(1, &[(0, 8)], 1)]), 0);
        assert_eq!(map.shard_of_slot(5).map(|d| d.shard_id), Some(2));
        assert_eq!(map.unassigned_slots(), 0);
    }
}
