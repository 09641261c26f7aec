//! Test fixtures: a fresh database per test (a temp SQLite file, or a new
//! PostgreSQL or MariaDB database that is dropped afterwards), service
//! availability checks (skip loudly, or fail when CI=true).

use std::sync::Arc;
use std::time::Duration;

use confab_persist::config::DatabaseConfig;
use confab_persist::db::Db;
use confab_persist::metrics::Metrics;
pub use confab_testkit::eventually;
use sqlx::{AnyConnection, Connection};

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

/// A database server on which a test makes a fresh database of its own.
#[derive(Clone, Copy)]
pub struct Server {
    name: &'static str,
    /// An existing database to connect to for CREATE and DROP.
    admin_url: &'static str,
    /// The server's URL without a database.
    base_url: &'static str,
    /// How DROP DATABASE ends its connections.
    drop_tail: &'static str,
}

pub const POSTGRES: Server = Server {
    name: "PostgreSQL",
    admin_url: PG_ADMIN_URL,
    base_url: "postgres://postgres@127.0.0.1:5432",
    drop_tail: " WITH (FORCE)",
};

pub const MARIADB: Server = Server {
    name: "MariaDB",
    admin_url: MYSQL_ADMIN_URL,
    base_url: "mysql://root@127.0.0.1:3306",
    drop_tail: "",
};

impl Server {
    /// Creates a fresh database and returns its name and URL; None when the
    /// server is unavailable (and we are not under CI).
    pub async fn create(self) -> Option<(String, String)> {
        sqlx::any::install_default_drivers();
        let conn = tokio::time::timeout(Duration::from_secs(5), AnyConnection::connect(self.admin_url)).await;
        let mut conn = match conn {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                missing(self.name, &e.to_string());
                return None;
            }
            Err(_) => {
                missing(self.name, "connect timed out");
                return None;
            }
        };
        let name = unique("confab_t");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create database");
        let _ = conn.close().await;
        let url = format!("{}/{name}", self.base_url);
        Some((name, url))
    }

    /// Drops a database made by [`Server::create`] (from any context).
    pub fn drop_database(self, name: String) {
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = AnyConnection::connect(self.admin_url).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name}{}", self.drop_tail);
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// Creates a fresh PostgreSQL database and returns its URL.
pub async fn create_pg_database() -> Option<String> {
    POSTGRES.create().await.map(|(_, url)| url)
}

/// A database for one test; dropped (PostgreSQL, MariaDB) or deleted
/// (SQLite) when this value goes away.
pub struct TestDb {
    pub db: Db,
    on_server: Option<(Server, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// None when the service is unavailable (and we are not under CI).
    pub async fn new(kind: Kind) -> Option<Self> {
        match kind {
            Kind::Sqlite => Some(Self::sqlite().await),
            Kind::Postgres => Self::on(POSTGRES).await,
            Kind::Mysql => Self::on(MARIADB).await,
        }
    }

    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = Db::connect(&url, &db_config(), Arc::new(Metrics::new())).expect("connect");
        db.migrate().await.expect("migrate");
        Self {
            db,
            on_server: None,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> Option<Self> {
        Self::on(POSTGRES).await
    }

    async fn on(server: Server) -> Option<Self> {
        let (name, url) = server.create().await?;
        let db = Db::connect(&url, &db_config(), Arc::new(Metrics::new())).expect("connect");
        db.migrate().await.expect("migrate");
        Some(Self {
            db,
            on_server: Some((server, name)),
            _dir: None,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((server, name)) = self.on_server.take() {
            // The pool first: MariaDB waits for open connections' locks.
            let db = self.db.clone();
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    rt.block_on(db.close());
                }
            })
            .join();
            server.drop_database(name);
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
