//! Taking a node out, on the meta leader: draining it (every replica and
//! leadership moved off) and removing it from the meta group and the map.

use std::collections::BTreeSet;
use std::sync::Arc;

use confab_proto::router as pb;
use openraft::ChangeMembers;
use openraft::async_runtime::WatchReceiver;

use super::balance::rebalance;
use super::calls::STEP_TIMEOUT;
use crate::error::Result;
use crate::error::RouterError;
use crate::node::Node;
use crate::rebalance::PlannedMove;
use crate::remote::within;
use crate::sm::meta::MetaCommand;
use crate::sm::meta::MetaReply;
use crate::sm::meta::NodeRecordState;
use crate::types::Command;
use crate::types::NodeId;
use crate::types::Reply;

pub async fn drain(node: &Arc<Node>, id: NodeId) -> Result<Vec<PlannedMove>> {
    let (known, others, widest) = node.with_meta(|meta| {
        let others = meta
            .nodes
            .values()
            .filter(|n| n.id != id && n.state == NodeRecordState::Up)
            .count();
        let widest = meta.shards.values().map(|s| s.replicas.len()).max().unwrap_or(0);
        (meta.nodes.contains_key(&id), others, widest)
    })?;
    if !known {
        return Err(RouterError::InvalidArgument(format!(
            "node {id} is not in the cluster"
        )));
    }
    if others < widest {
        return Err(RouterError::InvalidArgument(format!(
            "draining node {id} would leave {others} nodes for shards of {widest} replicas"
        )));
    }
    meta_command(
        node,
        MetaCommand::SetNodeState {
            id,
            state: NodeRecordState::Draining,
        },
    )
    .await?;
    let (moves, _) = rebalance(node, false).await?;
    // Its last leaderships (the meta group's, say) go too.
    let addr = node.node_addr(id);
    let mut draining = node.remotes.replica(&addr)?;
    if let Err(status) = within(STEP_TIMEOUT, draining.hand_off(pb::HandOffRequest {})).await {
        tracing::warn!(node = id, %status, "hand-off of a draining node");
    }
    Ok(moves)
}

/// Takes a drained node out of the meta group and the map.
pub async fn remove(node: &Arc<Node>, id: NodeId) -> Result<()> {
    let held: Vec<u32> = node.with_meta(|meta| {
        meta.shards
            .values()
            .filter(|s| s.replicas.contains(&id))
            .map(|s| s.id)
            .collect()
    })?;
    if !held.is_empty() {
        return Err(RouterError::InvalidArgument(format!(
            "node {id} still holds replicas of shards {held:?}: drain it first"
        )));
    }
    let meta = node.meta()?;
    let membership = meta
        .raft
        .metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .clone();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let fail = |e: String| RouterError::NotReady(format!("meta membership: {e}"));
    if voters.contains(&id) {
        if id == node.id {
            return Err(RouterError::InvalidArgument(format!(
                "node {id} leads the meta group: drain it first (the drain hands the leadership off)"
            )));
        }
        let mut next: BTreeSet<NodeId> = voters.iter().copied().filter(|&v| v != id).collect();
        // Keep the meta group as wide as it was, with an up learner.
        let up = node.with_meta(crate::rebalance::up_nodes)?;
        if let Some(l) = membership
            .learner_ids()
            .find(|l| up.contains(l) && !next.contains(l))
        {
            next.insert(l);
        }
        meta.raft
            .change_membership(ChangeMembers::ReplaceAllVoters(next), true)
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    let still_member = meta
        .raft
        .metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .learner_ids()
        .any(|l| l == id);
    if still_member {
        meta.raft
            .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    meta_command(node, MetaCommand::RemoveNode { id }).await
}

async fn meta_command(node: &Arc<Node>, cmd: MetaCommand) -> Result<()> {
    let meta = node.meta()?;
    match node.propose(&meta, Command::Meta(cmd)).await? {
        Reply::Meta(MetaReply::Ok) => Ok(()),
        Reply::Meta(MetaReply::NodeHoldsReplicas(held)) => Err(RouterError::InvalidArgument(format!(
            "the node still holds replicas of shards {held:?}"
        ))),
        other => Err(RouterError::Internal(format!("meta answered {other:?}"))),
    }
}
