//! RouterDiscovery: processes announce where their metrics are; operators
//! (and `GET /sd`) list what this router heard. A process announces only
//! itself: with TLS, the certificate must name the role and id announced.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use confab_proto::router::{self as pb, router_discovery_server::RouterDiscovery};
use confab_tls::Role;
use tonic::{Request, Response, Status};

pub use confab_proto::router::router_discovery_server::SERVICE_NAME as SERVICE;

use crate::node::Node;

/// Who may call: the announcers (routers, gateways, persist) and operators.
pub const ROLES: &[Role] = &[Role::Router, Role::Gateway, Role::Persist, Role::Admin];

pub struct DiscoveryServer {
    node: Arc<Node>,
}

impl DiscoveryServer {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

/// With TLS, the certificate must name the role announced, and the id too
/// when it carries one (persist certificates name none).
fn speaks_for_itself<T>(req: &Request<T>, role: Role, id: u64) -> Result<(), Status> {
    match confab_tls::caller(req) {
        Some(own) if own.role == role && own.id.is_none() => Ok(()),
        Some(_) => confab_tls::require_id(req, SERVICE, role, id),
        None => Ok(()),
    }
}

#[tonic::async_trait]
impl RouterDiscovery for DiscoveryServer {
    async fn announce(
        &self,
        req: Request<pb::AnnounceRequest>,
    ) -> Result<Response<pb::AnnounceResponse>, Status> {
        let Some(target) = req.get_ref().target.clone() else {
            return Err(Status::invalid_argument("a target is required"));
        };
        let role = Role::from_str(&target.role).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if role == Role::Admin {
            return Err(Status::invalid_argument(
                "only router, gateway and persist processes announce",
            ));
        }
        if target.metrics_addr.is_empty() || target.metrics_addr.len() > 256 || target.zone.len() > 64 {
            return Err(Status::invalid_argument(
                "metrics_addr (1..=256 bytes) and zone (<= 64) required",
            ));
        }
        speaks_for_itself(&req, role, target.id)?;
        let ttl = Duration::from_millis(req.get_ref().ttl_ms);
        if !self.node.targets.announce(target, ttl) {
            return Err(Status::resource_exhausted("the discovery table is full"));
        }
        Ok(Response::new(pb::AnnounceResponse {
            routers: routers(&self.node),
        }))
    }

    async fn list_targets(
        &self,
        _req: Request<pb::ListTargetsRequest>,
    ) -> Result<Response<pb::ListTargetsResponse>, Status> {
        Ok(Response::new(pb::ListTargetsResponse {
            targets: self.node.targets.live(),
        }))
    }
}

/// The gRPC addresses of the cluster's routers (removed ones left out),
/// this node's included; empty before the map is known.
pub fn routers(node: &Node) -> Vec<String> {
    node.with_meta(|m| {
        m.nodes
            .values()
            .filter(|n| n.state != crate::sm::meta::NodeRecordState::Removed)
            .map(|n| n.addr.clone())
            .collect()
    })
    .unwrap_or_default()
}
