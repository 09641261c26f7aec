//! One lazily connected, shared channel per router node address, with the
//! stubs and the batch coalescer that use it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use confab_net::{Channel, ChannelConfig, ChannelPool};
use confab_proto::router::router_admin_client::RouterAdminClient;
use confab_proto::router::router_data_client::RouterDataClient;

use crate::coalesce::Coalescer;
use crate::config::ClientConfig;
use crate::error::{Error, Result};

/// The gRPC stubs of one node, over its shared channel: the data plane
/// (sessions, leases, the map) and the admin plane (operators' calls).
#[derive(Debug, Clone)]
pub(crate) struct Stub {
    channel: Channel,
    max_message_bytes: usize,
}

impl Stub {
    /// The data plane's stub.
    pub(crate) fn data(&self) -> RouterDataClient<Channel> {
        RouterDataClient::new(self.channel.clone())
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes)
    }

    /// The admin plane's stub.
    pub(crate) fn admin(&self) -> RouterAdminClient<Channel> {
        RouterAdminClient::new(self.channel.clone())
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes)
    }
}

/// Adds `http://` when `addr` has no scheme; trims whitespace.
pub fn normalize_addr(addr: &str) -> String {
    confab_net::uri(addr)
}

/// One shared channel per node address (from `confab-net`'s pool) and the
/// coalescer of each node's batch RPCs.
#[derive(Debug)]
pub(crate) struct Pool {
    config: ClientConfig,
    channels: ChannelPool,
    coalescers: Mutex<HashMap<String, Arc<Coalescer>>>,
}

impl Pool {
    pub(crate) fn new(config: ClientConfig) -> Self {
        Pool {
            channels: ChannelPool::new(
                ChannelConfig::connect_within(config.connect_timeout).with_tls(config.tls.clone()),
            ),
            config,
            coalescers: Mutex::new(HashMap::new()),
        }
    }

    /// The coalescer of `addr`'s batch RPCs, started on first use (from
    /// within the tokio runtime).
    pub(crate) fn coalescer(&self, addr: &str) -> Result<Arc<Coalescer>> {
        let key = normalize_addr(addr);
        if let Some(c) = self
            .coalescers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let stub = self.stub(addr)?.data();
        let mut coalescers = self.coalescers.lock().unwrap_or_else(|e| e.into_inner());
        Ok(coalescers
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Coalescer::spawn(
                    stub,
                    self.config.batch_in_flight,
                    self.config.max_batch_items,
                ))
            })
            .clone())
    }

    /// Checks that `addr` parses as an endpoint URI.
    pub(crate) fn validate(addr: &str) -> Result<()> {
        confab_net::validate(addr).map_err(invalid_address)
    }

    /// The stubs of `addr`, over its shared channel (built, without
    /// connecting, on first use).
    pub(crate) fn stub(&self, addr: &str) -> Result<Stub> {
        let channel = self.channels.get(addr).map_err(invalid_address)?;
        Ok(Stub {
            channel,
            max_message_bytes: self.config.max_message_bytes,
        })
    }
}

fn invalid_address(e: confab_net::Error) -> Error {
    match e {
        confab_net::Error::InvalidAddress { addr, reason } => Error::InvalidAddress { addr, reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_addresses() {
        assert_eq!(normalize_addr("127.0.0.1:7101"), "http://127.0.0.1:7101");
        assert_eq!(normalize_addr(" http://h:1 "), "http://h:1");
        assert_eq!(normalize_addr("https://h:1"), "https://h:1");
    }

    #[test]
    fn validates_addresses() {
        assert!(Pool::validate("127.0.0.1:7101").is_ok());
        assert!(Pool::validate("bad addr with spaces").is_err());
    }
}
