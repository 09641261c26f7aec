//! The gateway's typed errors: what went wrong, the client protocol's code
//! for it and whether it ends the connection, and how failed persist and
//! queue calls become one. The error frame a client reads is built from
//! them in one place, [`crate::wire::frame::error`].

use confab_proto::client::ErrorCode;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The retry-after told to a client when persist is at a bound.
pub const BUSY_RETRY_MS: u64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad frame: {0}")]
    BadFrame(String),
    #[error("frame over the limit of {limit} bytes")]
    FrameTooLarge { limit: u32 },
    #[error("unsupported protocol version {0} (this gateway speaks 1)")]
    UnsupportedVersion(i32),
    #[error("the first frame must be Hello")]
    HandshakeRequired,
    #[error("unknown request kind: {0}")]
    UnknownRequest(&'static str),
    #[error("log in first")]
    NotLoggedIn,
    #[error("this connection is already logged in")]
    AlreadyLoggedIn,
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("session token unknown or revoked")]
    BadToken,
    #[error("user name {0:?} is already taken")]
    NameTaken(String),
    #[error("no such user: {0}")]
    UserNotFound(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("user {uid} is not part of conversation {conversation}")]
    Forbidden { uid: u64, conversation: String },
    /// A friend or group action the user may not do (not friends, not an
    /// admin, not the owner...).
    #[error("not permitted: {0}")]
    NotPermitted(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    #[error("limit reached: {0}")]
    LimitReached(String),
    /// A recall asked too long after the message was sent.
    #[error("too late to recall: {0}")]
    RecallWindowPassed(String),
    #[error("{what} unavailable: {detail}")]
    Unavailable { what: &'static str, detail: String },
    #[error("connection idle for {0} ms")]
    IdleTimeout(u64),
    #[error("the gateway is going away: {0}")]
    GoingAway(&'static str),
    #[error("too many {what}; retry in {retry_after_ms} ms")]
    RateLimited { what: &'static str, retry_after_ms: u64 },
    #[error("{what}; retry in {retry_after_ms} ms")]
    Busy { what: String, retry_after_ms: u64 },
    #[error("too many connections: {0}")]
    TooManyConnections(String),
    #[error("no login within {0} ms of connecting")]
    LoginTimeout(u64),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("router: {0}")]
    Router(#[from] confab_router_client::Error),
}

impl From<confab_common::ids::IdsExhausted> for Error {
    fn from(e: confab_common::ids::IdsExhausted) -> Self {
        Error::Unavailable {
            what: "message ids",
            detail: e.to_string(),
        }
    }
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::BadFrame(_) => ErrorCode::BadFrame,
            Error::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            Error::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            Error::HandshakeRequired => ErrorCode::HandshakeRequired,
            Error::UnknownRequest(_) => ErrorCode::UnknownRequest,
            Error::NotLoggedIn => ErrorCode::NotLoggedIn,
            Error::AlreadyLoggedIn => ErrorCode::AlreadyLoggedIn,
            Error::BadCredentials => ErrorCode::BadCredentials,
            Error::BadToken => ErrorCode::BadToken,
            Error::NameTaken(_) => ErrorCode::NameTaken,
            Error::UserNotFound(_) => ErrorCode::UserNotFound,
            Error::Invalid(_) => ErrorCode::InvalidArgument,
            Error::Forbidden { .. } | Error::NotPermitted(_) => ErrorCode::Forbidden,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Error::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            Error::LimitReached(_) => ErrorCode::LimitReached,
            Error::RecallWindowPassed(_) => ErrorCode::RecallWindowPassed,
            Error::Unavailable { .. } | Error::Router(_) => ErrorCode::Unavailable,
            Error::IdleTimeout(_) => ErrorCode::IdleTimeout,
            Error::GoingAway(_) => ErrorCode::GoingAway,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::Busy { .. } => ErrorCode::Busy,
            Error::TooManyConnections(_) => ErrorCode::TooManyConnections,
            Error::LoginTimeout(_) => ErrorCode::LoginTimeout,
            Error::Internal(_) | Error::Config(_) | Error::Io(_) => ErrorCode::Internal,
        }
    }

    /// True when the connection must close after this error (the byte
    /// stream or the session can no longer be trusted).
    pub fn closes(&self) -> bool {
        matches!(
            self,
            Error::BadFrame(_)
                | Error::FrameTooLarge { .. }
                | Error::UnsupportedVersion(_)
                | Error::HandshakeRequired
                | Error::IdleTimeout(_)
                | Error::GoingAway(_)
                | Error::TooManyConnections(_)
                | Error::LoginTimeout(_)
        )
    }

    /// For RATE_LIMITED and BUSY: when to try again.
    pub fn retry_after_ms(&self) -> u64 {
        match self {
            Error::RateLimited { retry_after_ms, .. } | Error::Busy { retry_after_ms, .. } => *retry_after_ms,
            _ => 0,
        }
    }

    /// A short stable name of the code, for metrics.
    pub fn code_name(&self) -> &'static str {
        self.code().as_str_name()
    }

    /// Maps a failed password check or account creation: there,
    /// RESOURCE_EXHAUSTED is persist's bound on concurrent password hashes
    /// (retry soon), not a cap of the data.
    pub fn from_persist_hashing(status: tonic::Status, not_found: impl FnOnce() -> Error) -> Error {
        if status.code() == tonic::Code::ResourceExhausted {
            return Error::Busy {
                what: "the server is busy checking passwords".to_owned(),
                retry_after_ms: BUSY_RETRY_MS,
            };
        }
        Error::from_persist(status, not_found)
    }

    /// Maps a failed persist call; `not_found` is the error that NOT_FOUND
    /// means for this call.
    pub fn from_persist(status: tonic::Status, not_found: impl FnOnce() -> Error) -> Error {
        use tonic::Code;
        match status.code() {
            Code::NotFound => not_found(),
            Code::InvalidArgument => Error::Invalid(status.message().to_owned()),
            Code::Unauthenticated => Error::BadCredentials,
            Code::PermissionDenied => Error::NotPermitted(status.message().to_owned()),
            Code::AlreadyExists => Error::AlreadyExists(status.message().to_owned()),
            Code::FailedPrecondition => Error::FailedPrecondition(status.message().to_owned()),
            // A cap of the data (a full group, too many pending requests).
            Code::ResourceExhausted => Error::LimitReached(status.message().to_owned()),
            Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled => {
                Error::Unavailable {
                    what: "persist",
                    detail: status.message().to_owned(),
                }
            }
            _ => Error::Internal(format!("persist: {status}")),
        }
    }

    /// Maps a failed enqueue: only an invalid message is the client's fault.
    pub fn from_queue(e: confab_queue::QueueError) -> Error {
        match e {
            confab_queue::QueueError::Invalid(m) => Error::Invalid(m),
            other => Error::Unavailable {
                what: "queue",
                detail: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_errors_close_request_errors_do_not() {
        assert!(Error::BadFrame("x".into()).closes());
        assert!(Error::FrameTooLarge { limit: 1 }.closes());
        assert!(!Error::NotLoggedIn.closes());
        assert!(!Error::UnknownRequest("x").closes());
        assert!(Error::LoginTimeout(1).closes());
        assert!(Error::TooManyConnections("x".into()).closes());
        let limited = Error::RateLimited {
            what: "x",
            retry_after_ms: 5,
        };
        assert!(!limited.closes());
        assert_eq!(limited.retry_after_ms(), 5);
    }

    #[test]
    fn resource_exhausted_from_a_password_check_is_busy_with_a_retry_after() {
        let e = Error::from_persist_hashing(tonic::Status::resource_exhausted("full"), || {
            Error::BadCredentials
        });
        assert_eq!(e.code(), ErrorCode::Busy);
        assert_eq!(e.retry_after_ms(), BUSY_RETRY_MS);
        assert!(!e.closes());
        // Any other failure of a password check maps as every persist call.
        let e = Error::from_persist_hashing(tonic::Status::unauthenticated("no"), || Error::BadCredentials);
        assert_eq!(e.code(), ErrorCode::BadCredentials);
    }

    #[test]
    fn resource_exhausted_from_a_data_call_is_a_reached_limit() {
        let e = Error::from_persist(tonic::Status::resource_exhausted("group is full"), || {
            Error::BadCredentials
        });
        assert_eq!(e.code(), ErrorCode::LimitReached);
        assert_eq!(e.retry_after_ms(), 0);
        assert!(!e.closes());
    }
}
