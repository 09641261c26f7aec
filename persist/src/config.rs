//! Typed configuration: defaults, TOML file, environment overrides
//! (`CONFAB_<SECTION>__<KEY>`, plus `DATABASE_URL`, `AMQP_URL` and
//! `CONFAB_QUEUE_ENGINE`), checks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use confab_tls::TlsFiles;
use serde::{Deserialize, Serialize};

use crate::error::Error;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub queue: QueueConfig,
    pub writer: WriterConfig,
    pub limits: LimitsConfig,
    /// Traces: an OTLP/gRPC endpoint (empty: off) and the sampling ratio.
    pub tracing: confab_common::trace::TraceConfig,
    /// Mutual TLS on the gRPC port: the cluster CA, this process'
    /// certificate (naming `confab://persist`) and key. Absent: plain and
    /// unauthenticated (a trusted network only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// gRPC (DataService + QueueService).
    pub listen: SocketAddr,
    /// HTTP: /metrics, /healthz, /readyz.
    pub http: SocketAddr,
    /// The SQLite file and the embedded queue live here.
    pub data_dir: PathBuf,
    /// How long in-flight work may take to finish on shutdown.
    pub shutdown_grace_ms: u64,
    /// Read your writes: how long a History or MessagesAfter that names a
    /// recent `min_message_id` may wait for the writer to store it.
    pub read_wait_ms: u64,
    /// This process's id among the persist processes (its `node` label in
    /// service discovery).
    pub id: u64,
    /// Routers to announce this process's metrics address to (any of the
    /// cluster's; the rest are found in its map): `GET /sd` on a router
    /// lists it for Prometheus. Empty: not announced.
    pub routers: Vec<String>,
    /// The host the routers' discovery hands Prometheus for this process
    /// when `http` binds every interface (e.g. `persist-1` in a container
    /// network); empty: the host of `listen`.
    pub advertise_host: String,
    /// The network zone this process runs in (a discovery label); empty
    /// for none.
    pub zone: String,
    /// Log lines as "text" or "json" (CONFAB_LOG_FORMAT and --log-format
    /// override it).
    pub log_format: confab_common::telemetry::LogFormat,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://...`, `postgres://...` or `mysql://...` (MySQL or
    /// MariaDB); empty: `{data_dir}/persist.db`.
    pub url: String,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout_ms: u64,
    /// argon2 memory cost in KiB (the OWASP minimum is 19456).
    pub argon2_memory_kib: u32,
    /// Password hashes (argon2, on the blocking pool) running at once;
    /// more wait for a place.
    pub max_concurrent_hashes: usize,
    /// How long a password hash may wait for a place before it is refused
    /// (RESOURCE_EXHAUSTED).
    pub hash_queue_ms: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    /// The embedded queue inside this process (on `embedded_engine`);
    /// gateways enqueue over gRPC.
    Embedded,
    /// RabbitMQ.
    Amqp,
}

/// Where the embedded queue keeps its entries (`confab_queue::embedded::Engine`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddedEngine {
    /// An append-only log of our own, in `{data_dir}/queue`.
    Log,
    /// RocksDB, in `{data_dir}/queue/rocksdb`.
    #[default]
    Rocksdb,
}

impl From<EmbeddedEngine> for confab_queue::embedded::Engine {
    fn from(e: EmbeddedEngine) -> Self {
        match e {
            EmbeddedEngine::Log => Self::Log,
            EmbeddedEngine::Rocksdb => Self::Rocksdb,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    pub backend: QueueBackend,
    /// The embedded queue's storage: `rocksdb` or `log`. Opening one over a
    /// directory where the other holds messages not yet written is refused.
    /// `CONFAB_QUEUE_ENGINE` sets it too, and the other services ignore that
    /// name (a gateway refuses `CONFAB_QUEUE__EMBEDDED_ENGINE`).
    pub embedded_engine: EmbeddedEngine,
    /// `amqp://...`, or `amqps://...` for TLS (verified against the system's
    /// roots and `amqp_ca`).
    pub amqp_url: String,
    /// PEM file of the CA that issued the broker's certificate, trusted
    /// besides the system's roots (`amqps://` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amqp_ca: Option<PathBuf>,
    /// Queue names: `{prefix}.p{n}` for the partitions, `{prefix}.dlq`.
    pub prefix: String,
    /// Fixed for the life of a deployment: a conversation's partition is
    /// hash(conversation id) mod partitions.
    pub partitions: u32,
    /// Unacknowledged deliveries per consumer (RabbitMQ basic.qos).
    pub prefetch: u16,
    /// Longest accepted message body, bytes.
    pub max_body_bytes: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WriterConfig {
    /// Run the writer in this process.
    pub enabled: bool,
    /// Parallel writer tasks; partitions are split between them.
    pub tasks: u32,
    /// Most messages in one transaction.
    pub batch_max: usize,
    /// How long to wait for a batch to fill once it has one message.
    pub linger_ms: u64,
    /// Retry backoff ceiling when the database is unreachable.
    pub max_backoff_ms: u64,
}

/// Caps on what one user or group may hold, enforced where the data is,
/// in the transaction of the insert.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Members of one group at most (the owner included).
    pub max_group_members: u32,
    /// Friend requests one user may have waiting for an answer at once.
    pub max_pending_friend_requests: u32,
    /// Group invitations one user may have waiting for an answer at once.
    pub max_pending_invites: u32,
    /// A resume token is refused this long after the login that made it.
    pub token_lifetime_ms: u64,
    /// Live resume tokens of one user at most: a login past it revokes the
    /// oldest.
    pub max_tokens_per_user: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_group_members: 2000,
            max_pending_friend_requests: 100,
            max_pending_invites: 100,
            token_lifetime_ms: 30 * 24 * 3600 * 1000,
            max_tokens_per_user: 20,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 7301).into(),
            http: ([127, 0, 0, 1], 9301).into(),
            data_dir: PathBuf::from("data/persist"),
            shutdown_grace_ms: 5000,
            read_wait_ms: 2000,
            id: 1,
            routers: Vec::new(),
            advertise_host: String::new(),
            zone: String::new(),
            log_format: Default::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 8,
            min_connections: 1,
            acquire_timeout_ms: 5000,
            argon2_memory_kib: 19456,
            max_concurrent_hashes: 4,
            hash_queue_ms: 1000,
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            backend: QueueBackend::Embedded,
            embedded_engine: EmbeddedEngine::default(),
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            amqp_ca: None,
            prefix: "confab.messages".into(),
            partitions: 16,
            prefetch: 2000,
            max_body_bytes: 4096,
        }
    }
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tasks: 2,
            batch_max: 1000,
            linger_ms: 2,
            max_backoff_ms: 2000,
        }
    }
}

impl Config {
    /// Defaults, then the TOML file (if any), then `DATABASE_URL` /
    /// `AMQP_URL` / `CONFAB_QUEUE_ENGINE`, then `CONFAB_<SECTION>__<KEY>`.
    pub fn load(file: Option<&Path>) -> Result<Self, Error> {
        let config: Config = confab_common::config::load_with(file, |mut layers| {
            if let Ok(url) = std::env::var("DATABASE_URL")
                && !url.is_empty()
            {
                layers = layers.merge(("database.url", url));
            }
            if let Ok(url) = std::env::var("AMQP_URL")
                && !url.is_empty()
            {
                layers = layers
                    .merge(("queue.amqp_url", url))
                    .merge(("queue.backend", "amqp"));
            }
            if let Ok(engine) = std::env::var("CONFAB_QUEUE_ENGINE")
                && !engine.is_empty()
            {
                layers = layers.merge(("queue.embedded_engine", engine));
            }
            layers
        })
        .map_err(|e| {
            Error::Invalid(match e {
                confab_common::Error::Config(invalid) => format!("config: {invalid}"),
                other => other.to_string(),
            })
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::Invalid(format!("config: {m}")));
        if let Err(m) = self.tracing.validate() {
            return Err(Error::Invalid(format!("config: {m}")));
        }
        let url = &self.database.url;
        let engines = ["sqlite:", "postgres", "mysql:", "mariadb:"];
        if !(url.is_empty() || engines.iter().any(|e| url.starts_with(e))) {
            return bad("database.url must be sqlite:..., postgres://... or mysql://...");
        }
        crate::db::tls::SqlTls::of(url).map_err(|e| Error::Invalid(format!("config: {e}")))?;
        if self.database.max_connections == 0 || self.database.min_connections > self.database.max_connections
        {
            return bad("database.max_connections must be >= 1 and >= min_connections");
        }
        if self.database.argon2_memory_kib < 8 {
            return bad("database.argon2_memory_kib must be >= 8");
        }
        if self.database.max_concurrent_hashes == 0 {
            return bad("database.max_concurrent_hashes must be >= 1");
        }
        if self.queue.partitions == 0 || self.queue.partitions > 1024 {
            return bad("queue.partitions must be in 1..=1024");
        }
        if self.queue.prefix.is_empty() || self.queue.prefix.len() > 200 {
            return bad("queue.prefix must be 1..=200 characters");
        }
        if self.queue.prefetch == 0 {
            return bad("queue.prefetch must be >= 1");
        }
        if self.queue.backend == QueueBackend::Amqp && !self.queue.amqp_url.starts_with("amqp") {
            return bad("queue.amqp_url must be amqp://... or amqps://...");
        }
        if self.queue.backend == QueueBackend::Amqp
            && let Some(ca) = &self.queue.amqp_ca
            && !self.queue.amqp_url.to_ascii_lowercase().starts_with("amqps://")
        {
            return bad(&format!(
                "queue.amqp_ca ({}) is set but queue.amqp_url is not amqps://",
                ca.display()
            ));
        }
        if self.writer.tasks == 0 || self.writer.batch_max == 0 || self.writer.batch_max > 5000 {
            return bad("writer.tasks must be >= 1 and writer.batch_max in 1..=5000");
        }
        if self.limits.max_group_members < 2
            || self.limits.max_pending_friend_requests == 0
            || self.limits.max_pending_invites == 0
        {
            return bad(
                "limits.max_group_members must be >= 2, limits.max_pending_friend_requests and \
                 limits.max_pending_invites >= 1",
            );
        }
        if self.limits.token_lifetime_ms == 0 || self.limits.max_tokens_per_user == 0 {
            return bad("limits.token_lifetime_ms and limits.max_tokens_per_user must be >= 1");
        }
        Ok(())
    }

    /// The database URL, with the SQLite default filled in.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.server.data_dir.join("persist.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }

    /// Where the embedded queue keeps its files.
    pub fn queue_dir(&self) -> PathBuf {
        self.server.data_dir.join("queue")
    }
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format, Serialized, Toml};

    use super::*;

    #[test]
    fn sample_config_matches_defaults() {
        let text = include_str!("../../etc/persist.toml");
        let parsed: Config = toml_from(text);
        assert_eq!(parsed, Config::default());
    }

    fn toml_from(text: &str) -> Config {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .expect("sample config parses")
    }

    #[test]
    fn the_embedded_engine_is_rocksdb_or_log() {
        assert_eq!(Config::default().queue.embedded_engine, EmbeddedEngine::Rocksdb);
        let c = toml_from("[queue]\nembedded_engine = \"log\"\n");
        assert_eq!(c.queue.embedded_engine, EmbeddedEngine::Log);
        let bad: Result<Config, _> = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string("[queue]\nembedded_engine = \"sled\"\n"))
            .extract();
        assert!(bad.is_err());
    }

    #[test]
    fn validate_rejects_nonsense() {
        let mut c = Config::default();
        assert!(c.validate().is_ok());
        c.queue.partitions = 0;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.database.url = "oracle://x".into();
        assert!(c.validate().is_err());
        c.database.url = "mysql://root@127.0.0.1:3306/test".into();
        assert!(c.validate().is_ok());
        let mut c = Config::default();
        c.database.url = "postgres://u@h/x?sslmode=sometimes".into();
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.queue.backend = QueueBackend::Amqp;
        c.queue.amqp_ca = Some("/etc/confab/broker-ca.pem".into());
        assert!(c.validate().is_err(), "a CA file with a plain amqp:// URL");
        c.queue.amqp_url = "amqps://guest:guest@broker.example:5671/%2f".into();
        assert!(c.validate().is_ok());
    }
}
