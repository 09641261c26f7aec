//! The command-line flags of the cluster TLS files, shared by every service
//! and tool: `--tls-ca`, `--tls-cert`, `--tls-key`, given together.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::files::TlsFiles;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Cluster CA certificate (PEM): turns on mutual TLS on the internal
    /// gRPC port and to every peer (with --tls-cert and --tls-key).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// This process' certificate (PEM), naming its confab:// identity.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// This process' private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The files the flags name: none, or all three.
    pub fn files(&self) -> Result<Option<TlsFiles>> {
        match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            (None, None, None) => Ok(None),
            (Some(ca), Some(cert), Some(key)) => Ok(Some(TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            })),
            _ => Err(Error::Config(
                "--tls-ca, --tls-cert and --tls-key go together".into(),
            )),
        }
    }

    /// Overrides `config` when the flags name files.
    pub fn apply(&self, config: &mut Option<TlsFiles>) -> Result<()> {
        if let Some(files) = self.files()? {
            *config = Some(files);
        }
        Ok(())
    }
}
