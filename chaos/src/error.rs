//! The error type of the chaos harness.

use std::path::PathBuf;
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The router binary is not where it was looked for.
    #[error("binary {name} not found at {} (build it, or set CONFAB_BIN_DIR)", path.display())]
    BinaryNotFound { name: String, path: PathBuf },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A signal could not be delivered to node `node`'s process.
    #[error("signal {signal} to node {node} (pid {pid}): {source}")]
    Signal {
        node: u64,
        pid: u32,
        signal: &'static str,
        #[source]
        source: nix::Error,
    },
    /// An operation named a node the cluster does not run.
    #[error("node {0} is not running")]
    NotRunning(u64),
    /// The cluster did not become healthy in time.
    #[error("cluster not ready after {within:?}: {last}")]
    NotReady { within: Duration, last: String },
    #[error("router client: {0}")]
    Client(#[from] confab_router_client::Error),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
