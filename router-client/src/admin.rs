//! Gateway registry, admin and introspection calls.

use confab_proto::router::{
    ClusterMap, DeregisterGatewayRequest, DrainNodeRequest, GatewayInfo, JoinRequest, ListGatewaysRequest,
    MoveReplicaRequest, NodeInfo, NodeStatusRequest, NodeStatusResponse, PlannedMove, RebalanceRequest,
    RegisterGatewayRequest, RegisterGatewayResponse, RemoveNodeRequest, RenewLeaseRequest,
    RenewLeaseResponse, ShardDescriptor, TransferLeaderRequest,
};
use futures::future::join_all;
use tokio::time::Instant;

use crate::client::RouterClient;
use crate::driver::{Target, Unroutable};
use crate::error::{Error, Result};
use crate::routing::{META_GROUP, Routing};

/// Where a uid lives.
#[derive(Debug, Clone, PartialEq)]
pub struct Whereis {
    pub uid: u64,
    pub slot: u32,
    /// The owning shard, with the freshest epoch and leader the client knows.
    pub shard: ShardDescriptor,
    /// The leader `(node id, address)`, when known.
    pub leader: Option<(u64, String)>,
}

/// The node to ask for `group` on try `rotation`.
fn route_group(routing: &Routing, group: u32, rotation: usize) -> Result<Target, Unroutable> {
    if group != META_GROUP && routing.shards.descriptor(group).is_none() {
        return Err(Unroutable::Fail(Error::UnknownGroup { group_id: group }));
    }
    let (node, addr) = routing
        .target(group, rotation)
        .ok_or_else(|| Unroutable::NeedMap(format!("no node address for group {group}")))?;
    Ok(Target { group, node, addr })
}

impl RouterClient {
    /// Registers gateway `gateway_id` at `addr` with the meta leader.
    pub async fn register_gateway(&self, gateway_id: u64, addr: &str) -> Result<RegisterGatewayResponse> {
        let request = RegisterGatewayRequest {
            gateway_id,
            addr: addr.to_owned(),
        };
        self.drive(
            "register_gateway",
            |r, rot| Ok((route_group(r, META_GROUP, rot)?, request.clone())),
            |stub, req| async move { stub.data().register_gateway(req).await },
        )
        .await
    }

    /// Renews the lease of a gateway incarnation; returns the lease in ms.
    pub async fn renew_lease(&self, gateway_id: u64, incarnation: u64) -> Result<u64> {
        Ok(self
            .renew_lease_reserving(gateway_id, incarnation, 0)
            .await?
            .lease_ms)
    }

    /// Renews the lease and has the id times up to `ids_until_ms` (Unix ms;
    /// 0: no change) reserved for this incarnation; the answer carries the
    /// lease and the reservation in force.
    pub async fn renew_lease_reserving(
        &self,
        gateway_id: u64,
        incarnation: u64,
        ids_until_ms: u64,
    ) -> Result<RenewLeaseResponse> {
        let request = RenewLeaseRequest {
            gateway_id,
            incarnation,
            ids_until_ms,
        };
        self.drive(
            "renew_lease",
            |r, rot| Ok((route_group(r, META_GROUP, rot)?, request)),
            |stub, req| async move { stub.data().renew_lease(req).await },
        )
        .await
    }

    /// Deregisters a gateway incarnation (a clean shutdown purges at once).
    pub async fn deregister_gateway(&self, gateway_id: u64, incarnation: u64) -> Result<()> {
        let request = DeregisterGatewayRequest {
            gateway_id,
            incarnation,
        };
        self.drive(
            "deregister_gateway",
            |r, rot| Ok((route_group(r, META_GROUP, rot)?, request)),
            |stub, req| async move { stub.data().deregister_gateway(req).await },
        )
        .await
        .map(drop)
    }

    /// Every registered gateway, as the meta leader sees them.
    pub async fn list_gateways(&self) -> Result<Vec<GatewayInfo>> {
        let response = self
            .drive(
                "list_gateways",
                |r, rot| Ok((route_group(r, META_GROUP, rot)?, ListGatewaysRequest {})),
                |stub, req| async move { stub.data().list_gateways(req).await },
            )
            .await?;
        Ok(response.gateways)
    }

    /// Asks the leader of `group_id` (0 = meta) to hand leadership to node
    /// `to`; the client then expects `to` to lead (redirects correct it).
    pub async fn transfer_leader(&self, group_id: u32, to: u64) -> Result<()> {
        let request = TransferLeaderRequest { group_id, to };
        self.drive(
            "transfer_leader",
            |r, rot| Ok((route_group(r, group_id, rot)?, request)),
            |stub, req| async move { stub.admin().transfer_leader(req).await },
        )
        .await?;
        self.write().set_leader(group_id, to);
        Ok(())
    }

    /// Asks the meta leader to move shard `shard_id`'s replica from node
    /// `from` to node `to` (safe to repeat); returns the shard's new
    /// descriptor. The move includes the new replica catching up: give the
    /// client an `attempt_timeout` long enough for it.
    pub async fn move_replica(&self, shard_id: u32, from: u64, to: u64) -> Result<ShardDescriptor> {
        let request = MoveReplicaRequest { shard_id, from, to };
        let response = self
            .drive(
                "move_replica",
                |r, rot| Ok((route_group(r, META_GROUP, rot)?, request)),
                |stub, req| async move { stub.admin().move_replica(req).await },
            )
            .await?;
        let shard = response
            .shard
            .ok_or_else(|| Error::InvalidMap("move answered without a descriptor".into()))?;
        self.refresh_map().await?;
        Ok(shard)
    }

    /// Asks the meta leader to balance replicas (and then leaderships);
    /// with `dry_run`, only the plan. Returns the moves and the number of
    /// leadership transfers.
    pub async fn rebalance(&self, dry_run: bool) -> Result<(Vec<PlannedMove>, u32)> {
        let response = self
            .drive(
                "rebalance",
                |r, rot| Ok((route_group(r, META_GROUP, rot)?, RebalanceRequest { dry_run })),
                |stub, req| async move { stub.admin().rebalance(req).await },
            )
            .await?;
        if !dry_run {
            self.refresh_map().await?;
        }
        Ok((response.moves, response.leader_transfers))
    }

    /// Marks node `node_id` draining and moves everything off it.
    pub async fn drain_node(&self, node_id: u64) -> Result<Vec<PlannedMove>> {
        let response = self
            .drive(
                "drain_node",
                |r, rot| Ok((route_group(r, META_GROUP, rot)?, DrainNodeRequest { node_id })),
                |stub, req| async move { stub.admin().drain_node(req).await },
            )
            .await?;
        self.refresh_map().await?;
        Ok(response.moves)
    }

    /// Takes a drained node out of the cluster.
    pub async fn remove_node(&self, node_id: u64) -> Result<()> {
        self.drive(
            "remove_node",
            |r, rot| Ok((route_group(r, META_GROUP, rot)?, RemoveNodeRequest { node_id })),
            |stub, req| async move { stub.admin().remove_node(req).await },
        )
        .await?;
        self.refresh_map().await?;
        Ok(())
    }

    /// Asks the meta leader to add node `node_id` at `addr` to the cluster.
    pub async fn join(&self, node_id: u64, addr: &str) -> Result<ClusterMap> {
        let request = JoinRequest {
            node_id,
            addr: addr.to_owned(),
            fresh: false,
        };
        let response = self
            .drive(
                "join",
                |r, rot| Ok((route_group(r, META_GROUP, rot)?, request.clone())),
                |stub, req| async move { stub.admin().join(req).await },
            )
            .await?;
        response
            .map
            .ok_or_else(|| Error::InvalidMap("join answered without a map".into()))
    }

    /// The status of the node at `addr` (its own groups). One attempt, bounded
    /// by the deadline; no retry on another node.
    pub async fn node_status(&self, addr: &str) -> Result<NodeStatusResponse> {
        self.node_status_of(addr, false).await
    }

    /// [`RouterClient::node_status`], with each group's checksum of its
    /// records when `with_checksum` (compare replicas).
    pub async fn node_status_of(&self, addr: &str, with_checksum: bool) -> Result<NodeStatusResponse> {
        let started = Instant::now();
        let mut stub = self.stub(addr)?.admin();
        let call = stub.node_status(NodeStatusRequest { with_checksum });
        match tokio::time::timeout(self.config().deadline, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(Error::Rpc {
                op: "node_status",
                addr: addr.to_owned(),
                status: Box::new(status),
            }),
            Err(_) => Err(Error::Timeout {
                op: "node_status",
                elapsed: started.elapsed(),
                last: format!("no answer from {addr}"),
            }),
        }
    }

    /// The status of every node in the map (removed nodes excluded), asked in
    /// parallel; a node that does not answer has its error in place.
    pub async fn all_node_status(&self) -> Result<Vec<(NodeInfo, Result<NodeStatusResponse>)>> {
        let map = self.cluster_map().await?;
        let nodes = map
            .nodes
            .into_iter()
            .filter(|n| n.state != confab_proto::router::NodeState::Removed as i32);
        let calls = nodes.map(|node| async move {
            let status = self.node_status(&node.addr).await;
            (node, status)
        });
        Ok(join_all(calls).await)
    }

    /// Where `uid` lives: its slot, shard and leader, from the cached map
    /// (fetched first when none is cached).
    pub async fn whereis(&self, uid: u64) -> Result<Whereis> {
        self.cluster_map().await?;
        let routing = self.read();
        let slot = routing.shards.slot_of(uid);
        let mut shard = routing
            .shards
            .shard_of_slot(slot)
            .cloned()
            .ok_or_else(|| Error::InvalidMap(format!("no shard owns slot {slot} (uid {uid})")))?;
        shard.leader = routing.leader(shard.shard_id).unwrap_or(0);
        let leader = routing
            .leader(shard.shard_id)
            .and_then(|id| routing.addr(id).map(|a| (id, a.to_owned())));
        Ok(Whereis {
            uid,
            slot,
            shard,
            leader,
        })
    }
}
