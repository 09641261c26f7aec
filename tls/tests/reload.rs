//! SIGHUP reloads a listener's certificate: new connections get the new
//! one, a connection opened before keeps its session, a broken file leaves
//! the old certificate in place.

use std::sync::Arc;
use std::time::Duration;

use confab_tls::{Ca, Identity, ServerTls, TlsFiles, incoming};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_stream::StreamExt;

fn connector(dir: &std::path::Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    for cert in confab_tls::files::certificates(&dir.join("ca.pem"), &ca).unwrap() {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(confab_tls::server::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// The certificate the server at `addr` presents now.
async fn presented(
    addr: std::net::SocketAddr,
    dir: &std::path::Path,
) -> (
    CertificateDer<'static>,
    tokio_rustls::client::TlsStream<TcpStream>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector(dir)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("handshake");
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    (cert, tls)
}

fn issue(ca: &Ca, dir: &std::path::Path) -> CertificateDer<'static> {
    let pem = ca
        .issue(Some(Identity::router(1)), &["localhost".into()], 1)
        .unwrap();
    pem.write(dir, "router-1").unwrap();
    let text = std::fs::read(dir.join("router-1.pem")).unwrap();
    confab_tls::files::certificates(&dir.join("router-1.pem"), &text).unwrap()[0].clone()
}

#[tokio::test]
async fn sighup_swaps_the_certificate_for_new_connections_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA", 1).unwrap();
    ca.pem().write(dir.path(), "ca").unwrap();
    let first = issue(&ca, dir.path());
    let tls = Arc::new(ServerTls::cluster(&TlsFiles::in_dir(dir.path(), "router-1")).unwrap());
    tls.reload_on_sighup("test");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut conns = incoming(listener, Some(tls.clone()), "test");
    // Hold every accepted connection open.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(conn) = conns.next().await {
            held.push(conn);
        }
    });

    let (cert, mut old) = presented(addr, dir.path()).await;
    assert_eq!(cert, first);

    let second = issue(&ca, dir.path());
    assert_ne!(first, second);
    let pid = std::process::id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut now = first.clone();
    for _ in 0..100 {
        now = presented(addr, dir.path()).await.0;
        if now == second {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(now, second, "new connections get the reloaded certificate");
    // The connection from before is still open (a read waits, no EOF).
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(200), old.read(&mut byte)).await;
    assert!(read.is_err(), "the old connection was closed: {read:?}");

    // A broken key file: the reload fails, the certificate in use stays.
    std::fs::write(dir.path().join("router-1.key"), "not a key").unwrap();
    assert!(tls.reload().is_err());
    assert_eq!(presented(addr, dir.path()).await.0, second);
}
