//! What the planes share: the leader checks, meta proposals and the cluster
//! map every plane answers from, and the calls both the admin and the
//! replica plane serve (node status, leader transfer, join).

use confab_proto::router as pb;

use crate::error::Result;
use crate::error::RouterError;
use crate::node::Group;
use crate::node::Node;
use crate::sm::meta::MetaCommand;
use crate::sm::meta::MetaReply;
use crate::sm::meta::MetaState;
use crate::sm::meta::ShardRecord;
use crate::types::Command;
use crate::types::Reply;
use crate::wire;

/// Every shard descriptor of this node's map, with the leaders it knows.
pub(super) fn descriptors(node: &Node, meta: &MetaState) -> Vec<pb::ShardDescriptor> {
    meta.shards
        .values()
        .map(|s| wire::shard_to_pb(s, node.group(s.id).and_then(|g| g.leader()).unwrap_or(0)))
        .collect()
}

/// This node holds no replica: point at a replica that may lead.
pub(super) fn not_hosted(shard: &ShardRecord, meta: &MetaState) -> RouterError {
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

/// `group` when this node leads it, else the redirect to its leader.
pub(super) fn leader_group(node: &Node, group: Group) -> Result<Group> {
    if group.is_leader(node.id) {
        Ok(group)
    } else {
        Err(node.not_leader_of(&group))
    }
}

/// The meta group, when this node leads it.
pub(super) fn meta_leader(node: &Node) -> Result<Group> {
    leader_group(node, node.meta()?)
}

pub(super) async fn meta_command(node: &Node, cmd: MetaCommand) -> Result<MetaReply> {
    let meta = node.meta()?;
    match node.propose(&meta, Command::Meta(cmd)).await? {
        Reply::Meta(r) => Ok(r),
        other => Err(RouterError::Internal(format!("meta answered {other:?}"))),
    }
}

pub(super) fn cluster_map(node: &Node) -> Result<pb::ClusterMap> {
    let meta = node.meta_state()?;
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
        shards: descriptors(node, &meta),
        meta_leader: node.meta()?.leader().unwrap_or(0),
        version: meta.version,
    })
}

/// This node's groups, as Raft sees them.
pub(super) fn node_status(node: &Node, with_checksum: bool) -> pb::NodeStatusResponse {
    let groups = node
        .groups()
        .iter()
        .map(|g| {
            let mut s = crate::status::group_status(g);
            if with_checksum {
                s.checksum = crate::status::checksum(g);
            }
            s
        })
        .collect();
    pb::NodeStatusResponse {
        node_id: node.id,
        addr: node.addr.clone(),
        groups,
    }
}

/// Hands the leadership of a group this node leads to voter `r.to`.
/// Hands the leadership of a group this node leads to voter `r.to`.
pub(super) async fn transfer_leader(
    node: &Node,
    r: pb::TransferLeaderRequest,
) -> Result<pb::TransferLeaderResponse> {
    let group = node
        .group(r.group_id)
        .ok_or(RouterError::ShardNotFound(r.group_id))?;
    let group = leader_group(node, group)?;
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

/// Adds node `r.node_id` at `r.addr` to the map and to the meta group (as
/// a learner), on the meta leader.
pub(super) async fn join(node: &Node, r: pb::JoinRequest) -> Result<pb::JoinResponse> {
    if r.node_id == 0 || r.addr.is_empty() {
        return Err(RouterError::InvalidArgument(
            "join needs a node id > 0 and an address".into(),
        ));
    }
    let meta = meta_leader(node)?;
    let known = node.with_meta(|m| m.nodes.get(&r.node_id).map(|n| n.addr.clone()))?;
    if let Some(existing) = known
        && (existing != r.addr || r.fresh)
    {
        return Err(RouterError::InvalidArgument(format!(
            "node id {} is already a member (at {existing}); a node that lost its disk \
             rejoins with a new id",
            r.node_id
        )));
    }
    node.peers.set_addr(r.node_id, &r.addr);
    meta_command(
        node,
        MetaCommand::AddNode {
            id: r.node_id,
            addr: r.addr.clone(),
        },
    )
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
        map: Some(cluster_map(node)?),
        cluster_id: node.peers.cluster_id(),
    })
}
