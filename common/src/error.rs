//! The one error type of confab-common: a configuration that cannot be
//! loaded or printed, an address that cannot be bound.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--config FILE` names a file that is not there.
    #[error("config file {} does not exist", path.display())]
    ConfigFileMissing { path: PathBuf },
    /// The layers do not make a valid configuration (a bad key or value).
    #[error(transparent)]
    Config(Box<figment::Error>),
    #[error("printing the configuration: {0}")]
    ConfigPrint(#[from] toml::ser::Error),
    /// A listener's address cannot be bound (taken, or not local).
    #[error("binding {what} {addr}")]
    Bind {
        what: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
}
