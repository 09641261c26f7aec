//! Persist's own checks of who may do what, whatever the gateway sent:
//! readers must be participants, group rules by role, the writer stores
//! group messages of members only. SQLite, PostgreSQL and MariaDB.

use std::time::Duration;

use confab_persist::Error;
use confab_persist::db::{Db, NewMessage};
use confab_persist::notify::Hub;
use confab_queue::ConversationId;
use confab_queue::Producer;
use confab_queue::embedded::EmbeddedQueue;

use crate::embedded::{count_messages, qmsg, start_writers};
use crate::every_backend;
use crate::helpers::{TestDb, eventually};

every_backend!(readers_must_be_participants, readers_must_be_participants);
every_backend!(group_rules_follow_roles, group_rules_follow_roles);
every_backend!(search_is_paged, search_is_paged);

fn msg(id: u64, conv: ConversationId, sender: u64) -> NewMessage {
    NewMessage {
        message_id: id,
        conversation: conv,
        sender,
        body: format!("secret {id}"),
        client_msg_id: String::new(),
        server_time_ms: 1,
        traceparent: String::new(),
    }
}

fn not_participant<T: std::fmt::Debug>(r: Result<T, Error>, what: &str) {
    assert!(matches!(r, Err(Error::NotParticipant { .. })), "{what}: {r:?}");
}

async fn readers_must_be_participants(db: &Db) {
    let a = db.create_user("ra", "p").await.expect("a").id;
    let b = db.create_user("rb", "p").await.expect("b").id;
    let c = db.create_user("rc", "p").await.expect("c").id;
    let g = db.create_group(a, "g").await.expect("group").id;
    db.invite_member(g, b, a).await.expect("invite b");
    db.respond_invite(g, b, true).await.expect("b accepts");
    let ab = ConversationId::direct(a, b);
    let gc = ConversationId::group(g);
    db.write_batch(&[msg(1, ab, a), msg(2, gc, b)])
        .await
        .expect("write");
    let (ab, gc) = (ab.to_string(), gc.to_string());

    assert_eq!(db.history(b, &ab, 0, 10).await.expect("b reads").len(), 1);
    assert_eq!(db.messages_after(a, &gc, 0, 10).await.expect("a reads").len(), 1);
    not_participant(db.history(c, &ab, 0, 10).await, "history of another pair");
    not_participant(db.messages_after(c, &ab, 0, 10).await, "after of another pair");
    not_participant(db.history(c, &gc, 0, 10).await, "history of another group");
    not_participant(db.messages_after(c, &gc, 0, 10).await, "after of another group");
    not_participant(
        db.history(c, "g:987654", 0, 10).await,
        "a group that does not exist",
    );
    not_participant(db.list_members(g, c).await, "members of another group");
    not_participant(db.list_members(987_654, a).await, "members of no group");
    not_participant(db.mark_read(c, &ab, 1).await, "read mark in another pair");
    assert!(
        matches!(db.history(0, &ab, 0, 10).await, Err(Error::Invalid(_))),
        "no reader"
    );
    let (changed, _) = db.changed_conversations(c, 0).await.expect("changed");
    assert!(changed.is_empty(), "nothing of others: {changed:?}");

    // Membership is checked now, not when the message was written.
    db.leave_group(g, b).await.expect("b leaves");
    not_participant(db.history(b, &gc, 0, 10).await, "after leaving");
    db.delete_group(g, a).await.expect("delete");
    not_participant(db.history(a, &gc, 0, 10).await, "after the deletion");
}

async fn group_rules_follow_roles(db: &Db) {
    let o = db.create_user("go", "p").await.expect("o").id;
    let d = db.create_user("gd", "p").await.expect("d").id;
    let m = db.create_user("gm", "p").await.expect("m").id;
    let x = db.create_user("gx", "p").await.expect("x").id;
    let g = db.create_group(o, "roles").await.expect("group").id;

    let denied = |r: Result<_, Error>, what: &str| {
        assert!(matches!(r, Err(Error::NotPermitted { .. })), "{what}: {r:?}");
    };
    denied(db.invite_member(g, m, x).await.map(drop), "an outsider invites");
    db.invite_member(g, d, o).await.expect("the owner invites");
    assert!(
        db.role_of(g, d).await.expect("role").is_none(),
        "d has not accepted"
    );
    db.respond_invite(g, d, true).await.expect("d accepts");
    denied(db.invite_member(g, m, d).await.map(drop), "a member invites");
    assert!(matches!(
        db.invite_member(g, d, o).await,
        Err(Error::AlreadyMember { .. })
    ));
    denied(db.promote_admin(g, d, d).await.map(drop), "a member promotes");
    denied(db.promote_admin(g, d, x).await.map(drop), "an outsider promotes");
    let admin = db.promote_admin(g, d, o).await.expect("the owner promotes");
    assert_eq!((admin.user, admin.role, admin.name.as_str()), (d, 2, "gd"));
    assert!(matches!(db.promote_admin(g, d, o).await, Err(Error::Invalid(_))));
    not_participant(db.promote_admin(g, x, o).await, "promote an outsider");
    db.invite_member(g, m, d).await.expect("an admin invites");
    db.respond_invite(g, m, true).await.expect("m accepts");
    denied(db.promote_admin(g, m, d).await.map(drop), "an admin promotes");

    // An invitation of a user who asked to join takes it in at once.
    db.request_join(g, x, "").await.expect("x asks");
    assert_eq!(db.list_join_requests(g, d).await.expect("requests").len(), 1);
    denied(
        db.list_join_requests(g, m).await.map(drop),
        "a member lists requests",
    );
    assert!(matches!(
        db.invite_member(g, x, o).await.expect("invite x"),
        confab_persist::db::invites::Invited::Joined(ref j) if j.user == x
    ));
    assert!(db.list_join_requests(g, o).await.expect("requests").is_empty());
    assert!(db.list_invites(x).await.expect("invites").is_empty());

    denied(db.remove_member(g, d, m).await, "a member removes");
    denied(db.remove_member(g, o, d).await, "an admin removes the owner");
    denied(db.remove_member(g, o, o).await, "the owner removes itself");
    db.remove_member(g, m, d)
        .await
        .expect("an admin removes a member");
    denied(db.remove_member(g, x, 424_242).await, "a stranger removes");
    db.remove_member(g, d, o)
        .await
        .expect("the owner removes an admin");
    denied(db.delete_group(g, x).await, "a member deletes");
    let names: Vec<String> = db
        .list_members(g, o)
        .await
        .expect("members")
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, vec!["go", "gx"]);
}

async fn search_is_paged(db: &Db) {
    for n in ["pa1", "pa2", "pa3", "pa4", "pb1"] {
        db.create_user(n, "p").await.expect("user");
    }
    let names = |v: Vec<confab_persist::db::users::User>| v.into_iter().map(|u| u.name).collect::<Vec<_>>();
    assert_eq!(
        names(db.search_users("pa", "", 2).await.expect("page 1")),
        vec!["pa1", "pa2"]
    );
    assert_eq!(
        names(db.search_users("pa", "pa2", 2).await.expect("page 2")),
        vec!["pa3", "pa4"]
    );
    assert!(db.search_users("pa", "pa4", 2).await.expect("end").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_stores_group_messages_of_members_only() {
    let t = TestDb::sqlite().await;
    let owner = t.db.create_user("wo", "p").await.expect("owner").id;
    let outsider = t.db.create_user("wx", "p").await.expect("outsider").id;
    let g = t.db.create_group(owner, "w").await.expect("group").id;
    let dir = tempfile::tempdir().expect("dir");
    let q = EmbeddedQueue::open(dir.path(), 2, 1024).expect("open");
    let cancel = start_writers(&q, &t.db, &Hub::default(), 1);
    let conv = ConversationId::group(g).to_string();
    q.enqueue(&[qmsg(1, &conv, owner, "member")])
        .await
        .expect("member");
    q.enqueue(&[qmsg(2, &conv, outsider, "forged")])
        .await
        .expect("outsider");
    q.enqueue(&[qmsg(3, &conv, owner, "member again")])
        .await
        .expect("member");
    eventually(Duration::from_secs(10), "queue drained", || async {
        q.is_empty()
    })
    .await;
    assert_eq!(count_messages(&t.db).await, 2);
    let bodies: Vec<String> =
        t.db.messages_after(owner, &conv, 0, 10)
            .await
            .expect("read")
            .into_iter()
            .map(|m| m.body)
            .collect();
    assert_eq!(bodies, vec!["member", "member again"], "no gap in the sequence");
    assert_eq!(t.db.metrics().writer_rejected.get(), 1);
    cancel.cancel();
}
