//! The shard state: uid -> online sessions, for the slots one shard owns.
//!
//! Pure, deterministic logic: every replica applies the same commands in the
//! same order and reaches the same state, so the multi-device decision (which
//! sessions a login kicks) is made here, once per user, linearizably.

use std::collections::HashMap;
use std::collections::HashSet;

use serde::Deserialize;
use serde::Serialize;

/// One online session of a user on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub session_id: u64,
    pub gateway_id: u64,
    pub gateway_incarnation: u64,
    /// `confab_proto::router::DeviceKind` as i32.
    pub device_kind: i32,
    pub device_id: String,
    pub login_at_ms: i64,
}

/// How many devices of a user may be online at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DevicePolicy {
    AllowAll,
    OnePerKind,
    OneInAll,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardCommand {
    Login {
        uid: u64,
        session: SessionRecord,
        policy: DevicePolicy,
    },
    Logout {
        uid: u64,
        session_id: u64,
    },
    /// Drop the sessions of `gateway_id` whose incarnation is at most `incarnation`.
    PurgeGateway {
        gateway_id: u64,
        incarnation: u64,
    },
    /// Several logins/logouts proposed together as one log entry (the node
    /// coalesces concurrent writes of a shard); applied in order, one reply
    /// each. Never nested: a batch inside a batch is refused when applied,
    /// and one nested deeper is not decoded at all (each level would be a
    /// frame of the decoder's stack).
    Batch(#[serde(deserialize_with = "batch")] Vec<ShardCommand>),
}

/// Decodes a batch's commands: single commands, or a batch of single
/// commands (which applying refuses), and nothing deeper.
fn batch<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ShardCommand>, D::Error> {
    let cmds = Vec::<Level<Vec<Level<Deeper>>>>::deserialize(d)?;
    Ok(cmds.into_iter().map(ShardCommand::from).collect())
}

/// One level of a batch, decoded: the variants of [`ShardCommand`] in its
/// order, where a batch holds `B`.
#[derive(Deserialize)]
#[serde(rename = "ShardCommand")]
enum Level<B> {
    Login {
        uid: u64,
        session: SessionRecord,
        policy: DevicePolicy,
    },
    Logout {
        uid: u64,
        session_id: u64,
    },
    PurgeGateway {
        gateway_id: u64,
        incarnation: u64,
    },
    Batch(B),
}

/// What a batch two levels down holds: nothing decodes as it, so the
/// decoder never goes deeper.
#[derive(Deserialize)]
enum Deeper {}

/// The commands a decoded batch holds.
trait Commands {
    fn commands(self) -> Vec<ShardCommand>;
}

impl Commands for Deeper {
    fn commands(self) -> Vec<ShardCommand> {
        match self {}
    }
}

impl<B: Commands> Commands for Vec<Level<B>> {
    fn commands(self) -> Vec<ShardCommand> {
        self.into_iter().map(ShardCommand::from).collect()
    }
}

impl<B: Commands> From<Level<B>> for ShardCommand {
    fn from(c: Level<B>) -> Self {
        match c {
            Level::Login { uid, session, policy } => ShardCommand::Login { uid, session, policy },
            Level::Logout { uid, session_id } => ShardCommand::Logout { uid, session_id },
            Level::PurgeGateway {
                gateway_id,
                incarnation,
            } => ShardCommand::PurgeGateway {
                gateway_id,
                incarnation,
            },
            Level::Batch(b) => ShardCommand::Batch(b.commands()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardReply {
    LoggedIn {
        kicked: Vec<SessionRecord>,
    },
    LoggedOut {
        removed: bool,
    },
    Purged {
        count: u64,
    },
    /// The login names a gateway incarnation this shard has already purged:
    /// that gateway is dead, so the session would never be cleaned up.
    GatewayGone {
        gateway_id: u64,
        incarnation: u64,
    },
    /// The replies of a [`ShardCommand::Batch`], in its order.
    Batch(Vec<ShardReply>),
    /// A command the state machine refuses (a nested batch); nothing changed.
    Refused(String),
}

/// The sessions of every online user of one shard.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardState {
    users: HashMap<u64, Vec<SessionRecord>>,
    /// gateway id -> uids with at least one session there.
    by_gateway: HashMap<u64, HashSet<u64>>,
    /// gateway id -> highest incarnation purged here; older logins are refused.
    purged: HashMap<u64, u64>,
    sessions: u64,
}

impl ShardState {
    pub fn apply(&mut self, cmd: &ShardCommand) -> ShardReply {
        match cmd {
            ShardCommand::Login { uid, session, policy } => {
                let gone = self
                    .purged
                    .get(&session.gateway_id)
                    .is_some_and(|&p| session.gateway_incarnation <= p);
                if gone {
                    return ShardReply::GatewayGone {
                        gateway_id: session.gateway_id,
                        incarnation: session.gateway_incarnation,
                    };
                }
                ShardReply::LoggedIn {
                    kicked: self.login(*uid, session, *policy),
                }
            }
            ShardCommand::Logout { uid, session_id } => ShardReply::LoggedOut {
                removed: self.logout(*uid, *session_id),
            },
            ShardCommand::PurgeGateway {
                gateway_id,
                incarnation,
            } => ShardReply::Purged {
                count: self.purge_gateway(*gateway_id, *incarnation),
            },
            ShardCommand::Batch(cmds) => ShardReply::Batch(
                cmds.iter()
                    .map(|c| match c {
                        ShardCommand::Batch(_) => ShardReply::Refused("nested batch".into()),
                        c => self.apply(c),
                    })
                    .collect(),
            ),
        }
    }

    /// Adds `session`, kicking what `policy` and the device rule say must go.
    ///
    /// A device (same `device_id`) is never online twice: its older session is
    /// kicked whatever the policy. A retried login (same `session_id`) changes
    /// nothing and kicks nothing.
    fn login(&mut self, uid: u64, session: &SessionRecord, policy: DevicePolicy) -> Vec<SessionRecord> {
        let list = self.users.entry(uid).or_default();
        if list.iter().any(|s| s.session_id == session.session_id) {
            return Vec::new();
        }
        let kick = |s: &SessionRecord| {
            s.device_id == session.device_id
                || match policy {
                    DevicePolicy::AllowAll => false,
                    DevicePolicy::OnePerKind => s.device_kind == session.device_kind,
                    DevicePolicy::OneInAll => true,
                }
        };
        let (kicked, kept): (Vec<_>, Vec<_>) = list.drain(..).partition(|s| kick(s));
        *list = kept;
        list.push(session.clone());
        self.sessions = self.sessions + 1 - kicked.len() as u64;
        for gone in &kicked {
            self.unindex(uid, gone.gateway_id);
        }
        self.by_gateway.entry(session.gateway_id).or_default().insert(uid);
        kicked
    }

    fn logout(&mut self, uid: u64, session_id: u64) -> bool {
        let Some(list) = self.users.get_mut(&uid) else {
            return false;
        };
        let Some(pos) = list.iter().position(|s| s.session_id == session_id) else {
            return false;
        };
        let gone = list.remove(pos);
        if list.is_empty() {
            self.users.remove(&uid);
        }
        self.sessions -= 1;
        self.unindex(uid, gone.gateway_id);
        true
    }

    fn purge_gateway(&mut self, gateway_id: u64, incarnation: u64) -> u64 {
        let mark = self.purged.entry(gateway_id).or_insert(incarnation);
        *mark = (*mark).max(incarnation);
        let Some(uids) = self.by_gateway.remove(&gateway_id) else {
            return 0;
        };
        let mut purged = 0;
        for uid in uids {
            let Some(list) = self.users.get_mut(&uid) else {
                continue;
            };
            let before = list.len();
            list.retain(|s| s.gateway_id != gateway_id || s.gateway_incarnation > incarnation);
            purged += (before - list.len()) as u64;
            if list.iter().any(|s| s.gateway_id == gateway_id) {
                // A newer incarnation of the gateway still hosts this user.
                self.by_gateway.entry(gateway_id).or_default().insert(uid);
            }
            if list.is_empty() {
                self.users.remove(&uid);
            }
        }
        self.sessions -= purged;
        purged
    }

    /// Forgets that `uid` is on `gateway_id` unless another session keeps it there.
    fn unindex(&mut self, uid: u64, gateway_id: u64) {
        let still_there = self
            .users
            .get(&uid)
            .is_some_and(|l| l.iter().any(|s| s.gateway_id == gateway_id));
        if still_there {
            return;
        }
        if let Some(set) = self.by_gateway.get_mut(&gateway_id) {
            set.remove(&uid);
            if set.is_empty() {
                self.by_gateway.remove(&gateway_id);
            }
        }
    }

    pub fn sessions_of(&self, uid: u64) -> &[SessionRecord] {
        self.users.get(&uid).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Number of sessions held.
    pub fn session_count(&self) -> u64 {
        self.sessions
    }

    /// Number of users with at least one session.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Every (uid, sessions) pair, for state comparison in tests and tools.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Vec<SessionRecord>)> {
        self.users.iter()
    }

    /// A checksum of every session record, independent of any order (the
    /// sum of each record's hash): replicas that applied the same entries
    /// agree on it; a missing, extra or different record changes it.
    pub fn checksum(&self) -> u64 {
        self.users
            .iter()
            .flat_map(|(uid, sessions)| sessions.iter().map(move |s| (uid, s)))
            .map(|(uid, s)| {
                fnv1a(&[
                    &uid.to_le_bytes(),
                    &s.session_id.to_le_bytes(),
                    &s.gateway_id.to_le_bytes(),
                    &s.gateway_incarnation.to_le_bytes(),
                    &s.device_kind.to_le_bytes(),
                    s.device_id.as_bytes(),
                    &s.login_at_ms.to_le_bytes(),
                ])
            })
            .fold(0, u64::wrapping_add)
    }
}

/// FNV-1a (64 bits) over `parts`, each followed by its length: stable
/// across builds and processes (unlike std's hasher), so checksums compare
/// between nodes.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for part in parts {
        part.iter().copied().for_each(&mut eat);
        (part.len() as u64).to_le_bytes().into_iter().for_each(&mut eat);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sess(id: u64, gw: u64, kind: i32, dev: &str) -> SessionRecord {
        SessionRecord {
            session_id: id,
            gateway_id: gw,
            gateway_incarnation: 1,
            device_kind: kind,
            device_id: dev.to_string(),
            login_at_ms: id as i64,
        }
    }

    fn login(st: &mut ShardState, uid: u64, s: SessionRecord, p: DevicePolicy) -> Vec<u64> {
        match st.apply(&ShardCommand::Login {
            uid,
            session: s,
            policy: p,
        }) {
            ShardReply::LoggedIn { kicked } => kicked.iter().map(|s| s.session_id).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_checksum_ignores_order_and_sees_any_difference() {
        let (mut a, mut b) = (ShardState::default(), ShardState::default());
        for (uid, id) in [(1, 10), (2, 20), (1, 11)] {
            login(
                &mut a,
                uid,
                sess(id, 1, 1, &format!("d{id}")),
                DevicePolicy::AllowAll,
            );
        }
        for (uid, id) in [(1, 11), (1, 10), (2, 20)] {
            login(
                &mut b,
                uid,
                sess(id, 1, 1, &format!("d{id}")),
                DevicePolicy::AllowAll,
            );
        }
        assert_eq!(a.checksum(), b.checksum(), "the same records in another order");
        assert_ne!(a.checksum(), 0);
        login(&mut b, 3, sess(30, 1, 1, "d30"), DevicePolicy::AllowAll);
        assert_ne!(a.checksum(), b.checksum(), "one more session");
        let mut c = ShardState::default();
        for (uid, id) in [(1, 10), (2, 20), (1, 11)] {
            let dev = if id == 20 {
                "other".to_owned()
            } else {
                format!("d{id}")
            };
            login(&mut c, uid, sess(id, 1, 1, &dev), DevicePolicy::AllowAll);
        }
        assert_ne!(a.checksum(), c.checksum(), "one field differs");
    }

    #[test]
    fn batch_applies_in_order_with_one_reply_each() {
        let mut st = ShardState::default();
        let login = |id: u64, dev: &str| ShardCommand::Login {
            uid: 7,
            session: sess(id, 1, 1, dev),
            policy: DevicePolicy::OneInAll,
        };
        let reply = st.apply(&ShardCommand::Batch(vec![
            login(1, "a"),
            login(2, "b"),
            ShardCommand::Batch(vec![login(9, "z")]),
            ShardCommand::Logout {
                uid: 7,
                session_id: 2,
            },
            ShardCommand::Logout {
                uid: 7,
                session_id: 2,
            },
        ]));
        let ShardReply::Batch(replies) = reply else {
            panic!("batch reply expected, got {reply:?}");
        };
        assert_eq!(replies.len(), 5);
        assert_eq!(replies[0], ShardReply::LoggedIn { kicked: vec![] });
        // The second login kicked the first (one device in all): order held.
        assert_eq!(
            replies[1],
            ShardReply::LoggedIn {
                kicked: vec![sess(1, 1, 1, "a")]
            }
        );
        assert!(matches!(replies[2], ShardReply::Refused(_)));
        assert_eq!(replies[3], ShardReply::LoggedOut { removed: true });
        assert_eq!(replies[4], ShardReply::LoggedOut { removed: false });
        // The refused nested login changed nothing.
        assert!(st.sessions_of(7).is_empty());
    }

    #[test]
    fn allow_all_keeps_every_device() {
        let mut st = ShardState::default();
        assert!(login(&mut st, 7, sess(1, 1, 1, "a"), DevicePolicy::AllowAll).is_empty());
        assert!(login(&mut st, 7, sess(2, 1, 1, "b"), DevicePolicy::AllowAll).is_empty());
        assert!(login(&mut st, 7, sess(3, 2, 2, "c"), DevicePolicy::AllowAll).is_empty());
        assert_eq!(st.sessions_of(7).len(), 3);
        assert_eq!(st.session_count(), 3);
    }

    #[test]
    fn same_device_is_never_online_twice() {
        let mut st = ShardState::default();
        login(&mut st, 7, sess(1, 1, 1, "a"), DevicePolicy::AllowAll);
        assert_eq!(
            login(&mut st, 7, sess(2, 2, 1, "a"), DevicePolicy::AllowAll),
            vec![1]
        );
        assert_eq!(st.session_count(), 1);
        assert_eq!(st.sessions_of(7)[0].gateway_id, 2);
    }

    #[test]
    fn one_per_kind_kicks_only_the_same_kind() {
        let mut st = ShardState::default();
        login(&mut st, 7, sess(1, 1, 1, "desk"), DevicePolicy::OnePerKind);
        login(&mut st, 7, sess(2, 1, 2, "phone1"), DevicePolicy::OnePerKind);
        assert_eq!(
            login(&mut st, 7, sess(3, 2, 2, "phone2"), DevicePolicy::OnePerKind),
            vec![2]
        );
        let ids: Vec<u64> = st.sessions_of(7).iter().map(|s| s.session_id).collect();
        assert_eq!(ids, vec![1, 3]);
    }

    #[test]
    fn one_in_all_kicks_everything_else() {
        let mut st = ShardState::default();
        login(&mut st, 7, sess(1, 1, 1, "a"), DevicePolicy::AllowAll);
        login(&mut st, 7, sess(2, 1, 2, "b"), DevicePolicy::AllowAll);
        let mut kicked = login(&mut st, 7, sess(3, 2, 3, "c"), DevicePolicy::OneInAll);
        kicked.sort();
        assert_eq!(kicked, vec![1, 2]);
        assert_eq!(st.session_count(), 1);
    }

    #[test]
    fn retried_login_is_idempotent() {
        let mut st = ShardState::default();
        login(&mut st, 7, sess(1, 1, 1, "a"), DevicePolicy::OneInAll);
        assert!(login(&mut st, 7, sess(1, 1, 1, "a"), DevicePolicy::OneInAll).is_empty());
        assert_eq!(st.session_count(), 1);
    }

    #[test]
    fn logout_removes_one_session_and_tolerates_unknown_ones() {
        let mut st = ShardState::default();
        login(&mut st, 7, sess(1, 1, 1, "a"), DevicePolicy::AllowAll);
        login(&mut st, 7, sess(2, 1, 2, "b"), DevicePolicy::AllowAll);
        let out = |st: &mut ShardState, uid, sid| st.apply(&ShardCommand::Logout { uid, session_id: sid });
        assert_eq!(out(&mut st, 7, 1), ShardReply::LoggedOut { removed: true });
        assert_eq!(out(&mut st, 7, 1), ShardReply::LoggedOut { removed: false });
        assert_eq!(out(&mut st, 8, 1), ShardReply::LoggedOut { removed: false });
        assert_eq!(out(&mut st, 7, 2), ShardReply::LoggedOut { removed: true });
        assert_eq!(st.user_count(), 0);
        assert_eq!(st.session_count(), 0);
    }

    #[test]
    fn purge_takes_exactly_that_gateway_incarnation() {
        let mut st = ShardState::default();
        for uid in 0..10 {
            login(&mut st, uid, sess(uid * 10, 1, 1, "a"), DevicePolicy::AllowAll);
            login(
                &mut st,
                uid,
                sess(uid * 10 + 1, 2, 2, "b"),
                DevicePolicy::AllowAll,
            );
        }
        let mut newer = sess(999, 1, 3, "c");
        newer.gateway_incarnation = 2;
        login(&mut st, 3, newer, DevicePolicy::AllowAll);
        let purged = st.apply(&ShardCommand::PurgeGateway {
            gateway_id: 1,
            incarnation: 1,
        });
        assert_eq!(purged, ShardReply::Purged { count: 10 });
        assert_eq!(st.session_count(), 11);
        for uid in 0..10 {
            assert!(
                st.sessions_of(uid)
                    .iter()
                    .all(|s| s.gateway_id == 2 || s.gateway_incarnation == 2)
            );
        }
        // The newer incarnation's session is still indexed and purgeable.
        let purged = st.apply(&ShardCommand::PurgeGateway {
            gateway_id: 1,
            incarnation: 2,
        });
        assert_eq!(purged, ShardReply::Purged { count: 1 });
        assert_eq!(
            st.apply(&ShardCommand::PurgeGateway {
                gateway_id: 1,
                incarnation: 2
            }),
            ShardReply::Purged { count: 0 }
        );
    }

    #[test]
    fn a_purged_incarnation_cannot_log_in_again() {
        let mut st = ShardState::default();
        st.apply(&ShardCommand::PurgeGateway {
            gateway_id: 1,
            incarnation: 3,
        });
        let mut late = sess(1, 1, 1, "a");
        late.gateway_incarnation = 3;
        let reply = st.apply(&ShardCommand::Login {
            uid: 7,
            session: late,
            policy: DevicePolicy::AllowAll,
        });
        assert_eq!(
            reply,
            ShardReply::GatewayGone {
                gateway_id: 1,
                incarnation: 3
            }
        );
        assert_eq!(st.session_count(), 0);
        let mut next = sess(2, 1, 1, "a");
        next.gateway_incarnation = 4;
        assert!(login(&mut st, 7, next, DevicePolicy::AllowAll).is_empty());
        assert_eq!(st.session_count(), 1);
    }
}
