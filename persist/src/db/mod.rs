//! The data-access layer: one pool (SQLite, PostgreSQL or MySQL/MariaDB
//! through sqlx's `Any` driver, runtime-checked queries), the schema
//! migrations (one set per engine family), and one module per area (users,
//! friends, groups, history and read marks, recalls, the writer's batch
//! insert). Fixed SQL uses `$n` placeholders, which SQLite and PostgreSQL
//! share and [`dialect`] rewrites for MySQL; long generated statements use
//! [`Params`], which writes `?` for SQLite (sqlx binds `$n` in quadratic
//! time there) and MySQL, and `$n` for PostgreSQL. TLS to PostgreSQL is
//! what the URL asks for ([`tls`]).

mod dialect;
pub mod friends;
pub mod groups;
pub mod history;
pub mod invites;
mod messages;
pub mod recall;
pub mod tls;
pub mod users;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, SqlSafeStr, Transaction};

pub use confab_queue::NewMessage;
pub use messages::{BatchOutcome, WrittenMessage};

use crate::config::{DatabaseConfig, LimitsConfig};
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Which engine the pool talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// MySQL or MariaDB (`mysql://` or `mariadb://` URLs).
    Mysql,
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    metrics: Arc<Metrics>,
    argon2_memory_kib: u32,
    tls: tls::SqlTls,
    acquire_timeout: Duration,
    hashes: crate::password::Hashes,
    limits: LimitsConfig,
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (
        2,
        "group invites",
        include_str!("../../migrations/0002_group_invites.sql"),
    ),
    (
        3,
        "commit order and client ids",
        include_str!("../../migrations/0003_commit_order_and_client_ids.sql"),
    ),
    (
        4,
        "reads and recalls",
        include_str!("../../migrations/0004_reads_and_recalls.sql"),
    ),
];

/// MySQL/MariaDB: the same schema, versions and meaning, in its grammar
/// (no partial indexes; binary collation, so names and keys compare as on
/// the other engines).
const MYSQL_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/mysql/0001_init.sql")),
    (
        2,
        "group invites",
        include_str!("../../migrations/mysql/0002_group_invites.sql"),
    ),
    (
        3,
        "commit order and client ids",
        include_str!("../../migrations/mysql/0003_commit_order_and_client_ids.sql"),
    ),
    (
        4,
        "reads and recalls",
        include_str!("../../migrations/mysql/0004_reads_and_recalls.sql"),
    ),
];

fn migrator(backend: Backend) -> Migrator {
    let set = match backend {
        Backend::Mysql => MYSQL_MIGRATIONS,
        Backend::Sqlite | Backend::Postgres => MIGRATIONS,
    };
    let migrations = set
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

/// What went wrong with TLS in a connection error, or `None` when the error
/// is no TLS failure (refused, timed out, bad password...).
pub fn tls_failure(e: &sqlx::Error) -> Option<String> {
    if let Some(failure) = confab_tls::handshake_failure(e) {
        return Some(failure.to_string());
    }
    match e {
        sqlx::Error::Tls(inner) => Some(match confab_tls::handshake_failure(inner.as_ref()) {
            Some(failure) => failure.to_string(),
            None => inner.to_string(),
        }),
        _ => None,
    }
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
            Backend::Sqlite | Backend::Mysql => sql.push('?'),
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
    /// persist starts (not ready) while the database is down. The URL's TLS
    /// parameters are checked here (see [`tls`]); [`Db::check_trust`] tries
    /// the handshake.
    pub fn connect(url: &str, cfg: &DatabaseConfig, metrics: Arc<Metrics>) -> Result<Self> {
        install_default_drivers();
        let tls = tls::SqlTls::of(url).map_err(Error::Tls)?;
        tls.check_files().map_err(Error::Tls)?;
        let url = &tls::effective_url(url, &tls);
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres") {
            Backend::Postgres
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            Backend::Mysql
        } else {
            return Err(Error::Invalid(format!("unsupported database url {url:?}")));
        };
        let mut opts = AnyPoolOptions::new()
            .max_connections(cfg.max_connections)
            .min_connections(cfg.min_connections)
            .acquire_timeout(Duration::from_millis(cfg.acquire_timeout_ms));
        // LIKE (the user search) is case-sensitive everywhere: SQLite's is
        // not by default.
        if backend == Backend::Sqlite {
            opts = opts.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                         PRAGMA case_sensitive_like = ON;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        if backend == Backend::Mysql {
            // Read committed, as on PostgreSQL, which the statements are
            // written for: a sync that read the commit counter sees every
            // commit stamped at or below it. (Strict types are the server's
            // default; string comparison is binary by the schema.)
            opts = opts.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = opts.connect_lazy(url).map_err(Error::from)?;
        metrics.db_pool_max.set(i64::from(cfg.max_connections));
        metrics.tls_mode.with_label_values(&["database"]).set(tls.gauge());
        let hashes = crate::password::Hashes::new(
            cfg.max_concurrent_hashes,
            Duration::from_millis(cfg.hash_queue_ms),
            metrics.clone(),
        );
        Ok(Self {
            pool,
            backend,
            metrics,
            argon2_memory_kib: cfg.argon2_memory_kib,
            tls,
            acquire_timeout: Duration::from_millis(cfg.acquire_timeout_ms),
            hashes,
            limits: LimitsConfig::default(),
        })
    }

    /// When the URL asks for TLS (`sslmode=require`, `verify-ca`,
    /// `verify-full`), connects once now, so that a server whose certificate
    /// does not verify, or that offers no TLS, stops the process at start
    /// with that message rather than leaving it unready and retrying for
    /// ever. A server that is down (or does not answer within the acquire
    /// timeout) is not an error here: the pool connects later, as for a
    /// plain URL, and each failed attempt says why in the log.
    pub async fn check_trust(&self) -> Result<()> {
        if !self.tls.required() {
            return Ok(());
        }
        let options = self.pool.connect_options();
        let attempt =
            tokio::time::timeout(self.acquire_timeout, AnyConnection::connect_with(&*options)).await;
        match attempt {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                tracing::info!(sslmode = self.tls.mode.as_deref(), "database connection is TLS");
                Ok(())
            }
            Ok(Err(e)) => match tls_failure(&e) {
                Some(why) => Err(Error::Tls(format!(
                    "database (sslmode={}): {why}",
                    self.tls.mode.as_deref().unwrap_or_default()
                ))),
                None => {
                    tracing::warn!(error = %e, "database not reachable at start; TLS is checked when it is");
                    Ok(())
                }
            },
            Err(_) => {
                tracing::warn!("database did not answer at start; TLS is checked when it does");
                Ok(())
            }
        }
    }

    /// The same database with these caps (the defaults otherwise).
    pub fn with_limits(mut self, limits: LimitsConfig) -> Self {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> &LimitsConfig {
        &self.limits
    }

    /// A refusal by a cap, counted.
    pub(crate) fn limit_reached(&self, limit: &'static str, what: String, max: u32) -> Error {
        self.metrics.limit_refusals.with_label_values(&[limit]).inc();
        Error::LimitReached { what, limit: max }
    }

    /// Brings the schema up to date (idempotent).
    pub async fn migrate(&self) -> Result<()> {
        migrator(self.backend).run(&self.pool).await?;
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
            Backend::Postgres | Backend::Mysql => self.pool.begin().await?,
        };
        Ok(tx)
    }

    /// Locks a row inside `tx` until it ends (PostgreSQL; SQLite's write
    /// transaction holds the whole database already), so that a count and
    /// the insert it allows are one step: two concurrent inserts under the
    /// same row wait for each other. `table` is a literal with an `id` column.
    pub(crate) async fn lock_row(
        &self,
        tx: &mut Transaction<'static, Any>,
        table: &'static str,
        id: i64,
    ) -> Result<()> {
        let sql = format!("UPDATE {table} SET id = id WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(dialect::owned(self.backend, sql)))
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Takes the next id of `counter` inside `tx` (the row stays locked
    /// until `tx` ends).
    pub(crate) async fn next_id(&self, tx: &mut Transaction<'static, Any>, counter: &str) -> Result<i64> {
        if self.backend == Backend::Mysql {
            // No UPDATE ... RETURNING: the update locks the row, the read in
            // the same transaction sees its own write.
            sqlx::query("UPDATE id_counters SET next_id = next_id + 1 WHERE name = ?")
                .bind(counter.to_owned())
                .execute(&mut **tx)
                .await?;
            let (id,): (i64,) = sqlx::query_as("SELECT next_id - 1 FROM id_counters WHERE name = ?")
                .bind(counter.to_owned())
                .fetch_one(&mut **tx)
                .await?;
            return Ok(id);
        }
        let (id,): (i64,) = sqlx::query_as(
            "UPDATE id_counters SET next_id = next_id + 1 WHERE name = $1 RETURNING next_id - 1",
        )
        .bind(counter.to_owned())
        .fetch_one(&mut **tx)
        .await?;
        Ok(id)
    }
}
