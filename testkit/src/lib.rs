//! What Confab's tests share: polling with a deadline ([`eventually`]),
//! loopback addresses that are free ([`free_addr`]), the workspace's service
//! binaries ([`workspace_bin`]), a plain HTTP GET ([`http_get`]), a set
//! of service processes with their logs in a temp dir ([`Processes`]), a
//! RabbitMQ node of a test's own with a TLS listener ([`TlsRabbit`]), test
//! certificates for such servers ([`server_certs`], [`other_ca`]), names
//! no other test uses ([`unique`]), and the rule for a service a test
//! needs but cannot reach ([`missing`]), and tasks that run inside a
//! network namespace a test made ([`InNetns`]), and a TCP proxy a test
//! cuts to make a real service unreachable without stopping it ([`Proxy`]).
//!
//! What belongs here: plumbing that two or more crates' tests (or the chaos
//! tool's cluster) would otherwise each write. What does not: anything that
//! knows a service's configuration, protocol or data; each crate's own
//! harness builds its clusters from these pieces.

mod addr;
mod bin;
mod http;
mod netns;
mod poll;
mod process;
mod proxy;
mod rabbitmq;
mod tls;

pub use addr::{free_addr, free_socket_addr};
pub use bin::{find_bin, workspace_bin};
pub use http::http_get;
pub use netns::InNetns;
pub use poll::eventually;
pub use process::{Processes, Signal};
pub use proxy::Proxy;
pub use rabbitmq::{RABBITMQ_SERVER, TlsRabbit};
pub use tls::{ServerCerts, other_ca, server_certs};

/// A name no other test (or test run) uses: `prefix`, the process id, a
/// counter and the clock's nanoseconds, joined by `_` (a valid SQL
/// identifier when `prefix` is one).
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{:x}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        nanos
    )
}

/// A service a test needs is unavailable: under `CI=true` the test fails
/// (panics) saying so; elsewhere it says loudly that it skips, and the
/// caller returns.
pub fn missing(service: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{service} is required under CI=true but unavailable: {why}");
    }
    eprintln!("\n!!!! SKIPPING: {service} unavailable ({why}) !!!!\n");
}
