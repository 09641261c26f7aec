//! TLS to a gateway's client port: whom to trust ([`ClientTls`]) and the
//! handshake. Verification is always on: the gateway's certificate must
//! chain to a trusted CA and name the host dialled.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{Error, Result};

/// Whom a client trusts for a gateway's certificate.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // ring: the one provider of the tree.
    Arc::new(rustls::crypto::ring::default_provider())
}

impl ClientTls {
    /// Trusts the CA certificate(s) in the PEM file `ca` (and nothing else).
    pub fn with_ca_file(ca: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Tls(format!("{}: {reason}", ca.display()));
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| bad(e.to_string()))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no certificate in the file".into()));
        }
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
        }
        Self::with_roots(roots)
    }

    /// Trusts the system's CA store.
    pub fn with_system_roots() -> Result<Self> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
            return Err(Error::Tls(format!(
                "no usable certificate in the system's CA store{why}"
            )));
        }
        Self::with_roots(roots)
    }

    /// `--tls-ca FILE` wins; else `--tls` trusts the system's roots; else
    /// plain (`None`).
    pub fn from_flags(tls: bool, ca: Option<&Path>) -> Result<Option<Self>> {
        match (ca, tls) {
            (Some(ca), _) => Self::with_ca_file(ca).map(Some),
            (None, true) => Self::with_system_roots().map(Some),
            (None, false) => Ok(None),
        }
    }

    fn with_roots(roots: RootCertStore) -> Result<Self> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    /// The rustls configuration (WebSocket clients use it for `wss://`).
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The handshake on `stream`, checking the certificate names `addr`'s
    /// host (`HOST:PORT`, `[V6]:PORT` or a bare host).
    pub async fn connect(&self, addr: &str, stream: TcpStream) -> Result<TlsStream<TcpStream>> {
        let name = server_name(addr)?;
        TlsConnector::from(self.config.clone())
            .connect(name, stream)
            .await
            .map_err(|e| Error::Tls(format!("TLS handshake with {addr} failed: {e}")))
    }
}

/// The host part of `addr` as the name the certificate must carry.
pub fn server_name(addr: &str) -> Result<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((h, port)) if port.parse::<u16>().is_ok() => h,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|e| Error::Tls(format!("{addr}: not a host name: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_an_address_is_the_name_checked() {
        assert_eq!(server_name("127.0.0.1:7201").expect("ip").to_str(), "127.0.0.1");
        assert_eq!(server_name("localhost:7201").expect("dns").to_str(), "localhost");
        assert_eq!(server_name("[::1]:7201").expect("v6").to_str(), "::1");
        assert_eq!(
            server_name("chat.example.org").expect("bare").to_str(),
            "chat.example.org"
        );
        assert!(server_name("bad host:1").is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("confab-client-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("empty.pem");
        std::fs::write(&file, "not a certificate\n").expect("write");
        let e = ClientTls::with_ca_file(&file).expect_err("refused");
        assert!(e.to_string().contains("empty.pem"), "{e}");
        assert!(ClientTls::with_ca_file(&dir.join("missing.pem")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
