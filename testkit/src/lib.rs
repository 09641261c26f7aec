//! What Confab's tests share: polling with a deadline ([`eventually`]),
//! loopback addresses that are free ([`free_addr`]), the workspace's service
//! binaries ([`workspace_bin`]), a plain HTTP GET ([`http_get`]), a set
//! of service processes with their logs in a temp dir ([`Processes`]), and
//! a RabbitMQ node of a test's own with a TLS listener ([`TlsRabbit`]).
//!
//! What belongs here: plumbing that two or more crates' tests (or the chaos
//! tool's cluster) would otherwise each write. What does not: anything that
//! knows a service's configuration, protocol or data; each crate's own
//! harness builds its clusters from these pieces.

mod addr;
mod bin;
mod http;
mod poll;
mod process;
mod rabbitmq;

pub use addr::{free_addr, free_socket_addr};
pub use bin::{find_bin, workspace_bin};
pub use http::http_get;
pub use poll::eventually;
pub use process::Processes;
pub use rabbitmq::{RABBITMQ_SERVER, TlsRabbit};
