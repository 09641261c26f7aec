//! RouterReplica, the replica plane (caller: other routers): the steps of
//! a replica move, the purge of a dead gateway's sessions, joins, and
//! leader hand-offs.

use std::sync::Arc;

use confab_proto::router as pb;
use confab_proto::router::router_replica_server::RouterReplica;
pub use confab_proto::router::router_replica_server::SERVICE_NAME as SERVICE;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::cluster;
use super::status::finish;
use crate::error::RouterError;
use crate::node::Node;
use crate::sm::shard::ShardCommand;
use crate::sm::shard::ShardReply;

/// The replica plane's handlers.
pub struct ReplicaServer {
    node: Arc<Node>,
}

impl ReplicaServer {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl RouterReplica for ReplicaServer {
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
        // A router joins as itself only.
        confab_tls::require_id(&req, SERVICE, confab_tls::Role::Router, req.get_ref().node_id)?;
        finish("join", cluster::join(&self.node, req.into_inner()).await)
    }

    async fn purge_gateway(
        &self,
        req: Request<pb::PurgeGatewayRequest>,
    ) -> Result<Response<pb::PurgeGatewayResponse>, Status> {
        let res = async {
            let r = req.into_inner();
            let meta = self.node.meta_state()?;
            let shard = meta
                .shards
                .get(&r.shard_id)
                .ok_or(RouterError::ShardNotFound(r.shard_id))?;
            let group = self
                .node
                .group(r.shard_id)
                .ok_or_else(|| cluster::not_hosted(shard, &meta))?;
            let group = cluster::leader_group(&self.node, group)?;
            let cmd = ShardCommand::PurgeGateway {
                gateway_id: r.gateway_id,
                incarnation: r.incarnation,
            };
            match self.node.propose_shard(&group, cmd).await? {
                (ShardReply::Purged { count }, _) => Ok(pb::PurgeGatewayResponse { purged: count }),
                (other, _) => Err(RouterError::Internal(format!("purge answered {other:?}"))),
            }
        }
        .await;
        finish("purge_gateway", res)
    }

    async fn create_replica(
        &self,
        req: Request<pb::CreateReplicaRequest>,
    ) -> Result<Response<pb::CreateReplicaResponse>, Status> {
        let res = async {
            let r = req.into_inner();
            if r.shard_id == crate::types::META_GROUP {
                return Err(RouterError::InvalidArgument(
                    "the meta group is not a shard".into(),
                ));
            }
            self.node.with_meta(|meta| {
                meta.shards
                    .contains_key(&r.shard_id)
                    .then_some(())
                    .ok_or(RouterError::ShardNotFound(r.shard_id))
            })??;
            self.node
                .start_group(r.shard_id)
                .await
                .map_err(|e| RouterError::Internal(format!("starting shard {}: {e}", r.shard_id)))?;
            Ok(pb::CreateReplicaResponse {})
        }
        .await;
        finish("create_replica", res)
    }

    async fn change_replicas(
        &self,
        req: Request<pb::ChangeReplicasRequest>,
    ) -> Result<Response<pb::ChangeReplicasResponse>, Status> {
        let res = crate::moves::change_replicas(&self.node, req.into_inner())
            .await
            .map(|voters| pb::ChangeReplicasResponse { voters });
        finish("change_replicas", res)
    }

    async fn drop_replica(
        &self,
        req: Request<pb::DropReplicaRequest>,
    ) -> Result<Response<pb::DropReplicaResponse>, Status> {
        let res = crate::moves::drop_replica(&self.node, req.into_inner().shard_id)
            .await
            .map(|dropped| pb::DropReplicaResponse { dropped });
        finish("drop_replica", res)
    }

    async fn hand_off(
        &self,
        _req: Request<pb::HandOffRequest>,
    ) -> Result<Response<pb::HandOffResponse>, Status> {
        let still = self
            .node
            .hand_off_leaderships(self.node.config.handoff_budget())
            .await;
        finish(
            "hand_off",
            Ok(pb::HandOffResponse {
                still_leading: still as u32,
            }),
        )
    }
}
