//! confab-persist: the data-access service (DAS) and the asynchronous
//! message writer of Confab.
//!
//! Parts:
//! - [`db`]: the SQL schema (migrations) and every query, for SQLite (the
//!   embedded default) and PostgreSQL.
//! - [`queue`]: the message queue, one trait pair ([`queue::Producer`],
//!   [`queue::Consumer`]) and two backends, RabbitMQ and embedded (an append-only log).
//! - [`writer`]: consumes the queue, writes batches idempotently, assigns
//!   the per-conversation sequence, acks after commit, announces commits.
//! - [`service`]: the gRPC `DataService` and `QueueService`.
//! - [`server`]: [`run`], which wires it all together (tests call it on
//!   port 0); [`http`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`mod@bench`]: the end-to-end write benchmark `confab-bench persist` calls.
//!
//! For gateways: enqueue with a [`queue::Producer`] and ack the sender only
//! when `enqueue` returns Ok: [`queue::amqp::AmqpProducer`] (RabbitMQ,
//! publisher-confirmed) or [`queue::remote::RemoteProducer`] (the embedded
//! queue of a persist process over gRPC, flushed); [`queue::AnyProducer`]
//! picks one from configuration. Subscribe to `QueueService.Subscribe` of
//! every persist process to learn which conversations moved.
//!
//! What does not belong here: business rules of messaging (who may send to
//! whom: the gateway), online state (the router).

pub mod bench;
pub mod config;
pub mod conversation;
pub mod db;
pub mod error;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod password;
pub mod queue;
pub mod server;
pub mod service;
pub mod writer;

pub use config::Config;
pub use error::{Error, QueueError, Result};
pub use server::{Running, run, start};
