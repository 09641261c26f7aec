//! The data-access layer: one pool (SQLite or PostgreSQL through sqlx's
//! `Any` driver, runtime-checked queries), the schema migrations, and one
//! module per area (users, friends, groups, history, the writer's batch
//! insert). Fixed SQL uses `$n` placeholders, which SQLite and PostgreSQL
//! share; long generated statements use [`Params`], which writes `?` for
//! SQLite (sqlx binds `$n` in quadratic time there) and `$n` for PostgreSQL.

pub mod friends;
pub mod groups;
pub mod history;
mod messages;
pub mod users;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor, SqlSafeStr, Transaction};

pub use confab_queue::NewMessage;
pub use messages::{BatchOutcome, WrittenMessage};

use crate::config::DatabaseConfig;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Which engine the pool talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    metrics: Arc<Metrics>,
    argon2_memory_kib: u32,
}

const MIGRATIONS: &[(i64, &str, &str)] = &[(1, "init", include_str!("../../migrations/0001_init.sql"))];

fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, desc, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*desc),
                MigrationType::Simple,
                sqlx::AssertSqlSafe(*sql).into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Writes the placeholders of a generated statement in text order: `?` for
/// SQLite, `$1, $2, ...` for PostgreSQL. Bind in the same order.
pub struct Params {
    backend: Backend,
    n: usize,
}

impl Params {
    pub fn new(backend: Backend) -> Self {
        Self { backend, n: 0 }
    }

    /// Appends one placeholder.
    pub fn push(&mut self, sql: &mut String) {
        self.n += 1;
        match self.backend {
            Backend::Sqlite => sql.push('?'),
            Backend::Postgres => {
                sql.push('$');
                sql.push_str(&self.n.to_string());
            }
        }
    }

    /// Appends `(p, p, ..., p)` with `width` placeholders.
    pub fn tuple(&mut self, sql: &mut String, width: usize) {
        sql.push('(');
        self.list(sql, width);
        sql.push(')');
    }

    /// Appends `p, p, ..., p` (`n` placeholders).
    pub fn list(&mut self, sql: &mut String, n: usize) {
        for i in 0..n {
            if i > 0 {
                sql.push_str(", ");
            }
            self.push(sql);
        }
    }
}

/// u64 id -> SQL BIGINT, rejecting 0 and values >= 2^63.
pub(crate) fn sql_id(what: &str, v: u64) -> Result<i64> {
    if v == 0 || v > i64::MAX as u64 {
        return Err(Error::Invalid(format!("{what} id {v} is out of range")));
    }
    Ok(v as i64)
}

impl Db {
    /// Opens a pool lazily: no connection is made until the first query, so
    /// persist starts (not ready) while the database is down.
    pub fn connect(url: &str, cfg: &DatabaseConfig, metrics: Arc<Metrics>) -> Result<Self> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            return Err(Error::Invalid(format!("unsupported database url {url:?}")));
        };
        let mut opts = AnyPoolOptions::new()
            .max_connections(cfg.max_connections)
            .min_connections(cfg.min_connections)
            .acquire_timeout(Duration::from_millis(cfg.acquire_timeout_ms));
        if backend == Backend::Sqlite {
            opts = opts.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = opts.connect_lazy(url).map_err(Error::from)?;
        metrics.db_pool_max.set(i64::from(cfg.max_connections));
        Ok(Self {
            pool,
            backend,
            metrics,
            argon2_memory_kib: cfg.argon2_memory_kib,
        })
    }

    /// Brings the schema up to date (idempotent).
    pub async fn migrate(&self) -> Result<()> {
        migrator().run(&self.pool).await?;
        Ok(())
    }

    /// Cheap liveness query.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Copies the pool's state into the gauges (called on scrape).
    pub fn update_pool_gauges(&self) {
        self.metrics.db_pool_size.set(i64::from(self.pool.size()));
        self.metrics.db_pool_idle.set(self.pool.num_idle() as i64);
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction. SQLite takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so a read-then-write never fails to upgrade.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(tx)
    }

    /// Takes the next id of `counter` inside `tx`.
    pub(crate) async fn next_id(tx: &mut Transaction<'static, Any>, counter: &str) -> Result<i64> {
        let (id,): (i64,) = sqlx::query_as(
            "UPDATE id_counters SET next_id = next_id + 1 WHERE name = $1 RETURNING next_id - 1",
        )
        .bind(counter.to_owned())
        .fetch_one(&mut **tx)
        .await?;
        Ok(id)
    }
}
