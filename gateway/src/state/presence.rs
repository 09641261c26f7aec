//! [`PresenceTracker`]: for the users logged in here, where each of their
//! friends is online (read from the routers at login and on a list, kept
//! current by `Presence` pushes), and the live gateways of the last poll
//! (a gateway that leaves takes its sessions along). What fills it and who
//! is told is [`crate::service::presence`].

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use confab_proto::gateway::SessionRef;

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
