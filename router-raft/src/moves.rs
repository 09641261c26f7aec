//! Moving a shard replica from one node to another, in steps that are each
//! safe to repeat (an interrupted move is finished by asking again):
//!
//! 1. the receiving node starts an empty replica (`CreateReplica`);
//! 2. the shard leader adds it as a learner and waits until it caught up by
//!    snapshot and log, then swaps the voters (joint consensus) — the data
//!    sync is Raft replication itself (`ChangeReplicas`);
//! 3. the meta leader records the new replica set, bumping the shard's
//!    `conf_ver`, so clients with the old epoch get `EpochNotMatch` with the
//!    new descriptors;
//! 4. the node that gave the replica away stops it and deletes its data
//!    (`DropReplica`), refusing while the map still lists it there. It still
//!    hosts the meta group, so it keeps redirecting callers to the shard's
//!    new replicas.
//!
//! The replica count never drops below the replication factor: the new
//! replica is a caught-up voter before the old one leaves.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use confab_proto::router as pb;
use confab_proto::router::router_service_client::RouterServiceClient;
use openraft::BasicNode;
use openraft::ChangeMembers;
use openraft::async_runtime::WatchReceiver;
use prost::Message;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

use crate::error::Result;
use crate::error::RouterError;
use crate::node::Node;
use crate::rebalance::PlannedMove;
use crate::sm::meta::MetaCommand;
use crate::sm::meta::MetaReply;
use crate::sm::meta::NodeRecordState;
use crate::sm::meta::ShardRecord;
use crate::types::Command;
use crate::types::NodeId;
use crate::types::Reply;

/// How long one step may take (a learner catching up a large shard included).
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

fn stub(addr: &str) -> Result<RouterServiceClient<Channel>> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| RouterError::Internal(format!("bad node address {addr}: {e}")))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(STEP_TIMEOUT);
    Ok(RouterServiceClient::new(endpoint.connect_lazy()))
}

fn remote(what: &str, addr: &str, status: &tonic::Status) -> RouterError {
    RouterError::NotReady(format!(
        "{what} at {addr}: {}: {}",
        status.code(),
        status.message()
    ))
}

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
    // Last step, also when an earlier call stopped before it. The old node
    // refuses while its copy of the map still lists it: retry until its
    // meta replica caught up (normally milliseconds).
    if let Some(addr) = from_addr {
        let mut stub = stub(&addr)?;
        for attempt in 0..50 {
            match stub.drop_replica(pb::DropReplicaRequest { shard_id }).await {
                Ok(_) => break,
                Err(status) if status.code() == tonic::Code::InvalidArgument && attempt < 49 => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => {
                    // The replica is out of the group already; asking for
                    // the move again drops it.
                    tracing::warn!(shard_id, from, %status, "dropping the old replica");
                    break;
                }
            }
        }
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
    stub(to_addr)?
        .create_replica(pb::CreateReplicaRequest { shard_id })
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

/// Sends `change` to the shard's leader (this node or another), following
/// NotLeader answers.
async fn on_shard_leader(
    node: &Arc<Node>,
    shard: &ShardRecord,
    change: pb::ChangeReplicasRequest,
) -> Result<Vec<NodeId>> {
    let mut candidates: Vec<String> = Vec::new();
    if let Some(leader) = node.group(shard.id).and_then(|g| g.leader()) {
        candidates.push(node.node_addr(leader));
    }
    for r in &shard.replicas {
        candidates.push(node.node_addr(*r));
    }
    let mut last = String::from("no replica address");
    let mut tried = 0;
    while let Some(addr) = candidates.first().cloned() {
        candidates.remove(0);
        tried += 1;
        if tried > 8 || addr.is_empty() {
            continue;
        }
        match stub(&addr)?.change_replicas(change.clone()).await {
            Ok(resp) => return Ok(resp.into_inner().voters),
            Err(status) => {
                last = format!("{addr}: {}: {}", status.code(), status.message());
                let leader = pb::RouteError::decode(status.details())
                    .ok()
                    .and_then(|e| match e.kind {
                        Some(pb::route_error::Kind::NotLeader(nl)) if !nl.leader_addr.is_empty() => {
                            Some(nl.leader_addr)
                        }
                        _ => None,
                    });
                if let Some(leader) = leader {
                    candidates.insert(0, leader);
                } else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    Err(RouterError::NotReady(format!(
        "no leader of shard {} accepted the replica change (last: {last})",
        shard.id
    )))
}

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
    if voters != current {
        group
            .raft
            .change_membership(ChangeMembers::ReplaceAllVoters(voters.clone()), false)
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    Ok(membership().voter_ids().collect())
}

/// Last step, on the node that gave the replica away.
pub async fn drop_replica(node: &Arc<Node>, shard_id: u32) -> Result<bool> {
    let listed = node.with_meta(|meta| meta.shards.get(&shard_id).map(|s| s.replicas.contains(&node.id)))?;
    match listed {
        None => Err(RouterError::ShardNotFound(shard_id)),
        Some(true) => Err(RouterError::InvalidArgument(format!(
            "the map still lists node {} as a replica of shard {shard_id}",
            node.id
        ))),
        Some(false) => node.drop_group(shard_id).await,
    }
}

/// Plans (and unless `dry_run`, runs) the moves that balance the replicas,
/// then evens out leaderships. On the meta leader.
pub async fn rebalance(node: &Arc<Node>, dry_run: bool) -> Result<(Vec<PlannedMove>, u32)> {
    let planned = node.with_meta(crate::rebalance::plan)?;
    crate::metrics::REBALANCE_DECISIONS
        .with_label_values(&[if dry_run { "planned" } else { "run" }])
        .inc_by(planned.len() as u64);
    if dry_run {
        return Ok((planned, 0));
    }
    let mut done = Vec::new();
    // Re-plan after every move: the map may have changed meanwhile.
    for _ in 0..planned.len() * 2 + 1 {
        let Some(next) = node.with_meta(crate::rebalance::plan)?.first().copied() else {
            break;
        };
        move_replica(node, next.shard_id, next.from, next.to).await?;
        done.push(next);
    }
    let transfers = balance_leaders(node).await?;
    Ok((done, transfers))
}

/// Moves leaderships so that no up node leads more than its share
/// (rounded up) of the shards, asking each node which groups it leads.
pub async fn balance_leaders(node: &Arc<Node>) -> Result<u32> {
    let (up, shards) = node.with_meta(|meta| {
        let up: Vec<(NodeId, String)> = meta
            .nodes
            .values()
            .filter(|n| n.state == NodeRecordState::Up)
            .map(|n| (n.id, n.addr.clone()))
            .collect();
        (up, meta.shards.clone())
    })?;
    if up.is_empty() {
        return Ok(0);
    }
    let mut leader_of: std::collections::BTreeMap<u32, NodeId> = std::collections::BTreeMap::new();
    for (id, addr) in &up {
        let Ok(status) = stub(addr)?.node_status(pb::NodeStatusRequest {}).await else {
            continue;
        };
        for g in status.into_inner().groups {
            if g.group_id != crate::types::META_GROUP && g.leader == *id {
                leader_of.insert(g.group_id, *id);
            }
        }
    }
    let share = shards.len().div_ceil(up.len());
    let mut count: std::collections::BTreeMap<NodeId, usize> = up.iter().map(|(id, _)| (*id, 0)).collect();
    for leader in leader_of.values() {
        *count.entry(*leader).or_default() += 1;
    }
    let mut transfers = 0;
    for (shard_id, leader) in leader_of.clone() {
        let leads_too_many = count.get(&leader).is_none_or(|&c| c > share);
        if !leads_too_many {
            continue;
        }
        let Some(rec) = shards.get(&shard_id) else {
            continue;
        };
        let Some(to) = rec
            .replicas
            .iter()
            .copied()
            .filter(|r| count.get(r).is_some_and(|&c| c < share))
            .min_by_key(|r| count[r])
        else {
            continue;
        };
        let addr = node.node_addr(leader);
        let asked = stub(&addr)?
            .transfer_leader(pb::TransferLeaderRequest {
                group_id: shard_id,
                to,
            })
            .await;
        match asked {
            Ok(_) => {
                *count.entry(leader).or_default() -= 1;
                *count.entry(to).or_default() += 1;
                transfers += 1;
            }
            Err(status) => tracing::warn!(shard_id, leader, to, %status, "leader transfer for balance"),
        }
    }
    Ok(transfers)
}

/// Marks `id` draining and moves every replica and leadership off it.
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
    if let Err(status) = stub(&addr)?.hand_off(pb::HandOffRequest {}).await {
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
        let up = node.with_meta(|m| {
            m.nodes
                .values()
                .filter(|n| n.state == NodeRecordState::Up)
                .map(|n| n.id)
                .collect::<Vec<_>>()
        })?;
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
