//! What every connection and handler shares: configuration, the clients of
//! the router, persist and the queue, the session registry, id generation,
//! the lease's incarnation and the directory of other gateways.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_proto::persist::data_service_client::DataServiceClient;
use confab_queue::AnyProducer;
use confab_router_client::RouterClient;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::config::GatewayConfig;
use crate::peers::Peers;
use crate::presence::PresenceTracker;
use crate::registry::Registry;
use crate::social::SocialCache;
use confab_common::ids::IdGen;

pub struct Shared {
    pub config: GatewayConfig,
    pub router: RouterClient,
    pub data: DataServiceClient<Channel>,
    pub producer: AnyProducer,
    pub registry: Registry,
    pub ids: IdGen,
    /// This gateway's incarnation in the router's registry (0 = none yet).
    pub incarnation: AtomicU64,
    /// Registered and serving.
    pub ready: AtomicBool,
    pub peers: Peers,
    pub users: UserCache,
    /// Friend lists and group members (cached, invalidated on change).
    pub social: SocialCache,
    /// Where the friends of the users logged in here are online.
    pub presence: PresenceTracker,
    pub shutdown: CancellationToken,
    /// The client TCP address /v1/gateway hands out for this gateway.
    pub client_addr: String,
    /// The internal gRPC address registered with the routers.
    pub grpc_addr: String,
    /// One permit per open client connection (TCP and WebSocket).
    pub connections: Arc<Semaphore>,
    /// The send path's batched enqueues, lookups and Deliver calls.
    pub coalesce: crate::batch::Coalescers,
}

impl Shared {
    pub fn gateway_id(&self) -> u64 {
        self.config.id
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation.load(Ordering::SeqCst)
    }

    pub fn rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.config.limits.rpc_timeout_ms)
    }

    pub fn data(&self) -> DataServiceClient<Channel> {
        self.data.clone()
    }
}

/// Known users (ids and names), so that a send does not ask persist whether
/// the recipient exists every time. Users are never deleted; the cache is
/// bounded by clearing it when full.
#[derive(Default)]
pub struct UserCache {
    inner: Mutex<(HashSet<u64>, HashMap<String, u64>)>,
}

const USER_CACHE_MAX: usize = 200_000;

impl UserCache {
    pub fn has_id(&self, id: u64) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .contains(&id)
    }

    pub fn id_of(&self, name: &str) -> Option<u64> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .get(name)
            .copied()
    }

    pub fn remember(&self, id: u64, name: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.0.len() >= USER_CACHE_MAX {
            g.0.clear();
            g.1.clear();
        }
        g.0.insert(id);
        g.1.insert(name.to_owned(), id);
    }
}
