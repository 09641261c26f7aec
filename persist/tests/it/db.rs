//! Every data-access call, on SQLite, PostgreSQL and MariaDB, with its bad inputs.

use confab_persist::Error;
use confab_persist::db::{Db, NewMessage};
use confab_queue::ConversationId;

use crate::every_backend;

every_backend!(users_and_sessions, users_and_sessions);
every_backend!(friends, friends);
every_backend!(groups, groups);
every_backend!(history_and_sync, history_and_sync);
every_backend!(write_batch_is_idempotent, write_batch_is_idempotent);

async fn users_and_sessions(db: &Db) {
    let alice = db.create_user("alice", "pw-a").await.expect("create alice");
    let bob = db.create_user("bob", "pw-b").await.expect("create bob");
    assert_ne!(alice.id, bob.id);
    assert!(alice.id > 0);

    // Duplicate name, bad names: clear errors, nothing else disturbed.
    assert!(matches!(db.create_user("alice", "x").await, Err(Error::NameTaken(n)) if n == "alice"));
    assert!(matches!(db.create_user("", "x").await, Err(Error::Invalid(_))));
    assert!(matches!(
        db.create_user("has space", "x").await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        db.create_user(&"n".repeat(65), "x").await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        db.create_user("carol", "").await,
        Err(Error::Invalid(_))
    ));
    assert_eq!(db.get_user(alice.id).await.expect("alice still there"), alice);

    assert_eq!(db.get_user_by_name("bob").await.expect("bob"), bob);
    assert!(matches!(
        db.get_user(999_999).await,
        Err(Error::UserNotFound(999_999))
    ));
    assert!(matches!(db.get_user(0).await, Err(Error::UserNotFound(0))));
    assert!(matches!(
        db.get_user_by_name("nobody").await,
        Err(Error::UserNameNotFound(_))
    ));
    let both = db
        .get_users(&[bob.id, 424_242, alice.id])
        .await
        .expect("get_users");
    assert_eq!(both, vec![alice.clone(), bob.clone()]);
    let found = db.search_users("al", "", 10).await.expect("search");
    assert_eq!(found, vec![alice.clone()]);
    assert!(db.search_users("%", "", 10).await.expect("search %").is_empty());
    assert!(db.search_users("!", "", 10).await.expect("search !").is_empty());
    assert!(db.search_users("a_", "", 10).await.expect("search a_").is_empty());
    // Names compare byte for byte on every engine (MySQL's default
    // collation would take "Alice" for "alice"): a different name, and not
    // found by a search for "al".
    let upper = db.create_user("Alice", "pw-A").await.expect("Alice is not alice");
    assert_ne!(upper.id, alice.id);
    assert_eq!(
        db.search_users("al", "", 10).await.expect("search"),
        vec![alice.clone()]
    );
    assert_eq!(db.get_user_by_name("Alice").await.expect("Alice"), upper);

    // Authenticate, resume, revoke.
    assert!(matches!(
        db.authenticate("alice", "wrong", "phone").await,
        Err(Error::BadCredentials)
    ));
    assert!(matches!(
        db.authenticate("nobody", "pw", "phone").await,
        Err(Error::BadCredentials)
    ));
    let s = db.authenticate("alice", "pw-a", "phone").await.expect("auth");
    assert_eq!(s.user, alice);
    let s2 = db.authenticate("alice", "pw-a", "laptop").await.expect("auth 2");
    assert_ne!(s.token, s2.token);
    let r = db.resume_session(&s.token).await.expect("resume");
    assert_eq!((r.user.id, r.device.as_str()), (alice.id, "phone"));
    db.revoke_session(&s.token).await.expect("revoke");
    assert!(matches!(
        db.resume_session(&s.token).await,
        Err(Error::SessionNotFound)
    ));
    assert!(matches!(
        db.revoke_session(&s.token).await,
        Err(Error::SessionNotFound)
    ));
    assert!(
        db.resume_session(&s2.token).await.is_ok(),
        "other device unaffected"
    );
}

async fn friends(db: &Db) {
    let a = db.create_user("a", "p").await.expect("a").id;
    let b = db.create_user("b", "p").await.expect("b").id;
    let c = db.create_user("c", "p").await.expect("c").id;

    assert!(matches!(
        db.send_friend_request(a, 777, "").await,
        Err(Error::UserNotFound(777))
    ));
    assert!(matches!(
        db.send_friend_request(a, a, "").await,
        Err(Error::Invalid(_))
    ));

    let (req, now) = db.send_friend_request(a, b, "hi b").await.expect("request");
    assert!(!now);
    assert_eq!(req.state, 1);
    let (incoming, outgoing) = db.list_friend_requests(b).await.expect("list b");
    assert_eq!((incoming.len(), outgoing.len()), (1, 0));
    assert_eq!(incoming[0].note, "hi b");
    let r = db.respond_friend_request(b, a, true).await.expect("accept");
    assert_eq!(r.state, 2);
    assert!(matches!(
        db.respond_friend_request(b, a, true).await,
        Err(Error::NoPendingRequest { .. })
    ));
    assert!(matches!(
        db.send_friend_request(b, a, "").await,
        Err(Error::AlreadyFriends { .. })
    ));
    let names: Vec<String> = db
        .list_friends(a)
        .await
        .expect("friends")
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, vec!["b"]);
    assert!(db.are_friends(b, a).await.expect("are_friends"));

    // Crossing requests become a friendship at once; a decline is final.
    db.send_friend_request(c, a, "").await.expect("c->a");
    let (_, became) = db.send_friend_request(a, c, "").await.expect("a->c");
    assert!(became);
    assert_eq!(db.list_friends(c).await.expect("c friends").len(), 1);
    db.send_friend_request(b, c, "").await.expect("b->c");
    assert_eq!(
        db.respond_friend_request(c, b, false)
            .await
            .expect("decline")
            .state,
        3
    );
    assert!(!db.are_friends(b, c).await.expect("not friends"));

    db.remove_friend(a, b).await.expect("remove");
    assert!(!db.are_friends(b, a).await.expect("removed both ways"));
    assert!(matches!(
        db.remove_friend(a, b).await,
        Err(Error::NotFriends { .. })
    ));
    assert!(matches!(
        db.list_friends(4242).await,
        Err(Error::UserNotFound(4242))
    ));
}

async fn groups(db: &Db) {
    let owner = db.create_user("owner", "p").await.expect("owner").id;
    let joe = db.create_user("joe", "p").await.expect("joe").id;
    let eve = db.create_user("eve", "p").await.expect("eve").id;
    assert!(matches!(
        db.create_group(999, "g").await,
        Err(Error::UserNotFound(999))
    ));
    assert!(matches!(
        db.create_group(owner, " ").await,
        Err(Error::Invalid(_))
    ));
    let g = db.create_group(owner, "rustaceans").await.expect("group");
    assert_eq!(db.get_group(g.id).await.expect("get"), g);
    assert!(matches!(
        db.get_group(g.id + 100).await,
        Err(Error::GroupNotFound(_))
    ));
    assert_eq!(db.list_groups(owner).await.expect("groups"), vec![g.clone()]);

    let req = db
        .request_join(g.id, joe, "let me in")
        .await
        .expect("join request");
    assert_eq!(req.state, 1);
    db.request_join(g.id, eve, "").await.expect("eve asks");
    assert!(matches!(
        db.request_join(g.id, owner, "").await,
        Err(Error::AlreadyMember { .. })
    ));
    assert_eq!(db.approvers(g.id).await.expect("approvers"), vec![owner]);
    assert!(matches!(
        db.list_join_requests(g.id, joe).await,
        Err(Error::NotPermitted { .. })
    ));
    assert_eq!(db.list_join_requests(g.id, owner).await.expect("list").len(), 2);
    assert!(matches!(
        db.respond_join(g.id, eve, joe, true).await,
        Err(Error::NotPermitted { .. })
    ));
    db.respond_join(g.id, joe, owner, true)
        .await
        .expect("approve joe");
    db.respond_join(g.id, eve, owner, false).await.expect("deny eve");
    assert!(matches!(
        db.respond_join(g.id, eve, owner, true).await,
        Err(Error::NoPendingRequest { .. })
    ));
    let members: Vec<(u64, i16)> = db
        .list_members(g.id, joe)
        .await
        .expect("members")
        .into_iter()
        .map(|m| (m.user, m.role))
        .collect();
    assert_eq!(members, vec![(owner, 3), (joe, 1)]);
    assert_eq!(db.list_groups(joe).await.expect("joe groups").len(), 1);

    assert!(matches!(
        db.leave_group(g.id, owner).await,
        Err(Error::NotPermitted { .. })
    ));
    db.leave_group(g.id, joe).await.expect("leave");
    assert!(matches!(
        db.leave_group(g.id, joe).await,
        Err(Error::NotPermitted { .. })
    ));
    assert!(matches!(
        db.delete_group(g.id, joe).await,
        Err(Error::NotPermitted { .. })
    ));
    db.delete_group(g.id, owner).await.expect("delete");
    assert!(matches!(db.get_group(g.id).await, Err(Error::GroupNotFound(_))));
    assert!(db.list_groups(owner).await.expect("none").is_empty());
}

fn msg(id: u64, conv: ConversationId, sender: u64, body: &str) -> NewMessage {
    NewMessage {
        message_id: id,
        conversation: conv,
        sender,
        body: body.into(),
        client_msg_id: format!("c{id}"),
        server_time_ms: 1_000 + id as i64,
        traceparent: String::new(),
    }
}

async fn history_and_sync(db: &Db) {
    let a = db.create_user("ha", "p").await.expect("a").id;
    let b = db.create_user("hb", "p").await.expect("b").id;
    let c = db.create_user("hc", "p").await.expect("c").id;
    let g = db.create_group(c, "g").await.expect("group");
    db.request_join(g.id, a, "").await.expect("join");
    db.respond_join(g.id, a, c, true).await.expect("approve");
    let ab = ConversationId::direct(b, a);
    let gc = ConversationId::group(g.id);

    let batch: Vec<NewMessage> = (1..=25)
        .map(|i| msg(100 + i, if i % 5 == 0 { gc } else { ab }, a, &format!("m{i}")))
        .collect();
    let out = db.write_batch(&batch).await.expect("write");
    assert_eq!(out.written.len(), 25);
    let ab_id = ab.to_string();
    let ab_seqs: Vec<u64> = out
        .written
        .iter()
        .filter(|w| w.conversation_id == ab_id)
        .map(|w| w.seq)
        .collect();
    assert_eq!(ab_seqs, (1..=20).collect::<Vec<u64>>());

    let page = db.history(a, &ab_id, 0, 5).await.expect("history");
    assert_eq!(
        page.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![20, 19, 18, 17, 16]
    );
    assert_eq!(page[0].body, "m24");
    assert_eq!(page[0].client_msg_id, "c124");
    let older = db.history(b, &ab_id, 16, 100).await.expect("older");
    assert_eq!(older.len(), 15);
    assert_eq!(older.last().map(|m| m.seq), Some(1));
    let after = db.messages_after(a, &ab_id, 18, 0).await.expect("after");
    assert_eq!(after.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![19, 20]);
    assert!(db.history(1, "d:2:1", 0, 10).await.is_err(), "malformed id");
    assert!(
        db.history(1, "d:1:99999", 0, 10)
            .await
            .expect("unknown conv")
            .is_empty()
    );

    let (changed, t0) = db.changed_conversations(a, 0).await.expect("changed a");
    let mut ids: Vec<&str> = changed.iter().map(|c| c.conversation_id.as_str()).collect();
    ids.sort();
    let mut want = vec![ab_id.clone(), gc.to_string()];
    want.sort();
    assert_eq!(ids, want);
    let (for_b, _) = db.changed_conversations(b, 0).await.expect("changed b");
    assert_eq!(for_b.len(), 1);
    assert_eq!(
        (for_b[0].seq, for_b[0].read_seq, for_b[0].last_message_id),
        (20, 0, 124)
    );
    let (for_c, _) = db.changed_conversations(c, 0).await.expect("changed c");
    assert_eq!(for_c.len(), 1, "c sees only its group");
    assert!(matches!(
        db.changed_conversations(5555, 0).await,
        Err(Error::UserNotFound(5555))
    ));

    db.mark_read(b, &ab_id, 7).await.expect("mark");
    db.mark_read(b, &ab_id, 3).await.expect("mark back (ignored)");
    let (for_b, _) = db.changed_conversations(b, 0).await.expect("changed b");
    assert_eq!(for_b[0].read_seq, 7);
    assert!(matches!(
        db.mark_read(5555, &ab_id, 1).await,
        Err(Error::UserNotFound(5555))
    ));

    // b's read mark moved the conversation for a too (its peer's mark).
    let (moved, t0) = db.changed_conversations(a, t0).await.expect("b's read");
    assert_eq!((moved.len(), moved[0].peer_read_seq), (1, 7));

    // Nothing moved since t0 ... until a new message.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (none, _) = db.changed_conversations(a, t0).await.expect("since");
    assert!(none.is_empty(), "{none:?}");
    db.write_batch(&[msg(500, ab, b, "again")])
        .await
        .expect("write 2");
    let (moved, _) = db.changed_conversations(a, t0).await.expect("since 2");
    assert_eq!(moved.len(), 1);
    assert_eq!(
        (moved[0].conversation_id.as_str(), moved[0].seq),
        (ab_id.as_str(), 21)
    );
}

async fn write_batch_is_idempotent(db: &Db) {
    let conv = ConversationId::direct(1, 2);
    let first: Vec<NewMessage> = (1..=10).map(|i| msg(i, conv, 1, "x")).collect();
    let out = db.write_batch(&first).await.expect("first");
    assert_eq!(out.written.len(), 10);
    // A redelivery of 5..=10 plus new 11..=12, plus an in-batch repeat.
    let mut again: Vec<NewMessage> = (5..=12).map(|i| msg(i, conv, 1, "x")).collect();
    again.push(msg(12, conv, 1, "x"));
    let out = db.write_batch(&again).await.expect("again");
    assert_eq!(out.duplicates, 7);
    assert_eq!(
        out.written
            .iter()
            .map(|w| (w.message_id, w.seq))
            .collect::<Vec<_>>(),
        vec![(11, 11), (12, 12)]
    );
    let all = db
        .messages_after(1, &conv.to_string(), 0, 100)
        .await
        .expect("all");
    assert_eq!(all.len(), 12);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, m)| m.seq == i as u64 + 1 && m.message_id == i as u64 + 1)
    );
}
