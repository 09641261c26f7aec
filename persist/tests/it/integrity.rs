//! What keeps an acknowledged message stored exactly once and findable:
//! a resend (same sender, same client message id) is one message; sync's
//! cursor is the commit order, so a batch that commits late is still found;
//! one message the database refuses is the only one set aside.

use std::time::Duration;

use confab_persist::db::{Db, NewMessage};
use confab_queue::amqp::AmqpProducer;
use confab_queue::{ConversationId, Producer, QueuedBatch};
use lapin::options::BasicGetOptions;
use lapin::{Connection, ConnectionProperties};
use prost::Message as _;

use crate::amqp::Queues;
use crate::embedded::{bodies_in_seq_order, count_messages, qmsg};
use crate::every_backend;
use crate::helpers::{AMQP_URL, TestDb, eventually};

fn keyed(id: u64, conv: ConversationId, sender: u64, key: &str) -> NewMessage {
    NewMessage {
        message_id: id,
        conversation: conv,
        sender,
        body: format!("m{id}"),
        client_msg_id: key.into(),
        server_time_ms: 1_000,
        traceparent: String::new(),
    }
}

async fn a_resend_is_stored_once(db: &Db) {
    let a = db.create_user("ra", "p").await.expect("a").id;
    let b = db.create_user("rb", "p").await.expect("b").id;
    let conv = ConversationId::direct(a, b);
    let out = db.write_batch(&[keyed(101, conv, a, "k1")]).await.expect("first");
    assert_eq!(out.written.len(), 1);
    // The same send again under a new id (its ack was lost, the client
    // resent it, a gateway gave it a fresh id): nothing new.
    let out = db
        .write_batch(&[keyed(102, conv, a, "k1")])
        .await
        .expect("resend");
    assert_eq!((out.written.len(), out.duplicates), (0, 1));
    // Both copies in one batch: the first is kept.
    let out = db
        .write_batch(&[keyed(103, conv, a, "k2"), keyed(104, conv, a, "k2")])
        .await
        .expect("twice in a batch");
    assert_eq!(
        out.written.iter().map(|w| w.message_id).collect::<Vec<_>>(),
        vec![103]
    );
    // The key is the sender's: the other user may use the same one, and
    // messages without a key are never taken as repeats.
    let out = db
        .write_batch(&[
            keyed(105, conv, b, "k1"),
            keyed(106, conv, a, ""),
            keyed(107, conv, a, ""),
        ])
        .await
        .expect("other sender, no keys");
    assert_eq!(out.written.len(), 3);
    let found = db.find_sent(a, "k1").await.expect("find").expect("stored");
    assert_eq!((found.message_id, found.body.as_str()), (101, "m101"));
    assert!(db.find_sent(a, "never").await.expect("find").is_none());
    let all = db
        .messages_after(a, &conv.to_string(), 0, 100)
        .await
        .expect("all");
    assert_eq!(
        all.iter().map(|m| m.message_id).collect::<Vec<_>>(),
        vec![101, 103, 105, 106, 107]
    );
}
every_backend!(resend, a_resend_is_stored_once);

async fn the_cursor_moves_with_each_commit(db: &Db) {
    let a = db.create_user("ca", "p").await.expect("a").id;
    let b = db.create_user("cb", "p").await.expect("b").id;
    let (all, c0) = db.changed_conversations(a, 0).await.expect("none yet");
    assert!(all.is_empty());
    let conv = ConversationId::direct(a, b);
    db.write_batch(&[keyed(201, conv, a, "")]).await.expect("write");
    let (moved, c1) = db.changed_conversations(a, c0).await.expect("after c0");
    assert_eq!(moved.len(), 1);
    assert!(c1 > c0);
    let (none, c2) = db.changed_conversations(a, c1).await.expect("after c1");
    assert!(none.is_empty(), "{none:?}");
    assert_eq!(c2, c1, "nothing committed, the cursor stays");
    db.write_batch(&[keyed(202, conv, b, "")]).await.expect("write 2");
    let (moved, _) = db.changed_conversations(b, c2).await.expect("after c2");
    assert_eq!(moved.len(), 1, "the other participant sees it too");
}
every_backend!(cursor, the_cursor_moves_with_each_commit);

/// A writer's transaction that is slow to commit (here: held on a row lock
/// another session keeps) commits after a reader took its cursor. The
/// next sync from that cursor must still find it. (With the clock as the
/// cursor, the batch was stamped before the reader's time and was missed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_commits_after_a_sync_is_found_by_the_next() {
    let Some(t) = TestDb::postgres().await else { return };
    let db = &t.db;
    let a = db.create_user("la", "p").await.expect("a").id;
    let b = db.create_user("lb", "p").await.expect("b").id;
    let conv = ConversationId::direct(a, b);
    db.write_batch(&[keyed(301, conv, a, "")]).await.expect("first");

    let mut blocker = db.pool().begin().await.expect("begin");
    sqlx::query("SELECT id FROM conversations WHERE id = $1 FOR UPDATE")
        .bind(conv.to_string())
        .fetch_all(&mut *blocker)
        .await
        .expect("lock");
    let writer = {
        let db = db.clone();
        tokio::spawn(async move { db.write_batch(&[keyed(302, conv, b, "")]).await })
    };
    // The writer is inside its transaction, waiting on the lock.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!writer.is_finished(), "the writer should be held");
    let (seen, cursor) = db.changed_conversations(a, 0).await.expect("sync");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].seq, 1, "the held batch is not visible yet");
    tokio::time::sleep(Duration::from_millis(50)).await;
    blocker.commit().await.expect("release");
    let out = writer.await.expect("join").expect("write");
    assert_eq!(out.written.len(), 1);

    let (moved, _) = db.changed_conversations(a, cursor).await.expect("next sync");
    assert_eq!(
        moved
            .iter()
            .map(|c| (c.conversation_id.clone(), c.seq))
            .collect::<Vec<_>>(),
        vec![(conv.to_string(), 2)],
        "the late commit is after the cursor"
    );
}

/// One delivery (a RabbitMQ envelope) carries three messages; PostgreSQL
/// refuses one of them (a NUL character). The other two are stored, in
/// order, and only the refused one is in the dead-letter queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_refused_message_of_an_envelope_is_dead_lettered() {
    let Some(t) = TestDb::postgres().await else { return };
    let Some(q) = Queues::new(1).await else { return };
    let producer = AmqpProducer::connect(q.settings.clone()).await.expect("producer");
    let cancel = tokio_util::sync::CancellationToken::new();
    crate::amqp::start(q.consumer(), &t.db, &cancel);
    let conv = ConversationId::direct(1, 50).to_string();
    let envelope = vec![
        qmsg(401, &conv, 1, "before"),
        qmsg(402, &conv, 1, "bad\0byte"),
        qmsg(403, &conv, 1, "after"),
    ];
    producer.enqueue(&envelope).await.expect("enqueue");
    eventually(Duration::from_secs(20), "the two good messages", || async {
        count_messages(&t.db).await == 2
    })
    .await;
    assert_eq!(bodies_in_seq_order(&t.db, &conv).await, vec!["before", "after"]);
    eventually(Duration::from_secs(10), "one dead letter", || async {
        q.ready(&q.settings.dead_letter_queue()).await == 1
    })
    .await;
    assert_eq!(
        q.ready(&q.settings.partition_queue(0)).await,
        0,
        "the delivery is acked"
    );

    let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .expect("conn");
    let ch = conn.create_channel().await.expect("channel");
    let got = ch
        .basic_get(
            q.settings.dead_letter_queue().as_str().into(),
            BasicGetOptions::default(),
        )
        .await
        .expect("get")
        .expect("a dead letter");
    let part = QueuedBatch::decode(got.delivery.data.as_slice()).expect("an envelope");
    assert_eq!(
        part.messages.iter().map(|m| m.message_id).collect::<Vec<_>>(),
        vec![402],
        "only the refused message is set aside"
    );
    let reason = got
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-confab-reason").cloned())
        .and_then(|v| match v {
            lapin::types::AMQPValue::LongString(s) => {
                Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
            }
            _ => None,
        })
        .unwrap_or_default();
    assert!(
        reason.starts_with("message 402:"),
        "the reason names the message: {reason:?}"
    );
    cancel.cancel();
    producer.close().await;
    let _ = conn.close(200, "".into()).await;
}
