//! Tunables of the router client.

use std::time::Duration;

use confab_net::ClientTls;

/// How long the client tries and how it backs off.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Overall deadline of one operation, retries included.
    pub deadline: Duration,
    /// TCP connect timeout of a node channel.
    pub connect_timeout: Duration,
    /// Cap on a single RPC attempt, so a hung node is abandoned for another
    /// replica before the overall deadline is spent.
    pub attempt_timeout: Duration,
    /// First backoff delay after a retryable failure (doubles per attempt).
    pub backoff_base: Duration,
    /// Largest backoff delay.
    pub backoff_max: Duration,
    /// Immediate redirects (NotLeader with a leader, EpochNotMatch) allowed in
    /// a row before the client backs off anyway: breaks redirect loops between
    /// nodes with stale views.
    pub max_immediate_retries: u32,
    /// Largest response message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Batch RPCs outstanding per node: logins, logouts and lookup parts
    /// started while all are busy travel together in the next one.
    pub batch_in_flight: usize,
    /// Largest number of operations in one batch RPC.
    pub max_batch_items: usize,
    /// Mutual TLS to the routers (the cluster CA and this process' own
    /// certificate); `None`: plain gRPC.
    pub tls: Option<ClientTls>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            deadline: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            attempt_timeout: Duration::from_millis(1500),
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(500),
            max_immediate_retries: 4,
            max_message_bytes: 16 << 20,
            batch_in_flight: 64,
            max_batch_items: 1024,
            tls: None,
        }
    }
}
