//! Prints the end-to-end write throughput (enqueue -> committed) and, as a
//! reference, the same rows by a plain batched INSERT: for SQLite + embedded
//! and, when reachable, PostgreSQL + RabbitMQ and MariaDB + embedded.
//!
//! `cargo run --release -p confab-persist --example write_bench [MESSAGES]`
//! Environment: `BENCH_ONLY=sqlite|pg|mysql`; the embedded queue's engine as
//! persist reads it (`CONFAB_QUEUE_ENGINE=rocksdb|log`, or
//! `CONFAB_QUEUE__EMBEDDED_ENGINE`; default rocksdb); `BENCH_PRODUCERS`, `BENCH_BATCH`,
//! `BENCH_PARTITIONS`, `BENCH_TASKS`, `BENCH_CONVERSATIONS` (see
//! `BenchOptions`); `BENCH_PG_ADMIN` (default
//! postgres://postgres@127.0.0.1:5432/test, a fresh database is made next to
//! it and dropped), `BENCH_MYSQL_ADMIN` (default
//! mysql://root@127.0.0.1:3306/test, the same), `AMQP_URL` (default
//! amqp://guest:guest@127.0.0.1:5672/%2f); `BENCH_JSON=FILE` also writes
//! the figures as JSON (scripts/bench.sh: target-bench/persist-write.json).
//!
//! On PostgreSQL it also measures the database's own bulk path on the same
//! rows, one `COPY ... FROM STDIN` (the peer `make bench` compares with).

mod bench;

use bench::{BenchOptions, BenchQueue, BenchReport, copy_reference, run_bench};
use confab_queue::embedded::Engine;
use sqlx::Connection;

fn print(name: &str, r: &BenchReport, copy: Option<f64>, summary: &mut Vec<serde_json::Value>) {
    println!(
        "{name:<26} {:>8} msgs  enqueue {:>6.2}s  end-to-end {:>6.2}s = {:>7.0} msg/s  plain INSERT, 1,000 rows per transaction: {:>7.0} rows/s",
        r.messages, r.enqueue_secs, r.end_to_end_secs, r.end_to_end_per_sec, r.raw_insert_per_sec
    );
    if let Some(c) = copy {
        println!(
            "{:<26} the same rows by one COPY FROM STDIN: {c:>7.0} rows/s (persist at {:.2}x of it)",
            "",
            r.end_to_end_per_sec / c
        );
    }
    summary.push(serde_json::json!({
        "path": name,
        "messages": r.messages,
        "enqueue_secs": r.enqueue_secs,
        "end_to_end_secs": r.end_to_end_secs,
        "end_to_end_per_s": r.end_to_end_per_sec,
        "insert_rows_per_s": r.raw_insert_per_sec,
        "copy_rows_per_s": copy,
    }));
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn options(messages: u64, database_url: String, queue: BenchQueue) -> BenchOptions {
    let d = BenchOptions::default();
    BenchOptions {
        database_url,
        queue,
        messages,
        producers: env_or("BENCH_PRODUCERS", d.producers),
        enqueue_batch: env_or("BENCH_BATCH", d.enqueue_batch),
        partitions: env_or("BENCH_PARTITIONS", d.partitions),
        writer_tasks: env_or("BENCH_TASKS", d.writer_tasks),
        conversations: env_or("BENCH_CONVERSATIONS", d.conversations),
        ..d
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let messages: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    // Another value (scripts/bench.sh's own BENCH_ONLY) runs them all.
    let only: String = env_or("BENCH_ONLY", String::new());
    let only = if ["sqlite", "pg", "mysql"].contains(&only.as_str()) {
        only
    } else {
        String::new()
    };
    // The engine persist would open, from the same configuration variables.
    let engine: Engine = confab_persist::config::Config::load(None)?
        .queue
        .embedded_engine
        .into();
    let mut summary = Vec::new();
    if only.is_empty() || only == "sqlite" {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
        let queue = BenchQueue::Embedded {
            dir: dir.path().join("queue"),
            engine,
        };
        print(
            &format!("sqlite + embedded {engine}"),
            &run_bench(options(messages, url, queue)).await?,
            None,
            &mut summary,
        );
    }
    if only.is_empty() || only == "pg" {
        postgres(messages, &mut summary).await?;
    }
    if only.is_empty() || only == "mysql" {
        mysql(messages, engine, &mut summary).await?;
    }
    if let Ok(path) = std::env::var("BENCH_JSON")
        && !path.is_empty()
    {
        let json = serde_json::json!({ "runs": summary });
        std::fs::write(&path, format!("{json:#}\n"))?;
    }
    Ok(())
}

/// The URL of a database `name` on the server of `admin`.
fn next_to(admin: &str, name: &str) -> String {
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    format!("{base}/{name}")
}

async fn postgres(messages: u64, summary: &mut Vec<serde_json::Value>) -> anyhow::Result<()> {
    let admin = env_or(
        "BENCH_PG_ADMIN",
        "postgres://postgres@127.0.0.1:5432/test".to_owned(),
    );
    let amqp = env_or("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await else {
        println!("postgres + rabbitmq        skipped: PostgreSQL unreachable at {admin}");
        return Ok(());
    };
    let name = format!("confab_bench_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let queue = BenchQueue::Amqp {
        url: amqp,
        prefix: name.replace('_', "."),
    };
    let url = next_to(&admin, &name);
    let o = options(messages, url.clone(), queue);
    let r = run_bench(o.clone()).await;
    // The same rows by PostgreSQL's bulk path, into the same database.
    let copy = match &r {
        Ok(_) => Some(copy_reference(&url, &o).await),
        Err(_) => None,
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    print("postgres + rabbitmq", &r?, copy.transpose()?, summary);
    Ok(())
}

async fn mysql(messages: u64, engine: Engine, summary: &mut Vec<serde_json::Value>) -> anyhow::Result<()> {
    let admin = env_or("BENCH_MYSQL_ADMIN", "mysql://root@127.0.0.1:3306/test".to_owned());
    let Ok(mut conn) = sqlx::MySqlConnection::connect(&admin).await else {
        println!("mariadb + embedded {engine:<7} skipped: MariaDB unreachable at {admin}");
        return Ok(());
    };
    let name = format!("confab_bench_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let dir = tempfile::tempdir()?;
    let queue = BenchQueue::Embedded {
        dir: dir.path().join("queue"),
        engine,
    };
    let r = run_bench(options(messages, next_to(&admin, &name), queue)).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
        .execute(&mut conn)
        .await?;
    print(&format!("mariadb + embedded {engine}"), &r?, None, summary);
    Ok(())
}
