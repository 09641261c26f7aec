//! The errors of this crate: each names the file or identity at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("certificate identity: {0}")]
    Identity(String),
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("issuing a certificate: {0}")]
    Issue(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
