//! The production backends on this machine for end-to-end tests: a fresh
//! PostgreSQL database and RabbitMQ queue prefix per test, dropped at the end.

use std::process::Command;
use std::time::Duration;

pub const PG: &str = "postgres://postgres@127.0.0.1:5432";
pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The queue's partitions (persist's and the gateways' default).
pub const PARTITIONS: u32 = 16;

/// psql against `db`: the rows of `sql`, fields separated by `|`; `None`
/// when psql is missing or the statement failed.
pub fn psql(db: &str, sql: &str) -> Option<String> {
    let out = Command::new("psql")
        .args([&format!("{PG}/{db}"), "-qAt", "-F", "|", "-c", sql])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A fresh PostgreSQL database and queue prefix, dropped at the end (after
/// the cluster: a live consumer would declare the queues again).
pub struct Backends {
    pub db: String,
    pub prefix: String,
}

impl Backends {
    /// A new database named `db` and the queue prefix `prefix`; `None`
    /// when PostgreSQL cannot make it.
    pub fn create(db: String, prefix: String) -> Option<Self> {
        psql("test", &format!("CREATE DATABASE {db}"))?;
        Some(Self { db, prefix })
    }

    /// The database's URL.
    pub fn url(&self) -> String {
        format!("{PG}/{}", self.db)
    }

    /// A persist process's environment for these backends (`url` is
    /// [`Backends::url`]).
    pub fn persist_env<'a>(&'a self, url: &'a str) -> [(&'static str, &'a str); 3] {
        [
            ("DATABASE_URL", url),
            ("AMQP_URL", AMQP),
            ("CONFAB_QUEUE__PREFIX", self.prefix.as_str()),
        ]
    }

    /// A gateway's environment: it publishes straight to the broker.
    pub fn gateway_env(&self) -> [(&'static str, &str); 3] {
        [
            ("CONFAB_QUEUE__BACKEND", "amqp"),
            ("CONFAB_QUEUE__AMQP_URL", AMQP),
            ("CONFAB_QUEUE__PREFIX", self.prefix.as_str()),
        ]
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        psql(
            "test",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db),
        );
        let settings = confab_queue::amqp::AmqpSettings {
            url: AMQP.into(),
            prefix: self.prefix.clone(),
            partitions: PARTITIONS,
            prefetch: 1,
            max_body_bytes: 0,
            max_backoff: Duration::from_millis(100),
            connection_name: String::new(),
            ca_file: None,
        };
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(confab_queue::amqp::delete_queues(&settings));
            }
        })
        .join();
    }
}

/// MariaDB at 127.0.0.1:3306 (root, no password).
pub const MYSQL: &str = "mysql://root@127.0.0.1:3306";

/// The `mariadb` client against the test server: whether `sql` ran.
pub fn mariadb(sql: &str) -> bool {
    Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e", sql])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A fresh MariaDB database, dropped at the end.
pub struct MariaDb(pub String);

impl MariaDb {
    /// A new database named `name`; `None` when MariaDB cannot make it.
    pub fn create(name: String) -> Option<Self> {
        mariadb(&format!("CREATE DATABASE {name}")).then_some(Self(name))
    }

    pub fn url(&self) -> String {
        format!("{MYSQL}/{}", self.0)
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        mariadb(&format!("DROP DATABASE IF EXISTS {}", self.0));
    }
}

/// What every cluster of a test run stores into, from `CONFAB_IT_BACKEND`:
/// `embedded` (or unset: SQLite and the embedded queue), `pg-amqp` (a fresh
/// PostgreSQL database per cluster, RabbitMQ with the gateways publishing
/// straight to it) or `mariadb` (a fresh MariaDB database, the embedded
/// queue). `make test` runs the suite on each.
pub enum SuiteBackend {
    Embedded,
    PgAmqp(Backends),
    MariaDb(MariaDb),
}

impl SuiteBackend {
    /// The run's backend, made fresh for one cluster. A backend asked for
    /// that cannot be made fails the test: the run was asked to use it.
    pub fn for_cluster() -> Self {
        let which = std::env::var("CONFAB_IT_BACKEND").unwrap_or_default();
        match which.as_str() {
            "" | "embedded" => Self::Embedded,
            "pg-amqp" => {
                let b = Backends::create(
                    confab_testkit::unique("confab_it"),
                    confab_testkit::unique("confab.it"),
                )
                .expect("CONFAB_IT_BACKEND=pg-amqp: psql could not create a database at 127.0.0.1:5432");
                Self::PgAmqp(b)
            }
            "mariadb" => Self::MariaDb(
                MariaDb::create(confab_testkit::unique("confab_it"))
                    .expect("CONFAB_IT_BACKEND=mariadb: could not create a database at 127.0.0.1:3306"),
            ),
            other => panic!("CONFAB_IT_BACKEND={other:?}: expected embedded, pg-amqp or mariadb"),
        }
    }

    /// A persist process's environment for it.
    pub fn persist_env(&self) -> Vec<(String, String)> {
        let own = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        match self {
            Self::Embedded => Vec::new(),
            Self::PgAmqp(b) => own(&b.persist_env(&b.url())),
            Self::MariaDb(m) => own(&[("DATABASE_URL", &m.url())]),
        }
    }

    /// A gateway's environment for it.
    pub fn gateway_env(&self) -> Vec<(String, String)> {
        match self {
            Self::PgAmqp(b) => b
                .gateway_env()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _ => Vec::new(),
        }
    }
}
