//! The steps of a move served on other nodes than the meta leader: the
//! replica change on the shard leader (step 2) and the drop on the node that
//! gave the replica away (last step).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use confab_proto::router as pb;
use openraft::BasicNode;
use openraft::ChangeMembers;
use openraft::async_runtime::WatchReceiver;

use crate::error::Result;
use crate::error::RouterError;
use crate::node::Node;
use crate::types::NodeId;

/// Step 2, on the shard leader.
pub async fn change_replicas(node: &Arc<Node>, r: pb::ChangeReplicasRequest) -> Result<Vec<NodeId>> {
    let group = node
        .group(r.shard_id)
        .ok_or(RouterError::ShardNotFound(r.shard_id))?;
    if !group.is_leader(node.id) {
        return Err(node.not_leader_of(&group));
    }
    let fail = |e: String| RouterError::NotReady(format!("shard {}: {e}", r.shard_id));
    let membership = || {
        group
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .clone()
    };
    let current: BTreeSet<NodeId> = membership().voter_ids().collect();
    let mut voters = current.clone();
    if r.add != 0 {
        voters.insert(r.add);
    }
    if r.remove != 0 {
        voters.remove(&r.remove);
    }
    if voters.is_empty() {
        return Err(RouterError::InvalidArgument(
            "a shard needs at least one voter".into(),
        ));
    }
    if r.add != 0 && !current.contains(&r.add) {
        node.peers.set_addr(r.add, &r.add_addr);
        let started = std::time::Instant::now();
        group
            .raft
            .add_learner(
                r.add,
                BasicNode {
                    addr: r.add_addr.clone(),
                },
                true,
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
        crate::metrics::LEARNER_CATCH_UP_SECONDS.observe(started.elapsed().as_secs_f64());
    }
    if voters != current && r.remove == node.id && hand_off_before_leaving(node, &group, &voters).await {
        // The caller retries at the new leader, which makes the change.
        return Err(node.not_leader_of(&group));
    }
    if voters != current {
        group
            .raft
            .change_membership(ChangeMembers::ReplaceAllVoters(voters.clone()), false)
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    Ok(membership().voter_ids().collect())
}

/// A leader about to remove itself from the voters first hands its
/// leadership to the most caught-up voter that stays: removed, it would stop
/// leading with nobody elected until an election timeout, and every caller
/// would wait. True when another node leads now.
async fn hand_off_before_leaving(
    node: &Arc<Node>,
    group: &crate::node::Group,
    stay: &BTreeSet<NodeId>,
) -> bool {
    let m = group.raft.metrics().borrow_watched().clone();
    let matched = |id: &NodeId| {
        m.replication
            .as_ref()
            .and_then(|r| r.get(id).cloned().flatten())
            .map_or(0, |l| l.index())
    };
    let current: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
    let Some(target) = stay
        .iter()
        .copied()
        .filter(|id| *id != node.id && current.contains(id))
        .max_by_key(matched)
    else {
        return false;
    };
    if let Err(error) = group.raft.trigger().transfer_leader(target).await {
        tracing::warn!(group = group.id, target, %error, "leader hand-off before leaving");
        return false;
    }
    let deadline = tokio::time::Instant::now() + HAND_OFF_WAIT;
    while tokio::time::Instant::now() < deadline {
        if group.leader().is_some_and(|l| l != node.id) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::warn!(
        group = group.id,
        target,
        "leader hand-off before leaving took too long"
    );
    false
}

/// How long a leader leaving a group waits for its hand-off to take.
const HAND_OFF_WAIT: Duration = Duration::from_secs(3);

/// Last step, on the node that gave the replica away.
/// The node keeps a tombstone with the shard's record after the move.
pub async fn drop_replica(node: &Arc<Node>, shard_id: u32) -> Result<bool> {
    let record = node.with_meta(|meta| meta.shards.get(&shard_id).cloned())?;
    match record {
        None => Err(RouterError::ShardNotFound(shard_id)),
        Some(r) if r.replicas.contains(&node.id) => Err(RouterError::InvalidArgument(format!(
            "the map still lists node {} as a replica of shard {shard_id}",
            node.id
        ))),
        Some(r) => node.drop_group(shard_id, Some(r)).await,
    }
}
