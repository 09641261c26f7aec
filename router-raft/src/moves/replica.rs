//! A replica move as the meta leader runs it: checks, the steps in order,
//! and the last step (dropping the old replica) also when an earlier call
//! stopped before it.

use std::sync::Arc;

use confab_proto::router as pb;

use super::calls::STEP_TIMEOUT;
use super::calls::drop_later;
use super::calls::drop_old_replica;
use super::calls::on_shard_leader;
use super::calls::remote;
use crate::error::Result;
use crate::error::RouterError;
use crate::node::Node;
use crate::remote::within;
use crate::sm::meta::MetaCommand;
use crate::sm::meta::MetaReply;
use crate::sm::meta::NodeRecordState;
use crate::sm::meta::ShardRecord;
use crate::types::Command;
use crate::types::NodeId;
use crate::types::Reply;

/// Runs a move on the meta leader; returns the shard's new record.
pub async fn move_replica(node: &Arc<Node>, shard_id: u32, from: NodeId, to: NodeId) -> Result<ShardRecord> {
    if from == to {
        return Err(RouterError::InvalidArgument(
            "a move needs two different nodes".into(),
        ));
    }
    let (shard, to_addr, from_addr) = node.with_meta(|meta| {
        let shard = meta
            .shards
            .get(&shard_id)
            .cloned()
            .ok_or(RouterError::ShardNotFound(shard_id))?;
        let to_rec = meta
            .nodes
            .get(&to)
            .ok_or_else(|| RouterError::InvalidArgument(format!("node {to} is not in the cluster")))?;
        if to_rec.state != NodeRecordState::Up {
            return Err(RouterError::InvalidArgument(format!(
                "node {to} is {:?}, not up",
                to_rec.state
            )));
        }
        let from_addr = meta.node_addr(from).map(str::to_owned);
        Ok((shard, to_rec.addr.clone(), from_addr))
    })??;
    let done = shard.replicas.contains(&to) && !shard.replicas.contains(&from);
    if !done {
        if !shard.replicas.contains(&from) {
            return Err(RouterError::InvalidArgument(format!(
                "node {from} holds no replica of shard {shard_id}"
            )));
        }
        if shard.replicas.contains(&to) {
            return Err(RouterError::InvalidArgument(format!(
                "node {to} already holds a replica of shard {shard_id}"
            )));
        }
        crate::metrics::MOVES_IN_PROGRESS.inc();
        let res = run_steps(node, &shard, from, to, &to_addr).await;
        crate::metrics::MOVES_IN_PROGRESS.dec();
        res?;
    }
    // Last step, also when an earlier call stopped before it.
    if let Some(addr) = from_addr
        && let Err(status) = drop_old_replica(node, &addr, shard_id).await
    {
        // The replica is out of the group already, but its node is down or
        // cut off: keep asking in the background, so that once it is back
        // it does not keep a stray copy (asking for the move again drops it
        // too).
        tracing::warn!(shard_id, from, %status, "dropping the old replica; retrying in the background");
        tokio::spawn(drop_later(node.clone(), shard_id, from, addr));
    }
    node.with_meta(|meta| meta.shards.get(&shard_id).cloned())?
        .ok_or(RouterError::ShardNotFound(shard_id))
}

async fn run_steps(
    node: &Arc<Node>,
    shard: &ShardRecord,
    from: NodeId,
    to: NodeId,
    to_addr: &str,
) -> Result<()> {
    let shard_id = shard.id;
    tracing::info!(shard_id, from, to, "moving a replica");
    let mut to_stub = node.remotes.replica(to_addr)?;
    within(
        STEP_TIMEOUT,
        to_stub.create_replica(pb::CreateReplicaRequest { shard_id }),
    )
    .await
    .map_err(|s| remote("create replica", to_addr, &s))?;
    let change = pb::ChangeReplicasRequest {
        shard_id,
        add: to,
        add_addr: to_addr.to_owned(),
        remove: from,
    };
    let voters = on_shard_leader(node, shard, change).await?;
    // The map lists the replicas in the group's voter order, the old slot of
    // `from` now `to`, so the first-replica spread stays as it was.
    let replicas: Vec<NodeId> = shard
        .replicas
        .iter()
        .map(|&r| if r == from { to } else { r })
        .filter(|r| voters.contains(r))
        .collect();
    let meta = node.meta()?;
    match node
        .propose(
            &meta,
            Command::Meta(MetaCommand::SetReplicas { shard_id, replicas }),
        )
        .await?
    {
        Reply::Meta(MetaReply::Ok) => Ok(()),
        other => Err(RouterError::Internal(format!("set replicas answered {other:?}"))),
    }
}
