//! The replicated state machines of a router node.
//!
//! - [`shard`]: uid -> sessions, the online-state table of one shard.
//! - [`meta`]: the cluster map and gateway registry.
//! - [`StateMachine`]: openraft's `RaftStateMachine` over either, kept in
//!   memory and shared (read-only) with the request handlers; snapshots are
//!   written to the node's RocksDB so a restart installs the last one and
//!   re-applies the log after it.

pub use confab_router_state::group::{GroupData, StoredSnapshot};
pub use confab_router_state::{meta, shard};

use std::io;
use std::io::Cursor;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::RwLockReadGuard;

use futures::Stream;
use futures::TryStreamExt;
use openraft::EntryPayload;
use openraft::RaftSnapshotBuilder;
use openraft::entry::RaftEntry;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use serde::Deserialize;
use serde::Serialize;

use crate::store::NodeDb;
use crate::store::decode;
use crate::store::encode;
use crate::store::io_err;
use crate::types::GroupId;
use crate::types::LogId;
use crate::types::Reply;
use crate::types::Snapshot;
use crate::types::SnapshotData;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;
use crate::types::TypeConfig;

/// Everything applied so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Applied {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub data: GroupData,
}

/// A group's state machine; clones share the same state.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Inner>,
}

struct Inner {
    group: GroupId,
    state: RwLock<Applied>,
    db: Option<NodeDb>,
    /// A snapshot kept in memory when there is no database (tests).
    mem_snapshot: RwLock<Option<StoredSnapshot>>,
}

impl StateMachine {
    /// A state machine whose snapshots are stored in `db`.
    pub fn new(group: GroupId, db: Option<NodeDb>) -> Self {
        Self {
            inner: Arc::new(Inner {
                group,
                state: RwLock::new(Applied {
                    last_applied: None,
                    membership: StoredMembership::default(),
                    data: GroupData::empty_for(group),
                }),
                db,
                mem_snapshot: RwLock::new(None),
            }),
        }
    }

    pub fn group(&self) -> GroupId {
        self.inner.group
    }

    /// Read access to the applied state. Never hold it across an await.
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        // A poisoned lock means a panic mid-apply: the state can't be trusted.
        self.inner.state.read().expect("state machine lock poisoned")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Applied> {
        self.inner.state.write().expect("state machine lock poisoned")
    }

    fn save_snapshot(&self, snap: StoredSnapshot) -> io::Result<()> {
        match &self.inner.db {
            Some(db) => db
                .db
                .put_cf(
                    db.cf(crate::store::db::CF_SNAPSHOTS),
                    self.inner.group.to_be_bytes(),
                    encode(&snap)?,
                )
                .map_err(io_err),
            None => {
                *self.inner.mem_snapshot.write().expect("snapshot lock poisoned") = Some(snap);
                Ok(())
            }
        }
    }

    fn load_snapshot(&self) -> io::Result<Option<StoredSnapshot>> {
        match &self.inner.db {
            Some(db) => {
                let raw = db
                    .db
                    .get_cf(
                        db.cf(crate::store::db::CF_SNAPSHOTS),
                        self.inner.group.to_be_bytes(),
                    )
                    .map_err(io_err)?;
                raw.map(|b| decode(&b)).transpose()
            }
            None => Ok(self
                .inner
                .mem_snapshot
                .read()
                .expect("snapshot lock poisoned")
                .as_ref()
                .map(|s| StoredSnapshot {
                    meta: s.meta.clone(),
                    data: s.data.clone(),
                })),
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let (meta, data) = {
            let st = self.read();
            let meta = SnapshotMeta {
                last_log_id: st.last_applied,
                last_membership: st.membership.clone(),
            };
            (meta, encode(&st.data)?)
        };
        crate::metrics::SNAPSHOTS_BUILT.inc();
        self.save_snapshot(StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        })?;
        Ok(Snapshot {
            meta,
            snapshot: Cursor::new(data),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let st = self.read();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<S>(&mut self, entries: S) -> io::Result<()>
    where
        S: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + openraft::OptionalSend,
    {
        let batch: Vec<EntryResponder<TypeConfig>> = entries.try_collect().await?;
        let mut replies = Vec::with_capacity(batch.len());
        {
            let mut st = self.write();
            for (entry, responder) in batch {
                st.last_applied = Some(entry.log_id());
                let reply = match &entry.payload {
                    EntryPayload::Blank => Reply::None,
                    EntryPayload::Normal(cmd) => st.data.apply(cmd),
                    EntryPayload::Membership(m) => {
                        st.membership = StoredMembership::new(Some(entry.log_id()), m.clone());
                        Reply::None
                    }
                };
                if let Some(r) = responder {
                    replies.push((r, reply));
                }
            }
        }
        for (responder, reply) in replies {
            responder.send(reply);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> io::Result<()> {
        let bytes = snapshot.into_inner();
        let data: GroupData = decode(&bytes)?;
        {
            let mut st = self.write();
            st.last_applied = meta.last_log_id;
            st.membership = meta.last_membership.clone();
            st.data = data;
        }
        crate::metrics::SNAPSHOTS_INSTALLED.inc();
        self.save_snapshot(StoredSnapshot {
            meta: meta.clone(),
            data: bytes,
        })
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        Ok(self.load_snapshot()?.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Cursor::new(s.data),
        }))
    }
}
