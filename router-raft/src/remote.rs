//! [`Remotes`]: how a router calls other routers' replica plane (replica
//! moves, purges, leader balancing, joins): one pooled channel per peer
//! address from `confab-net`, a stub over it, and a deadline per call.

use std::future::Future;
use std::time::Duration;

use confab_net::{Channel, ChannelConfig, ChannelPool, ClientTls};
use confab_proto::router::router_discovery_client::RouterDiscoveryClient;
use confab_proto::router::router_replica_client::RouterReplicaClient;
use tonic::Status;

use crate::error::Result;
use crate::error::RouterError;

/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The replica-plane stub type.
pub type ReplicaStub = RouterReplicaClient<Channel>;

/// Channels to other routers, one per address, shared by every call.
#[derive(Debug)]
pub struct Remotes {
    pool: ChannelPool,
}

impl Remotes {
    /// Channels with this node's mutual TLS, if any.
    pub fn new(tls: Option<ClientTls>) -> Self {
        Remotes {
            pool: ChannelPool::new(ChannelConfig::connect_within(CONNECT_TIMEOUT).with_tls(tls)),
        }
    }

    /// The discovery service of the router at `addr`.
    pub fn discovery(&self, addr: &str) -> Result<RouterDiscoveryClient<Channel>> {
        let channel = self
            .pool
            .get(addr)
            .map_err(|e| RouterError::Internal(format!("bad node address {addr}: {e}")))?;
        Ok(RouterDiscoveryClient::new(channel))
    }

    /// The replica plane of the router at `addr`.
    pub fn replica(&self, addr: &str) -> Result<ReplicaStub> {
        let channel = self
            .pool
            .get(addr)
            .map_err(|e| RouterError::Internal(format!("bad node address {addr}: {e}")))?;
        Ok(RouterReplicaClient::new(channel))
    }
}

/// Runs one call with a deadline: past `limit` it ends as `DEADLINE_EXCEEDED`.
pub async fn within<T>(
    limit: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(limit, call).await {
        Ok(answer) => answer.map(tonic::Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded(format!("no answer within {limit:?}"))),
    }
}
