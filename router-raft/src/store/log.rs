//! One group's Raft log on the node's shared RocksDB.

use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;

use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use rocksdb::Direction;
use rocksdb::IteratorMode;
use rocksdb::ReadOptions;
use rocksdb::WriteBatch;

use super::NodeDb;
use super::db::CF_LOGS;
use super::db::CF_META;
use super::db::MetaTag;
use super::db::log_key;
use super::db::log_key_index;
use super::db::meta_key;
use super::decode;
use super::encode;
use super::io_err;
use crate::types::Entry;
use crate::types::GroupId;
use crate::types::LogId;
use crate::types::TypeConfig;
use crate::types::Vote;

/// The log of `group`; cheap to clone (it is its own reader).
#[derive(Clone)]
pub struct LogStore {
    db: NodeDb,
    group: GroupId,
}

impl LogStore {
    pub fn new(db: NodeDb, group: GroupId) -> Self {
        Self { db, group }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, tag: MetaTag) -> io::Result<Option<T>> {
        let raw = self
            .db
            .db
            .get_cf(self.db.cf(CF_META), meta_key(self.group, tag))
            .map_err(io_err)?;
        raw.map(|b| decode(&b)).transpose()
    }

    fn put_meta<T: serde::Serialize>(&self, tag: MetaTag, v: &T) -> io::Result<()> {
        self.db
            .db
            .put_cf(self.db.cf(CF_META), meta_key(self.group, tag), encode(v)?)
            .map_err(io_err)
    }

    fn delete_logs(&self, from: u64, to_exclusive: u64) -> io::Result<()> {
        self.db
            .db
            .delete_range_cf(
                self.db.cf(CF_LOGS),
                log_key(self.group, from),
                log_key(self.group, to_exclusive),
            )
            .map_err(io_err)
    }

    /// Removes everything this group stored on the node (its replica left).
    pub fn destroy(&self) -> io::Result<()> {
        self.delete_logs(0, u64::MAX)?;
        let mut batch = WriteBatch::default();
        for tag in [
            MetaTag::Vote,
            MetaTag::Committed,
            MetaTag::LastPurged,
            MetaTag::Hosted,
        ] {
            batch.delete_cf(self.db.cf(CF_META), meta_key(self.group, tag));
        }
        batch.delete_cf(self.db.cf(super::db::CF_SNAPSHOTS), self.group.to_be_bytes());
        self.db.db.write(batch).map_err(io_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(x) => x.saturating_add(1),
            Bound::Excluded(x) => *x,
            Bound::Unbounded => u64::MAX,
        };
        if start >= end {
            return Ok(Vec::new());
        }
        let from = log_key(self.group, start);
        // The bound stops the iterator at the range's end: without it, the step
        // past the last entry would walk the purged (deleted) entries of the
        // next group before finding a live key.
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(log_key(self.group, end));
        let iter = self.db.db.iterator_cf_opt(
            self.db.cf(CF_LOGS),
            opts,
            IteratorMode::From(&from, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item.map_err(io_err)?;
            let Some((group, index)) = log_key_index(&k) else {
                break;
            };
            if group != self.group || !range.contains(&index) {
                break;
            }
            out.push(decode::<Entry>(&v)?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.get_meta(MetaTag::Vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged: Option<LogId> = self.get_meta(MetaTag::LastPurged)?;
        let end = log_key(self.group, u64::MAX);
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(log_key(self.group, 0));
        let mut iter = self.db.db.iterator_cf_opt(
            self.db.cf(CF_LOGS),
            opts,
            IteratorMode::From(&end, Direction::Reverse),
        );
        let mut last = None;
        if let Some(item) = iter.next() {
            let (k, v) = item.map_err(io_err)?;
            if log_key_index(&k).is_some_and(|(g, _)| g == self.group) {
                last = Some(decode::<Entry>(&v)?.log_id());
            }
        }
        Ok(LogState {
            last_log_id: last.or(last_purged),
            last_purged_log_id: last_purged,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        self.put_meta(MetaTag::Vote, vote)?;
        self.db.syncer.sync().await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        // Not synced: losing it only means re-applying a little more on restart.
        self.put_meta(MetaTag::Committed, &committed)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.get_meta::<Option<LogId>>(MetaTag::Committed)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let cf = self.db.cf(CF_LOGS);
        let mut n = 0u64;
        for entry in entries {
            batch.put_cf(cf, log_key(self.group, entry.index()), encode(&entry)?);
            n += 1;
        }
        // Written (readable) now; durable when the syncer's fsync covers it.
        self.db.db.write(batch).map_err(io_err)?;
        crate::metrics::LOG_ENTRIES_APPENDED.inc_by(n);
        self.db
            .syncer
            .after_sync(Box::new(move |res| callback.io_completed(res)));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let from = last_log_id.map_or(0, |id| id.index() + 1);
        self.delete_logs(from, u64::MAX)
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        // The marker first: entries at or below it are ignored from then on.
        self.put_meta(MetaTag::LastPurged, &log_id)?;
        self.delete_logs(0, log_id.index() + 1)
    }
}
