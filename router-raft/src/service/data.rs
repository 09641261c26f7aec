//! RouterData, the data plane (caller: gateways): login, logout, batch
//! lookup and the coalesced batch, gateway registration and leases, and the
//! cluster map. Every session handler checks the route first (shard known,
//! epoch current, uid in the shard, this node the leader) and answers a
//! typed routing error when it is not.

use std::sync::Arc;
use std::time::Instant;

use confab_common::trace;
use confab_proto::router as pb;
use confab_proto::router::router_data_server::RouterData;
pub use confab_proto::router::router_data_server::SERVICE_NAME as SERVICE;
use confab_tls::Role;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tracing::Instrument;

use super::cluster;
use super::status::counted;
use super::status::finish;
use crate::error::Result;
use crate::error::RouterError;
use crate::metrics;
use crate::node::Group;
use crate::node::Node;
use crate::sm::GroupData;
use crate::sm::meta::MetaCommand;
use crate::sm::meta::MetaReply;
use crate::sm::shard::ShardCommand;
use crate::sm::shard::ShardReply;
use crate::wire;

/// Largest number of uids in one lookup request.
pub const MAX_LOOKUP_UIDS: usize = 100_000;

/// Largest number of items in one batch request.
pub const MAX_BATCH_ITEMS: usize = 10_000;

/// The data plane's handlers.
pub struct DataServer {
    node: Arc<Node>,
}

impl DataServer {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
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
                    .any(|&uid| !shard.owns_slot(confab_route::slot_of(uid, meta.slots)));
            if stale {
                return Err(RouterError::EpochNotMatch {
                    current: cluster::descriptors(&self.node, meta),
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
                .map(|s| cluster::not_hosted(s, meta))
        });
        match listed {
            Ok(Some(e)) => e,
            Ok(None) => RouterError::ShardNotFound(shard_id),
            Err(e) => e,
        }
    }

    /// A login or logout: coalesced with the group's concurrent writes.
    async fn session_write(&self, group: &Group, cmd: ShardCommand) -> Result<(ShardReply, u64)> {
        self.node.propose_batched(group, cmd).await
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
        let group = cluster::leader_group(&self.node, group)?;
        if !*PLANTED_STALE_READS {
            self.node.linearize_batched(&group).await?;
        }
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
}

/// A bug planted on purpose, in test builds only (`debug_assertions`) and
/// only with `CONFAB_TEST_SKIP_READ_CHECK` set: lookups are served by a node
/// that believes it leads, without confirming it. The chaos checker must
/// catch the stale reads this gives once a leader is cut off (proof that it
/// checks the real path).
static PLANTED_STALE_READS: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
    let planted = cfg!(debug_assertions) && std::env::var_os("CONFAB_TEST_SKIP_READ_CHECK").is_some();
    if planted {
        tracing::warn!(
            "CONFAB_TEST_SKIP_READ_CHECK: serving reads without the leadership check (a planted bug)"
        );
    }
    planted
});

/// A gateway speaks only for itself: a request that names a gateway id
/// (its registration, its lease, its sessions) must come from that gateway,
/// or from an operator. Checked before anything changes.
fn speaks_for<T>(req: &Request<T>, gateway_id: u64) -> Result<(), Status> {
    if confab_tls::caller(req).is_some_and(|c| c.role == Role::Admin) {
        return Ok(());
    }
    confab_tls::require_id(req, SERVICE, Role::Gateway, gateway_id)
}

#[tonic::async_trait]
impl RouterData for DataServer {
    async fn login(&self, req: Request<pb::LoginRequest>) -> Result<Response<pb::LoginResponse>, Status> {
        speaks_for(&req, req.get_ref().session.as_ref().map_or(0, |s| s.gateway_id))?;
        finish("login", self.login_op(req.into_inner()).await)
    }

    async fn logout(&self, req: Request<pb::LogoutRequest>) -> Result<Response<pb::LogoutResponse>, Status> {
        finish("logout", self.logout_op(req.into_inner()).await)
    }

    async fn lookup(&self, req: Request<pb::LookupRequest>) -> Result<Response<pb::LookupResponse>, Status> {
        let span = trace::continued(
            confab_net::trace::parent(&req),
            || tracing::info_span!(target: trace::TARGET, "router.lookup", node = self.node.id, trace_id = tracing::field::Empty),
        );
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
        .instrument(span)
        .await;
        finish("lookup", res)
    }

    async fn batch(&self, req: Request<pb::BatchRequest>) -> Result<Response<pb::BatchResponse>, Status> {
        for item in &req.get_ref().items {
            if let Some(pb::batch_item::Op::Login(login)) = &item.op {
                speaks_for(&req, login.session.as_ref().map_or(0, |s| s.gateway_id))?;
            }
        }
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
        speaks_for(&req, req.get_ref().gateway_id)?;
        let res = async {
            let r = req.into_inner();
            if r.gateway_id == 0 {
                return Err(RouterError::InvalidArgument("gateway_id must not be 0".into()));
            }
            cluster::meta_leader(&self.node)?;
            let cmd = MetaCommand::RegisterGateway {
                gateway_id: r.gateway_id,
                addr: r.addr,
            };
            match cluster::meta_command(&self.node, cmd).await? {
                MetaReply::Registered {
                    incarnation,
                    ids_from_ms,
                } => {
                    self.node.leases.renew(r.gateway_id, incarnation);
                    Ok(pb::RegisterGatewayResponse {
                        incarnation,
                        lease_ms: self.node.leases.lease().as_millis() as u64,
                        ids_from_ms,
                    })
                }
                MetaReply::GatewayIdTaken { addr } => Err(RouterError::GatewayIdTaken {
                    gateway_id: r.gateway_id,
                    addr,
                }),
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
        speaks_for(&req, req.get_ref().gateway_id)?;
        let res = async {
            let r = req.into_inner();
            cluster::meta_leader(&self.node)?;
            let (live, held) = self.node.with_meta(|meta| {
                let live = meta
                    .gateways
                    .get(&r.gateway_id)
                    .is_some_and(|g| g.incarnation == r.incarnation);
                (
                    live,
                    meta.id_reservations.get(&r.gateway_id).copied().unwrap_or(0),
                )
            })?;
            let unknown = || RouterError::UnknownGateway {
                gateway_id: r.gateway_id,
                incarnation: r.incarnation,
            };
            if !live {
                return Err(unknown());
            }
            let mut ids_until_ms = held;
            if r.ids_until_ms > held {
                let cmd = MetaCommand::ReserveIds {
                    gateway_id: r.gateway_id,
                    incarnation: r.incarnation,
                    until_ms: r.ids_until_ms,
                };
                ids_until_ms = match cluster::meta_command(&self.node, cmd).await? {
                    MetaReply::Reserved { until_ms } => until_ms,
                    MetaReply::UnknownGateway => return Err(unknown()),
                    other => return Err(RouterError::Internal(format!("reserve answered {other:?}"))),
                };
            }
            self.node.leases.renew(r.gateway_id, r.incarnation);
            Ok(pb::RenewLeaseResponse {
                lease_ms: self.node.leases.lease().as_millis() as u64,
                ids_until_ms,
            })
        }
        .await;
        finish("renew_lease", res)
    }

    async fn deregister_gateway(
        &self,
        req: Request<pb::DeregisterGatewayRequest>,
    ) -> Result<Response<pb::DeregisterGatewayResponse>, Status> {
        speaks_for(&req, req.get_ref().gateway_id)?;
        let res = async {
            let r = req.into_inner();
            cluster::meta_leader(&self.node)?;
            let cmd = MetaCommand::ExpireGateway {
                gateway_id: r.gateway_id,
                incarnation: r.incarnation,
            };
            match cluster::meta_command(&self.node, cmd).await? {
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

    async fn get_cluster_map(
        &self,
        _req: Request<pb::GetClusterMapRequest>,
    ) -> Result<Response<pb::ClusterMap>, Status> {
        finish("get_cluster_map", cluster::cluster_map(&self.node))
    }
}
