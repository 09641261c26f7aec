//! Prints the end-to-end write throughput (enqueue -> committed) and the
//! plain batched INSERT ceiling, for SQLite + embedded and, when reachable,
//! PostgreSQL + RabbitMQ.
//!
//! `cargo run --release -p confab-persist --example write_bench [MESSAGES]`
//! Environment: `BENCH_PG_ADMIN` (default postgres://postgres@127.0.0.1:5432/test),
//! `AMQP_URL` (default amqp://guest:guest@127.0.0.1:5672/%2f).

use confab_persist::bench::{BenchOptions, BenchQueue, BenchReport, run_bench};
use sqlx::Connection;

fn print(name: &str, r: &BenchReport) {
    println!(
        "{name:<24} {:>8} msgs  enqueue {:>6.2}s  end-to-end {:>6.2}s = {:>8.0} msg/s   raw INSERT ceiling {:>8.0} rows/s",
        r.messages, r.enqueue_secs, r.end_to_end_secs, r.end_to_end_per_sec, r.raw_insert_per_sec
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let messages: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir()?;
    let sqlite = BenchOptions {
        database_url: format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display()),
        queue: BenchQueue::Embedded {
            dir: dir.path().join("queue"),
        },
        messages,
        ..BenchOptions::default()
    };
    print("sqlite + embedded", &run_bench(sqlite).await?);

    let admin =
        std::env::var("BENCH_PG_ADMIN").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let amqp = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await else {
        println!("postgres + rabbitmq       skipped: PostgreSQL unreachable at {admin}");
        return Ok(());
    };
    let name = format!("confab_bench_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap_or(admin.clone());
    let pg = BenchOptions {
        database_url: format!("{base}/{name}"),
        queue: BenchQueue::Amqp {
            url: amqp,
            prefix: name.replace('_', "."),
        },
        messages,
        ..BenchOptions::default()
    };
    let r = run_bench(pg).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    print("postgres + rabbitmq", &r?);
    Ok(())
}
