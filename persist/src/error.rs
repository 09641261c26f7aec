//! The crate's typed errors and their one mapping to `tonic::Status`.

use confab_queue::QueueError;
use tonic::{Code, Status};

/// Errors of the data-access layer, the writer and the gRPC service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("user {0} not found")]
    UserNotFound(u64),
    #[error("user name {0:?} not found")]
    UserNameNotFound(String),
    #[error("user name {0:?} is already taken")]
    NameTaken(String),
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("session not found or revoked")]
    SessionNotFound,
    #[error("group {0} not found")]
    GroupNotFound(u64),
    #[error("user {user} may not {action} in group {group}")]
    NotPermitted {
        group: u64,
        user: u64,
        action: &'static str,
    },
    /// Reading (or writing to) a conversation one is not part of. The same
    /// answer whether the conversation or group exists or not.
    #[error("user {user} is not a participant of conversation {conversation}")]
    NotParticipant { user: u64, conversation: String },
    #[error("message {0} not found")]
    MessageNotFound(u64),
    /// Recalling a message someone else sent.
    #[error("message {message} was not sent by user {user}")]
    NotSender { user: u64, message: u64 },
    #[error("message {message} is older than the recall window of {window_ms} ms")]
    RecallWindowPassed { message: u64, window_ms: u64 },
    #[error("no pending {kind} request from {from} to {to}")]
    NoPendingRequest { kind: &'static str, from: u64, to: u64 },
    #[error("users {user} and {friend} are not friends")]
    NotFriends { user: u64, friend: u64 },
    #[error("users {user} and {friend} are already friends")]
    AlreadyFriends { user: u64, friend: u64 },
    #[error("user {user} is already a member of group {group}")]
    AlreadyMember { group: u64, user: u64 },
    /// A cap on what one user or group may hold is reached.
    #[error("{what}: the limit is {limit}")]
    LimitReached { what: String, limit: u32 },
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The database cannot be reached (or refused for a transient reason):
    /// the caller may retry.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database error (constraint, syntax, decoding...).
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("queue: {0}")]
    Queue(QueueError),
    /// TLS to the database cannot work as configured (a certificate that
    /// does not verify, a server without TLS, a missing CA file, an
    /// sslmode that makes no sense).
    #[error("TLS: {0}")]
    Tls(String),
    /// A bounded resource is full (password hashes); retry later.
    #[error("busy: {0}")]
    Busy(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when retrying later may succeed (database down, pool exhausted,
    /// serialization failure, deadlock).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

/// SQLSTATE classes and codes that mean "try again": connection exceptions,
/// insufficient resources, operator intervention, serialization failure,
/// deadlock. SQLite's BUSY/LOCKED (5, 6) too.
fn transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || code == "40001"
        || code == "40P01"
        || code == "5"
        || code == "6"
        || code == "517"
        || code == "261"
}

impl From<QueueError> for Error {
    /// A bad conversation id (a caller's argument, parsed here) is bad
    /// input like any other; every other queue error stays the queue's.
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::BadConversationId(_) => Error::Invalid(e.to_string()),
            e => Error::Queue(e),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Tls(_) | E::Protocol(_) => {
                Error::Unavailable(e)
            }
            E::Database(db) if db.code().is_some_and(|c| transient_sqlstate(&c)) => Error::Unavailable(e),
            _ => Error::Database(e),
        }
    }
}

/// True when `e` is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::UserNotFound(_)
            | Error::UserNameNotFound(_)
            | Error::SessionNotFound
            | Error::GroupNotFound(_)
            | Error::MessageNotFound(_) => Code::NotFound,
            Error::NameTaken(_) | Error::AlreadyMember { .. } => Code::AlreadyExists,
            Error::BadCredentials => Code::Unauthenticated,
            Error::NotPermitted { .. } | Error::NotParticipant { .. } | Error::NotSender { .. } => {
                Code::PermissionDenied
            }
            Error::NoPendingRequest { .. } | Error::NotFriends { .. } | Error::RecallWindowPassed { .. } => {
                Code::FailedPrecondition
            }
            Error::AlreadyFriends { .. } => Code::AlreadyExists,
            Error::LimitReached { .. } => Code::ResourceExhausted,
            Error::Invalid(_)
            | Error::Queue(QueueError::Invalid(_))
            | Error::Queue(QueueError::BadConversationId(_)) => Code::InvalidArgument,
            Error::Unavailable(_)
            | Error::Tls(_)
            | Error::Queue(QueueError::Broker(_))
            | Error::Queue(QueueError::Tls(_))
            | Error::Queue(QueueError::NotConfirmed { .. })
            | Error::Queue(QueueError::Closed)
            | Error::Queue(QueueError::Remote(_))
            | Error::Queue(QueueError::Publish(_)) => Code::Unavailable,
            Error::Queue(QueueError::Unsupported(_)) => Code::FailedPrecondition,
            Error::Busy(_) => Code::ResourceExhausted,
            Error::Database(_)
            | Error::Migrate(_)
            | Error::Queue(QueueError::Storage(_))
            | Error::Internal(_) => Code::Internal,
        };
        match code {
            Code::Internal => {
                tracing::error!(error = %e, "internal error");
                Status::internal("internal error")
            }
            Code::Unavailable => {
                tracing::warn!(error = %e, "backend unavailable");
                Status::unavailable(e.to_string())
            }
            _ => Status::new(code, e.to_string()),
        }
    }
}
