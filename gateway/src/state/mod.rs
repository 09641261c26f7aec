//! The middle layer's lower half: what the gateway holds while it runs.
//! [`Shared`], which every service, handler and connection reaches, and
//! the structures it is made of:
//!
//! - [`registry`]: the sessions connected here and the way into each;
//! - [`peers`]: the directory of other gateways (their internal gRPC
//!   clients); [`Shared::to_gateway`] is the one `Deliver` call through it;
//! - [`persists`]: which persist process answers data access;
//! - [`users`]: known user ids and names;
//! - [`social`]: cached friend lists and group member lists;
//! - [`presence`]: where the friends of the users here are online;
//! - [`batcher`], [`coalesce`]: the send path's batched calls;
//! - [`guard`]: connection-level abuse limits (connections per address,
//!   login and register attempts);
//! - [`outbox`]: a connection's send queue, bounded in bytes;
//! - [`rates`]: per-user token buckets (the message rate);
//! - [`reads`]: a connection's read-your-writes waits (its own sends only,
//!   a few at a time);
//! - [`typing`]: a connection's typing gate (one notice per conversation
//!   per interval).
//!
//! These modules hold and answer from memory, or batch calls they are
//! handed; what reads persist or the routers to fill them, and who is told
//! about what, is [`crate::service`]. Nothing here imports from above.

pub mod batcher;
pub mod coalesce;
pub mod guard;
pub mod outbox;
pub mod peers;
pub mod persists;
pub mod presence;
pub mod rates;
pub mod reads;
pub mod registry;
pub mod social;
pub mod typing;
pub mod users;

use confab_net::ClientTls;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use confab_proto::gateway::{DeliverRequest, Push};
use confab_proto::persist::data_service_client::DataServiceClient;
use confab_queue::AnyProducer;
use confab_router_client::RouterClient;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use self::coalesce::{Backend, Coalescers};
use self::peers::Peers;
use self::persists::PersistData;
use self::presence::PresenceTracker;
use self::rates::UserRates;
use self::registry::Registry;
use self::social::SocialCache;
use self::users::UserCache;
use crate::config::GatewayConfig;
use crate::metrics;
use confab_common::ids::IdGen;

pub struct Shared {
    pub config: GatewayConfig,
    pub router: RouterClient,
    /// Persist's data service: the first persist process that is up.
    pub data: PersistData,
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
    /// The WebSocket URL /v1/gateway hands out for this gateway.
    pub ws_url: String,
    /// The internal gRPC address registered with the routers.
    pub grpc_addr: String,
    /// One permit per open client connection (TCP and WebSocket).
    pub connections: Arc<Semaphore>,
    /// Connections per address, login and register attempts.
    pub guard: guard::Guard,
    /// The send path's batched enqueues, lookups and Deliver calls.
    pub coalesce: Coalescers<Shared>,
    /// Mutual TLS to routers, persist and other gateways, if on.
    pub cluster_tls: Option<ClientTls>,
    /// Messages per user (all of its connections here).
    pub message_rates: UserRates,
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
        self.data.client()
    }

    /// One `Deliver` call to gateway `gw`; a failed call forgets the
    /// gateway's address and is retried once after a refresh. Failures are
    /// logged: the message is durable and the recipient will sync.
    pub async fn to_gateway(&self, gw: u64, pushes: Vec<Push>) -> bool {
        let n = pushes.iter().map(|p| p.session_ids.len() as u64).sum::<u64>();
        let request = DeliverRequest {
            from_gateway: self.gateway_id(),
            pushes,
        };
        for attempt in 0..2 {
            let mut client = match self.peers.client(&self.router, gw).await {
                Ok(c) => c,
                Err(error) => {
                    tracing::warn!(%error, gateway = gw, "no address for gateway");
                    break;
                }
            };
            match client.deliver(confab_net::trace::request(request.clone())).await {
                Ok(_) => {
                    metrics::DELIVERIES.with_label_values(&["remote", "ok"]).inc_by(n);
                    return true;
                }
                Err(status) => {
                    tracing::warn!(%status, gateway = gw, attempt, "deliver failed");
                    self.peers.forget(gw);
                }
            }
        }
        metrics::DELIVERIES
            .with_label_values(&["remote", "failed"])
            .inc_by(n);
        false
    }
}

/// The coalescers' calls reach this gateway's queue producer, router
/// client and peers.
impl Backend for Shared {
    type Queue = AnyProducer;

    fn queue(&self) -> &AnyProducer {
        &self.producer
    }

    fn router(&self) -> &RouterClient {
        &self.router
    }

    fn to_gateway(&self, gw: u64, pushes: Vec<Push>) -> impl Future<Output = bool> + Send {
        Shared::to_gateway(self, gw, pushes)
    }
}
