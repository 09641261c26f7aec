//! Certificates and keys from PEM files: the `[tls]` section of every
//! service's configuration, and what it loads.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::identity::Identity;

/// The cluster TLS files of one process (the `[tls]` section): the cluster
/// CA every peer's certificate must chain to, and this process' own
/// certificate (with its `confab://` identity) and key. The same pair
/// serves this process' listener and its calls to other processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The cluster CA certificate(s), PEM.
    pub ca: PathBuf,
    /// This process' certificate chain, PEM (leaf first).
    pub cert: PathBuf,
    /// This process' private key, PEM (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// `DIR/ca.pem`, `DIR/NAME.pem`, `DIR/NAME.key`: the layout `confabctl
    /// certs` writes.
    pub fn in_dir(dir: &Path, name: &str) -> Self {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        }
    }
}

/// A certificate chain and its key, read and checked.
#[derive(Debug)]
pub struct KeyPair {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub chain_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl KeyPair {
    pub fn read(cert: &Path, key: &Path) -> Result<Self> {
        let chain_pem = read(cert)?;
        let chain = certificates(cert, &chain_pem)?;
        let key_pem = read(key)?;
        let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| Error::Pem {
            path: key.to_owned(),
            reason: format!("no private key: {e}"),
        })?;
        Ok(KeyPair {
            chain,
            key: key_der,
            chain_pem,
            key_pem,
        })
    }

    /// The identity the leaf certificate names.
    pub fn identity(&self) -> Result<Identity> {
        Identity::from_der(&self.chain[0])
    }
}

impl Clone for KeyPair {
    fn clone(&self) -> Self {
        KeyPair {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            chain_pem: self.chain_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }
}

/// Everything a process of the cluster needs for mutual TLS.
#[derive(Debug, Clone)]
pub struct Material {
    pub ca: Vec<CertificateDer<'static>>,
    pub ca_pem: Vec<u8>,
    pub own: KeyPair,
    /// Who this process is, as its own certificate says.
    pub identity: Identity,
}

impl Material {
    pub fn read(files: &TlsFiles) -> Result<Self> {
        let ca_pem = read(&files.ca)?;
        let ca = certificates(&files.ca, &ca_pem)?;
        let own = KeyPair::read(&files.cert, &files.key)?;
        let identity = own.identity().map_err(|e| Error::Pem {
            path: files.cert.clone(),
            reason: e.to_string(),
        })?;
        Ok(Material {
            ca,
            ca_pem,
            own,
            identity,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of a PEM file; none is an error.
pub fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem {
            path: path.to_owned(),
            reason: format!("unreadable certificate: {e}"),
        })?;
    if certs.is_empty() {
        return Err(Error::Pem {
            path: path.to_owned(),
            reason: "no certificate in the file".into(),
        });
    }
    Ok(certs)
}
