//! Test fixtures: a fresh database per test (a temp SQLite file, or a new
//! PostgreSQL or MariaDB database that is dropped afterwards), service
//! availability checks (skip loudly, or fail when CI=true).

use std::sync::Arc;
use std::time::Duration;

use confab_persist::config::DatabaseConfig;
use confab_persist::db::Db;
use confab_persist::metrics::Metrics;
pub use confab_testkit::eventually;
use sqlx::Connection;

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const MYSQL_ADMIN_URL: &str = "mysql://root@127.0.0.1:3306/test";
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub use confab_testkit::{missing, unique};

pub fn db_config() -> DatabaseConfig {
    DatabaseConfig {
        max_connections: 8,
        min_connections: 0,
        acquire_timeout_ms: 3000,
        argon2_memory_kib: 64,
        ..DatabaseConfig::default()
    }
}

pub enum Kind {
    Sqlite,
    Postgres,
    Mysql,
}

/// A database for one test; dropped (PostgreSQL) or deleted (SQLite) when
/// this value goes away.
pub struct TestDb {
    pub db: Db,
    pg_name: Option<String>,
    mysql_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// None when the service is unavailable (and we are not under CI).
    pub async fn new(kind: Kind) -> Option<Self> {
        match kind {
            Kind::Sqlite => Some(Self::sqlite().await),
            Kind::Postgres => Self::postgres().await,
            Kind::Mysql => Self::mysql().await,
        }
    }

    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = Db::connect(&url, &db_config(), Arc::new(Metrics::new())).expect("connect");
        db.migrate().await.expect("migrate");
        Self {
            db,
            pg_name: None,
            mysql_name: None,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> Option<Self> {
        let url = create_pg_database().await?;
        let name = url.rsplit('/').next().unwrap_or_default().to_owned();
        let db = Db::connect(&url, &db_config(), Arc::new(Metrics::new())).expect("connect");
        db.migrate().await.expect("migrate");
        Some(Self {
            db,
            pg_name: Some(name),
            mysql_name: None,
            _dir: None,
        })
    }

    pub async fn mysql() -> Option<Self> {
        let url = create_mysql_database().await?;
        let name = url.rsplit('/').next().unwrap_or_default().to_owned();
        let db = Db::connect(&url, &db_config(), Arc::new(Metrics::new())).expect("connect");
        db.migrate().await.expect("migrate");
        Some(Self {
            db,
            pg_name: None,
            mysql_name: Some(name),
            _dir: None,
        })
    }
}

/// Creates a fresh MariaDB (MySQL) database and returns its URL.
pub async fn create_mysql_database() -> Option<String> {
    let conn = tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::MySqlConnection::connect(MYSQL_ADMIN_URL),
    )
    .await;
    let mut conn = match conn {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            missing("MariaDB", &e.to_string());
            return None;
        }
        Err(_) => {
            missing("MariaDB", "connect timed out");
            return None;
        }
    };
    let name = unique("confab_t");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let _ = conn.close().await;
    Some(format!("mysql://root@127.0.0.1:3306/{name}"))
}

/// Drops a database made by `create_mysql_database` (from any context).
pub fn drop_mysql_database(name: String) {
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async move {
            if let Ok(mut conn) = sqlx::MySqlConnection::connect(MYSQL_ADMIN_URL).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        });
    })
    .join();
}

/// Creates a fresh PostgreSQL database and returns its URL.
pub async fn create_pg_database() -> Option<String> {
    let conn = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(PG_ADMIN_URL)).await;
    let mut conn = match conn {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            missing("PostgreSQL", &e.to_string());
            return None;
        }
        Err(_) => {
            missing("PostgreSQL", "connect timed out");
            return None;
        }
    };
    let name = unique("confab_t");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let _ = conn.close().await;
    Some(format!("postgres://postgres@127.0.0.1:5432/{name}"))
}

/// Drops a database made by `create_pg_database` (from any context).
pub fn drop_pg_database(name: String) {
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async move {
            if let Ok(mut conn) = sqlx::PgConnection::connect(PG_ADMIN_URL).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await;
                let _ = conn.close().await;
            }
        });
    })
    .join();
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            drop_pg_database(name);
        }
        if let Some(name) = self.mysql_name.take() {
            // The pool first: MariaDB waits for open connections' locks.
            let db = self.db.clone();
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    rt.block_on(db.close());
                }
            })
            .join();
            drop_mysql_database(name);
        }
    }
}

/// Makes user `member` (created if missing) a member of group `group_id`
/// (created if missing, owned by `member`), straight in SQL: for queue
/// tests whose messages name fixed ids (the writer stores group messages of
/// members only).
pub async fn seed_group(db: &Db, group_id: u64, member: u64) {
    let (uid, gid) = (member as i64, group_id as i64);
    sqlx::query(
        "INSERT INTO users (id, name, password_hash, created_at) VALUES ($1, $2, 'x', 0) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(uid)
    .bind(format!("seeded{member}"))
    .execute(db.pool())
    .await
    .expect("seed user");
    sqlx::query(
        "INSERT INTO chat_groups (id, name, owner_id, created_at) VALUES ($1, 'seeded', $2, 0) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(gid)
    .bind(uid)
    .execute(db.pool())
    .await
    .expect("seed group");
    sqlx::query(
        "INSERT INTO group_members (group_id, user_id, role, joined_at) VALUES ($1, $2, 3, 0) \
         ON CONFLICT (group_id, user_id) DO NOTHING",
    )
    .bind(gid)
    .bind(uid)
    .execute(db.pool())
    .await
    .expect("seed member");
}

/// Someone who may read `conv`: the lower user of a pair, a member of a
/// group.
pub async fn reader_of(db: &Db, conv: &str) -> u64 {
    if let Some(rest) = conv.strip_prefix("d:") {
        return rest.split(':').next().and_then(|s| s.parse().ok()).expect("pair");
    }
    let gid: i64 = conv
        .strip_prefix("g:")
        .and_then(|s| s.parse().ok())
        .expect("group");
    let (uid,): (i64,) = sqlx::query_as("SELECT user_id FROM group_members WHERE group_id = $1 LIMIT 1")
        .bind(gid)
        .fetch_one(db.pool())
        .await
        .expect("a member of the group");
    uid as u64
}
