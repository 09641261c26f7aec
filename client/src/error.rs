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
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The gateway answered with an error frame.
    #[error("{code:?}: {message}")]
    Server { code: ErrorCode, message: String },
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
            _ => None,
        }
    }
}
