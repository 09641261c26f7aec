//! The router's gRPC services, one module per caller role (the seam the
//! authorization by certificate role works on):
//!
//! - [`data`]: RouterData, the data plane (gateways);
//! - [`admin`]: RouterAdmin, the admin plane (operators);
//! - [`replica`]: RouterReplica, the replica plane (other routers);
//! - [`raft`]: RaftService, the Raft transport (other routers);
//! - [`discovery`]: RouterDiscovery, where every process's metrics are
//!   (every process, announcing itself).
//!
//! Shared parts: `cluster` (leader checks, meta proposals, the cluster map
//! and the calls two planes serve) and `status` (the one conversion of the
//! router's errors to `tonic::Status`). Handlers hold no logic of their own
//! beyond checks and conversions: moves live in `moves`, leases in `lease`.

pub mod admin;
mod cluster;
pub mod data;
pub mod discovery;
pub mod raft;
pub mod replica;
mod status;

use std::sync::Arc;

use confab_proto::router::raft_service_server::RaftServiceServer;
use confab_proto::router::router_admin_server::RouterAdminServer;
use confab_proto::router::router_data_server::RouterDataServer;
use confab_proto::router::router_discovery_server::RouterDiscoveryServer;
use confab_proto::router::router_replica_server::RouterReplicaServer;
use confab_tls::{Authorize, Role};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::Router;

pub use self::data::MAX_BATCH_ITEMS;
pub use self::data::MAX_LOOKUP_UIDS;
use crate::network::MAX_RAFT_MESSAGE;
use crate::node::Node;

/// Largest request or answer of the router planes (a lookup of
/// [`MAX_LOOKUP_UIDS`] uids, a cluster map).
const MAX_MESSAGE: usize = 64 << 20;

/// Who may call each plane (with TLS on; see `confab_tls::authz`): the
/// data plane serves gateways (and operators' reads), the admin plane
/// operators, the replica plane and Raft other routers, each of which may
/// speak only as the node its certificate names.
pub const DATA_ROLES: &[Role] = &[Role::Gateway, Role::Admin];
pub const ADMIN_ROLES: &[Role] = &[Role::Admin];
pub const ROUTER_ROLES: &[Role] = &[Role::Router];

/// Every service of a node, on one tonic server, each behind its
/// authorization.
pub fn router(node: &Arc<Node>) -> Router {
    let data = RouterDataServer::new(data::DataServer::new(node.clone()))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let admin = RouterAdminServer::new(admin::AdminServer::new(node.clone()))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let replica = RouterReplicaServer::new(replica::ReplicaServer::new(node.clone()))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let raft = RaftServiceServer::new(raft::RaftServer::new(node.clone()))
        .max_decoding_message_size(MAX_RAFT_MESSAGE)
        .max_encoding_message_size(MAX_RAFT_MESSAGE);
    Server::builder()
        .add_service(InterceptedService::new(
            data,
            Authorize::new(data::SERVICE, DATA_ROLES),
        ))
        .add_service(InterceptedService::new(
            admin,
            Authorize::new(admin::SERVICE, ADMIN_ROLES),
        ))
        .add_service(InterceptedService::new(
            replica,
            Authorize::new(replica::SERVICE, ROUTER_ROLES),
        ))
        .add_service(InterceptedService::new(
            raft,
            Authorize::new(raft::SERVICE, ROUTER_ROLES),
        ))
        .add_service(InterceptedService::new(
            RouterDiscoveryServer::new(discovery::DiscoveryServer::new(node.clone())),
            Authorize::new(discovery::SERVICE, discovery::ROLES),
        ))
}
