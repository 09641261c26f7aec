//! The Raft transport: one tonic channel per peer node, shared by every group
//! (openraft-multi's `GroupRouter`); each RPC carries its group id and the
//! openraft message serialized with postcard.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use confab_net::Channel;
use confab_net::{ChannelConfig, ClientTls};
use confab_proto::router as pb;
use confab_proto::router::raft_service_client::RaftServiceClient;
use openraft::OptionalSend;
use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::ReplicationClosed;
use openraft::error::StreamingError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetworkFactory;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft_multi::GroupNetworkAdapter;
use openraft_multi::GroupNetworkFactory;
use openraft_multi::GroupRouter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::metrics;
use crate::types::GroupId;
use crate::types::NodeId;
use crate::types::Snapshot;
use crate::types::SnapshotData;
use crate::types::TypeConfig;
use crate::types::Vote;

/// Largest Raft message accepted or sent (a full snapshot travels in one).
pub const MAX_RAFT_MESSAGE: usize = 1 << 30;

/// How long connecting to a peer may take: a heartbeat must not wait on a
/// dead one for long.
const RAFT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// HTTP/2 pings on the peer channels: notices a dead peer on an idle one.
const RAFT_KEEP_ALIVE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

/// The node's connections to its peers, by Raft node id.
#[derive(Clone)]
pub struct Peers {
    inner: Arc<RwLock<PeerTable>>,
    /// Floor under openraft's per-RPC budget (one heartbeat interval), so a
    /// follower busy with an fsync or a loaded machine is not declared
    /// unreachable for being a few milliseconds late.
    min_rpc_timeout: Duration,
    /// This node's cluster id, sent with every message (0: not known yet).
    cluster_id: Arc<AtomicU64>,
    /// Mutual TLS to every peer, if the node runs with it.
    tls: Option<ClientTls>,
}

/// node id -> (address, client over the node's one channel).
type PeerTable = HashMap<NodeId, (String, RaftServiceClient<Channel>)>;

impl Peers {
    pub fn new(min_rpc_timeout: Duration, tls: Option<ClientTls>) -> Self {
        Self {
            inner: Arc::default(),
            min_rpc_timeout,
            cluster_id: Arc::default(),
            tls,
        }
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id.load(Ordering::Relaxed)
    }

    pub fn set_cluster_id(&self, id: u64) {
        self.cluster_id.store(id, Ordering::Relaxed);
    }

    /// Records (or changes) the address of `id`; connects lazily.
    pub fn set_addr(&self, id: NodeId, addr: &str) {
        if self.addr(id).as_deref() == Some(addr) {
            return;
        }
        let config = ChannelConfig::connect_within(RAFT_CONNECT_TIMEOUT)
            .with_keep_alive(RAFT_KEEP_ALIVE)
            .with_tls(self.tls.clone());
        let Ok(channel) = confab_net::channel(addr, &config) else {
            tracing::warn!(node = id, addr, "ignoring a peer address that is not a valid URI");
            return;
        };
        let client = RaftServiceClient::new(channel)
            .max_decoding_message_size(MAX_RAFT_MESSAGE)
            .max_encoding_message_size(MAX_RAFT_MESSAGE);
        self.write().insert(id, (addr.to_string(), client));
    }

    pub fn addr(&self, id: NodeId) -> Option<String> {
        self.read().get(&id).map(|(a, _)| a.clone())
    }

    fn client(&self, id: NodeId) -> Option<RaftServiceClient<Channel>> {
        self.read().get(&id).map(|(_, c)| c.clone())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, PeerTable> {
        self.inner.read().expect("peer table lock poisoned")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, PeerTable> {
        self.inner.write().expect("peer table lock poisoned")
    }

    async fn call<Req, Resp>(
        &self,
        kind: RaftRpc,
        target: NodeId,
        group: GroupId,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, TransportError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let res = self.call_inner(kind, target, group, req, ttl).await;
        let outcome = if res.is_ok() { "ok" } else { "error" };
        metrics::RAFT_RPC_TOTAL
            .with_label_values(&[kind.name(), outcome])
            .inc();
        res
    }

    async fn call_inner<Req, Resp>(
        &self,
        kind: RaftRpc,
        target: NodeId,
        group: GroupId,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, TransportError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let mut client = self
            .client(target)
            .ok_or_else(|| TransportError(format!("no address known for node {target}")))?;
        let payload = postcard::to_stdvec(req).map_err(|e| TransportError(e.to_string()))?;
        let mut request = tonic::Request::new(pb::RaftRequest {
            group_id: group,
            payload,
            to_node: target,
            cluster_id: self.cluster_id(),
        });
        request.set_timeout(ttl.max(self.min_rpc_timeout));
        let reply = match kind {
            RaftRpc::Append => client.append_entries(request).await,
            RaftRpc::Vote => client.vote(request).await,
            RaftRpc::PreVote => client.pre_vote(request).await,
            RaftRpc::Snapshot => client.install_snapshot(request).await,
            RaftRpc::TransferLeader => client.transfer_leader(request).await,
        }
        .map_err(|s| TransportError(format!("{}: {}", s.code(), s.message())))?;
        let res: Result<Resp, String> =
            postcard::from_bytes(&reply.into_inner().payload).map_err(|e| TransportError(e.to_string()))?;
        res.map_err(TransportError)
    }
}

#[derive(Clone, Copy)]
enum RaftRpc {
    Append,
    Vote,
    PreVote,
    Snapshot,
    TransferLeader,
}

impl RaftRpc {
    fn name(self) -> &'static str {
        match self {
            RaftRpc::Append => "append",
            RaftRpc::Vote => "vote",
            RaftRpc::PreVote => "pre_vote",
            RaftRpc::Snapshot => "snapshot",
            RaftRpc::TransferLeader => "transfer_leader",
        }
    }
}

fn unreachable(e: TransportError) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::new(&e))
}

impl GroupRouter<TypeConfig, GroupId> for Peers {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RaftRpc::Append, target, group, &rpc, option.hard_ttl())
            .await
            .map_err(unreachable)
    }

    async fn vote(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RaftRpc::Vote, target, group, &rpc, option.hard_ttl())
            .await
            .map_err(unreachable)
    }

    async fn pre_vote(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RaftRpc::PreVote, target, group, &rpc, option.hard_ttl())
            .await
            .map_err(unreachable)
    }

    async fn full_snapshot(
        &self,
        target: NodeId,
        group: GroupId,
        vote: Vote,
        snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let req = (vote, snapshot.meta, snapshot.snapshot.into_inner());
        let bytes = req.2.len() as u64;
        // A snapshot can be large: give it the hard TTL at least, and a floor.
        let ttl = option.hard_ttl().max(Duration::from_secs(30));
        let started = std::time::Instant::now();
        let res = self.call(RaftRpc::Snapshot, target, group, &req, ttl).await;
        let outcome = if res.is_ok() { "ok" } else { "error" };
        metrics::SNAPSHOTS_SENT.with_label_values(&[outcome]).inc();
        if res.is_ok() {
            metrics::SNAPSHOT_SENT_BYTES.inc_by(bytes);
            metrics::SNAPSHOT_SEND_SECONDS.observe(started.elapsed().as_secs_f64());
            tracing::info!(group, target, bytes, "snapshot sent");
        }
        res.map_err(|e| StreamingError::Network(NetworkError::new(&e)))
    }

    async fn transfer_leader(
        &self,
        target: NodeId,
        group: GroupId,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RaftRpc::TransferLeader, target, group, &req, option.hard_ttl())
            .await
            .map_err(unreachable)
    }
}

/// Creates the per-(target, group) network clients of one group (openraft's
/// multi-group factory, wrapped: the Raft types are defined in
/// confab-router-state, so the factory trait is implemented on a type of
/// this crate).
pub struct NetworkFactory(GroupNetworkFactory<Peers, GroupId>);

impl NetworkFactory {
    pub fn new(peers: Peers, group: GroupId) -> Self {
        Self(GroupNetworkFactory::new(peers, group))
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = GroupNetworkAdapter<TypeConfig, GroupId, Peers>;

    async fn new_client(&mut self, target: NodeId, node: &openraft::BasicNode) -> Self::Network {
        self.0.factory.set_addr(target, &node.addr);
        GroupNetworkAdapter::new(self.0.factory.clone(), target, self.0.group_id)
    }
}
