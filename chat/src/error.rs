//! confab-chat's errors. Each prints as one line that already says what
//! caused it: a variant that wraps another error is transparent (its text
//! is the cause's), so printing the error and then its sources would say
//! the same thing twice; [`report`] prints the error alone.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Client(#[from] confab_client::Error),
    #[error("{0}")]
    Usage(String),
    /// A user or group named on the command line that is not there.
    #[error("{0}")]
    NotFound(String),
    #[error("io: {0}")]
    Io(#[source] std::io::Error),
    #[error("the connection closed{0}")]
    Closed(String),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// The line printed for an error: `error: ` and its message, once.
pub fn report(e: &Error) -> String {
    format!("error: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_one_line_that_says_its_cause_once() {
        let server = confab_client::Error::Server {
            code: confab_client::ErrorCode::UserNotFound,
            message: "no user named zed".into(),
        };
        let e = Error::from(server);
        let line = report(&e);
        assert_eq!(line, "error: UserNotFound: no user named zed");
        assert_eq!(line.matches("no user named zed").count(), 1);
        assert!(
            std::error::Error::source(&e).is_none(),
            "a transparent variant hands over no second copy of its text"
        );
    }
}
