//! The calling side of mutual TLS: the tonic client configuration every
//! channel to another Confab process is built with (see `confab-net`).

use tonic::transport::{Certificate, ClientTlsConfig, Identity as TonicIdentity};

use std::path::Path;

use crate::error::{Error, Result};
use crate::files::{Material, TlsFiles};
use crate::identity::{Identity, Role};

/// A process' client side of the cluster's mutual TLS: trusts the cluster
/// CA only, presents the process' own certificate.
#[derive(Debug, Clone)]
pub struct ClientTls {
    config: ClientTlsConfig,
    identity: Identity,
}

impl ClientTls {
    pub fn load(files: &TlsFiles) -> Result<Self> {
        Ok(Self::from_material(&Material::read(files)?))
    }

    pub fn from_material(material: &Material) -> Self {
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&material.ca_pem))
            .identity(TonicIdentity::from_pem(
                &material.own.chain_pem,
                &material.own.key_pem,
            ));
        ClientTls {
            config,
            identity: material.identity,
        }
    }

    /// The tonic configuration; the server name checked is the host of the
    /// address dialled, so a certificate must name the addresses (or DNS
    /// names) its process is reached at.
    pub fn tonic(&self) -> ClientTlsConfig {
        self.config.clone()
    }

    /// Who this process is.
    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// An operator tool's certificate from a directory laid out as
    /// `confabctl certs` writes it (`ca.pem`, `admin.pem`, `admin.key`):
    /// `None` when the directory does not hold all three (a plain cluster),
    /// an error when they do not load or do not name the admin.
    pub fn admin_from_dir(dir: &Path) -> Result<Option<Self>> {
        let files = TlsFiles::in_dir(dir, "admin");
        if !(files.ca.exists() && files.cert.exists() && files.key.exists()) {
            return Ok(None);
        }
        Self::admin(&files).map(Some)
    }

    /// An operator tool's certificate; it must name the admin.
    pub fn admin(files: &TlsFiles) -> Result<Self> {
        let tls = Self::load(files)?;
        if tls.identity.role != Role::Admin {
            return Err(Error::Identity(format!(
                "{} names {}, not admin",
                files.cert.display(),
                tls.identity
            )));
        }
        Ok(tls)
    }
}
