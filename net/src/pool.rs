//! [`ChannelPool`]: one shared channel per peer address.

use std::collections::HashMap;
use std::sync::Mutex;

use tonic::transport::Channel;

use crate::channel::{ChannelConfig, channel, uri};
use crate::error::Result;

/// Channels by peer address, built by [`channel`] on first use and shared
/// afterwards: every stub for one peer multiplexes over one HTTP/2
/// connection. A channel reconnects by itself, so an entry is kept until
/// [`ChannelPool::forget`] (a peer that left for good).
#[derive(Debug, Default)]
pub struct ChannelPool {
    config: ChannelConfig,
    channels: Mutex<HashMap<String, Channel>>,
}

impl ChannelPool {
    pub fn new(config: ChannelConfig) -> Self {
        ChannelPool {
            config,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration every channel of this pool is built with.
    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    /// The channel to `addr`, built (without connecting) if there is none.
    pub fn get(&self, addr: &str) -> Result<Channel> {
        let key = uri(addr);
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.get(&key) {
            return Ok(channel.clone());
        }
        let built = channel(addr, &self.config)?;
        channels.insert(key, built.clone());
        Ok(built)
    }

    /// Drops the channel to `addr`; the next [`get`](Self::get) builds anew.
    pub fn forget(&self, addr: &str) {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&uri(addr));
    }

    /// How many peers have a channel.
    pub fn len(&self) -> usize {
        self.channels.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_channel_per_address_whatever_its_spelling() {
        let pool = ChannelPool::default();
        pool.get("127.0.0.1:1").unwrap();
        pool.get("http://127.0.0.1:1").unwrap();
        pool.get(" 127.0.0.1:1 ").unwrap();
        assert_eq!(pool.len(), 1);
        pool.get("127.0.0.1:2").unwrap();
        assert_eq!(pool.len(), 2);
        pool.forget("127.0.0.1:2");
        assert_eq!(pool.len(), 1);
        assert!(pool.get("not an address").is_err());
        assert_eq!(pool.len(), 1);
    }
}
