//! RouterAdmin, the admin plane (caller: operators, through confabctl):
//! node status, leader transfer, join, and the replica moves, rebalance,
//! drain and removal the meta leader runs.

use std::sync::Arc;

use confab_proto::router as pb;
use confab_proto::router::router_admin_server::RouterAdmin;
pub use confab_proto::router::router_admin_server::SERVICE_NAME as SERVICE;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::cluster;
use super::status::finish;
use crate::node::Node;
use crate::wire;

/// The admin plane's handlers.
pub struct AdminServer {
    node: Arc<Node>,
}

impl AdminServer {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl RouterAdmin for AdminServer {
    async fn node_status(
        &self,
        req: Request<pb::NodeStatusRequest>,
    ) -> Result<Response<pb::NodeStatusResponse>, Status> {
        let with_checksum = req.get_ref().with_checksum;
        finish("node_status", Ok(cluster::node_status(&self.node, with_checksum)))
    }

    async fn transfer_leader(
        &self,
        req: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        finish(
            "transfer_leader",
            cluster::transfer_leader(&self.node, req.into_inner()).await,
        )
    }

    async fn join(&self, req: Request<pb::JoinRequest>) -> Result<Response<pb::JoinResponse>, Status> {
        finish("join", cluster::join(&self.node, req.into_inner()).await)
    }

    async fn move_replica(
        &self,
        req: Request<pb::MoveReplicaRequest>,
    ) -> Result<Response<pb::MoveReplicaResponse>, Status> {
        let res = async {
            let r = req.into_inner();
            cluster::meta_leader(&self.node)?;
            let shard = crate::moves::move_replica(&self.node, r.shard_id, r.from, r.to).await?;
            let leader = self.node.group(shard.id).and_then(|g| g.leader()).unwrap_or(0);
            Ok(pb::MoveReplicaResponse {
                shard: Some(wire::shard_to_pb(&shard, leader)),
            })
        }
        .await;
        finish("move_replica", res)
    }

    async fn rebalance(
        &self,
        req: Request<pb::RebalanceRequest>,
    ) -> Result<Response<pb::RebalanceResponse>, Status> {
        let res = async {
            cluster::meta_leader(&self.node)?;
            let (moves, transfers) = crate::moves::rebalance(&self.node, req.into_inner().dry_run).await?;
            Ok(pb::RebalanceResponse {
                moves: moves.iter().map(planned_to_pb).collect(),
                leader_transfers: transfers,
            })
        }
        .await;
        finish("rebalance", res)
    }

    async fn drain_node(
        &self,
        req: Request<pb::DrainNodeRequest>,
    ) -> Result<Response<pb::DrainNodeResponse>, Status> {
        let res = async {
            cluster::meta_leader(&self.node)?;
            let moves = crate::moves::drain(&self.node, req.into_inner().node_id).await?;
            Ok(pb::DrainNodeResponse {
                moves: moves.iter().map(planned_to_pb).collect(),
            })
        }
        .await;
        finish("drain_node", res)
    }

    async fn remove_node(
        &self,
        req: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::RemoveNodeResponse>, Status> {
        let res = async {
            cluster::meta_leader(&self.node)?;
            crate::moves::remove(&self.node, req.into_inner().node_id).await?;
            Ok(pb::RemoveNodeResponse {})
        }
        .await;
        finish("remove_node", res)
    }
}

fn planned_to_pb(m: &crate::rebalance::PlannedMove) -> pb::PlannedMove {
    pb::PlannedMove {
        shard_id: m.shard_id,
        from: m.from,
        to: m.to,
    }
}
