//! Friends' presence.
//!
//! - On a login, logout or disconnect here, [`announce`] reads the user's
//!   friends (cached, [`crate::social`]), looks the user and its friends up
//!   in one batch, and sends the user's sessions to every online friend's
//!   session: here from their queues, elsewhere with one `Deliver` per
//!   hosting gateway (a `Presence` push).
//! - For the users logged in here, the [`PresenceTracker`] remembers where
//!   each of their friends is online (from the login's lookup and from later
//!   `Presence` pushes).
//! - [`watch`] reads the live gateway list from the routers every
//!   `social.gateway_poll_ms`. When a gateway leaves it (killed: its lease
//!   expired and its sessions were purged) or comes back as a new
//!   incarnation, the friends whose sessions were there lose them, and the
//!   users here who watch them get a `PresenceChanged` push: offline once no
//!   device is left.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};
use confab_proto::gateway::{Presence, Push, SessionRef, push};
use confab_router_client::Session;
use futures::future::join_all;

use crate::error::Result;
use crate::state::Shared;
use crate::{deliver, frame, metrics, notify, social};

#[derive(Default)]
struct Watched {
    sessions: Vec<SessionRef>,
    /// Users logged in here who are friends of this one.
    watchers: HashSet<u64>,
}

/// The friends a user logged in here watches, and when their sessions
/// were last read from the routers.
struct Watching {
    friends: Vec<u64>,
    read_at: Instant,
    /// A re-read from the routers is under way.
    refreshing: bool,
}

#[derive(Default)]
struct Inner {
    watched: HashMap<u64, Watched>,
    /// User logged in here -> the friends it watches.
    watching: HashMap<u64, Watching>,
    /// Live gateways: id -> incarnation (from the last poll).
    live: HashMap<u64, u64>,
}

/// A friend whose sessions changed because a gateway left.
#[derive(Debug, PartialEq)]
pub struct Change {
    pub uid: u64,
    pub sessions: Vec<SessionRef>,
    pub watchers: Vec<u64>,
}

#[derive(Default)]
pub struct PresenceTracker {
    inner: Mutex<Inner>,
}

impl Inner {
    fn untrack(&mut self, local: u64) {
        let friends = self
            .watching
            .remove(&local)
            .map(|w| w.friends)
            .unwrap_or_default();
        for f in friends {
            if let Some(w) = self.watched.get_mut(&f) {
                w.watchers.remove(&local);
                if w.watchers.is_empty() {
                    self.watched.remove(&f);
                }
            }
        }
    }
}

impl PresenceTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `local` (logged in here) watches `friends`, whose sessions are given.
    pub fn track(&self, local: u64, friends: Vec<(u64, Vec<SessionRef>)>) {
        let mut g = self.lock();
        g.untrack(local);
        let ids = friends.iter().map(|(f, _)| *f).collect();
        for (f, sessions) in friends {
            let w = g.watched.entry(f).or_default();
            w.sessions = sessions;
            w.watchers.insert(local);
        }
        g.watching.insert(
            local,
            Watching {
                friends: ids,
                read_at: Instant::now(),
                refreshing: false,
            },
        );
    }

    /// The sessions of `friends` as known here (read from the routers, kept
    /// current by pushes since), when `local` watches every one of them;
    /// None otherwise. The bool says the read is older than `max_age`: the
    /// caller should start a re-read ([`PresenceTracker::begin_refresh`]).
    pub fn view(
        &self,
        local: u64,
        friends: &[u64],
        max_age: Duration,
    ) -> Option<(Vec<Vec<SessionRef>>, bool)> {
        let g = self.lock();
        let w = g.watching.get(&local)?;
        let old = w.read_at.elapsed() >= max_age;
        let sessions = friends
            .iter()
            .map(|f| {
                g.watched
                    .get(f)
                    .filter(|x| x.watchers.contains(&local))
                    .map(|x| x.sessions.clone())
            })
            .collect::<Option<Vec<_>>>()?;
        Some((sessions, old))
    }

    /// A re-read failed: the next list may try again.
    pub fn end_refresh(&self, local: u64) {
        if let Some(w) = self.lock().watching.get_mut(&local) {
            w.refreshing = false;
        }
    }

    /// True when the caller should re-read `local`'s friends (no re-read is
    /// under way); the next [`PresenceTracker::track`] ends it.
    pub fn begin_refresh(&self, local: u64) -> bool {
        let mut g = self.lock();
        match g.watching.get_mut(&local) {
            Some(w) if !w.refreshing => {
                w.refreshing = true;
                true
            }
            _ => false,
        }
    }

    /// `local` has no session here any more.
    pub fn untrack(&self, local: u64) {
        self.lock().untrack(local);
    }

    /// The sessions of `uid` changed; returns the users here who watch it.
    pub fn update(&self, uid: u64, sessions: &[SessionRef]) -> Vec<u64> {
        let mut g = self.lock();
        match g.watched.get_mut(&uid) {
            Some(w) => {
                w.sessions = sessions.to_vec();
                w.watchers.iter().copied().collect()
            }
            None => Vec::new(),
        }
    }

    /// Whether `uid` is online as far as this gateway knows.
    pub fn is_online(&self, uid: u64) -> Option<bool> {
        self.lock().watched.get(&uid).map(|w| !w.sessions.is_empty())
    }

    pub fn live_gateways(&self) -> Vec<u64> {
        self.lock().live.keys().copied().collect()
    }

    /// Takes a new live list. Sessions on a known gateway (live before or
    /// now) whose incarnation is not the live one are dropped; returns the
    /// gateways that left and the friends that lost sessions.
    pub fn set_live(&self, live: HashMap<u64, u64>) -> (Vec<u64>, Vec<Change>) {
        let mut g = self.lock();
        let previous = std::mem::replace(&mut g.live, live);
        let gone: Vec<u64> = previous
            .iter()
            .filter(|(id, inc)| g.live.get(id) != Some(inc))
            .map(|(id, _)| *id)
            .collect();
        let Inner { watched, live, .. } = &mut *g;
        let mut changes = Vec::new();
        for (uid, w) in watched.iter_mut() {
            let before = w.sessions.len();
            w.sessions.retain(|s| {
                let known = previous.contains_key(&s.gateway_id) || live.contains_key(&s.gateway_id);
                !known || live.get(&s.gateway_id) == Some(&s.gateway_incarnation)
            });
            if w.sessions.len() != before {
                changes.push(Change {
                    uid: *uid,
                    sessions: w.sessions.clone(),
                    watchers: w.watchers.iter().copied().collect(),
                });
            }
        }
        (gone, changes)
    }
}

pub fn session_ref(s: &Session) -> SessionRef {
    SessionRef {
        session_id: s.session_id,
        gateway_id: s.gateway_id,
        gateway_incarnation: s.gateway_incarnation,
        device_kind: s.device_kind,
        device_id: s.device_id.clone(),
        login_at_ms: s.login_at_ms,
    }
}

pub fn device(s: &SessionRef) -> pb::Device {
    pb::Device {
        device_id: s.device_id.clone(),
        device_kind: s.device_kind,
        login_at_ms: s.login_at_ms,
    }
}

/// The client push for `uid` having `sessions`.
pub fn presence_frame(uid: u64, sessions: &[SessionRef]) -> Bytes {
    frame::push(Body::Presence(pb::PresenceChanged {
        user_id: uid,
        online: !sessions.is_empty(),
        devices: sessions.iter().map(device).collect(),
    }))
}

/// A `Presence` push for sessions here: remember it, pass it on.
pub fn receive(shared: &Shared, session_ids: &[u64], p: &Presence) -> (u32, u32) {
    shared.presence.update(p.user_id, &p.sessions);
    notify::local(shared, session_ids, &presence_frame(p.user_id, &p.sessions))
}

/// `uid` logged in (`login`) or out here: tell its online friends, and on a
/// login remember where they are. Errors are logged: presence is best effort.
pub async fn announce(shared: Arc<Shared>, uid: u64, login: bool) {
    if let Err(error) = try_announce(&shared, uid, login).await {
        tracing::warn!(%error, uid, login, "presence announcement failed");
    }
}

async fn try_announce(shared: &Shared, uid: u64, login: bool) -> Result<()> {
    let friends = social::friends(shared, uid).await?;
    if friends.is_empty() {
        if login && !shared.registry.of_user(uid).is_empty() {
            shared.presence.track(uid, Vec::new());
        }
        return Ok(());
    }
    let mut uids: Vec<u64> = friends.iter().map(|f| f.id).collect();
    uids.push(uid);
    let online = tokio::time::timeout(shared.rpc_timeout(), shared.router.lookup(&uids))
        .await
        .map_err(|_| crate::Error::Unavailable {
            what: "router",
            detail: "presence lookup timed out".into(),
        })??;
    let refs = |u: u64| -> Vec<SessionRef> {
        online
            .get(&u)
            .map(|s| s.iter().map(session_ref).collect())
            .unwrap_or_default()
    };
    // Still logged in here (a login followed at once by a logout must not
    // leave the user tracked).
    if !shared.registry.of_user(uid).is_empty() {
        shared
            .presence
            .track(uid, friends.iter().map(|f| (f.id, refs(f.id))).collect());
    }
    let targets: Vec<&Session> = friends
        .iter()
        .filter_map(|f| online.get(&f.id))
        .flatten()
        .collect();
    send(shared, uid, &refs(uid), &targets).await;
    metrics::PRESENCE_EVENTS
        .with_label_values(&[if login { "login" } else { "logout" }])
        .inc();
    Ok(())
}

/// Sends `uid`'s `sessions` to `targets`: here directly, elsewhere with one
/// `Deliver` per gateway.
async fn send(shared: &Shared, uid: u64, sessions: &[SessionRef], targets: &[&Session]) {
    let mut by_gateway: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for s in targets {
        by_gateway.entry(s.gateway_id).or_default().push(s.session_id);
    }
    let p = Presence {
        user_id: uid,
        sessions: sessions.to_vec(),
    };
    if let Some(here) = by_gateway.remove(&shared.gateway_id()) {
        receive(shared, &here, &p);
    }
    let calls = by_gateway.into_iter().map(|(gw, session_ids)| {
        let push = Push {
            session_ids,
            body: Some(push::Body::Presence(p.clone())),
        };
        deliver::to_gateway(shared, gw, vec![push])
    });
    join_all(calls).await;
}

/// Friend lists of `uids` changed: re-read where the friends of those of
/// them logged in here are (in the background).
pub fn refresh_local(shared: &Arc<Shared>, uids: &[u64]) {
    for uid in uids {
        if shared.registry.of_user(*uid).is_empty() {
            continue;
        }
        let shared = shared.clone();
        let uid = *uid;
        tokio::spawn(async move {
            if let Err(error) = retrack(&shared, uid).await {
                tracing::warn!(%error, uid, "re-reading friends' presence failed");
            }
        });
    }
}

async fn retrack(shared: &Shared, uid: u64) -> Result<()> {
    let friends = social::friends(shared, uid).await?;
    let uids: Vec<u64> = friends.iter().map(|f| f.id).collect();
    let online = shared.router.lookup(&uids).await?;
    let list = friends
        .iter()
        .map(|f| {
            let s = online
                .get(&f.id)
                .map(|s| s.iter().map(session_ref).collect())
                .unwrap_or_default();
            (f.id, s)
        })
        .collect();
    if !shared.registry.of_user(uid).is_empty() {
        shared.presence.track(uid, list);
    }
    Ok(())
}

/// The live gateways (id -> incarnation) as the routers list them now.
pub async fn live_from_router(shared: &Shared) -> Option<HashMap<u64, u64>> {
    match tokio::time::timeout(shared.rpc_timeout(), shared.router.list_gateways()).await {
        Ok(Ok(list)) => Some(
            list.into_iter()
                .filter(|g| !g.expired)
                .map(|g| (g.gateway_id, g.incarnation))
                .collect(),
        ),
        Ok(Err(error)) => {
            tracing::debug!(%error, "reading the live gateways failed");
            None
        }
        Err(_) => None,
    }
}

/// Follows the live gateway list until shutdown.
pub async fn watch(shared: Arc<Shared>) {
    let every = Duration::from_millis(shared.config.social.gateway_poll_ms);
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
        first = false;
        let Some(live) = live_from_router(&shared).await else {
            continue;
        };
        let (gone, changes) = shared.presence.set_live(live);
        for gw in gone {
            tracing::info!(gateway = gw, "gateway left the live list");
            shared.peers.forget(gw);
        }
        for c in changes {
            let bytes = presence_frame(c.uid, &c.sessions);
            notify::local_users(&shared, &c.watchers, &bytes);
            metrics::PRESENCE_EVENTS
                .with_label_values(&["gateway_gone"])
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(gw: u64, inc: u64) -> SessionRef {
        SessionRef {
            session_id: gw * 100 + inc,
            gateway_id: gw,
            gateway_incarnation: inc,
            device_kind: 0,
            device_id: format!("d{gw}"),
            login_at_ms: 0,
        }
    }

    #[test]
    fn a_gateway_leaving_drops_its_sessions_and_names_the_watchers() {
        let t = PresenceTracker::default();
        t.set_live(HashMap::from([(1, 1), (2, 1)]));
        t.track(10, vec![(20, vec![s(2, 1)]), (21, vec![s(1, 1), s(2, 1)])]);
        t.track(11, vec![(20, vec![s(2, 1)])]);
        assert_eq!(t.is_online(20), Some(true));
        let (gone, mut changes) = t.set_live(HashMap::from([(1, 1)]));
        assert_eq!(gone, vec![2]);
        changes.sort_by_key(|c| c.uid);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].uid, 20);
        assert!(changes[0].sessions.is_empty(), "offline");
        let mut w = changes[0].watchers.clone();
        w.sort();
        assert_eq!(w, vec![10, 11]);
        assert_eq!(changes[1].sessions, vec![s(1, 1)], "still online elsewhere");
        assert_eq!(t.is_online(20), Some(false));
        // A restarted gateway (new incarnation) drops the old sessions too.
        t.update(21, &[s(1, 1)]);
        let (gone, changes) = t.set_live(HashMap::from([(1, 2)]));
        assert_eq!(gone, vec![1]);
        assert_eq!(changes.len(), 1);
        t.untrack(10);
        t.untrack(11);
        assert_eq!(t.is_online(20), None, "nobody watches any more");
    }

    #[test]
    fn sessions_on_unknown_gateways_are_kept() {
        let t = PresenceTracker::default();
        t.set_live(HashMap::from([(1, 1)]));
        t.track(10, vec![(20, vec![s(3, 1)])]);
        let (_, changes) = t.set_live(HashMap::from([(1, 1)]));
        assert!(changes.is_empty());
    }
}
