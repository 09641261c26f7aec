//! The channel factory: every outbound gRPC channel to a Confab process is
//! built by [`channel`], from a peer address and a [`ChannelConfig`].

use std::time::Duration;

use confab_tls::ClientTls;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};

/// How a channel to a peer behaves. The defaults suit a call on the same
/// network: connect within a second, no per-request deadline (callers that
/// need one set it here or per call), no keep-alive pings, no TLS.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// How long establishing the TCP (and HTTP/2) connection may take.
    pub connect_timeout: Duration,
    /// A deadline for every request on the channel; `None`: only the
    /// caller's own deadline (or `tokio::time::timeout`) applies.
    pub request_timeout: Option<Duration>,
    /// HTTP/2 PING interval: notices a dead peer on an idle connection.
    pub keep_alive: Option<Duration>,
    /// Mutual TLS with the cluster CA: the peer's certificate must chain to
    /// it and name the host dialled; this process presents its own.
    pub tls: Option<ClientTls>,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            connect_timeout: Duration::from_secs(1),
            request_timeout: None,
            keep_alive: None,
            tls: None,
        }
    }
}

impl ChannelConfig {
    /// The default configuration with `connect_timeout`.
    pub fn connect_within(connect_timeout: Duration) -> Self {
        ChannelConfig {
            connect_timeout,
            ..ChannelConfig::default()
        }
    }

    /// The same configuration with a deadline on every request.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// The same configuration with mutual TLS when `tls` is set.
    pub fn with_tls(mut self, tls: Option<ClientTls>) -> Self {
        self.tls = tls;
        self
    }

    /// The same configuration with HTTP/2 keep-alive pings every `interval`.
    pub fn with_keep_alive(mut self, interval: Duration) -> Self {
        self.keep_alive = Some(interval);
        self
    }
}

/// The URI of a peer address: `http://` is added when `addr` names no
/// scheme; surrounding whitespace is dropped.
pub fn uri(addr: &str) -> String {
    let addr = addr.trim();
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

/// Checks that `addr` parses as a peer address.
pub fn validate(addr: &str) -> Result<()> {
    endpoint(addr).map(drop)
}

/// A channel to `addr`, connected lazily (on the first call) and reconnected
/// by tonic after a failure. Every connection has TCP_NODELAY: our requests
/// and answers are small, and Nagle would hold one back for the peer's
/// delayed ACK (~40 ms).
///
/// With TLS the address is dialled as `https://` whatever scheme it names:
/// a cluster with TLS on never sends a call in the clear.
pub fn channel(addr: &str, config: &ChannelConfig) -> Result<Channel> {
    let mut endpoint = match &config.tls {
        None => endpoint(addr)?,
        Some(tls) => {
            let host = addr.trim();
            let host = host.split_once("://").map_or(host, |(_, rest)| rest);
            endpoint(&format!("https://{host}"))?
                .tls_config(tls.tonic())
                .map_err(|e| Error::InvalidAddress {
                    addr: addr.to_owned(),
                    reason: format!("TLS: {e}"),
                })?
        }
    }
    .connect_timeout(config.connect_timeout)
    .tcp_nodelay(true);
    if let Some(timeout) = config.request_timeout {
        endpoint = endpoint.timeout(timeout);
    }
    if let Some(interval) = config.keep_alive {
        endpoint = endpoint.http2_keep_alive_interval(interval);
    }
    Ok(endpoint.connect_lazy())
}

fn endpoint(addr: &str) -> Result<Endpoint> {
    Endpoint::from_shared(uri(addr)).map_err(|e| Error::InvalidAddress {
        addr: addr.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_a_scheme() {
        assert_eq!(uri("127.0.0.1:7101"), "http://127.0.0.1:7101");
        assert_eq!(uri(" http://h:1 "), "http://h:1");
        assert_eq!(uri("https://h:1"), "https://h:1");
    }

    #[test]
    fn bad_addresses_are_refused_with_the_address() {
        assert!(validate("127.0.0.1:7101").is_ok());
        let err = validate("bad addr with spaces").unwrap_err();
        assert!(matches!(err, Error::InvalidAddress { ref addr, .. } if addr == "bad addr with spaces"));
    }

    #[tokio::test]
    async fn a_channel_is_built_without_connecting() {
        // Nothing listens on port 1; a lazy channel is still made.
        let config = ChannelConfig::connect_within(Duration::from_millis(50))
            .with_request_timeout(Duration::from_millis(50))
            .with_keep_alive(Duration::from_secs(5));
        assert!(channel("127.0.0.1:1", &config).is_ok());
    }
}
