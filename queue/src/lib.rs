//! confab-queue: the message queue between gateways and persist's writers.
//!
//! One trait pair and three ways in:
//! - [`Producer`]: `enqueue` returns once the messages are durable
//!   (embedded: flushed to disk; RabbitMQ: publisher-confirmed). Gateways
//!   ack their sender only after that.
//! - [`Consumer`]: [`Delivery`]s in per-partition order; `ack` only after
//!   the SQL commit; `dead_letter` moves a poison message aside.
//!
//! Messages are partitioned by conversation (`hash(conversation id) mod
//! partitions`, [`ConversationId::partition`]) and each partition has one
//! active consumer, so per-conversation order holds with many writers.
//!
//! Parts:
//! - [`conversation`]: [`ConversationId`], the parsed `d:{lo}:{hi}` /
//!   `g:{group}` ids that name conversations and pick partitions.
//! - [`envelope`]: what travels ([`QueuedMessage`], [`QueuedBatch`]), the
//!   checks producers and writers share ([`validate`]) and the decoding of
//!   a delivery into [`NewMessage`]s.
//! - [`amqp`]: the RabbitMQ backend (producer with publisher confirms,
//!   self-healing consumer).
//! - [`embedded`]: the queue a persist process keeps on its disk, on
//!   RocksDB or on an append-only log of our own.
//! - [`remote`]: the producer of a gateway that enqueues into a persist
//!   process's embedded queue over gRPC (`QueueService.Enqueue`).
//! - [`AnyProducer`]: the producer configuration picks; [`QueueError`]: the
//!   crate's one error type.
//!
//! What does not belong here: what a writer does with a delivery (the SQL
//! insert, sequences, the commit announcements: persist), who may send to
//! whom (the gateway), configuration files (each service maps its own
//! settings to [`amqp::AmqpSettings`] or the embedded queue's options).

pub mod amqp;
pub mod conversation;
pub mod embedded;
pub mod envelope;
pub mod remote;

mod any_producer;
pub mod backoff;
mod consumer;
mod error;
mod producer;

pub use any_producer::AnyProducer;
pub use consumer::{Consumer, Delivery};
pub use conversation::ConversationId;
pub use envelope::{
    Encoding, NewMessage, QueuedBatch, QueuedMessage, decode, decode_payload, encode, encode_batch, validate,
};
pub use error::QueueError;
pub use producer::Producer;
