//! The RabbitMQ backend with the writer, against the real broker:
//! idempotent redelivery, order with several writers, dead letters, the
//! broker closing connections mid-stream, the database going away.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use confab_persist::db::Db;
use confab_persist::notify::Hub;
use confab_persist::writer::run_writer;
use confab_queue::ConversationId;
use confab_queue::amqp::{AmqpConsumer, AmqpProducer, AmqpSettings, declare_topology};
use confab_queue::{Producer, QueuedMessage};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use crate::embedded::{PgDrop, bodies_in_seq_order, count_messages, qmsg, settings};
use crate::helpers::{AMQP_URL, TestDb, db_config, eventually, missing, unique};
use confab_testkit::Proxy;

/// Unique queues for one test, deleted at the end.
pub struct Queues {
    pub settings: AmqpSettings,
}

impl Queues {
    pub async fn new(partitions: u32) -> Option<Self> {
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            Connection::connect(AMQP_URL, ConnectionProperties::default()),
        )
        .await;
        match conn {
            Ok(Ok(c)) => {
                let _ = c.close(200, "probe".into()).await;
            }
            Ok(Err(e)) => {
                missing("RabbitMQ", &e.to_string());
                return None;
            }
            Err(_) => {
                missing("RabbitMQ", "connect timed out");
                return None;
            }
        }
        let prefix = unique("confab.test");
        Some(Self {
            settings: AmqpSettings {
                url: AMQP_URL.into(),
                prefix: prefix.clone(),
                partitions,
                prefetch: 500,
                max_body_bytes: 1024,
                max_backoff: Duration::from_millis(300),
                connection_name: prefix,
                ca_file: None,
            },
        })
    }

    pub fn consumer(&self) -> AmqpConsumer {
        AmqpConsumer::start(self.settings.clone(), (0..self.settings.partitions).collect())
    }

    /// Messages ready in a queue.
    pub async fn ready(&self, queue: &str) -> u32 {
        let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
            .await
            .expect("conn");
        let ch = conn.create_channel().await.expect("channel");
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("passive declare");
        let _ = conn.close(200, "".into()).await;
        q.message_count()
    }
}

/// Closes, on the broker side, every connection whose name contains `name`
/// (as a broker restart would, without disturbing anyone else).
fn close_connections(name: &str) {
    {
        let out = std::process::Command::new("rabbitmqctl")
            .args(["list_connections", "pid", "client_properties", "-s"])
            .output()
            .expect("rabbitmqctl");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut closed = 0;
        for line in text.lines().filter(|l| l.contains(name)) {
            let pid = line.split_whitespace().next().unwrap_or_default();
            let st = std::process::Command::new("rabbitmqctl")
                .args(["close_connection", pid, "test: broker restart"])
                .output()
                .expect("close_connection");
            assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
            closed += 1;
        }
        assert!(closed > 0, "no connection of this test found:\n{text}");
    }
}

impl Drop for Queues {
    fn drop(&mut self) {
        delete_queues(&self.settings.prefix, self.settings.partitions);
    }
}

/// Deletes the queues of `prefix` (from any context).
pub fn delete_queues(prefix: &str, partitions: u32) {
    let s = AmqpSettings {
        url: AMQP_URL.into(),
        prefix: prefix.into(),
        partitions,
        prefetch: 1,
        max_body_bytes: 0,
        max_backoff: Duration::from_millis(100),
        connection_name: String::new(),
        ca_file: None,
    };
    {
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(confab_queue::amqp::delete_queues(&s));
        })
        .join();
    }
}

pub fn start(consumer: AmqpConsumer, db: &Db, cancel: &CancellationToken) {
    tokio::spawn(run_writer(
        consumer,
        db.clone(),
        Hub::default(),
        settings(),
        cancel.clone(),
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_once_order_with_several_writers_and_dead_letters() {
    let Some(t) = TestDb::postgres().await else { return };
    let Some(q) = Queues::new(4).await else { return };
    let producer = AmqpProducer::connect(q.settings.clone()).await.expect("producer");
    let cancel = CancellationToken::new();
    // Three writer "processes" on the same queues: one active per partition.
    for _ in 0..3 {
        start(q.consumer(), &t.db, &cancel);
    }
    let convs: Vec<String> = (1..=8u64)
        .map(|s| ConversationId::direct(s, 50).to_string())
        .collect();
    let mut all = Vec::new();
    for n in 0..40u64 {
        let batch: Vec<QueuedMessage> = convs
            .iter()
            .enumerate()
            .map(|(i, c)| qmsg(10_000 * (i as u64 + 1) + n, c, i as u64 + 1, &n.to_string()))
            .collect();
        producer.enqueue(&batch).await.expect("enqueue");
        all.extend(batch);
    }
    // A poison payload straight onto a partition queue, and the same 100
    // messages published twice.
    let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .expect("conn");
    let ch = conn.create_channel().await.expect("channel");
    declare_topology(&ch, &q.settings).await.expect("declare");
    ch.basic_publish(
        "".into(),
        q.settings.partition_queue(1).as_str().into(),
        BasicPublishOptions::default(),
        b"\xff\xfe not protobuf",
        BasicProperties::default().with_delivery_mode(2),
    )
    .await
    .expect("publish poison");
    producer.enqueue(&all[..100]).await.expect("publish again");
    let over_long = qmsg(99, &convs[0], 1, &"x".repeat(5000));
    assert!(
        producer.enqueue(&[over_long]).await.is_err(),
        "over-long refused at enqueue"
    );

    eventually(Duration::from_secs(30), "320 messages", || async {
        count_messages(&t.db).await == 320
    })
    .await;
    eventually(Duration::from_secs(10), "1 dead letter", || async {
        q.ready(&q.settings.dead_letter_queue()).await == 1
    })
    .await;
    let want: Vec<String> = (0..40u64).map(|n| n.to_string()).collect();
    for c in &convs {
        assert_eq!(bodies_in_seq_order(&t.db, c).await, want, "order in {c}");
    }
    for p in 0..4 {
        assert_eq!(q.ready(&q.settings.partition_queue(p)).await, 0);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count_messages(&t.db).await, 320, "duplicates never written");
    cancel.cancel();
    producer.close().await;
    let _ = conn.close(200, "".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_closing_connections_mid_stream_loses_nothing() {
    let Some(t) = TestDb::postgres().await else { return };
    let Some(q) = Queues::new(4).await else { return };
    for s in 1..=6u64 {
        crate::helpers::seed_group(&t.db, s, 1).await;
    }
    let producer = Arc::new(AmqpProducer::connect(q.settings.clone()).await.expect("producer"));
    let cancel = CancellationToken::new();
    let consumer = q.consumer();
    start(consumer, &t.db, &cancel);
    start(q.consumer(), &t.db, &cancel);

    let p = producer.clone();
    let sender = tokio::spawn(async move {
        let mut acked = BTreeSet::new();
        for n in 0..100u64 {
            let batch: Vec<QueuedMessage> = (1..=6u64)
                .map(|s| {
                    qmsg(
                        s * 100_000 + n,
                        &ConversationId::group(s).to_string(),
                        1,
                        &n.to_string(),
                    )
                })
                .collect();
            if p.enqueue(&batch).await.is_ok() {
                acked.extend(batch.iter().map(|m| m.message_id));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let name = q.settings.connection_name.clone();
    tokio::task::spawn_blocking(move || close_connections(&name))
        .await
        .expect("close connections");
    let acked = sender.await.expect("sender");
    assert!(acked.len() >= 500, "most enqueues succeed: {}", acked.len());

    eventually(Duration::from_secs(30), "every acked message stored", || async {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM messages")
            .fetch_one(t.db.pool())
            .await
            .unwrap_or((0,));
        n as usize >= acked.len()
    })
    .await;
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT message_id FROM messages")
        .fetch_all(t.db.pool())
        .await
        .expect("ids");
    let stored: BTreeSet<u64> = rows.into_iter().map(|(id,)| id as u64).collect();
    assert!(acked.is_subset(&stored), "an acked message was lost");
    for s in 1..=6u64 {
        // Contiguous sequences and ascending send order (unacked sends may
        // be missing, never reordered or doubled).
        let bodies = bodies_in_seq_order(&t.db, &ConversationId::group(s).to_string()).await;
        let nums: Vec<u64> = bodies.iter().map(|b| b.parse().expect("num")).collect();
        assert!(nums.windows(2).all(|w| w[0] < w[1]), "order in g:{s}: {nums:?}");
    }
    cancel.cancel();
    producer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_messages_wait_in_the_queue() {
    let Some(url) = crate::helpers::create_pg_database().await else {
        return;
    };
    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
    let _guard = PgDrop(name.clone());
    let Some(q) = Queues::new(2).await else { return };
    let proxy = Proxy::start("127.0.0.1:5432".parse().expect("addr")).await;
    let mut cfg = db_config();
    cfg.acquire_timeout_ms = 1000;
    let db = Db::connect(
        &format!("postgres://postgres@{}/{name}", proxy.addr),
        &cfg,
        Arc::new(confab_persist::metrics::Metrics::new()),
    )
    .expect("db");
    db.migrate().await.expect("migrate");
    let producer = AmqpProducer::connect(q.settings.clone()).await.expect("producer");
    let cancel = CancellationToken::new();
    start(q.consumer(), &db, &cancel);

    producer
        .enqueue(&[qmsg(1, "d:1:2", 1, "1")])
        .await
        .expect("first");
    eventually(Duration::from_secs(10), "first", || async {
        count_messages(&db).await == 1
    })
    .await;
    proxy.cut();
    let accepted = confab_common::ids::now_ms() as i64;
    let more: Vec<QueuedMessage> = (2..=200)
        .map(|i| QueuedMessage {
            server_time_ms: accepted,
            traceparent: String::new(),
            ..qmsg(i, "d:1:2", 2, &i.to_string())
        })
        .collect();
    producer
        .enqueue(&more)
        .await
        .expect("enqueue while the database is down");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count_messages(&db).await, -1, "database unreachable");
    // The messages the writer holds age while they wait.
    let age = || db.metrics().queue_oldest_age.get();
    eventually(
        Duration::from_secs(10),
        "the held messages' age grows",
        || async { age() >= 1.0 },
    )
    .await;
    assert!(age() < 60.0, "the age is the messages' own: {}", age());
    proxy.restore();
    eventually(Duration::from_secs(30), "all 200", || async {
        count_messages(&db).await == 200
    })
    .await;
    let want: Vec<String> = (1..=200u64).map(|i| i.to_string()).collect();
    assert_eq!(bodies_in_seq_order(&db, "d:1:2").await, want);
    assert_eq!(age(), 0.0, "nothing held once written");
    for p in 0..2 {
        eventually(Duration::from_secs(5), "partition drained", || async {
            q.ready(&q.settings.partition_queue(p)).await == 0
        })
        .await;
    }
    cancel.cancel();
    producer.close().await;
    db.close().await;
}
