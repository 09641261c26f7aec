//! Tombstones: where the shard replicas this node gave away went.
//!
//! When a move drops this node's replica of a shard (`DropReplica`), the node
//! keeps the shard's descriptor after the move for `tombstone_ms`. A caller
//! whose map still names this node for the shard is answered `EpochNotMatch`
//! with that descriptor (or a fresher one from this node's map) and goes
//! straight to the new replicas, also once this node left the meta group and
//! its map no longer follows the cluster. After expiry the node answers
//! `ShardNotFound`, and the caller re-reads the map from other nodes.
//!
//! Tombstones live in memory and in the node's RocksDB (`meta` column family,
//! tag `Tombstone`, with their wall-clock expiry), so a restart keeps them
//! for the rest of their time. They are advisory: one lost in a crash only
//! costs a caller a map refresh.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use serde::Deserialize;
use serde::Serialize;

use crate::sm::meta::ShardRecord;
use crate::store::NodeDb;
use crate::store::db::MetaTag;
use crate::store::decode;
use crate::store::encode;

/// What is stored per shard.
#[derive(Serialize, Deserialize)]
struct Stored {
    shard: ShardRecord,
    /// Unix milliseconds after which the tombstone is gone.
    expires_unix_ms: u64,
}

struct Live {
    shard: ShardRecord,
    expires: Instant,
}

/// The tombstones of one node.
pub struct Tombstones {
    db: NodeDb,
    ttl: Duration,
    live: Mutex<HashMap<u32, Live>>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Tombstones {
    /// Loads the tombstones stored in `db` that have not expired yet.
    pub fn open(db: NodeDb, ttl: Duration) -> std::io::Result<Self> {
        let now_ms = unix_ms();
        let now = Instant::now();
        let mut live = HashMap::new();
        for (shard_id, raw) in db.meta_values(MetaTag::Tombstone)? {
            let left = match decode::<Stored>(&raw) {
                Ok(stored) if stored.expires_unix_ms > now_ms => {
                    let left = Duration::from_millis(stored.expires_unix_ms - now_ms).min(ttl);
                    Some((stored.shard, left))
                }
                Ok(_) => None,
                Err(error) => {
                    tracing::warn!(shard_id, %error, "dropping an unreadable tombstone");
                    None
                }
            };
            match left {
                Some((shard, left)) => {
                    live.insert(
                        shard_id,
                        Live {
                            shard,
                            expires: now + left,
                        },
                    );
                }
                None => db.set_meta_value(shard_id, MetaTag::Tombstone, None)?,
            }
        }
        Ok(Tombstones {
            db,
            ttl,
            live: Mutex::new(live),
        })
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers that this node's replica of `shard.id` went away; `shard` is
    /// the shard's record after the move. Nothing is kept when the
    /// configured lifetime is zero.
    pub fn record(&self, shard: ShardRecord) -> std::io::Result<()> {
        if self.ttl.is_zero() {
            return Ok(());
        }
        let stored = Stored {
            shard: shard.clone(),
            expires_unix_ms: unix_ms() + self.ttl.as_millis() as u64,
        };
        self.db
            .set_meta_value(shard.id, MetaTag::Tombstone, Some(&encode(&stored)?))?;
        self.live().insert(
            shard.id,
            Live {
                shard,
                expires: Instant::now() + self.ttl,
            },
        );
        Ok(())
    }

    /// The record of `shard_id` this node kept when it gave its replica away,
    /// while the tombstone lasts. An expired tombstone is deleted.
    pub fn get(&self, shard_id: u32) -> Option<ShardRecord> {
        let mut live = self.live();
        let entry = live.get(&shard_id)?;
        if entry.expires > Instant::now() {
            return Some(entry.shard.clone());
        }
        live.remove(&shard_id);
        drop(live);
        self.delete(shard_id);
        None
    }

    /// Forgets the tombstone of `shard_id` (a replica of it is back here).
    pub fn clear(&self, shard_id: u32) {
        if self.live().remove(&shard_id).is_some() {
            self.delete(shard_id);
        }
    }

    /// Shards with a live tombstone.
    pub fn shards(&self) -> Vec<u32> {
        let now = Instant::now();
        let mut out: Vec<u32> = self
            .live()
            .iter()
            .filter(|(_, l)| l.expires > now)
            .map(|(id, _)| *id)
            .collect();
        out.sort_unstable();
        out
    }

    fn delete(&self, shard_id: u32) {
        if let Err(error) = self.db.set_meta_value(shard_id, MetaTag::Tombstone, None) {
            tracing::warn!(shard_id, %error, "deleting a tombstone");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sm::meta::Epoch;

    fn record(id: u32) -> ShardRecord {
        ShardRecord {
            id,
            ranges: vec![(0, 16)],
            replicas: vec![2, 3, 4],
            epoch: Epoch {
                conf_ver: 2,
                version: 1,
            },
        }
    }

    #[test]
    fn a_tombstone_lasts_its_time_and_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = NodeDb::open(dir.path()).expect("db");
        let t = Tombstones::open(db.clone(), Duration::from_secs(60)).expect("open");
        assert!(t.get(1).is_none());
        t.record(record(1)).expect("record");
        assert_eq!(t.get(1), Some(record(1)));
        assert_eq!(t.shards(), vec![1]);
        // A reopened node still knows where shard 1 went.
        let again = Tombstones::open(db.clone(), Duration::from_secs(60)).expect("reopen");
        assert_eq!(again.get(1), Some(record(1)));
        again.clear(1);
        assert!(again.get(1).is_none());
        let third = Tombstones::open(db.clone(), Duration::from_secs(60)).expect("reopen");
        assert!(third.get(1).is_none(), "a cleared tombstone stays cleared");
    }

    #[test]
    fn an_expired_tombstone_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = NodeDb::open(dir.path()).expect("db");
        let t = Tombstones::open(db.clone(), Duration::from_millis(30)).expect("open");
        t.record(record(2)).expect("record");
        assert!(t.get(2).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(t.get(2).is_none());
        assert!(t.shards().is_empty());
        let reopened = Tombstones::open(db, Duration::from_millis(30)).expect("reopen");
        assert!(reopened.get(2).is_none());
        // Zero lifetime: nothing is kept.
        let dir = tempfile::tempdir().expect("tempdir");
        let none = Tombstones::open(NodeDb::open(dir.path()).expect("db"), Duration::ZERO).expect("open");
        none.record(record(3)).expect("record");
        assert!(none.get(3).is_none());
    }
}
