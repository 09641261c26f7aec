//! Which persist process answers data access: the first, in the configured
//! order, whose commit stream is up (`service::moved` follows every one and
//! says when its stream opens and when it breaks). A persist process that
//! dies breaks its stream at once, so data access moves to the next one,
//! and back once the first is up again. Until its stream has been tried, a
//! persist process counts as up.

use std::sync::atomic::{AtomicBool, Ordering};

use confab_proto::persist::data_service_client::DataServiceClient;
use tonic::transport::Channel;

pub struct PersistData {
    addrs: Vec<String>,
    clients: Vec<DataServiceClient<Channel>>,
    up: Vec<AtomicBool>,
}

impl PersistData {
    /// One client per persist process (address, channel), in the
    /// configured order.
    pub fn new(persists: Vec<(String, Channel)>) -> Self {
        let up = persists.iter().map(|_| AtomicBool::new(true)).collect();
        let (addrs, clients) = persists
            .into_iter()
            .map(|(addr, channel)| (addr, DataServiceClient::new(channel)))
            .unzip();
        Self { addrs, clients, up }
    }

    /// The data service of the first persist process that is up (of the
    /// first configured when none is).
    pub fn client(&self) -> DataServiceClient<Channel> {
        self.clients[self.current()].clone()
    }

    fn current(&self) -> usize {
        self.up.iter().position(|u| u.load(Ordering::SeqCst)).unwrap_or(0)
    }

    /// Persist process `i`'s commit stream opened (`up`) or broke.
    pub fn set_up(&self, i: usize, up: bool) {
        let Some(flag) = self.up.get(i) else {
            return;
        };
        let before = self.current();
        if flag.swap(up, Ordering::SeqCst) == up {
            return;
        }
        let now = self.current();
        if now != before {
            tracing::warn!(
                from = %self.addrs[before],
                to = %self.addrs[now],
                "data access moves to another persist process"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn data_access_goes_to_the_first_persist_that_is_up() {
        let config = confab_net::ChannelConfig::default();
        let persists = ["127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303"]
            .iter()
            .map(|a| (a.to_string(), confab_net::channel(a, &config).expect("channel")))
            .collect();
        let data = PersistData::new(persists);
        assert_eq!(data.current(), 0, "every one counts as up at first");
        data.set_up(0, false);
        assert_eq!(data.current(), 1);
        data.set_up(1, false);
        assert_eq!(data.current(), 2);
        data.set_up(2, false);
        assert_eq!(data.current(), 0, "none up: the first");
        data.set_up(1, true);
        assert_eq!(data.current(), 1);
        data.set_up(0, true);
        assert_eq!(data.current(), 0, "back to the first once it is up");
        data.set_up(9, false);
        assert_eq!(data.current(), 0);
    }
}
