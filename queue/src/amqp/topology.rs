//! The broker side of the backend: where the queues are and how they are
//! named ([`AmqpSettings`]), connecting, and declaring (or deleting) the
//! partition queues and the dead-letter queue.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
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
}

impl AmqpSettings {
    pub fn partition_queue(&self, p: u32) -> String {
        format!("{}.p{p}", self.prefix)
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.prefix)
    }
}

pub(super) async fn connect(s: &AmqpSettings, role: &str) -> Result<Connection, QueueError> {
    let name = format!("{} {role}", s.connection_name);
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Ok(Connection::connect(&s.url, props).await?)
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
