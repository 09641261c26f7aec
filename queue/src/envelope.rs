//! What travels on the queue: a [`QueuedMessage`] (the embedded log's
//! entries) or a [`QueuedBatch`] of them (RabbitMQ's envelopes, and the
//! log's entries of several messages), both defined in `persist.proto`; the
//! checks a producer and a writer both make; and the decoding of a
//! delivery into the [`NewMessage`]s a writer stores.

use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

pub use confab_proto::persist::{QueuedBatch, QueuedMessage};

use crate::conversation::ConversationId;
use crate::error::QueueError;

/// How a delivery's payload is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// One [`QueuedMessage`] (embedded queue).
    Single,
    /// A [`QueuedBatch`] envelope (RabbitMQ).
    Batch,
}

/// A validated message ready to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    pub message_id: u64,
    pub conversation: ConversationId,
    pub sender: u64,
    pub body: String,
    pub client_msg_id: String,
    pub server_time_ms: i64,
    /// The send's trace context when it is traced (not stored).
    pub traceparent: String,
}

/// Encodes a message for the queue.
pub fn encode(msg: &QueuedMessage) -> Vec<u8> {
    msg.encode_to_vec()
}

/// The bytes of an envelope (what RabbitMQ carries, and what a writer sets
/// aside when only part of a delivery is refused).
pub fn encode_batch(batch: &QueuedBatch) -> Vec<u8> {
    batch.encode_to_vec()
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
        traceparent: m.traceparent,
    })
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
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
            traceparent: String::new(),
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
