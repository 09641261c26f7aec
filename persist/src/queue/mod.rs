//! The message queue between gateways and writers: one trait pair and two
//! backends.
//!
//! - [`Producer`]: `enqueue` returns once the messages are durable (embedded:
//!   flushed to disk; RabbitMQ: publisher-confirmed). Gateways ack their
//!   sender only after that.
//! - [`Consumer`]: deliveries in per-partition order; `ack` only after the
//!   SQL commit; `dead_letter` moves a poison message aside.
//!
//! Messages are partitioned by conversation (`hash(conversation id) mod
//! partitions`, [`crate::conversation::ConversationId::partition`]) and each
//! partition has one active consumer, so per-conversation order holds with
//! many writers.

pub mod amqp;
pub mod embedded;
pub mod remote;

use std::future::Future;
use std::time::Duration;

use prost::Message;

pub use confab_proto::persist::{QueuedBatch, QueuedMessage};

use crate::conversation::ConversationId;
use crate::db::{NewMessage, now_ms};
use crate::error::QueueError;

/// How a delivery's payload is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// One [`QueuedMessage`] (embedded queue).
    Single,
    /// A [`QueuedBatch`] envelope (RabbitMQ).
    Batch,
}

/// One queue entry taken from a queue and not yet acknowledged.
#[derive(Debug)]
pub struct Delivery<T> {
    pub payload: Vec<u8>,
    pub encoding: Encoding,
    pub partition: u32,
    pub token: T,
}

/// The sending side of the queue.
pub trait Producer: Send + Sync {
    /// Enqueues `msgs` in order; Ok only once every one of them is durable.
    /// Messages are validated first: an invalid one fails the whole call.
    fn enqueue(&self, msgs: &[QueuedMessage]) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The receiving side of the queue, for one writer task.
pub trait Consumer: Send {
    type Token: Send + 'static;

    /// Waits for at least one delivery, then takes what else arrives within
    /// `linger`, up to `max` in all.
    fn next_batch(
        &mut self,
        max: usize,
        linger: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery<Self::Token>>, QueueError>> + Send;

    /// Acknowledges deliveries (their messages are committed).
    fn ack(&mut self, tokens: Vec<Self::Token>) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Moves a poison delivery to the dead-letter queue.
    fn dead_letter(
        &mut self,
        delivery: Delivery<Self::Token>,
        reason: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// A short name for logs and metrics.
    fn backend(&self) -> &'static str;
}

/// The producer a persist process (or a gateway) is configured with.
pub enum AnyProducer {
    Embedded(embedded::EmbeddedQueue),
    Amqp(Box<amqp::AmqpProducer>),
    Remote(remote::RemoteProducer),
}

impl Producer for AnyProducer {
    async fn enqueue(&self, msgs: &[QueuedMessage]) -> Result<(), QueueError> {
        match self {
            AnyProducer::Embedded(q) => q.enqueue(msgs).await,
            AnyProducer::Amqp(p) => p.enqueue(msgs).await,
            AnyProducer::Remote(p) => p.enqueue(msgs).await,
        }
    }
}

/// Encodes a message for the queue.
pub fn encode(msg: &QueuedMessage) -> Vec<u8> {
    msg.encode_to_vec()
}

/// Checks a message as both producer and writer do.
pub fn validate(m: &QueuedMessage, max_body_bytes: usize) -> Result<ConversationId, QueueError> {
    let bad = |why: String| Err(QueueError::Invalid(format!("message {}: {why}", m.message_id)));
    if m.message_id == 0 || m.message_id > i64::MAX as u64 {
        return bad("message id must be in 1..2^63".into());
    }
    if m.sender == 0 || m.sender > i64::MAX as u64 {
        return bad("sender id must be in 1..2^63".into());
    }
    let conv: ConversationId = match m.conversation_id.parse() {
        Ok(c) => c,
        Err(_) => return bad(format!("bad conversation id {:?}", m.conversation_id)),
    };
    if let ConversationId::Direct { lo, hi } = conv
        && m.sender != lo
        && m.sender != hi
    {
        return bad(format!("sender {} is not part of {conv}", m.sender));
    }
    if m.body.is_empty() {
        return bad("empty body".into());
    }
    if m.body.len() > max_body_bytes {
        return bad(format!(
            "body of {} bytes is longer than the limit of {max_body_bytes}",
            m.body.len()
        ));
    }
    if m.client_msg_id.len() > 64 {
        return bad("client message id longer than 64 bytes".into());
    }
    Ok(conv)
}

/// Decodes and validates a delivery's payload into rows to write; one
/// invalid message makes the whole payload poison.
pub fn decode_payload(
    payload: &[u8],
    encoding: Encoding,
    max_body_bytes: usize,
) -> Result<Vec<NewMessage>, QueueError> {
    match encoding {
        Encoding::Single => Ok(vec![decode(payload, max_body_bytes)?]),
        Encoding::Batch => {
            let b = QueuedBatch::decode(payload)
                .map_err(|e| QueueError::Invalid(format!("undecodable envelope: {e}")))?;
            if b.messages.is_empty() {
                return Err(QueueError::Invalid("empty envelope".into()));
            }
            b.messages
                .into_iter()
                .map(|m| checked(m, max_body_bytes))
                .collect()
        }
    }
}

/// Decodes and validates one single-message payload into a row to write.
pub fn decode(payload: &[u8], max_body_bytes: usize) -> Result<NewMessage, QueueError> {
    let m = QueuedMessage::decode(payload)
        .map_err(|e| QueueError::Invalid(format!("undecodable payload: {e}")))?;
    checked(m, max_body_bytes)
}

fn checked(m: QueuedMessage, max_body_bytes: usize) -> Result<NewMessage, QueueError> {
    let conversation = validate(&m, max_body_bytes)?;
    Ok(NewMessage {
        message_id: m.message_id,
        conversation,
        sender: m.sender,
        body: m.body,
        client_msg_id: m.client_msg_id,
        server_time_ms: if m.server_time_ms > 0 {
            m.server_time_ms
        } else {
            now_ms()
        },
    })
}

/// Validates every message and returns its partition.
pub(crate) fn partitions_of(
    msgs: &[QueuedMessage],
    partitions: u32,
    max_body_bytes: usize,
) -> Result<Vec<u32>, QueueError> {
    msgs.iter()
        .map(|m| {
            validate(m, max_body_bytes)?;
            Ok(ConversationId::partition(&m.conversation_id, partitions))
        })
        .collect()
}

/// Exponential backoff: 50 ms doubling up to `max`.
pub(crate) fn backoff(attempt: u32, max: Duration) -> Duration {
    let ms = 50u64.saturating_mul(1u64 << attempt.min(16));
    Duration::from_millis(ms).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> QueuedMessage {
        QueuedMessage {
            message_id: 7,
            conversation_id: "d:1:2".into(),
            sender: 1,
            body: "hi".into(),
            client_msg_id: "c".into(),
            server_time_ms: 5,
        }
    }

    #[test]
    fn decode_validates() {
        let ok = decode(&encode(&m()), 10).expect("valid");
        assert_eq!((ok.message_id, ok.server_time_ms), (7, 5));
        assert!(decode(b"\xff\xff\xff", 10).is_err());
        let long = QueuedMessage {
            body: "x".repeat(11),
            ..m()
        };
        assert!(decode(&encode(&long), 10).is_err());
        let stranger = QueuedMessage { sender: 3, ..m() };
        assert!(decode(&encode(&stranger), 10).is_err());
        let zero = QueuedMessage { message_id: 0, ..m() };
        assert!(decode(&encode(&zero), 10).is_err());
    }
}
