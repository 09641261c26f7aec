//! The end-to-end write benchmark: enqueue -> committed in SQL, through
//! the real queue and writers, and a reference: the same rows by a plain
//! batched INSERT.

use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_queue::amqp::{AmqpConsumer, AmqpProducer, AmqpSettings, delete_queues};
use confab_queue::embedded::{EmbeddedQueue, Engine, OpenOptions};
use confab_queue::{ConversationId, Producer, QueuedMessage};

use confab_persist::config::DatabaseConfig;
use confab_persist::db::{Db, Params};
use confab_persist::metrics::Metrics;
use confab_persist::notify::Hub;
use confab_persist::writer::{WriterSettings, run_writer};
use confab_persist::{Error, Result};

/// Which queue the benchmark goes through.
#[derive(Clone, Debug)]
pub enum BenchQueue {
    /// The embedded queue on `engine` in `dir` (a fresh directory).
    Embedded { dir: std::path::PathBuf, engine: Engine },
    /// RabbitMQ at `url`; queues `{prefix}.*` are deleted at the end.
    Amqp { url: String, prefix: String },
}

#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// A fresh, empty database (the schema is created).
    pub database_url: String,
    pub queue: BenchQueue,
    pub messages: u64,
    pub conversations: u64,
    /// Messages per enqueue call, and concurrent enqueuers.
    pub enqueue_batch: usize,
    pub producers: usize,
    pub partitions: u32,
    pub writer_tasks: u32,
    pub batch_max: usize,
    pub body_bytes: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            database_url: String::new(),
            queue: BenchQueue::Embedded {
                dir: std::env::temp_dir().join("confab-bench-queue"),
                engine: Engine::default(),
            },
            messages: 100_000,
            conversations: 1000,
            enqueue_batch: 100,
            producers: 8,
            partitions: 8,
            writer_tasks: 2,
            batch_max: 2000,
            body_bytes: 64,
        }
    }
}

#[derive(Clone, Debug)]
pub struct BenchReport {
    pub messages: u64,
    /// Until the last enqueue was durable (flushed / confirmed).
    pub enqueue_secs: f64,
    /// Until the last message was committed.
    pub end_to_end_secs: f64,
    pub end_to_end_per_sec: f64,
    /// The same rows by a plain multi-row INSERT, 1000 per transaction.
    pub raw_insert_per_sec: f64,
}

fn message(i: u64, o: &BenchOptions, body: &str) -> QueuedMessage {
    let c = i % o.conversations.max(1);
    let (a, b) = (c * 2 + 1, c * 2 + 2);
    QueuedMessage {
        message_id: i + 1,
        conversation_id: ConversationId::direct(a, b).to_string(),
        sender: a,
        body: body.to_owned(),
        client_msg_id: format!("b{i}"),
        server_time_ms: 1,
        traceparent: String::new(),
    }
}

/// Runs the benchmark once.
pub async fn run_bench(o: BenchOptions) -> Result<BenchReport> {
    let metrics = Arc::new(Metrics::new());
    let cfg = DatabaseConfig {
        max_connections: o.writer_tasks + 2,
        ..DatabaseConfig::default()
    };
    let db = Db::connect(&o.database_url, &cfg, metrics.clone())?;
    db.migrate().await?;
    let body = "x".repeat(o.body_bytes);
    let settings = WriterSettings {
        batch_max: o.batch_max,
        linger: Duration::from_millis(2),
        max_backoff: Duration::from_secs(1),
        max_body_bytes: o.body_bytes.max(1),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let hub = Hub::default();
    let parts_of = |t: u32| -> Vec<u32> { (0..o.partitions).filter(|p| p % o.writer_tasks == t).collect() };

    let amqp = match &o.queue {
        BenchQueue::Amqp { url, prefix } => Some(AmqpSettings {
            url: url.clone(),
            prefix: prefix.clone(),
            partitions: o.partitions,
            prefetch: (o.batch_max * 2).min(u16::MAX as usize) as u16,
            max_body_bytes: o.body_bytes.max(1),
            max_backoff: Duration::from_secs(1),
            connection_name: format!("confab-bench {prefix}"),
            ca_file: None,
        }),
        BenchQueue::Embedded { .. } => None,
    };
    let producers: Vec<Arc<dyn ErasedProducer>> = match (&o.queue, &amqp) {
        (BenchQueue::Embedded { dir, engine }, _) => {
            let options = OpenOptions {
                engine: *engine,
                ..OpenOptions::default()
            };
            let q = EmbeddedQueue::open_with(dir, o.partitions, o.body_bytes.max(1), &options)?;
            for t in 0..o.writer_tasks {
                tokio::spawn(run_writer(
                    q.consumer(parts_of(t)),
                    db.clone(),
                    hub.clone(),
                    settings.clone(),
                    stop.clone(),
                ));
            }
            vec![Arc::new(q)]
        }
        (_, Some(s)) => {
            for t in 0..o.writer_tasks {
                let c = AmqpConsumer::start(s.clone(), parts_of(t));
                tokio::spawn(run_writer(
                    c,
                    db.clone(),
                    hub.clone(),
                    settings.clone(),
                    stop.clone(),
                ));
            }
            // One producer: it coalesces concurrent calls.
            vec![Arc::new(AmqpProducer::connect(s.clone()).await?)]
        }
        _ => return Err(Error::Internal("bench: queue settings".into())),
    };

    let start = Instant::now();
    let mut tasks = Vec::new();
    let per = o.messages.div_ceil(o.producers as u64);
    for p in 0..o.producers as u64 {
        let producer = producers[p as usize % producers.len()].clone();
        let (o2, body) = (o.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let (from, to) = (p * per, ((p + 1) * per).min(o2.messages));
            let mut i = from;
            while i < to {
                let end = (i + o2.enqueue_batch as u64).min(to);
                let msgs: Vec<QueuedMessage> = (i..end).map(|k| message(k, &o2, &body)).collect();
                producer.enqueue_erased(msgs).await?;
                i = end;
            }
            Ok::<(), Error>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| Error::Internal(format!("enqueuer: {e}")))??;
    }
    let enqueue_secs = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    while metrics.writer_messages.get() < o.messages {
        if Instant::now() > deadline {
            return Err(Error::Internal(
                "bench: writers did not finish in 10 minutes".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let end_to_end_secs = start.elapsed().as_secs_f64();
    stop.cancel();
    if let Some(s) = &amqp {
        delete_queues(s).await;
    }
    let raw_insert_per_sec = raw_insert(&db, &o, &body).await?;
    db.close().await;
    Ok(BenchReport {
        messages: o.messages,
        enqueue_secs,
        end_to_end_secs,
        end_to_end_per_sec: o.messages as f64 / end_to_end_secs,
        raw_insert_per_sec,
    })
}

/// A table `name` shaped like the messages table (its columns, primary key
/// and per-conversation sequence index), for the references to write into.
fn reference_table(name: &str) -> [String; 2] {
    [
        format!(
            "CREATE TABLE {name} (message_id BIGINT NOT NULL PRIMARY KEY, \
             conversation_id VARCHAR(64) NOT NULL, seq BIGINT NOT NULL, sender_id BIGINT NOT NULL, \
             body TEXT NOT NULL, client_msg_id VARCHAR(64) NOT NULL, server_time BIGINT NOT NULL)"
        ),
        format!("CREATE UNIQUE INDEX {name}_cs ON {name} (conversation_id, seq)"),
    ]
}

/// The reference: the same rows into a copy of the messages table by a plain
/// multi-row INSERT, 1000 rows per statement and transaction.
async fn raw_insert(db: &Db, o: &BenchOptions, body: &str) -> Result<f64> {
    let pool = db.pool();
    for statement in reference_table("messages_raw") {
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(pool).await?;
    }
    let start = Instant::now();
    let mut i = 0;
    while i < o.messages {
        let end = (i + 1000).min(o.messages);
        let mut sql = String::from(
            "INSERT INTO messages_raw (message_id, conversation_id, seq, sender_id, body, \
             client_msg_id, server_time) VALUES ",
        );
        let mut params = Params::new(db.backend());
        for k in 0..(end - i) {
            if k > 0 {
                sql.push_str(", ");
            }
            params.tuple(&mut sql, 7);
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for k in i..end {
            let m = message(k, o, body);
            q = q
                .bind(m.message_id as i64)
                .bind(m.conversation_id)
                .bind(k as i64)
                .bind(m.sender as i64)
                .bind(m.body)
                .bind(m.client_msg_id)
                .bind(m.server_time_ms);
        }
        let mut tx = pool.begin().await?;
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        i = end;
    }
    let rate = o.messages as f64 / start.elapsed().as_secs_f64();
    sqlx::query("DROP TABLE messages_raw").execute(pool).await?;
    Ok(rate)
}

/// PostgreSQL's bulk path, the peer persist is measured against: the same
/// rows (as [`message`] makes them for this run) into a table shaped like
/// the messages table, by one `COPY ... FROM STDIN` in text format, sent
/// in chunks of 10,000 rows; rows/s until COPY returned (committed: it is
/// its own transaction). `url` names a PostgreSQL database.
pub async fn copy_reference(url: &str, o: &BenchOptions) -> Result<f64> {
    use sqlx::Connection;
    let sql = |e: sqlx::Error| Error::Internal(format!("COPY reference: {e}"));
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(sql)?;
    for statement in reference_table("messages_copy") {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .map_err(sql)?;
    }
    let body = "x".repeat(o.body_bytes);
    let start = Instant::now();
    let mut copy = conn
        .copy_in_raw(
            "COPY messages_copy (message_id, conversation_id, seq, sender_id, body, \
             client_msg_id, server_time) FROM STDIN",
        )
        .await
        .map_err(sql)?;
    let mut chunk = String::new();
    for k in 0..o.messages {
        let m = message(k, o, &body);
        copy_row(&mut chunk, &m, k);
        if (k + 1) % 10_000 == 0 || k + 1 == o.messages {
            copy.send(std::mem::take(&mut chunk).into_bytes())
                .await
                .map_err(sql)?;
        }
    }
    let rows = copy.finish().await.map_err(sql)?;
    let rate = rows as f64 / start.elapsed().as_secs_f64();
    if rows != o.messages {
        return Err(Error::Internal(format!(
            "COPY reference: {rows} rows copied of {}",
            o.messages
        )));
    }
    sqlx::query("DROP TABLE messages_copy")
        .execute(&mut conn)
        .await
        .map_err(sql)?;
    conn.close().await.map_err(sql)?;
    Ok(rate)
}

/// One row of COPY's text format: tab-separated, the text fields escaped
/// (backslash, tab, newline, carriage return).
fn copy_row(out: &mut String, m: &QueuedMessage, seq: u64) {
    use std::fmt::Write;
    let _ = write!(out, "{}\t", m.message_id);
    copy_text(out, &m.conversation_id);
    let _ = write!(out, "\t{seq}\t{}\t", m.sender);
    copy_text(out, &m.body);
    out.push('\t');
    copy_text(out, &m.client_msg_id);
    let _ = writeln!(out, "\t{}", m.server_time_ms);
}

fn copy_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// `Producer` is not object-safe (async fn in trait); the bench boxes it.
trait ErasedProducer: Send + Sync {
    fn enqueue_erased(
        &self,
        msgs: Vec<QueuedMessage>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>>;
}

impl<P: Producer> ErasedProducer for P {
    fn enqueue_erased(
        &self,
        msgs: Vec<QueuedMessage>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>> {
        Box::pin(async move { Ok(self.enqueue(&msgs).await?) })
    }
}
