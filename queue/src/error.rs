//! The crate's one error type. It stops at the crate's edge: persist maps
//! it to `tonic::Status` with its own errors, the gateway to its client
//! error frames.

/// Errors of the queue backends (RabbitMQ, the embedded log, the remote
/// producer) and of the envelope's checks.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("message broker unavailable: {0}")]
    Broker(#[from] lapin::Error),
    /// TLS to the broker cannot work as configured: its certificate does
    /// not verify, or the CA file is missing or unreadable. Retrying does
    /// not help.
    #[error("broker TLS: {0}")]
    Tls(String),
    #[error("broker refused message {message_id} (negative confirm or unroutable)")]
    NotConfirmed { message_id: u64 },
    #[error("embedded queue storage: {0}")]
    Storage(#[from] std::io::Error),
    #[error("invalid queued message: {0}")]
    Invalid(String),
    /// A string that is no conversation id (see [`crate::ConversationId`]).
    #[error("bad conversation id {0:?}")]
    BadConversationId(String),
    #[error("queue is shut down")]
    Closed,
    #[error("remote enqueue failed: {0}")]
    Remote(String),
    #[error("publish failed: {0}")]
    Publish(String),
    #[error("queue backend {0} cannot do this")]
    Unsupported(&'static str),
}
