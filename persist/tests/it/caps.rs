//! Caps on what one user or group may hold, on SQLite, PostgreSQL and MariaDB: the
//! group size, the pending friend requests and group invitations of one
//! sender. Each holds
//! under concurrent inserts (checked in the insert's transaction), refuses
//! with LimitReached, is counted, and loses nothing (a refused approval
//! leaves the join request pending).

use confab_persist::Error;
use confab_persist::config::LimitsConfig;
use confab_persist::db::Db;
use confab_persist::db::invites::Invited;
use futures::future::join_all;

use crate::every_backend;

every_backend!(group_size_cap, group_size_cap);
every_backend!(pending_friend_request_cap, pending_friend_request_cap);
every_backend!(pending_invite_cap, pending_invite_cap);

async fn users(db: &Db, prefix: &str, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            db.create_user(&format!("{prefix}{i}"), "p")
                .await
                .expect("user")
                .id,
        );
    }
    out
}

async fn group_size_cap(db: &Db) {
    const MAX: usize = 5;
    let db = db.clone().with_limits(LimitsConfig {
        max_group_members: MAX as u32,
        ..LimitsConfig::default()
    });
    let owner = db.create_user("owner", "p").await.expect("owner").id;
    let askers = users(&db, "asker", 12).await;
    let g = db.create_group(owner, "small").await.expect("group");
    for &u in &askers {
        db.request_join(g.id, u, "").await.expect("join request");
    }
    // Every approval at once: exactly the places left are taken.
    let answers = join_all(askers.iter().map(|&u| db.respond_join(g.id, u, owner, true))).await;
    let (mut ok, mut full) = (Vec::new(), 0);
    for (a, &u) in answers.iter().zip(&askers) {
        match a {
            Ok(_) => ok.push(u),
            Err(Error::LimitReached { what, limit }) => {
                assert_eq!(*limit, MAX as u32);
                assert!(what.contains("is full"), "{what}");
                full += 1;
            }
            Err(e) => panic!("approval of {u}: {e}"),
        }
    }
    assert_eq!(ok.len(), MAX - 1, "the owner and {} more", MAX - 1);
    assert_eq!(full, askers.len() - (MAX - 1));
    let members = db.list_members(g.id, owner).await.expect("members");
    assert_eq!(members.len(), MAX, "never more than the cap");
    // A refused approval loses nothing: the request is still pending.
    let pending = db.list_join_requests(g.id, owner).await.expect("pending");
    assert_eq!(pending.len(), full, "refused requests stay pending");
    // An invitation past the cap stands; accepting it is refused the same
    // way and leaves it pending.
    let extra = db.create_user("extra", "p").await.expect("extra").id;
    assert!(matches!(
        db.invite_member(g.id, extra, owner).await,
        Ok(Invited::Pending(_))
    ));
    assert!(matches!(
        db.respond_invite(g.id, extra, true).await,
        Err(Error::LimitReached { .. })
    ));
    assert_eq!(db.list_invites(extra).await.expect("invites").len(), 1);
    // Room again after someone leaves: a pending request can be approved.
    db.leave_group(g.id, ok[0]).await.expect("leave");
    let waiting = pending[0].user;
    db.respond_join(g.id, waiting, owner, true)
        .await
        .expect("a place is free again");
    assert_eq!(db.list_members(g.id, owner).await.expect("members").len(), MAX);
    let refused = db
        .metrics()
        .limit_refusals
        .with_label_values(&["group_members"])
        .get();
    assert_eq!(refused, full as u64 + 1, "every refusal counted");
}

async fn pending_friend_request_cap(db: &Db) {
    const MAX: usize = 3;
    let db = db.clone().with_limits(LimitsConfig {
        max_pending_friend_requests: MAX as u32,
        ..LimitsConfig::default()
    });
    let spammer = db.create_user("spammer", "p").await.expect("spammer").id;
    let targets = users(&db, "target", 10).await;
    let answers = join_all(targets.iter().map(|&t| db.send_friend_request(spammer, t, "hi"))).await;
    let sent: Vec<u64> = answers
        .iter()
        .zip(&targets)
        .filter_map(|(a, &t)| match a {
            Ok(_) => Some(t),
            Err(Error::LimitReached { limit, .. }) => {
                assert_eq!(*limit, MAX as u32);
                None
            }
            Err(e) => panic!("request to {t}: {e}"),
        })
        .collect();
    assert_eq!(sent.len(), MAX, "exactly the cap went through");
    let (_, outgoing) = db.list_friend_requests(spammer).await.expect("list");
    assert_eq!(outgoing.len(), MAX);
    let refused: Vec<u64> = targets.iter().copied().filter(|t| !sent.contains(t)).collect();
    // Asking the same user again replaces the request: not refused.
    db.send_friend_request(spammer, sent[0], "again")
        .await
        .expect("a repeat is not a new request");
    // Answering someone else's request is never refused (it makes friends).
    let asker = db.create_user("asker", "p").await.expect("asker").id;
    db.send_friend_request(asker, spammer, "")
        .await
        .expect("asker asks");
    let (_, became_friends) = db
        .send_friend_request(spammer, asker, "")
        .await
        .expect("crossing requests are an answer");
    assert!(became_friends);
    // One answer makes room for one more.
    db.respond_friend_request(sent[1], spammer, false)
        .await
        .expect("decline");
    db.send_friend_request(spammer, refused[0], "")
        .await
        .expect("room again");
    assert!(matches!(
        db.send_friend_request(spammer, refused[1], "").await,
        Err(Error::LimitReached { .. })
    ));
    // The other users are not limited by the spammer's count.
    db.send_friend_request(refused[1], refused[2], "")
        .await
        .expect("another sender has its own count");
    let counted = db
        .metrics()
        .limit_refusals
        .with_label_values(&["pending_friend_requests"])
        .get();
    assert_eq!(counted, (targets.len() - MAX) as u64 + 1);
}

async fn pending_invite_cap(db: &Db) {
    const MAX: usize = 3;
    let db = db.clone().with_limits(LimitsConfig {
        max_pending_invites: MAX as u32,
        ..LimitsConfig::default()
    });
    let owner = db.create_user("inviter", "p").await.expect("owner").id;
    let g = db.create_group(owner, "club").await.expect("group").id;
    let targets = users(&db, "invitee", 10).await;
    // Every invitation at once: exactly the cap goes through.
    let answers = join_all(targets.iter().map(|&t| db.invite_member(g, t, owner))).await;
    let invited: Vec<u64> = answers
        .iter()
        .zip(&targets)
        .filter_map(|(a, &t)| match a {
            Ok(Invited::Pending(i)) => {
                assert_eq!((i.user, i.invited_by, i.group.id), (t, owner, g));
                Some(t)
            }
            Err(Error::LimitReached { what, limit }) => {
                assert_eq!(*limit, MAX as u32);
                assert!(what.contains("invitations waiting"), "{what}");
                None
            }
            other => panic!("invitation of {t}: {other:?}"),
        })
        .collect();
    assert_eq!(invited.len(), MAX, "exactly the cap went through");
    let waiting: Vec<u64> = targets.iter().copied().filter(|t| !invited.contains(t)).collect();
    // Inviting the same user again is the same invitation: not refused.
    assert!(matches!(
        db.invite_member(g, invited[0], owner).await,
        Ok(Invited::Pending(_))
    ));
    // An invitation is nobody's membership until accepted.
    assert_eq!(db.list_members(g, owner).await.expect("members").len(), 1);
    assert!(db.role_of(g, invited[0]).await.expect("role").is_none());
    // Accepting one and declining one make room for two more.
    let answer = db.respond_invite(g, invited[0], true).await.expect("accept");
    assert_eq!(answer.member.map(|m| m.user), Some(invited[0]));
    let answer = db.respond_invite(g, invited[1], false).await.expect("decline");
    assert!(answer.member.is_none());
    assert!(db.role_of(g, invited[1]).await.expect("role").is_none());
    assert!(matches!(
        db.respond_invite(g, invited[1], true).await,
        Err(Error::NoPendingRequest { .. })
    ));
    db.invite_member(g, waiting[0], owner).await.expect("room again");
    db.invite_member(g, waiting[1], owner).await.expect("room again");
    assert!(matches!(
        db.invite_member(g, waiting[2], owner).await,
        Err(Error::LimitReached { .. })
    ));
    let mine = db.list_invites(waiting[0]).await.expect("invites");
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].group.name.as_str(), mine[0].invited_by), ("club", owner));
    // Another inviter has its own count.
    let admin = invited[0];
    db.promote_admin(g, admin, owner).await.expect("promote");
    db.invite_member(g, waiting[2], admin)
        .await
        .expect("another inviter");
    // Deleting the group drops its invitations.
    db.delete_group(g, owner).await.expect("delete");
    assert!(db.list_invites(waiting[0]).await.expect("invites").is_empty());
    let counted = db
        .metrics()
        .limit_refusals
        .with_label_values(&["pending_group_invites"])
        .get();
    assert_eq!(counted, (targets.len() - MAX) as u64 + 1);
}

every_backend!(
    resume_tokens_expire_and_are_capped,
    resume_tokens_expire_and_are_capped
);

async fn resume_tokens_expire_and_are_capped(db: &Db) {
    let db = db.clone().with_limits(LimitsConfig {
        max_tokens_per_user: 3,
        token_lifetime_ms: 1500,
        ..LimitsConfig::default()
    });
    db.create_user("tess", "p").await.expect("user");
    // Five devices: the two oldest tokens are revoked, the newest three live.
    let mut tokens = Vec::new();
    for i in 0..5 {
        let s = db
            .authenticate("tess", "p", &format!("dev{i}"))
            .await
            .expect("login");
        tokens.push(s.token);
        // Distinct creation times, so "oldest" is well defined.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for (i, t) in tokens.iter().enumerate() {
        let r = db.resume_session(t).await;
        if i < 2 {
            assert!(
                matches!(r, Err(Error::SessionNotFound)),
                "token {i} over the cap: {r:?}"
            );
        } else {
            assert_eq!(r.expect("a live token").device, format!("dev{i}"));
        }
    }
    let over_cap = db
        .metrics()
        .token_revocations
        .with_label_values(&["over_cap"])
        .get();
    assert_eq!(over_cap, 2);
    // A new login of a device replaces its earlier token.
    let again = db.authenticate("tess", "p", "dev4").await.expect("login again");
    assert!(matches!(
        db.resume_session(&tokens[4]).await,
        Err(Error::SessionNotFound)
    ));
    db.resume_session(&again.token).await.expect("the new one lives");
    // Kicked devices lose their tokens; others keep them.
    let uid = again.user.id;
    assert_eq!(db.revoke_devices(uid, &["dev2".into()]).await.expect("revoke"), 1);
    assert!(matches!(
        db.resume_session(&tokens[2]).await,
        Err(Error::SessionNotFound)
    ));
    db.resume_session(&tokens[3]).await.expect("dev3 untouched");
    // Logout.
    db.revoke_session(&tokens[3]).await.expect("logout");
    assert!(matches!(
        db.resume_session(&tokens[3]).await,
        Err(Error::SessionNotFound)
    ));
    // Past the lifetime every token is refused, however recently used.
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    assert!(matches!(
        db.resume_session(&again.token).await,
        Err(Error::SessionNotFound)
    ));
    let expired = db
        .metrics()
        .token_revocations
        .with_label_values(&["expired"])
        .get();
    assert_eq!(expired, 1);
    let fresh = db
        .authenticate("tess", "p", "dev9")
        .await
        .expect("a password login still works");
    db.resume_session(&fresh.token)
        .await
        .expect("a fresh token lives");
}
