//! The embedded queue (an append-only log) with the writer: idempotency,
//! order with several writers, poison messages, restart, database outage.
//! The log on its own (segments, acks, torn tails, bad input) is tested in
//! confab-queue.

use std::sync::Arc;
use std::time::Duration;

use confab_persist::Error;
use confab_persist::db::Db;
use confab_persist::notify::Hub;
use confab_persist::writer::{WriterSettings, run_writer};
use confab_queue::embedded::EmbeddedQueue;
use confab_queue::{ConversationId, Producer, QueuedMessage};
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestDb, db_config, eventually};
use confab_testkit::Proxy;

pub fn settings() -> WriterSettings {
    WriterSettings {
        batch_max: 500,
        linger: Duration::from_millis(1),
        max_backoff: Duration::from_millis(200),
        max_body_bytes: 1024,
    }
}

pub fn qmsg(id: u64, conv: &str, sender: u64, body: &str) -> QueuedMessage {
    QueuedMessage {
        message_id: id,
        conversation_id: conv.into(),
        sender,
        body: body.into(),
        client_msg_id: format!("c{id}"),
        server_time_ms: 0,
        traceparent: String::new(),
    }
}

/// Starts `tasks` writers over the partitions of `q`; cancel to stop.
pub fn start_writers(q: &EmbeddedQueue, db: &Db, hub: &Hub, tasks: u32) -> CancellationToken {
    let cancel = CancellationToken::new();
    for t in 0..tasks {
        let parts = (0..q.partitions()).filter(|p| p % tasks == t).collect();
        tokio::spawn(run_writer(
            q.consumer(parts),
            db.clone(),
            hub.clone(),
            settings(),
            cancel.clone(),
        ));
    }
    cancel
}

pub async fn count_messages(db: &Db) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM messages")
        .fetch_one(db.pool())
        .await
        .unwrap_or((-1,));
    n
}

/// Per conversation, the message bodies in sequence order; checks that the
/// sequences are 1..=n without gaps.
pub async fn bodies_in_seq_order(db: &Db, conv: &str) -> Vec<String> {
    let reader = crate::helpers::reader_of(db, conv).await;
    let msgs = db
        .messages_after(reader, conv, 0, 1000)
        .await
        .expect("messages_after");
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.seq, i as u64 + 1, "gap or repeat in {conv}");
    }
    msgs.into_iter().map(|m| m.body).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_is_stored_once_and_order_holds_with_several_writers() {
    let t = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("dir");
    let q = EmbeddedQueue::open(dir.path(), 8, 1024).expect("open");
    let hub = Hub::default();
    let mut moved = hub.subscribe();
    let cancel = start_writers(&q, &t.db, &hub, 3);

    // 6 senders, each in its own conversation, sending concurrently.
    let mut senders = Vec::new();
    for s in 1..=6u64 {
        let q = q.clone();
        senders.push(tokio::spawn(async move {
            let conv = ConversationId::direct(s, 100).to_string();
            for chunk in 0..10u64 {
                let msgs: Vec<QueuedMessage> = (0..10)
                    .map(|i| {
                        let n = chunk * 10 + i;
                        qmsg(s * 1000 + n + 1, &conv, s, &format!("{n}"))
                    })
                    .collect();
                q.enqueue(&msgs).await.expect("enqueue");
            }
        }));
    }
    for s in senders {
        s.await.expect("sender");
    }
    eventually(Duration::from_secs(20), "600 messages", || async {
        count_messages(&t.db).await == 600
    })
    .await;

    // The same messages published again (a gateway retry): stored once.
    let conv1 = ConversationId::direct(1, 100).to_string();
    let again: Vec<QueuedMessage> = (0..50u64)
        .map(|n| qmsg(1000 + n + 1, &conv1, 1, &format!("{n}")))
        .collect();
    q.enqueue(&again).await.expect("enqueue again");
    q.enqueue(&[qmsg(9999, &conv1, 1, "100")])
        .await
        .expect("one more");
    eventually(Duration::from_secs(10), "queue drained", || async {
        q.is_empty()
    })
    .await;
    eventually(Duration::from_secs(10), "601 messages", || async {
        count_messages(&t.db).await == 601
    })
    .await;

    for s in 1..=6u64 {
        let conv = ConversationId::direct(s, 100).to_string();
        let want: Vec<String> = (0..if s == 1 { 101 } else { 100 })
            .map(|n| n.to_string())
            .collect();
        assert_eq!(bodies_in_seq_order(&t.db, &conv).await, want, "order in {conv}");
    }
    // Every commit was announced, with its sequence.
    let mut announced = 0;
    while let Ok(b) = moved.try_recv() {
        announced += b.moved.len();
    }
    assert_eq!(announced, 601);
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_to_dead_letters_and_the_rest_flows() {
    let t = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("dir");
    let q = EmbeddedQueue::open(dir.path(), 2, 1024).expect("open");
    let hub = Hub::default();
    let cancel = start_writers(&q, &t.db, &hub, 1);
    let conv = "d:1:2";
    let p = ConversationId::partition(conv, 2);
    q.enqueue(&[qmsg(1, conv, 1, "a")]).await.expect("a");
    q.enqueue_raw(p, &[b"\x08\x96\x01\xff garbage".to_vec()])
        .await
        .expect("garbage");
    // Over-long body and a stranger as sender, bypassing the producer checks.
    let long = qmsg(3, conv, 1, &"x".repeat(2000));
    let stranger = qmsg(4, conv, 7, "who am I");
    q.enqueue_raw(p, &[confab_queue::encode(&long), confab_queue::encode(&stranger)])
        .await
        .expect("raw");
    q.enqueue(&[qmsg(2, conv, 2, "b")]).await.expect("b");
    eventually(
        Duration::from_secs(10),
        "2 messages and 3 dead letters",
        || async { count_messages(&t.db).await == 2 && q.dead_letters().map(|d| d.len()).unwrap_or(0) == 3 },
    )
    .await;
    assert_eq!(bodies_in_seq_order(&t.db, conv).await, vec!["a", "b"]);
    let dl = q.dead_letters().expect("dead letters");
    assert!(dl[0].reason.contains("undecodable"), "{}", dl[0].reason);
    assert!(dl[1].reason.contains("longer than"), "{}", dl[1].reason);
    assert!(dl[2].reason.contains("not part of"), "{}", dl[2].reason);
    eventually(Duration::from_secs(5), "queue empty", || async { q.is_empty() }).await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_survive_a_restart() {
    let t = TestDb::sqlite().await;
    crate::helpers::seed_group(&t.db, 5, 9).await;
    let dir = tempfile::tempdir().expect("dir");
    {
        let q = EmbeddedQueue::open(dir.path(), 4, 1024).expect("open");
        let msgs: Vec<QueuedMessage> = (1..=50).map(|i| qmsg(i, "g:5", 9, &i.to_string())).collect();
        q.enqueue(&msgs).await.expect("enqueue");
    }
    // The queue was dropped: reopen (another "process") and write.
    let q = loop {
        match EmbeddedQueue::open(dir.path(), 4, 1024) {
            Ok(q) => break q,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert!(
        EmbeddedQueue::open(dir.path(), 5, 1024).is_err(),
        "partition count is fixed"
    );
    assert_eq!(q.len(), 50);
    let cancel = start_writers(&q, &t.db, &Hub::default(), 2);
    eventually(Duration::from_secs(10), "50 written", || async {
        count_messages(&t.db).await == 50
    })
    .await;
    let want: Vec<String> = (1..=50).map(|i: u64| i.to_string()).collect();
    assert_eq!(bodies_in_seq_order(&t.db, "g:5").await, want);
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_messages_wait_then_are_written() {
    let Some(url) = crate::helpers::create_pg_database().await else {
        return;
    };
    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
    let _guard = PgDrop(name.clone());
    let proxy = Proxy::start("127.0.0.1:5432".parse().expect("addr")).await;
    let proxied = format!("postgres://postgres@{}/{name}", proxy.addr);
    let mut cfg = db_config();
    cfg.acquire_timeout_ms = 1000;
    let db = Db::connect(&proxied, &cfg, Arc::new(confab_persist::metrics::Metrics::new())).expect("db");
    db.migrate().await.expect("migrate");

    let dir = tempfile::tempdir().expect("dir");
    let q = EmbeddedQueue::open(dir.path(), 4, 1024).expect("open");
    let cancel = start_writers(&q, &db, &Hub::default(), 2);
    let first: Vec<QueuedMessage> = (1..=20).map(|i| qmsg(i, "d:1:2", 1, &i.to_string())).collect();
    q.enqueue(&first).await.expect("first");
    eventually(Duration::from_secs(10), "first 20", || async {
        count_messages(&db).await == 20
    })
    .await;

    proxy.cut();
    let second: Vec<QueuedMessage> = (21..=60).map(|i| qmsg(i, "d:1:2", 2, &i.to_string())).collect();
    q.enqueue(&second)
        .await
        .expect("enqueue while the database is down");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(q.len(), 40, "nothing acked while the database is down");
    assert!(matches!(db.get_user(1).await, Err(Error::Unavailable(_))));

    proxy.restore();
    eventually(Duration::from_secs(20), "all 60 written", || async {
        count_messages(&db).await == 60
    })
    .await;
    eventually(Duration::from_secs(5), "queue drained", || async { q.is_empty() }).await;
    let want: Vec<String> = (1..=60).map(|i: u64| i.to_string()).collect();
    assert_eq!(bodies_in_seq_order(&db, "d:1:2").await, want);
    assert!(db.metrics().writer_retries.get() > 0);
    cancel.cancel();
    db.close().await;
}

/// Drops a PostgreSQL database at the end of a test.
pub struct PgDrop(pub String);

impl Drop for PgDrop {
    fn drop(&mut self) {
        crate::helpers::POSTGRES.drop_database(self.0.clone());
    }
}
