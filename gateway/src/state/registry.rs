//! The sessions connected to this gateway: session id -> handle, and the
//! sessions of each user. A handle is how anything (a Deliver from another
//! gateway, a commit notification, a kick) reaches a connection: through
//! its bounded send queue, never blocking.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::outbox::{Outbox, Pushed};
use super::reads::ReadWaits;
use crate::metrics;

/// The way into one connection.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    pub uid: u64,
    pub device_id: String,
    pub tx: Outbox,
    /// Cancelled to close the connection (kick, slow consumer, lease loss).
    pub kill: CancellationToken,
    /// The messages the connection was told of (its reads may wait for them).
    pub reads: Arc<ReadWaits>,
}

impl SessionHandle {
    /// Queues a frame; a queue past its bound disconnects the client (it
    /// does not read), a closed one means it is gone. True when queued.
    pub fn push(&self, frame: Bytes) -> bool {
        match self.tx.push(frame) {
            Pushed::Queued => true,
            Pushed::Full => {
                if !self.kill.is_cancelled() {
                    metrics::SLOW_CONSUMERS.inc();
                    tracing::warn!(uid = self.uid, device = %self.device_id, "send queue full: disconnecting");
                    self.kill.cancel();
                }
                false
            }
            Pushed::Closed => false,
        }
    }
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<u64, SessionHandle>,
    by_user: HashMap<u64, Vec<u64>>,
}

#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, session_id: u64, handle: SessionHandle) {
        let mut g = self.lock();
        g.by_user.entry(handle.uid).or_default().push(session_id);
        g.sessions.insert(session_id, handle);
    }

    pub fn remove(&self, session_id: u64) -> Option<SessionHandle> {
        let mut g = self.lock();
        let h = g.sessions.remove(&session_id)?;
        if let Some(list) = g.by_user.get_mut(&h.uid) {
            list.retain(|s| *s != session_id);
            if list.is_empty() {
                g.by_user.remove(&h.uid);
            }
        }
        Some(h)
    }

    pub fn get(&self, session_id: u64) -> Option<SessionHandle> {
        self.lock().sessions.get(&session_id).cloned()
    }

    /// The sessions of `uid` here, with their ids.
    pub fn of_user(&self, uid: u64) -> Vec<(u64, SessionHandle)> {
        let g = self.lock();
        g.by_user
            .get(&uid)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| g.sessions.get(id).map(|h| (*id, h.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The sessions here of any of `uids`, under one lock.
    pub fn of_users(&self, uids: &[u64]) -> Vec<SessionHandle> {
        let g = self.lock();
        let mut out = Vec::new();
        for uid in uids {
            if let Some(ids) = g.by_user.get(uid) {
                out.extend(ids.iter().filter_map(|id| g.sessions.get(id).cloned()));
            }
        }
        out
    }

    pub fn all(&self) -> Vec<(u64, SessionHandle)> {
        self.lock()
            .sessions
            .iter()
            .map(|(id, h)| (*id, h.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes the session, queues `frame` (the Kicked push) and closes it.
    pub fn kick(&self, session_id: u64, frame: Bytes) -> bool {
        match self.remove(session_id) {
            Some(h) => {
                h.push(frame);
                h.kill.cancel();
                metrics::KICKS.inc();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::state::outbox::{Inbox, outbox};

    /// A handle whose queue stops reads at `limit` bytes and refuses
    /// frames past twice that.
    fn handle(uid: u64, limit: usize) -> (SessionHandle, Inbox) {
        let (tx, rx) = outbox(limit);
        let h = SessionHandle {
            uid,
            device_id: "d".into(),
            tx,
            kill: CancellationToken::new(),
            reads: Arc::new(ReadWaits::new(1)),
        };
        (h, rx)
    }

    #[test]
    fn index_by_user_follows_inserts_and_removes() {
        let r = Registry::default();
        let (a, _ra) = handle(1, 8);
        let (b, _rb) = handle(1, 8);
        r.insert(10, a);
        r.insert(11, b);
        assert_eq!(r.of_user(1).len(), 2);
        r.remove(10);
        assert_eq!(r.of_user(1).len(), 1);
        assert_eq!(r.of_users(&[1, 2]).len(), 1);
        r.remove(11);
        assert!(r.of_user(1).is_empty());
        assert!(r.of_users(&[1]).is_empty());
        assert!(r.is_empty());
    }

    #[test]
    fn a_full_queue_disconnects_instead_of_growing() {
        let (h, _rx) = handle(1, 1);
        assert!(h.push(Bytes::from_static(b"1")));
        assert!(h.push(Bytes::from_static(b"2")));
        assert!(!h.kill.is_cancelled());
        assert!(!h.push(Bytes::from_static(b"3")));
        assert!(h.kill.is_cancelled());
    }
}
