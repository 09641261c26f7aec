//! Read marks with unread counts and the other user's mark, and recalls,
//! on SQLite, PostgreSQL and MariaDB.

use confab_persist::Error;
use confab_persist::db::{Db, NewMessage, now_ms};
use confab_queue::ConversationId;

use crate::every_backend;

every_backend!(read_marks_and_unread_counts, read_marks_and_unread_counts);
every_backend!(recalls, recalls);

fn msg(id: u64, conv: ConversationId, sender: u64, time: i64) -> NewMessage {
    NewMessage {
        message_id: id,
        conversation: conv,
        sender,
        body: format!("body {id}"),
        client_msg_id: String::new(),
        server_time_ms: time,
        traceparent: String::new(),
    }
}

async fn state(
    db: &Db,
    user: u64,
    conv: &str,
    since: u64,
) -> Option<confab_persist::db::history::ConversationState> {
    let (list, _) = db.changed_conversations(user, since).await.expect("changed");
    list.into_iter().find(|c| c.conversation_id == conv)
}

async fn read_marks_and_unread_counts(db: &Db) {
    let a = db.create_user("ra", "p").await.expect("a").id;
    let b = db.create_user("rb", "p").await.expect("b").id;
    let c = db.create_user("rc", "p").await.expect("c").id;
    let ab = ConversationId::direct(a, b);
    let id = ab.to_string();
    let now = now_ms();
    // a sends 1..=4, b sends 5 and 6.
    let batch: Vec<NewMessage> = (1..=6)
        .map(|i| msg(1000 + i, ab, if i <= 4 { a } else { b }, now))
        .collect();
    db.write_batch(&batch).await.expect("write");

    let sa = state(db, a, &id, 0).await.expect("a's state");
    let sb = state(db, b, &id, 0).await.expect("b's state");
    assert_eq!(
        (sa.seq, sa.read_seq, sa.unread_count, sa.peer_read_seq),
        (6, 0, 2, 0)
    );
    assert_eq!((sb.read_seq, sb.unread_count, sb.peer_read_seq), (0, 4, 0));

    // b reads up to 3: its unread count drops, a sees b's mark.
    let (_, cursor) = db.changed_conversations(a, 0).await.expect("cursor");
    assert_eq!(db.mark_read(b, &id, 3).await.expect("mark"), (3, true));
    let sb = state(db, b, &id, 0).await.expect("b's state");
    assert_eq!((sb.read_seq, sb.unread_count), (3, 1));
    let sa = state(db, a, &id, cursor)
        .await
        .expect("a sees the conversation moved by b's read");
    assert_eq!((sa.peer_read_seq, sa.unread_count), (3, 2));

    // Never back; a repeat moves nothing; past the newest is the newest;
    // 0 is the newest.
    assert_eq!(db.mark_read(b, &id, 2).await.expect("back"), (3, false));
    assert_eq!(db.mark_read(b, &id, 3).await.expect("again"), (3, false));
    assert_eq!(db.mark_read(b, &id, 99).await.expect("past"), (6, true));
    assert_eq!(state(db, b, &id, 0).await.expect("b").unread_count, 0);
    assert_eq!(db.mark_read(a, &id, 0).await.expect("newest"), (6, true));
    let sa = state(db, a, &id, 0).await.expect("a");
    assert_eq!((sa.read_seq, sa.unread_count, sa.peer_read_seq), (6, 0, 6));
    let (_, after) = db.changed_conversations(a, 0).await.expect("cursor");
    assert_eq!(db.mark_read(a, &id, 0).await.expect("nothing new"), (6, false));
    assert!(
        state(db, a, &id, after).await.is_none(),
        "a mark that did not move moves nothing"
    );

    // Only participants; a conversation without messages marks 0.
    assert!(matches!(
        db.mark_read(c, &id, 1).await,
        Err(Error::NotParticipant { .. })
    ));
    let ac = ConversationId::direct(a, c).to_string();
    assert_eq!(db.mark_read(a, &ac, 5).await.expect("empty"), (0, false));
    assert!(matches!(db.mark_read(a, "x:1", 1).await, Err(Error::Invalid(_))));

    // A group: unread counts per member, no peer mark.
    let g = db.create_group(c, "reads").await.expect("group");
    db.request_join(g.id, a, "").await.expect("join");
    db.respond_join(g.id, a, c, true).await.expect("approve");
    let gc = ConversationId::group(g.id);
    let batch: Vec<NewMessage> = (1..=3).map(|i| msg(2000 + i, gc, c, now)).collect();
    db.write_batch(&batch).await.expect("write group");
    let gid = gc.to_string();
    let sa = state(db, a, &gid, 0).await.expect("a in group");
    assert_eq!((sa.unread_count, sa.peer_read_seq), (3, 0));
    assert_eq!(
        state(db, c, &gid, 0).await.expect("c").unread_count,
        0,
        "own messages"
    );
    assert_eq!(db.mark_read(a, &gid, 2).await.expect("group mark"), (2, true));
    assert_eq!(state(db, a, &gid, 0).await.expect("a").unread_count, 1);
    assert!(matches!(
        db.mark_read(b, &gid, 1).await,
        Err(Error::NotParticipant { .. })
    ));
}

async fn recalls(db: &Db) {
    let a = db.create_user("ca", "p").await.expect("a").id;
    let b = db.create_user("cb", "p").await.expect("b").id;
    let ab = ConversationId::direct(a, b);
    let id = ab.to_string();
    let now = now_ms();
    db.write_batch(&[
        msg(3001, ab, a, now),
        msg(3002, ab, b, now),
        msg(3003, ab, a, now - 600_000),
    ])
    .await
    .expect("write");
    let (_, cursor) = db.changed_conversations(b, 0).await.expect("cursor");
    assert_eq!(state(db, b, &id, 0).await.expect("b").unread_count, 2);

    let done = db.recall(a, 3001, 9001, 120_000).await.expect("recall");
    assert!(!done.repeated);
    assert_eq!(
        (
            done.entry.seq,
            done.entry.recall_of,
            done.entry.sender,
            done.entry.message_id
        ),
        (4, 3001, a, 9001)
    );
    // b's sync lists the conversation; its unread count lost the message
    // and does not count the entry.
    let sb = state(db, b, &id, cursor)
        .await
        .expect("the recall moved the conversation");
    assert_eq!((sb.seq, sb.unread_count, sb.last_message_id), (4, 1, 9001));
    let page = db.history(b, &id, 0, 10).await.expect("history");
    let original = page.iter().find(|m| m.message_id == 3001).expect("still listed");
    assert!(original.recalled);
    assert_eq!(original.body, "");
    assert_eq!(original.seq, 1);
    let after = db.messages_after(b, &id, 3, 10).await.expect("after");
    assert_eq!(after.len(), 1);
    assert_eq!((after[0].recall_of, after[0].seq), (3001, 4));

    // Again: the same entry, nothing new.
    let again = db.recall(a, 3001, 9002, 120_000).await.expect("again");
    assert!(again.repeated);
    assert_eq!((again.entry.message_id, again.entry.seq), (9001, 4));
    assert_eq!(state(db, b, &id, 0).await.expect("b").seq, 4);

    // Someone else's, unknown, too old, an entry.
    assert!(matches!(
        db.recall(a, 3002, 9003, 120_000).await,
        Err(Error::NotSender { .. })
    ));
    assert!(matches!(
        db.recall(a, 3999, 9003, 120_000).await,
        Err(Error::MessageNotFound(3999))
    ));
    assert!(matches!(
        db.recall(a, 3003, 9003, 120_000).await,
        Err(Error::RecallWindowPassed { .. })
    ));
    assert!(matches!(
        db.recall(a, 9001, 9003, 120_000).await,
        Err(Error::Invalid(_))
    ));
    let old = db.history(a, &id, 0, 10).await.expect("history");
    assert_eq!(
        old.iter().find(|m| m.message_id == 3003).map(|m| m.body.as_str()),
        Some("body 3003"),
        "a refused recall changes nothing"
    );

    // New messages take the sequence after the entry.
    let out = db
        .write_batch(&[msg(3004, ab, b, now_ms())])
        .await
        .expect("write after");
    assert_eq!(out.written[0].seq, 5);
}
