//! The directory of other gateways: gateway id -> internal gRPC client,
//! filled from the router's gateway registry and refreshed on a miss or
//! after a failed call.

use std::collections::HashMap;
use std::sync::Mutex;

use confab_net::{Channel, ChannelConfig, ChannelPool};
use confab_proto::gateway::gateway_service_client::GatewayServiceClient;
use confab_router_client::RouterClient;

use crate::error::{Error, Result};

pub type PeerClient = GatewayServiceClient<Channel>;

pub struct Peers {
    channels: ChannelPool,
    known: Mutex<HashMap<u64, (String, PeerClient)>>,
}

impl Peers {
    /// Channels to other gateways are built with `config` (the gateway's RPC
    /// timeout, for connecting and for every call).
    pub fn new(config: ChannelConfig) -> Self {
        Peers {
            channels: ChannelPool::new(config),
            known: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (String, PeerClient)>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client of gateway `id`, asking the router on a miss.
    pub async fn client(&self, router: &RouterClient, id: u64) -> Result<PeerClient> {
        if let Some((_, c)) = self.lock().get(&id) {
            return Ok(c.clone());
        }
        self.refresh(router).await?;
        self.lock()
            .get(&id)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| Error::Unavailable {
                what: "gateway",
                detail: format!("gateway {id} is not registered"),
            })
    }

    /// Forgets gateway `id` (after a failed call), so the next use refreshes.
    pub fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Reloads the registry; keeps channels whose address did not change.
    pub async fn refresh(&self, router: &RouterClient) -> Result<()> {
        let list = router.list_gateways().await?;
        let mut map = self.lock();
        for g in list.into_iter().filter(|g| !g.expired) {
            if map.get(&g.gateway_id).is_some_and(|(a, _)| *a == g.addr) {
                continue;
            }
            let channel = self.channels.get(&g.addr).map_err(|e| Error::Unavailable {
                what: "gateway",
                detail: format!("gateway {}: {e}", g.gateway_id),
            })?;
            if let Some((old, _)) = map.insert(g.gateway_id, (g.addr, GatewayServiceClient::new(channel))) {
                self.channels.forget(&old);
            }
        }
        Ok(())
    }

    /// Every known gateway: id -> client.
    pub fn snapshot(&self) -> Vec<(u64, PeerClient)> {
        self.lock().iter().map(|(id, (_, c))| (*id, c.clone())).collect()
    }
}
