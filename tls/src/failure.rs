//! Telling a TLS failure apart from an outage in the error a client library
//! (sqlx, lapin) hands back: a server whose certificate does not verify is a
//! configuration error to report at once, not a connection to retry.

use std::error::Error as StdError;

/// A failed TLS handshake found in an error's chain of sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeFailure {
    /// The server's certificate was refused (unknown issuer, wrong name,
    /// expired...), as opposed to another handshake error.
    pub certificate: bool,
    /// What rustls said.
    pub reason: String,
}

impl std::fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.certificate {
            write!(f, "the server's certificate did not verify: {}", self.reason)
        } else {
            write!(f, "TLS handshake failed: {}", self.reason)
        }
    }
}

/// The rustls error somewhere in `err`'s sources, described; `None` when
/// there is none (refused connection, timeout, authentication...).
pub fn handshake_failure(err: &(dyn StdError + 'static)) -> Option<HandshakeFailure> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(tls));
        }
        // `io::Error::source` skips the error it wraps: look at it directly.
        next = match e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

fn describe(e: &rustls::Error) -> HandshakeFailure {
    let certificate = matches!(
        e,
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
    );
    HandshakeFailure {
        certificate,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn finds_a_certificate_error_inside_an_io_error() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let err = Outer(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        let found = handshake_failure(&err).expect("found");
        assert!(found.certificate);
        assert!(found.to_string().contains("did not verify"), "{found}");
        assert!(found.to_string().contains("UnknownIssuer"), "{found}");
    }

    #[test]
    fn other_handshake_errors_are_not_certificate_errors() {
        let tls = rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure);
        let err = std::io::Error::other(tls);
        let found = handshake_failure(&err).expect("found");
        assert!(!found.certificate);
        assert!(found.to_string().starts_with("TLS handshake failed"), "{found}");
    }

    #[test]
    fn a_refused_connection_is_no_tls_failure() {
        let err = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(handshake_failure(&err), None);
    }
}
