//! The transport errors of this crate.

/// What can go wrong before a call is even sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The peer's address does not parse as an endpoint URI.
    #[error("invalid peer address {addr:?}: {reason}")]
    InvalidAddress { addr: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
