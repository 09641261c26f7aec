//! The accepting side: a reloadable rustls server configuration and the
//! stream of accepted connections a tonic server serves.
//!
//! Handshakes run concurrently, each under a deadline, so a peer that opens
//! a connection and says nothing holds up no one. A connection that fails
//! its handshake (no TLS, a certificate from another CA, a deadline missed)
//! is counted and dropped; the ones that pass carry a [`PeerInfo`] into
//! every request's extensions, with the identity the peer's certificate
//! names, read once per connection.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus::{IntCounterVec, register_int_counter_vec};
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::error::{Error, Result};
use crate::files::{KeyPair, Material, TlsFiles};
use crate::identity::Identity;

/// How long a new connection may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

static HANDSHAKE_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "confab_tls_handshake_failures_total",
        "Connections dropped before their TLS handshake finished, by listener and reason \
         (error: not TLS, a certificate from another CA, a protocol error; timeout)",
        &["listener", "reason"]
    )
    .expect("register confab_tls_handshake_failures_total")
});

static RELOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "confab_tls_reloads_total",
        "Certificate reloads on SIGHUP, by listener and outcome (ok; failed: the old certificate stays)",
        &["listener", "outcome"]
    )
    .expect("register confab_tls_reloads_total")
});

/// The ring provider: the one rustls crypto provider of the tree (rustls
/// marks it deprecated for lacking post-quantum key exchange; ring is the
/// provider the whole tree, tonic included, is built on).
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where a server's certificate comes from, kept to reload it.
#[derive(Debug, Clone)]
enum Source {
    /// Mutual TLS inside the cluster: peers may present a certificate of
    /// the cluster CA (checked per request by [`crate::authz`]).
    Cluster(TlsFiles),
    /// A public listener (clients): a certificate and key, no client
    /// certificates.
    Public { cert: PathBuf, key: PathBuf },
}

/// A server's TLS configuration, replaced whole by [`ServerTls::reload`]:
/// connections already open keep the configuration they were accepted
/// with, new ones get the new one.
#[derive(Debug)]
pub struct ServerTls {
    source: Source,
    current: RwLock<Arc<ServerConfig>>,
    /// ALPN protocols offered (`h2` for gRPC).
    alpn: Vec<Vec<u8>>,
}

impl ServerTls {
    /// The cluster listener of a process: its certificate, and peer
    /// certificates verified against the cluster CA. A peer without a
    /// certificate completes the handshake and is refused per request
    /// (UNAUTHENTICATED, counted), so its error says why.
    pub fn cluster(files: &TlsFiles) -> Result<Self> {
        Self::build(Source::Cluster(files.clone()), vec![b"h2".to_vec()])
    }

    /// A public listener (the gateway's client ports): certificate and key,
    /// no client certificates; `alpn` as the protocol wants (empty for
    /// Confab's framed TCP, `http/1.1` for WebSocket).
    pub fn public(cert: PathBuf, key: PathBuf, alpn: Vec<Vec<u8>>) -> Result<Self> {
        Self::build(Source::Public { cert, key }, alpn)
    }

    fn build(source: Source, alpn: Vec<Vec<u8>>) -> Result<Self> {
        let config = load(&source, &alpn)?;
        Ok(ServerTls {
            source,
            current: RwLock::new(config),
            alpn,
        })
    }

    /// Reads the files again (on SIGHUP). On an error the configuration in
    /// use stays, and the error says which file is at fault.
    pub fn reload(&self) -> Result<()> {
        let config = load(&self.source, &self.alpn)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// Reloads the files on every SIGHUP for as long as the process runs;
    /// `name` labels the log line and `confab_tls_reloads_total`.
    /// Connections already open keep their session.
    pub fn reload_on_sighup(self: &Arc<Self>, name: &'static str) {
        use tokio::signal::unix::{SignalKind, signal};
        for outcome in ["ok", "failed"] {
            RELOADS.with_label_values(&[name, outcome]);
        }
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(%error, listener = name, "cannot watch SIGHUP: certificates reload only on restart");
                return;
            }
        };
        let tls = Arc::downgrade(self);
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let Some(tls) = tls.upgrade() else { return };
                match tls.reload() {
                    Ok(()) => {
                        RELOADS.with_label_values(&[name, "ok"]).inc();
                        tracing::info!(listener = name, "certificate reloaded");
                    }
                    Err(error) => {
                        RELOADS.with_label_values(&[name, "failed"]).inc();
                        tracing::error!(%error, listener = name, "certificate reload failed; the old one stays");
                    }
                }
            }
        });
    }

    /// The configuration new connections get.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config())
    }

    /// The TLS handshake of one accepted connection with the current
    /// configuration, within `deadline`. A failure (not TLS, a protocol
    /// error, the deadline missed) is counted in
    /// `confab_tls_handshake_failures_total` under `listener` before the
    /// connection is dropped, and returned.
    pub async fn handshake<IO>(
        &self,
        stream: IO,
        listener: &'static str,
        deadline: Duration,
    ) -> io::Result<tokio_rustls::server::TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        // The connection is dropped only after the failure is counted, so
        // a peer that sees it closed also sees it counted.
        let accept = self.acceptor().accept(stream).into_fallible();
        tokio::pin!(accept);
        match tokio::time::timeout(deadline, &mut accept).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err((error, stream))) => {
                HANDSHAKE_FAILURES.with_label_values(&[listener, "error"]).inc();
                drop(stream);
                Err(error)
            }
            Err(_) => {
                HANDSHAKE_FAILURES.with_label_values(&[listener, "timeout"]).inc();
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("TLS handshake not done within {deadline:?}"),
                ))
            }
        }
    }

    /// Shows the handshake failure counters of `listener` at zero before
    /// the first failure.
    pub fn register_listener(listener: &'static str) {
        for reason in ["error", "timeout"] {
            HANDSHAKE_FAILURES.with_label_values(&[listener, reason]);
        }
    }
}

fn load(source: &Source, alpn: &[Vec<u8>]) -> Result<Arc<ServerConfig>> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(e.to_string()))?;
    let mut config = match source {
        Source::Cluster(files) => {
            let material = Material::read(files)?;
            let mut roots = RootCertStore::empty();
            for ca in &material.ca {
                roots.add(ca.clone()).map_err(|e| Error::Pem {
                    path: files.ca.clone(),
                    reason: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| Error::Config(format!("client certificate verifier: {e}")))?;
            builder
                .with_client_cert_verifier(verifier)
                .with_single_cert(material.own.chain, material.own.key)
                .map_err(|e| Error::Pem {
                    path: files.key.clone(),
                    reason: format!("the key does not fit the certificate: {e}"),
                })?
        }
        Source::Public { cert, key } => {
            let pair = KeyPair::read(cert, key)?;
            builder
                .with_no_client_auth()
                .with_single_cert(pair.chain, pair.key)
                .map_err(|e| Error::Pem {
                    path: key.clone(),
                    reason: format!("the key does not fit the certificate: {e}"),
                })?
        }
    };
    config.alpn_protocols = alpn.to_vec();
    Ok(Arc::new(config))
}

/// What a server knows about the peer of one connection; every request on
/// it carries this in its extensions.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote: Option<SocketAddr>,
    /// The connection is TLS: the server requires an authorized identity.
    pub tls: bool,
    /// The identity the peer's verified certificate names, if it presented
    /// one that names one.
    pub identity: Option<Identity>,
}

/// An accepted connection, plain or TLS.
pub struct Conn {
    io: Io,
    info: PeerInfo,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Conn {
    pub fn peer(&self) -> &PeerInfo {
        &self.info
    }
}

impl Connected for Conn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The connections `listener` accepts, for `serve_with_incoming`: with
/// `tls`, each after its handshake; TCP_NODELAY on every one (our answers
/// are small; Nagle would hold one for the peer's delayed ACK). `name`
/// labels the handshake failure counter ("grpc"). The accept loop ends
/// when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    name: &'static str,
) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel::<io::Result<Conn>>(64);
    if tls.is_some() {
        for reason in ["error", "timeout"] {
            HANDSHAKE_FAILURES.with_label_values(&[name, reason]);
        }
    }
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                a = listener.accept() => a,
            };
            let (stream, remote) = match accepted {
                Ok(a) => a,
                Err(error) => {
                    // Out of descriptors and the like: wait, do not spin.
                    tracing::warn!(%error, listener = name, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            match &tls {
                None => {
                    let info = PeerInfo {
                        remote: Some(remote),
                        tls: false,
                        identity: None,
                    };
                    let conn = Conn {
                        io: Io::Plain(stream),
                        info,
                    };
                    if tx.send(Ok(conn)).await.is_err() {
                        return;
                    }
                }
                Some(tls) => {
                    let acceptor = tls.acceptor();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let conn =
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(error)) => {
                                    HANDSHAKE_FAILURES.with_label_values(&[name, "error"]).inc();
                                    tracing::debug!(%error, %remote, listener = name, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    HANDSHAKE_FAILURES.with_label_values(&[name, "timeout"]).inc();
                                    tracing::debug!(%remote, listener = name, "TLS handshake timed out");
                                    return;
                                }
                            };
                        let identity = conn
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|certs| certs.first())
                            .and_then(|leaf| Identity::from_der(leaf).ok());
                        let info = PeerInfo {
                            remote: Some(remote),
                            tls: true,
                            identity,
                        };
                        let _ = tx
                            .send(Ok(Conn {
                                io: Io::Tls(Box::new(conn)),
                                info,
                            }))
                            .await;
                    });
                }
            }
        }
    });
    ReceiverStream::new(rx)
}
