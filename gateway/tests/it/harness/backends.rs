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
