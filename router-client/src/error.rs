//! The error type of the router client.

use std::time::Duration;

/// A result with the router client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a router call failed after the client's retries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The overall deadline passed while routing errors or unreachable nodes
    /// kept the operation from completing.
    #[error("{op} timed out after {elapsed:?}; last error: {last}")]
    Timeout {
        op: &'static str,
        elapsed: Duration,
        last: String,
    },
    /// No router node answered (every seed and known node failed to connect).
    #[error("no reachable router node (tried {tried:?})")]
    NoReachableNode { tried: Vec<String> },
    /// The server rejected the request as malformed; retrying cannot help.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A seed or node address is not a valid URI.
    #[error("invalid router address {addr:?}: {reason}")]
    InvalidAddress { addr: String, reason: String },
    /// A cluster map the client received (or was given) is inconsistent.
    #[error("invalid cluster map: {0}")]
    InvalidMap(String),
    /// Raft group `group_id` is neither the meta group nor a shard in the map.
    #[error("unknown raft group {group_id}")]
    UnknownGroup { group_id: u32 },
    /// A call failed with a status that retrying cannot fix.
    #[error("{op} at {addr} failed: {status}")]
    Rpc {
        op: &'static str,
        addr: String,
        status: Box<tonic::Status>,
    },
}

impl From<confab_route::KeySpaceError> for Error {
    fn from(e: confab_route::KeySpaceError) -> Self {
        match e {
            confab_route::KeySpaceError::InvalidMap(reason) => Error::InvalidMap(reason),
        }
    }
}

impl Error {
    /// A short, stable name of the variant, for metrics and error tallies.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Timeout { .. } => "timeout",
            Error::NoReachableNode { .. } => "no_reachable_node",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::InvalidAddress { .. } => "invalid_address",
            Error::InvalidMap(_) => "invalid_map",
            Error::UnknownGroup { .. } => "unknown_group",
            Error::Rpc { .. } => "rpc",
        }
    }

    /// The gRPC status code, for [`Error::Rpc`].
    pub fn status_code(&self) -> Option<tonic::Code> {
        match self {
            Error::Rpc { status, .. } => Some(status.code()),
            _ => None,
        }
    }

    /// Why a node gave no answer, in a few words for a status table:
    /// "connection refused", "timed out", "unreachable", or the server's own
    /// message (its first line) when it answered with an error.
    pub fn short_reason(&self) -> String {
        match self {
            Error::Timeout { .. } => "timed out".into(),
            Error::NoReachableNode { .. } => "unreachable".into(),
            Error::Rpc { status, .. } => {
                if let Some(io) = io_cause(status.as_ref()) {
                    return io_reason(io);
                }
                match status.code() {
                    tonic::Code::DeadlineExceeded => "timed out".into(),
                    tonic::Code::Unavailable if status.message().contains("connect") => "unreachable".into(),
                    _ => {
                        let line = status.message().lines().next().unwrap_or_default();
                        let short: String = line.chars().take(80).collect();
                        if short.is_empty() {
                            format!("{:?}", status.code())
                        } else {
                            short
                        }
                    }
                }
            }
            other => other.to_string(),
        }
    }
}

/// The I/O error at the bottom of a failed call, if that is what it was.
fn io_cause(status: &tonic::Status) -> Option<&std::io::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cause = e.source();
    }
    None
}

fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        TimedOut => "timed out".into(),
        ConnectionReset | ConnectionAborted | BrokenPipe => "connection reset".into(),
        HostUnreachable | NetworkUnreachable | AddrNotAvailable => "unreachable".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::{ClientConfig, RouterClient};

    #[tokio::test]
    async fn a_closed_port_reads_as_connection_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let client = RouterClient::new(vec![addr.clone()], ClientConfig::default()).expect("client");
        let e = client.node_status(&addr).await.expect_err("nobody listens");
        assert_eq!(e.short_reason(), "connection refused", "{e}");
    }
}
