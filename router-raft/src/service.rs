//! RouterService: the online-state API (login, logout, batch lookup), gateway
//! registration and leases, and the admin calls. Every handler checks the
//! route first (shard known, epoch current, uid in the shard, this node the
//! leader) and answers a typed routing error when it is not.

use std::sync::Arc;
use std::time::Instant;

use confab_proto::router as pb;
use confab_proto::router::router_service_server::RouterService;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::error::Result;
use crate::error::RouterError;
use crate::metrics;
use crate::node::Group;
use crate::node::Node;
use crate::sm::GroupData;
use crate::sm::meta::MetaCommand;
use crate::sm::meta::MetaReply;
use crate::sm::meta::MetaState;
use crate::sm::meta::ShardRecord;
use crate::sm::shard::ShardCommand;
use crate::sm::shard::ShardReply;
use crate::types::Command;
use crate::types::Reply;
use crate::wire;

/// Largest number of uids in one lookup request.
pub const MAX_LOOKUP_UIDS: usize = 100_000;

/// Largest number of items in one batch request.
pub const MAX_BATCH_ITEMS: usize = 10_000;

pub struct RouterRpcServer {
    node: Arc<Node>,
}

impl RouterRpcServer {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    /// Every shard descriptor of this node's map, with the leaders it knows.
    fn descriptors(&self, meta: &MetaState) -> Vec<pb::ShardDescriptor> {
        meta.shards
            .values()
            .map(|s| wire::shard_to_pb(s, self.node.group(s.id).and_then(|g| g.leader()).unwrap_or(0)))
            .collect()
    }

    /// Checks that `uids` belong to `shard_id` at `epoch`, and returns the
    /// local replica of the shard. A shard this node does not host is
    /// answered from its tombstone while that lasts (where the shard went),
    /// else `ShardNotFound`, unless the map lists this node as a replica
    /// that has not started yet (then a replica that may lead).
    fn route(&self, shard_id: u32, epoch: Option<pb::ShardEpoch>, uids: &[u64]) -> Result<Group> {
        let Some(group) = self.node.group(shard_id) else {
            return Err(self.not_here(shard_id));
        };
        self.node.with_meta(|meta| {
            let Some(shard) = meta.shards.get(&shard_id) else {
                return Err(RouterError::ShardNotFound(shard_id));
            };
            let stale = wire::epoch_from_pb(epoch) != shard.epoch
                || uids
                    .iter()
                    .any(|&uid| !shard.owns_slot(confab_router_client::slot_of(uid, meta.slots)));
            if stale {
                return Err(RouterError::EpochNotMatch {
                    current: self.descriptors(meta),
                });
            }
            Ok(group)
        })?
    }

    /// The answer for a shard this node hosts no replica of.
    fn not_here(&self, shard_id: u32) -> RouterError {
        if let Some(gone) = self.node.tombstones.get(shard_id) {
            // This node's map may know of a later change than the tombstone
            // (it stops following once the node left the meta group).
            let current = self
                .node
                .with_meta(|meta| {
                    meta.shards
                        .get(&shard_id)
                        .filter(|s| {
                            s.epoch.conf_ver >= gone.epoch.conf_ver && s.epoch.version >= gone.epoch.version
                        })
                        .cloned()
                })
                .ok()
                .flatten()
                .unwrap_or(gone);
            return RouterError::Tombstone {
                shard: shard_id,
                current: vec![wire::shard_to_pb(&current, 0)],
            };
        }
        let listed = self.node.with_meta(|meta| {
            meta.shards
                .get(&shard_id)
                .filter(|s| s.replicas.contains(&self.node.id))
                .map(|s| self.not_hosted(s, meta))
        });
        match listed {
            Ok(Some(e)) => e,
            Ok(None) => RouterError::ShardNotFound(shard_id),
            Err(e) => e,
        }
    }

    /// This node holds no replica: point at a replica that may lead.
    fn not_hosted(&self, shard: &ShardRecord, meta: &MetaState) -> RouterError {
        let first = shard.replicas.first().copied();
        RouterError::NotLeader {
            group: shard.id,
            leader_id: None,
            leader_addr: first
                .and_then(|id| meta.node_addr(id))
                .unwrap_or_default()
                .to_string(),
        }
    }

    fn leader_group(&self, group: Group) -> Result<Group> {
        if group.is_leader(self.node.id) {
            Ok(group)
        } else {
            Err(self.node.not_leader_of(&group))
        }
    }

    /// A login or logout: coalesced with the group's concurrent writes.
    async fn session_write(&self, group: &Group, cmd: ShardCommand) -> Result<(ShardReply, u64)> {
        group.writes.propose(&self.node, group, cmd).await
    }

    async fn meta_command(&self, cmd: MetaCommand) -> Result<MetaReply> {
        let meta = self.node.meta()?;
        match self.node.propose(&meta, Command::Meta(cmd)).await? {
            Reply::Meta(r) => Ok(r),
            other => Err(RouterError::Internal(format!("meta answered {other:?}"))),
        }
    }

    async fn lookup_part(&self, part: pb::ShardLookup) -> pb::ShardLookupResult {
        let shard_id = part.shard_id;
        let started = Instant::now();
        let res = self.lookup_part_inner(part).await;
        metrics::READ_SECONDS.observe(started.elapsed().as_secs_f64());
        match res {
            Ok(users) => pb::ShardLookupResult {
                shard_id,
                users,
                error: None,
            },
            Err(e) => {
                metrics::count_error("lookup", &e);
                pb::ShardLookupResult {
                    shard_id,
                    users: Vec::new(),
                    error: Some(e.route_error().unwrap_or_else(|| {
                        // Not a routing error: tell the caller who leads, so it retries.
                        pb::RouteError {
                            kind: Some(pb::route_error::Kind::NotLeader(pb::NotLeader {
                                group_id: shard_id,
                                leader_id: 0,
                                leader_addr: String::new(),
                            })),
                        }
                    })),
                }
            }
        }
    }

    async fn lookup_part_inner(&self, part: pb::ShardLookup) -> Result<Vec<pb::UserSessions>> {
        let group = self.route(part.shard_id, part.epoch, &part.uids)?;
        let group = self.leader_group(group)?;
        group.reads.linearize(&self.node, &group).await?;
        let st = group.sm.read();
        let GroupData::Shard(shard) = &st.data else {
            return Err(RouterError::Internal("shard group holds meta data".into()));
        };
        Ok(part
            .uids
            .iter()
            .filter_map(|&uid| {
                let sessions = shard.sessions_of(uid);
                (!sessions.is_empty()).then(|| pb::UserSessions {
                    uid,
                    sessions: sessions.iter().map(wire::session_to_pb).collect(),
                })
            })
            .collect())
    }

    async fn login_op(&self, r: pb::LoginRequest) -> Result<pb::LoginResponse> {
        let session = wire::session_from_pb(r.session)?;
        let policy = wire::policy_from_pb(r.policy)?;
        let group = self.route(r.shard_id, r.epoch, &[r.uid])?;
        // Fast path: a gateway this node already knows is dead. The shard
        // state machine enforces the same rule once the purge reached it.
        let dead = self.node.with_meta(|meta| {
            meta.pending_purges
                .get(&session.gateway_id)
                .is_some_and(|&inc| session.gateway_incarnation <= inc)
        })?;
        if dead {
            return Err(RouterError::UnknownGateway {
                gateway_id: session.gateway_id,
                incarnation: session.gateway_incarnation,
            });
        }
        let cmd = ShardCommand::Login {
            uid: r.uid,
            session,
            policy,
        };
        match self.session_write(&group, cmd).await? {
            (ShardReply::LoggedIn { kicked }, log_index) => Ok(pb::LoginResponse {
                kicked: kicked.iter().map(wire::session_to_pb).collect(),
                log_index,
            }),
            (
                ShardReply::GatewayGone {
                    gateway_id,
                    incarnation,
                },
                _,
            ) => Err(RouterError::UnknownGateway {
                gateway_id,
                incarnation,
            }),
            (other, _) => Err(RouterError::Internal(format!("login answered {other:?}"))),
        }
    }

    async fn logout_op(&self, r: pb::LogoutRequest) -> Result<pb::LogoutResponse> {
        let group = self.route(r.shard_id, r.epoch, &[r.uid])?;
        let cmd = ShardCommand::Logout {
            uid: r.uid,
            session_id: r.session_id,
        };
        match self.session_write(&group, cmd).await? {
            (ShardReply::LoggedOut { removed }, log_index) => Ok(pb::LogoutResponse { removed, log_index }),
            (other, _) => Err(RouterError::Internal(format!("logout answered {other:?}"))),
        }
    }

    /// One item of a batch; its failure is its own.
    async fn batch_item(&self, item: pb::BatchItem) -> pb::BatchResult {
        use pb::batch_item::Op;
        use pb::batch_result::Result as R;
        let result = match item.op {
            Some(Op::Login(r)) => counted("login", self.login_op(r).await).map(R::Login),
            Some(Op::Logout(r)) => counted("logout", self.logout_op(r).await).map(R::Logout),
            Some(Op::Lookup(part)) => Ok(R::Lookup(self.lookup_part(part).await)),
            None => Err(RouterError::InvalidArgument(
                "a batch item without an operation".into(),
            )),
        };
        pb::BatchResult {
            result: Some(result.unwrap_or_else(|e| {
                let status = Status::from(e);
                R::Error(pb::ItemError {
                    code: status.code() as i32,
                    message: status.message().to_owned(),
                    details: status.details().to_vec(),
                })
            })),
        }
    }

    fn meta_leader(&self) -> Result<Group> {
        self.leader_group(self.node.meta()?)
    }

    fn cluster_map(&self) -> Result<pb::ClusterMap> {
        let meta = self.node.meta_state()?;
        Ok(pb::ClusterMap {
            slots: meta.slots,
            nodes: meta
                .nodes
                .values()
                .map(|n| pb::NodeInfo {
                    id: n.id,
                    addr: n.addr.clone(),
                    state: wire::node_state_to_pb(n.state) as i32,
                })
                .collect(),
            shards: self.descriptors(&meta),
            meta_leader: self.node.meta()?.leader().unwrap_or(0),
            version: meta.version,
        })
    }
}

/// Counts the call and its error kind, and converts the error for the wire.
fn finish<T>(method: &'static str, res: Result<T>) -> Result<Response<T>, Status> {
    counted(method, res).map(Response::new).map_err(Status::from)
}

/// Counts the call (or batch item) and its error kind.
fn counted<T>(method: &'static str, res: Result<T>) -> Result<T> {
    metrics::RPC_TOTAL.with_label_values(&[method]).inc();
    if let Err(e) = &res {
        metrics::count_error(method, e);
    }
    res
}

#[tonic::async_trait]
impl RouterService for RouterRpcServer {
    async fn login(&self, req: Request<pb::LoginRequest>) -> Result<Response<pb::LoginResponse>, Status> {
        finish("login", self.login_op(req.into_inner()).await)
    }

    async fn logout(&self, req: Request<pb::LogoutRequest>) -> Result<Response<pb::LogoutResponse>, Status> {
        finish("logout", self.logout_op(req.into_inner()).await)
    }

    async fn lookup(&self, req: Request<pb::LookupRequest>) -> Result<Response<pb::LookupResponse>, Status> {
        let res = async {
            let r = req.into_inner();
            let total: usize = r.parts.iter().map(|p| p.uids.len()).sum();
            if total > MAX_LOOKUP_UIDS {
                return Err(RouterError::InvalidArgument(format!(
                    "lookup of {total} uids exceeds the limit of {MAX_LOOKUP_UIDS}"
                )));
            }
            let parts = futures::future::join_all(r.parts.into_iter().map(|p| self.lookup_part(p))).await;
            Ok(pb::LookupResponse { parts })
        }
        .await;
        finish("lookup", res)
    }

    async fn batch(&self, req: Request<pb::BatchRequest>) -> Result<Response<pb::BatchResponse>, Status> {
        let res = async {
            let r = req.into_inner();
            if r.items.len() > MAX_BATCH_ITEMS {
                return Err(RouterError::InvalidArgument(format!(
                    "a batch of {} items exceeds the limit of {MAX_BATCH_ITEMS}",
                    r.items.len()
                )));
            }
            let uids: usize = r
                .items
                .iter()
                .map(|i| match &i.op {
                    Some(pb::batch_item::Op::Lookup(p)) => p.uids.len(),
                    _ => 1,
                })
                .sum();
            if uids > MAX_LOOKUP_UIDS {
                return Err(RouterError::InvalidArgument(format!(
                    "a batch naming {uids} uids exceeds the limit of {MAX_LOOKUP_UIDS}"
                )));
            }
            let results = futures::future::join_all(r.items.into_iter().map(|i| self.batch_item(i))).await;
            Ok(pb::BatchResponse { results })
        }
        .await;
        finish("batch", res)
    }

    async fn register_gateway(
        &self,
        req: Request<pb::RegisterGatewayRequest>,
    ) -> Result<Response<pb::RegisterGatewayResponse>, Status> {
        let res = async {
            let r = req.into_inner();
            if r.gateway_id == 0 {
                return Err(RouterError::InvalidArgument("gateway_id must not be 0".into()));
            }
            self.meta_leader()?;
            let cmd = MetaCommand::RegisterGateway {
                gateway_id: r.gateway_id,
                addr: r.addr,
            };
            match self.meta_command(cmd).await? {
                MetaReply::Registered { incarnation } => {
                    self.node.leases.renew(r.gateway_id, incarnation);
                    Ok(pb::RegisterGatewayResponse {
                        incarnation,
                        lease_ms: self.node.leases.lease().as_millis() as u64,
                    })
                }
                other => Err(RouterError::Internal(format!("register answered {other:?}"))),
            }
        }
        .await;
        finish("register_gateway", res)
    }

    async fn renew_lease(
        &self,
        req: Request<pb::RenewLeaseRequest>,
    ) -> Result<Response<pb::RenewLeaseResponse>, Status> {
        let res = (|| {
            let r = req.into_inner();
            self.meta_leader()?;
            let meta = self.node.meta_state()?;
            let live = meta
                .gateways
                .get(&r.gateway_id)
                .is_some_and(|g| g.incarnation == r.incarnation);
            if !live {
                return Err(RouterError::UnknownGateway {
                    gateway_id: r.gateway_id,
                    incarnation: r.incarnation,
                });
            }
            self.node.leases.renew(r.gateway_id, r.incarnation);
            Ok(pb::RenewLeaseResponse {
                lease_ms: self.node.leases.lease().as_millis() as u64,
            })
        })();
        finish("renew_lease", res)
    }

    async fn deregister_gateway(
        &self,
        req: Request<pb::DeregisterGatewayRequest>,
    ) -> Result<Response<pb::DeregisterGatewayResponse>, Status> {
        let res = async {
            let r = req.into_inner();
            self.meta_leader()?;
            let cmd = MetaCommand::ExpireGateway {
                gateway_id: r.gateway_id,
                incarnation: r.incarnation,
            };
            match self.meta_command(cmd).await? {
                MetaReply::Ok => Ok(pb::DeregisterGatewayResponse {}),
                _ => Err(RouterError::UnknownGateway {
                    gateway_id: r.gateway_id,
                    incarnation: r.incarnation,
                }),
            }
        }
        .await;
        finish("deregister_gateway", res)
    }

    async fn list_gateways(
        &self,
        _req: Request<pb::ListGatewaysRequest>,
    ) -> Result<Response<pb::ListGatewaysResponse>, Status> {
        let res = (|| {
            let meta = self.node.meta_state()?;
            let mut gateways: Vec<pb::GatewayInfo> = meta
                .gateways
                .values()
                .map(|g| pb::GatewayInfo {
                    gateway_id: g.gateway_id,
                    addr: g.addr.clone(),
                    incarnation: g.incarnation,
                    lease_remaining_ms: self
                        .node
                        .leases
                        .remaining(g.gateway_id)
                        .map_or(0, |d| d.as_millis() as u64),
                    expired: false,
                })
                .collect();
            for (&gateway_id, &incarnation) in &meta.pending_purges {
                gateways.push(pb::GatewayInfo {
                    gateway_id,
                    addr: String::new(),
                    incarnation,
                    lease_remaining_ms: 0,
                    expired: true,
                });
            }
            Ok(pb::ListGatewaysResponse { gateways })
        })();
        finish("list_gateways", res)
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
                .ok_or_else(|| self.not_hosted(shard, &meta))?;
            let group = self.leader_group(group)?;
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

    async fn get_cluster_map(
        &self,
        _req: Request<pb::GetClusterMapRequest>,
    ) -> Result<Response<pb::ClusterMap>, Status> {
        finish("get_cluster_map", self.cluster_map())
    }

    async fn node_status(
        &self,
        _req: Request<pb::NodeStatusRequest>,
    ) -> Result<Response<pb::NodeStatusResponse>, Status> {
        let groups = self
            .node
            .groups()
            .iter()
            .map(crate::status::group_status)
            .collect();
        finish(
            "node_status",
            Ok(pb::NodeStatusResponse {
                node_id: self.node.id,
                addr: self.node.addr.clone(),
                groups,
            }),
        )
    }

    async fn transfer_leader(
        &self,
        req: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let res = async {
            let r = req.into_inner();
            let group = self
                .node
                .group(r.group_id)
                .ok_or(RouterError::ShardNotFound(r.group_id))?;
            let group = self.leader_group(group)?;
            let is_voter = group.raft.voter_ids().any(|v| v == r.to);
            if !is_voter {
                return Err(RouterError::InvalidArgument(format!(
                    "node {} is not a voter of group {}",
                    r.to, r.group_id
                )));
            }
            group
                .raft
                .trigger()
                .transfer_leader(r.to)
                .await
                .map_err(|e| RouterError::NotReady(e.to_string()))?;
            Ok(pb::TransferLeaderResponse {})
        }
        .await;
        finish("transfer_leader", res)
    }

    async fn move_replica(
        &self,
        req: Request<pb::MoveReplicaRequest>,
    ) -> Result<Response<pb::MoveReplicaResponse>, Status> {
        let res = async {
            let r = req.into_inner();
            self.meta_leader()?;
            let shard = crate::moves::move_replica(&self.node, r.shard_id, r.from, r.to).await?;
            let leader = self.node.group(shard.id).and_then(|g| g.leader()).unwrap_or(0);
            Ok(pb::MoveReplicaResponse {
                shard: Some(wire::shard_to_pb(&shard, leader)),
            })
        }
        .await;
        finish("move_replica", res)
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

    async fn rebalance(
        &self,
        req: Request<pb::RebalanceRequest>,
    ) -> Result<Response<pb::RebalanceResponse>, Status> {
        let res = async {
            self.meta_leader()?;
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
            self.meta_leader()?;
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
            self.meta_leader()?;
            crate::moves::remove(&self.node, req.into_inner().node_id).await?;
            Ok(pb::RemoveNodeResponse {})
        }
        .await;
        finish("remove_node", res)
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

    async fn join(&self, req: Request<pb::JoinRequest>) -> Result<Response<pb::JoinResponse>, Status> {
        let res = async {
            let r = req.into_inner();
            if r.node_id == 0 || r.addr.is_empty() {
                return Err(RouterError::InvalidArgument(
                    "join needs a node id > 0 and an address".into(),
                ));
            }
            let meta = self.meta_leader()?;
            let known = self
                .node
                .with_meta(|m| m.nodes.get(&r.node_id).map(|n| n.addr.clone()))?;
            if let Some(existing) = known
                && (existing != r.addr || r.fresh)
            {
                return Err(RouterError::InvalidArgument(format!(
                    "node id {} is already a member (at {existing}); a node that lost its disk \
                     rejoins with a new id",
                    r.node_id
                )));
            }
            self.node.peers.set_addr(r.node_id, &r.addr);
            self.meta_command(MetaCommand::AddNode {
                id: r.node_id,
                addr: r.addr.clone(),
            })
            .await?;
            let in_meta = meta
                .raft
                .voter_ids()
                .chain(meta.raft.learner_ids())
                .any(|id| id == r.node_id);
            if !in_meta {
                meta.raft
                    .add_learner(r.node_id, openraft::BasicNode { addr: r.addr }, false)
                    .await
                    .map_err(|e| RouterError::NotReady(e.to_string()))?;
            }
            Ok(pb::JoinResponse {
                map: Some(self.cluster_map()?),
                cluster_id: self.node.peers.cluster_id(),
            })
        }
        .await;
        finish("join", res)
    }
}

fn planned_to_pb(m: &crate::rebalance::PlannedMove) -> pb::PlannedMove {
    pb::PlannedMove {
        shard_id: m.shard_id,
        from: m.from,
        to: m.to,
    }
}
