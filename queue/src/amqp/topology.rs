//! The broker side of the backend: where the queues are and how they are
//! named ([`AmqpSettings`]), connecting (TLS for `amqps://` URLs, verified
//! against the system's roots plus [`AmqpSettings::ca_file`]), and declaring
//! (or deleting) the partition queues and the dead-letter queue.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};

use crate::error::QueueError;

/// Where the queues are and how they are named.
#[derive(Clone, Debug)]
pub struct AmqpSettings {
    pub url: String,
    pub prefix: String,
    pub partitions: u32,
    pub prefetch: u16,
    pub max_body_bytes: usize,
    pub max_backoff: Duration,
    /// Shown by the broker (`rabbitmqctl list_connections client_properties`).
    pub connection_name: String,
    /// PEM file of the CA(s) that may have issued the broker's certificate,
    /// trusted besides the system's roots; `amqps://` URLs only (an AMQP URL
    /// has no place for it).
    pub ca_file: Option<PathBuf>,
}

impl AmqpSettings {
    pub fn partition_queue(&self, p: u32) -> String {
        format!("{}.p{p}", self.prefix)
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.prefix)
    }
}

impl AmqpSettings {
    /// True for an `amqps://` URL.
    pub fn tls(&self) -> bool {
        is_amqps(&self.url)
    }

    /// Checks what connecting would find out late: a CA file with a plain
    /// URL (it would be ignored), a CA file that is missing or holds no
    /// certificate.
    pub fn validate(&self) -> Result<(), QueueError> {
        if let Some(ca) = &self.ca_file {
            if !self.tls() {
                return Err(QueueError::Tls(format!(
                    "a CA file ({}) is set but the broker URL is not amqps://",
                    ca.display()
                )));
            }
            read_ca(ca)?;
        }
        Ok(())
    }
}

fn is_amqps(url: &str) -> bool {
    url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("amqps://"))
}

/// The CA file, read and checked (at least one certificate).
fn read_ca(path: &Path) -> Result<String, QueueError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| QueueError::Tls(format!("reading the broker CA file {}: {e}", path.display())))?;
    confab_tls::files::certificates(path, pem.as_bytes())
        .map_err(|e| QueueError::Tls(format!("the broker CA file {e}")))?;
    Ok(pem)
}

pub(super) async fn connect(s: &AmqpSettings, role: &str) -> Result<Connection, QueueError> {
    let name = format!("{} {role}", s.connection_name);
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let tls = OwnedTLSConfig {
        identity: None,
        cert_chain: match &s.ca_file {
            Some(path) if s.tls() => Some(read_ca(path)?),
            _ => None,
        },
    };
    let runtime = lapin::runtime::default_runtime()?;
    Connection::connect_with_config(&s.url, props, tls, runtime)
        .await
        .map_err(|e| match confab_tls::handshake_failure(&e) {
            Some(failure) => QueueError::Tls(failure.to_string()),
            None => QueueError::Broker(e),
        })
}

/// For an `amqps://` URL, connects once now so that a broker whose
/// certificate does not verify stops the process at start with that
/// message, instead of a retry loop that never succeeds. A broker that is
/// down (or slow) is not an error here: connections are retried later as
/// for a plain URL. A plain URL is not checked.
pub async fn check_trust(s: &AmqpSettings, within: Duration) -> Result<(), QueueError> {
    s.validate()?;
    if !s.tls() {
        return Ok(());
    }
    match tokio::time::timeout(within, connect(s, "check")).await {
        Ok(Ok(conn)) => {
            let _ = conn.close(200, "checked".into()).await;
            Ok(())
        }
        Ok(Err(e @ QueueError::Tls(_))) => Err(e),
        Ok(Err(error)) => {
            tracing::warn!(%error, "broker not reachable at start; its certificate is checked on connecting");
            Ok(())
        }
        Err(_) => {
            tracing::warn!("broker did not answer at start; its certificate is checked on connecting");
            Ok(())
        }
    }
}

/// Declares the dead-letter queue and every partition queue.
pub async fn declare_topology(ch: &Channel, s: &AmqpSettings) -> Result<(), QueueError> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare(
        s.dead_letter_queue().as_str().into(),
        durable,
        FieldTable::default(),
    )
    .await?;
    for p in 0..s.partitions {
        let mut args = FieldTable::default();
        args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(s.dead_letter_queue().as_str().into()),
        );
        ch.queue_declare(s.partition_queue(p).as_str().into(), durable, args)
            .await?;
    }
    Ok(())
}

/// Deletes the partition queues and the dead-letter queue (tests, bench).
pub async fn delete_queues(s: &AmqpSettings) {
    let Ok(conn) = connect(s, "cleanup").await else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        let mut names: Vec<String> = (0..s.partitions).map(|p| s.partition_queue(p)).collect();
        names.push(s.dead_letter_queue());
        for n in names {
            let _ = ch
                .queue_delete(n.as_str().into(), lapin::options::QueueDeleteOptions::default())
                .await;
        }
    }
    let _ = conn.close(200, "cleanup".into()).await;
}
