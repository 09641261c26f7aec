//! TLS on the client ports (`[client_tls]`): one certificate and key for
//! the TCP port and for HTTPS/WSS on the public HTTP port, read again on
//! SIGHUP. A reload replaces the configuration new connections get; open
//! connections keep the one they were accepted with. A bad file on reload
//! is logged with the file at fault and the certificate in use stays.

use std::sync::Arc;
use std::time::Duration;

use confab_tls::ServerTls;
use tokio_util::sync::CancellationToken;

use crate::config::ClientTlsConfig;
use crate::error::{Error, Result};
use crate::metrics;

/// The label of the TCP port's handshake failures in
/// `confab_tls_handshake_failures_total`.
pub const TCP_LISTENER: &str = "client_tcp";
/// The label of the HTTP port's handshake failures.
pub const HTTP_LISTENER: &str = "client_http";

/// The client ports' TLS: the same files, offered with no ALPN on the TCP
/// port (Confab's own framing) and `http/1.1` on the HTTP port.
#[derive(Debug)]
pub struct ClientPorts {
    pub tcp: ServerTls,
    pub http: ServerTls,
    /// A new connection's handshake must be done within this long.
    pub handshake_timeout: Duration,
}

impl ClientPorts {
    /// Reads the files; an error names the file at fault.
    pub fn load(config: &ClientTlsConfig) -> Result<Self> {
        let load = |alpn: Vec<Vec<u8>>| {
            ServerTls::public(config.cert.clone(), config.key.clone(), alpn)
                .map_err(|e| Error::Config(format!("client_tls: {e}")))
        };
        ServerTls::register_listener(TCP_LISTENER);
        ServerTls::register_listener(HTTP_LISTENER);
        Ok(ClientPorts {
            tcp: load(Vec::new())?,
            http: load(vec![b"http/1.1".to_vec()])?,
            handshake_timeout: Duration::from_millis(config.handshake_timeout_ms),
        })
    }

    /// Reads the files again for both ports (counted by result). On an
    /// error both keep the certificate they had.
    pub fn reload(&self) -> std::result::Result<(), confab_tls::Error> {
        // The TCP port's copy is read first: if it fails, neither changed.
        let result = self.tcp.reload().and_then(|()| self.http.reload());
        match &result {
            Ok(()) => {
                metrics::TLS_RELOADS.with_label_values(&["ok"]).inc();
                tracing::info!("client certificate reloaded");
            }
            Err(error) => {
                metrics::TLS_RELOADS.with_label_values(&["failed"]).inc();
                tracing::error!(%error, "client certificate reload failed; the previous certificate stays");
            }
        }
        result
    }
}

/// Reloads `ports` on every SIGHUP until `shutdown`.
pub fn reload_on_sighup(ports: Arc<ClientPorts>, shutdown: CancellationToken) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                s = hup.recv() => if s.is_none() { return },
            }
            let _ = ports.reload();
        }
    });
    Ok(())
}
