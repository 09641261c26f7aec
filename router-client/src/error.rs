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
}
