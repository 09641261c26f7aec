//! RabbitMQ backend (lapin).
//!
//! Topology, declared by producers and consumers alike (idempotent):
//! - `{prefix}.p{n}` for each partition: durable, single active consumer
//!   (`x-single-active-consumer`), dead letters routed to `{prefix}.dlq`;
//! - `{prefix}.dlq`: durable, where rejected (poison) messages go.
//!
//! [`AmqpProducer`] publishes persistent, mandatory envelopes
//! ([`crate::QueuedBatch`]) on a confirm channel and returns only when each
//! is confirmed; concurrent calls are coalesced into shared envelopes.
//! [`AmqpConsumer`] runs a background task that (re)connects with backoff,
//! consumes its partitions with a prefetch and hands deliveries to the
//! writer; acks are manual and happen after the SQL commit. Deliveries of a
//! connection that died are dropped (the broker redelivers them; the writer
//! deduplicates).

mod consumer;
mod producer;
mod topology;

pub use consumer::{AmqpConsumer, AmqpToken};
pub use producer::AmqpProducer;
pub use topology::{AmqpSettings, check_trust, declare_topology, delete_queues};
