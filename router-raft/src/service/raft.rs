//! RaftService, the receiving end of the Raft transport (caller: other
//! routers): decodes each RPC, hands it to the addressed group's Raft, and
//! encodes the answer as `Result<resp, String>`.

use std::io::Cursor;
use std::sync::Arc;

use confab_proto::router as pb;
use confab_proto::router::raft_service_server::RaftService;
pub use confab_proto::router::raft_service_server::SERVICE_NAME as SERVICE;
use confab_tls::{PeerInfo, Role, authz};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::error::RouterError;
use crate::metrics;
use crate::node::Group;
use crate::node::Node;
use crate::types::Snapshot;
use crate::types::SnapshotMeta;
use crate::types::TypeConfig;
use crate::types::Vote;

pub struct RaftServer {
    node: Arc<Node>,
}

impl RaftServer {
    pub fn new(node: Arc<Node>) -> Self {
        // Shown at 0 from the start: the series to alert on.
        std::sync::LazyLock::force(&metrics::RAFT_MISADDRESSED);
        Self { node }
    }

    fn open<T: DeserializeOwned>(&self, req: Request<pb::RaftRequest>) -> Result<(Group, T), RouterError> {
        let req = req.into_inner();
        if req.to_node != 0 && req.to_node != self.node.id {
            metrics::RAFT_MISADDRESSED.inc();
            return Err(RouterError::WrongNode {
                this: self.node.id,
                meant: req.to_node,
            });
        }
        let mine = self.node.peers.cluster_id();
        if req.cluster_id != 0 && mine != 0 && req.cluster_id != mine {
            metrics::RAFT_MISADDRESSED.inc();
            return Err(RouterError::WrongCluster {
                node: self.node.id,
                mine,
                theirs: req.cluster_id,
            });
        }
        let group = self
            .node
            .group(req.group_id)
            .ok_or(RouterError::GroupNotHosted(req.group_id))?;
        let msg = confab_router_state::codec::decode(&req.payload)
            .map_err(|e| RouterError::InvalidArgument(format!("undecodable raft message: {e}")))?;
        Ok((group, msg))
    }
}

/// A Raft message speaks for the node its vote names (the leader sending
/// entries, the candidate asking for votes): with TLS, that must be the
/// node the sender's certificate names. Checked before the group sees it.
fn from_node(peer: Option<&PeerInfo>, vote: &Vote) -> Result<(), Status> {
    authz::require(peer, SERVICE, Role::Router, vote.leader_id.node_id)
}

fn reply<T: Serialize, E: std::fmt::Display>(res: Result<T, E>) -> Result<Response<pb::RaftReply>, Status> {
    let res = res.map_err(|e| e.to_string());
    let payload = postcard::to_stdvec(&res)
        .map_err(|e| RouterError::Internal(format!("encoding a raft reply: {e}")))?;
    Ok(Response::new(pb::RaftReply { payload }))
}

#[tonic::async_trait]
impl RaftService for RaftServer {
    async fn append_entries(&self, req: Request<pb::RaftRequest>) -> Result<Response<pb::RaftReply>, Status> {
        let peer = authz::peer(&req).cloned();
        let (g, msg): (_, openraft::raft::AppendEntriesRequest<TypeConfig>) = self.open(req)?;
        from_node(peer.as_ref(), &msg.vote)?;
        reply(g.raft.append_entries(msg).await)
    }

    async fn vote(&self, req: Request<pb::RaftRequest>) -> Result<Response<pb::RaftReply>, Status> {
        let peer = authz::peer(&req).cloned();
        let (g, msg): (_, openraft::raft::VoteRequest<TypeConfig>) = self.open(req)?;
        from_node(peer.as_ref(), &msg.vote)?;
        reply(g.raft.vote(msg).await)
    }

    async fn pre_vote(&self, req: Request<pb::RaftRequest>) -> Result<Response<pb::RaftReply>, Status> {
        let peer = authz::peer(&req).cloned();
        let (g, msg): (_, openraft::raft::VoteRequest<TypeConfig>) = self.open(req)?;
        from_node(peer.as_ref(), &msg.vote)?;
        reply(g.raft.pre_vote(msg).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<pb::RaftRequest>,
    ) -> Result<Response<pb::RaftReply>, Status> {
        let peer = authz::peer(&req).cloned();
        let (g, (vote, meta, data)): (_, (Vote, SnapshotMeta, Vec<u8>)) = self.open(req)?;
        from_node(peer.as_ref(), &vote)?;
        let bytes = data.len() as u64;
        let snapshot = Snapshot {
            meta,
            snapshot: Cursor::new(data),
        };
        let started = std::time::Instant::now();
        let res = g.raft.install_full_snapshot(vote, snapshot).await;
        let outcome = if res.is_ok() { "ok" } else { "error" };
        metrics::SNAPSHOTS_RECEIVED.with_label_values(&[outcome]).inc();
        if res.is_ok() {
            metrics::SNAPSHOT_RECEIVED_BYTES.inc_by(bytes);
            metrics::SNAPSHOT_RECEIVE_SECONDS.observe(started.elapsed().as_secs_f64());
        }
        reply(res)
    }

    async fn transfer_leader(
        &self,
        req: Request<pb::RaftRequest>,
    ) -> Result<Response<pb::RaftReply>, Status> {
        let peer = authz::peer(&req).cloned();
        let (g, msg): (_, openraft::raft::TransferLeaderRequest<TypeConfig>) = self.open(req)?;
        from_node(peer.as_ref(), msg.from_leader())?;
        reply(g.raft.handle_transfer_leader(msg).await)
    }
}
