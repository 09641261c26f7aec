//! The node's RocksDB: column families and key layout.
//!
//! - `logs`:      group (u32 BE) ++ index (u64 BE) -> postcard(Entry)
//! - `meta`:      group (u32 BE) ++ tag (u8)       -> postcard(value)
//!   (tags: vote, committed, last purged, hosted marker, tombstone; the
//!   node's cluster id under group 0)
//! - `snapshots`: group (u32 BE)                   -> postcard(StoredSnapshot)
//!
//! Big-endian keys keep every group's entries contiguous and in index order.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rocksdb::ColumnFamily;
use rocksdb::ColumnFamilyDescriptor;
use rocksdb::DB;
use rocksdb::Options;

use super::WalSyncer;
use super::io_err;
use crate::ids::GroupId;

pub(crate) const CF_LOGS: &str = "logs";
pub(crate) const CF_META: &str = "meta";
pub(crate) const CF_SNAPSHOTS: &str = "snapshots";

/// Tags of the per-group keys in `meta`.
#[derive(Clone, Copy)]
#[repr(u8)]
pub(crate) enum MetaTag {
    Vote = 1,
    Committed = 2,
    LastPurged = 3,
    /// Present while this node hosts a replica of the group.
    Hosted = 4,
    /// Where a shard went after this node gave its replica away (`tombstone.rs`).
    Tombstone = 5,
    /// The cluster id (node-wide, under group 0): u64 BE.
    ClusterId = 6,
}

/// One RocksDB shared by every Raft group of the node.
#[derive(Clone)]
pub struct NodeDb {
    pub(crate) db: Arc<DB>,
    pub(crate) syncer: WalSyncer,
}

impl NodeDb {
    pub fn open(dir: &Path) -> io::Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let cfs = [CF_LOGS, CF_META, CF_SNAPSHOTS]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = Arc::new(DB::open_cf_descriptors(&opts, dir, cfs).map_err(io_err)?);
        let syncer = WalSyncer::start(&db);
        Ok(Self { db, syncer })
    }

    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        // The three families are created by `open`; their absence is a bug.
        self.db.cf_handle(name).expect("column family created at open")
    }

    /// Syncs the WAL and stops RocksDB's background threads. Call once every
    /// group has stopped; the database closes when the last handle drops.
    pub fn close(&self) {
        if let Err(error) = self.db.flush_wal(true) {
            tracing::warn!(%error, "final WAL sync");
        }
        self.db.cancel_all_background_work(true);
    }

    /// Groups this node hosts a replica of, as recorded on disk.
    pub fn hosted_groups(&self) -> io::Result<Vec<GroupId>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_META), rocksdb::IteratorMode::Start)
        {
            let (k, _) = item.map_err(io_err)?;
            if k.len() == 5 && k[4] == MetaTag::Hosted as u8 {
                out.push(GroupId::from_be_bytes([k[0], k[1], k[2], k[3]]));
            }
        }
        Ok(out)
    }

    /// Every value stored under `tag` in `meta`, by group.
    pub(crate) fn meta_values(&self, tag: MetaTag) -> io::Result<Vec<(GroupId, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_META), rocksdb::IteratorMode::Start)
        {
            let (k, v) = item.map_err(io_err)?;
            if k.len() == 5 && k[4] == tag as u8 {
                out.push((GroupId::from_be_bytes([k[0], k[1], k[2], k[3]]), v.to_vec()));
            }
        }
        Ok(out)
    }

    /// Writes (`Some`) or deletes (`None`) the `tag` value of `group`; not
    /// synced, the next WAL sync covers it.
    pub(crate) fn set_meta_value(
        &self,
        group: GroupId,
        tag: MetaTag,
        value: Option<&[u8]>,
    ) -> io::Result<()> {
        let key = meta_key(group, tag);
        match value {
            Some(v) => self.db.put_cf(self.cf(CF_META), key, v),
            None => self.db.delete_cf(self.cf(CF_META), key),
        }
        .map_err(io_err)
    }

    /// The id of the cluster this node belongs to, once known.
    pub fn cluster_id(&self) -> io::Result<Option<u64>> {
        let v = self
            .db
            .get_cf(self.cf(CF_META), meta_key(0, MetaTag::ClusterId))
            .map_err(io_err)?;
        Ok(v.and_then(|v| Some(u64::from_be_bytes(v.as_slice().try_into().ok()?))))
    }

    /// Records the cluster id, durably.
    pub async fn set_cluster_id(&self, id: u64) -> io::Result<()> {
        self.db
            .put_cf(
                self.cf(CF_META),
                meta_key(0, MetaTag::ClusterId),
                id.to_be_bytes(),
            )
            .map_err(io_err)?;
        self.syncer.sync().await
    }

    /// Records that this node hosts `group`, durably.
    pub async fn set_hosted(&self, group: GroupId) -> io::Result<()> {
        self.db
            .put_cf(self.cf(CF_META), meta_key(group, MetaTag::Hosted), [1u8])
            .map_err(io_err)?;
        self.syncer.sync().await
    }
}

pub(crate) fn log_key(group: GroupId, index: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&group.to_be_bytes());
    k[4..].copy_from_slice(&index.to_be_bytes());
    k
}

pub(crate) fn log_key_index(k: &[u8]) -> Option<(GroupId, u64)> {
    let group = GroupId::from_be_bytes(k.get(..4)?.try_into().ok()?);
    let index = u64::from_be_bytes(k.get(4..12)?.try_into().ok()?);
    Some((group, index))
}

pub(crate) fn meta_key(group: GroupId, tag: MetaTag) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[..4].copy_from_slice(&group.to_be_bytes());
    k[4] = tag as u8;
    k
}
