//! The client library's errors.

use confab_proto::client::ErrorCode;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// TLS: a CA file that cannot be used, a failed handshake (a
    /// certificate from another CA, a name mismatch), or a plain client at
    /// a TLS port.
    #[error("TLS: {0}")]
    Tls(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The gateway answered with an error frame.
    #[error("{code:?}: {message}")]
    Server { code: ErrorCode, message: String },
    /// The gateway refused the request for now (RATE_LIMITED): nothing of
    /// it was done; it may succeed after `retry_after`.
    #[error("rate limited: {message} (retry after {retry_after:?})")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    /// The gateway or a service behind it is at capacity (BUSY): nothing
    /// of the request was done; retry after `retry_after`.
    #[error("busy: {message} (retry after {retry_after:?})")]
    Busy {
        message: String,
        retry_after: std::time::Duration,
    },
    /// No directory URL answered with a gateway (each one's reason).
    #[error("directory: {0}")]
    Directory(String),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("the connection is closed")]
    Closed,
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
}

impl Error {
    /// The server's error code, when the gateway sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Server { code, .. } => Some(*code),
            Error::RateLimited { .. } => Some(ErrorCode::RateLimited),
            Error::Busy { .. } => Some(ErrorCode::Busy),
            _ => None,
        }
    }

    /// How long to wait before retrying, when the gateway said.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::RateLimited { retry_after, .. } | Error::Busy { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}
