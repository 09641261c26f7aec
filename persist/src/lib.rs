//! confab-persist: the data-access service (DAS) and the asynchronous
//! message writer of Confab.
//!
//! Parts:
//! - [`db`]: the SQL schema (migrations) and every query, for SQLite (the
//!   embedded default) and PostgreSQL.
//! - [`writer`]: consumes the queue, writes batches idempotently, assigns
//!   the per-conversation sequence, acks after commit, announces commits.
//! - [`service`]: the gRPC `DataService` and `QueueService`.
//! - [`server`]: [`run`], which wires it all together (tests call it on
//!   port 0); [`http`]: `/metrics`, `/healthz`, `/readyz`.
//!
//! The queue itself (the envelope, the producer and consumer traits, the
//! RabbitMQ backend, the embedded log) is the `confab-queue` crate: persist
//! opens the embedded log (or connects to RabbitMQ), serves it to gateways
//! over gRPC and runs the writers on it. Gateways enqueue with a
//! `confab_queue::Producer` and ack the sender only when `enqueue` returns
//! Ok; they subscribe to `QueueService.Subscribe` of every persist process
//! to learn which conversations moved.
//!
//! What does not belong here: the queue's storage and transport (the
//! `confab-queue` crate), business rules of messaging (who may send to
//! whom: the gateway), online state (the router), benchmarks (the write
//! benchmark is `examples/write_bench`).

pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod password;
pub mod server;
pub mod service;
pub mod writer;

pub use config::Config;
pub use error::{Error, Result};
pub use server::{Running, run, start};
