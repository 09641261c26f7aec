//! The friend lists and group member lists this gateway caches. Every
//! change (through any gateway) invalidates the entries it touches here and,
//! by an `Invalidate` push, on every other live gateway; entries also expire
//! after `social.cache_ttl_ms`. Reading through the cache (persist on a
//! miss) is [`crate::service::social`].
//!
//! A fill that raced with an invalidation of the same key is not stored:
//! every invalidation stamps its key with a generation, and a fill stores
//! its answer only when no stamp newer than the fill's start exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_proto::persist as db;

/// A friend: id and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Friend {
    pub id: u64,
    pub name: String,
}

/// One member of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub name: String,
    /// 1 member, 2 admin, 3 owner (persist's `Role`).
    pub role: i32,
    pub joined_at_ms: i64,
}

pub const ROLE_MEMBER: i32 = db::Role::Member as i32;
pub const ROLE_ADMIN: i32 = db::Role::Admin as i32;
pub const ROLE_OWNER: i32 = db::Role::Owner as i32;

/// A group and its members, by user id order.
#[derive(Clone, Debug)]
pub struct GroupEntry {
    pub id: u64,
    pub name: String,
    pub owner: u64,
    pub members: Vec<Member>,
    index: HashMap<u64, usize>,
}

impl GroupEntry {
    pub fn new(group: db::Group, members: Vec<db::Member>) -> Self {
        let members: Vec<Member> = members
            .into_iter()
            .map(|m| Member {
                id: m.user,
                name: m.name,
                role: m.role,
                joined_at_ms: m.joined_at_ms,
            })
            .collect();
        let index = members.iter().enumerate().map(|(i, m)| (m.id, i)).collect();
        Self {
            id: group.id,
            name: group.name,
            owner: group.owner,
            members,
            index,
        }
    }

    /// The role of `uid`; None when not a member.
    pub fn role_of(&self, uid: u64) -> Option<i32> {
        self.index.get(&uid).map(|i| self.members[*i].role)
    }

    pub fn member(&self, uid: u64) -> Option<&Member> {
        self.index.get(&uid).map(|i| &self.members[*i])
    }

    pub fn uids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// Adds (or replaces) a member.
    pub fn upsert(&mut self, m: Member) {
        match self.index.get(&m.id) {
            Some(i) => self.members[*i] = m,
            None => {
                self.index.insert(m.id, self.members.len());
                self.members.push(m);
            }
        }
    }

    pub fn remove(&mut self, uid: u64) {
        if self.index.remove(&uid).is_some() {
            self.members.retain(|m| m.id != uid);
            self.index = self.members.iter().enumerate().map(|(i, m)| (m.id, i)).collect();
        }
    }

    pub fn set_role(&mut self, uid: u64, role: i32) {
        if let Some(i) = self.index.get(&uid) {
            self.members[*i].role = role;
        }
    }
}

struct Entry<T> {
    value: Arc<T>,
    at: Instant,
}

#[derive(Default)]
struct Inner {
    friends: HashMap<u64, Entry<Vec<Friend>>>,
    groups: HashMap<u64, Entry<GroupEntry>>,
    /// Generation of the last invalidation per key ("f{uid}", "g{gid}").
    stamps: HashMap<(u8, u64), u64>,
    generation: u64,
    /// Fills started before this generation are not stored (the stamps
    /// were cleared since).
    floor: u64,
}

const FRIENDS: u8 = 0;
const GROUPS: u8 = 1;

impl Inner {
    fn fresh(&self, kind: u8, key: u64, started: u64) -> bool {
        started >= self.floor && self.stamps.get(&(kind, key)).is_none_or(|s| *s <= started)
    }

    fn stamp(&mut self, kind: u8, key: u64) {
        self.generation += 1;
        self.stamps.insert((kind, key), self.generation);
    }
}

#[derive(Default)]
pub struct SocialCache {
    inner: Mutex<Inner>,
}

impl SocialCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    pub fn cached_friends(&self, uid: u64, ttl: Duration) -> Option<Arc<Vec<Friend>>> {
        let g = self.lock();
        g.friends
            .get(&uid)
            .filter(|e| e.at.elapsed() < ttl)
            .map(|e| e.value.clone())
    }

    /// The cached entry of `gid`, if fresh enough.
    pub fn cached_group(&self, gid: u64, ttl: Duration) -> Option<Arc<GroupEntry>> {
        let g = self.lock();
        g.groups
            .get(&gid)
            .filter(|e| e.at.elapsed() < ttl)
            .map(|e| e.value.clone())
    }

    pub fn store_friends(&self, uid: u64, value: Arc<Vec<Friend>>, started: u64, max: usize) {
        let mut g = self.lock();
        if !g.fresh(FRIENDS, uid, started) {
            return;
        }
        make_room(&mut g, max);
        g.friends.insert(
            uid,
            Entry {
                value,
                at: Instant::now(),
            },
        );
    }

    pub fn store_group(&self, value: Arc<GroupEntry>, started: u64, max: usize) {
        let mut g = self.lock();
        if !g.fresh(GROUPS, value.id, started) {
            return;
        }
        make_room(&mut g, max);
        g.groups.insert(
            value.id,
            Entry {
                value,
                at: Instant::now(),
            },
        );
    }

    /// A change made through this gateway (persist accepted it): applied to
    /// the cached entry of `gid` in place, if there is one, so that a big
    /// group is not read again after every join. Fills that started before
    /// are dropped. Returns the entry after the change.
    pub fn apply_group(&self, gid: u64, change: impl FnOnce(&mut GroupEntry)) -> Option<Arc<GroupEntry>> {
        let mut g = self.lock();
        g.stamp(GROUPS, gid);
        let e = g.groups.get_mut(&gid)?;
        let mut next = (*e.value).clone();
        change(&mut next);
        e.value = Arc::new(next);
        Some(e.value.clone())
    }

    /// Drops the friend lists of `uids` and the member lists of `groups`.
    pub fn invalidate(&self, uids: &[u64], groups: &[u64]) {
        let mut g = self.lock();
        for u in uids {
            g.friends.remove(u);
            g.stamp(FRIENDS, *u);
        }
        for gid in groups {
            g.groups.remove(gid);
            g.stamp(GROUPS, *gid);
        }
        if g.stamps.len() > 100_000 {
            g.stamps.clear();
            g.floor = g.generation + 1;
            g.generation += 1;
        }
    }
}

fn make_room(g: &mut Inner, max: usize) {
    if g.friends.len() + g.groups.len() >= max {
        g.friends.clear();
        g.groups.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: u64, members: &[(u64, i32)]) -> Arc<GroupEntry> {
        Arc::new(GroupEntry::new(
            db::Group {
                id,
                name: "g".into(),
                owner: members[0].0,
                created_at_ms: 0,
                conversation_id: format!("g:{id}"),
            },
            members
                .iter()
                .map(|(u, r)| db::Member {
                    user: *u,
                    role: *r,
                    joined_at_ms: 0,
                    name: format!("u{u}"),
                })
                .collect(),
        ))
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_not_stored() {
        let c = SocialCache::default();
        let ttl = Duration::from_secs(60);
        let started = c.generation();
        c.invalidate(&[], &[7]);
        c.store_group(group(7, &[(1, ROLE_OWNER)]), started, 100);
        assert!(c.cached_group(7, ttl).is_none(), "stale fill dropped");
        let started = c.generation();
        c.store_group(group(7, &[(1, ROLE_OWNER), (2, ROLE_MEMBER)]), started, 100);
        let g = c.cached_group(7, ttl).expect("stored");
        assert_eq!(g.role_of(2), Some(ROLE_MEMBER));
        assert_eq!(g.role_of(3), None);
        c.invalidate(&[], &[7]);
        assert!(c.cached_group(7, ttl).is_none());
    }

    #[test]
    fn friends_expire_and_the_cache_stays_bounded() {
        let c = SocialCache::default();
        let f = Arc::new(vec![Friend {
            id: 2,
            name: "b".into(),
        }]);
        c.store_friends(1, f.clone(), c.generation(), 2);
        assert!(c.cached_friends(1, Duration::from_secs(60)).is_some());
        assert!(c.cached_friends(1, Duration::ZERO).is_none(), "expired");
        c.store_friends(2, f.clone(), c.generation(), 2);
        c.store_friends(3, f, c.generation(), 2);
        let g = c.lock();
        assert!(g.friends.len() <= 2, "cleared when full");
    }
}
