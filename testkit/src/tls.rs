//! Certificates for tests of TLS to a server the test starts itself.

use std::path::{Path, PathBuf};

use confab_tls::Ca;

/// The files of a test CA and a server certificate it issued.
pub struct ServerCerts {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A new CA named `ca_name` and a server certificate from it for
/// `localhost` and 127.0.0.1, written to `dir`.
pub fn server_certs(dir: &Path, ca_name: &str) -> ServerCerts {
    let ca = Ca::new(ca_name, 1).expect("test CA");
    let ca_path = ca.pem().write(dir, "ca").expect("CA file").0;
    let (cert, key) = ca
        .issue(None, &["localhost".into(), "127.0.0.1".into()], 1)
        .expect("server certificate")
        .write(dir, "server")
        .expect("server certificate files");
    ServerCerts {
        ca: ca_path,
        cert,
        key,
    }
}

/// The certificate of a CA that issued nothing a test server uses, written
/// to `dir`: what a client trusting it must refuse.
pub fn other_ca(dir: &Path) -> PathBuf {
    Ca::new("some other CA", 1)
        .expect("CA")
        .pem()
        .write(dir, "other-ca")
        .expect("CA file")
        .0
}
