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
//!    (`DropReplica`), refusing while the map still lists it there. It keeps
//!    a tombstone with the shard's new record for `tombstone_ms`
//!    (`tombstone.rs`), so it redirects callers with an old map to the new
//!    replicas, even after it left the cluster.
//!
//! The replica count never drops below the replication factor: the new
//! replica is a caught-up voter before the old one leaves.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use confab_net::Backoff;
use confab_net::backoff::Retryable;
use confab_proto::router as pb;
use openraft::BasicNode;
use openraft::ChangeMembers;
use openraft::async_runtime::WatchReceiver;

use crate::error::Result;
use crate::error::RouterError;
use crate::node::Node;
use crate::rebalance::PlannedMove;
use crate::remote::within;
use crate::sm::meta::MetaCommand;
use crate::sm::meta::MetaReply;
use crate::sm::meta::NodeRecordState;
use crate::sm::meta::ShardRecord;
use crate::types::Command;
use crate::types::NodeId;
use crate::types::Reply;

/// How long one step may take (a learner catching up a large shard included).
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

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

/// Asks the node at `addr` to drop its replica of `shard_id`. It refuses
/// while its copy of the map still lists it there: retried until its meta
/// replica caught up (normally milliseconds).
async fn drop_old_replica(node: &Node, addr: &str, shard_id: u32) -> Result<(), DropError> {
    let stub = node.remotes.replica(addr).map_err(DropError::Local)?;
    let ask = || {
        let mut stub = stub.clone();
        async move {
            within(
                STEP_TIMEOUT,
                stub.drop_replica(pb::DropReplicaRequest { shard_id }),
            )
            .await
        }
    };
    ask.retry(DROP_REFUSED_RETRY)
        .when(|status| status.code() == tonic::Code::InvalidArgument)
        .await
        .map(drop)
        .map_err(DropError::Remote)
}

/// While the giving node's map still lists it as a replica: every 100 ms,
/// 49 times at most.
const DROP_REFUSED_RETRY: Backoff =
    Backoff::exponential(Duration::from_millis(100), Duration::from_millis(100)).at_most(49);

/// Why the old replica was not dropped.
#[derive(Debug)]
enum DropError {
    /// Its address is unusable.
    Local(RouterError),
    /// Its node refused or did not answer.
    Remote(tonic::Status),
}

impl std::fmt::Display for DropError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DropError::Local(e) => e.fmt(f),
            DropError::Remote(status) => status.fmt(f),
        }
    }
}

/// How long the meta leader keeps asking a node that was unreachable to
/// drop a replica it gave away.
const DROP_RETRY_FOR: Duration = Duration::from_secs(600);

/// The waits between those requests: 500 ms, doubling up to 5 s.
const DROP_LATER: Backoff = Backoff::exponential(Duration::from_millis(500), Duration::from_secs(5));

/// Keeps asking `from` to drop its replica of `shard_id` (with backoff)
/// until it did, the map lists `from` for the shard again, or
/// [`DROP_RETRY_FOR`] passed.
async fn drop_later(node: Arc<Node>, shard_id: u32, from: NodeId, addr: String) {
    let deadline = tokio::time::Instant::now() + DROP_RETRY_FOR;
    for delay in DROP_LATER.delays() {
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(delay).await;
        let listed = node.with_meta(|meta| {
            meta.shards
                .get(&shard_id)
                .is_none_or(|s| s.replicas.contains(&from))
        });
        if listed.unwrap_or(true) {
            return;
        }
        if drop_old_replica(&node, &addr, shard_id).await.is_ok() {
            tracing::info!(shard_id, from, "old replica dropped");
            return;
        }
    }
    tracing::warn!(
        shard_id,
        from,
        "gave up dropping the old replica; moving the shard again drops it"
    );
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
        let mut stub = node.remotes.replica(&addr)?;
        match within(STEP_TIMEOUT, stub.change_replicas(change.clone())).await {
            Ok(resp) => return Ok(resp.voters),
            Err(status) => {
                last = format!("{addr}: {}: {}", status.code(), status.message());
                if let Some(leader) = confab_route::not_leader_hint(&status) {
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

/// Moves leaderships off nodes that are not up, then until the up nodes'
/// leader counts differ by at most one (`rebalance::plan_leaders`).
///
/// Leadership is read from the nodes themselves (each group's self-declared
/// leader with the highest term, and its voters), after waiting for groups
/// that are electing one, e.g. right after a move. A transfer is only asked
/// for (openraft's `transfer_leader` returns at once), so each one is
/// awaited until the target leads; one that does not take ends the round,
/// and the next round plans again from fresh status.
pub async fn balance_leaders(node: &Arc<Node>) -> Result<u32> {
    let deadline = tokio::time::Instant::now() + LEADER_BALANCE_BUDGET;
    let mut transfers = 0;
    for _round in 0..LEADER_BALANCE_ROUNDS {
        let (groups, up) = leader_view(node, deadline).await?;
        let plan = crate::rebalance::plan_leaders(&groups, &up);
        if plan.is_empty() {
            break;
        }
        for t in plan {
            if !transfer_and_wait(node, t, deadline).await? {
                break;
            }
            transfers += 1;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    Ok(transfers)
}

/// How long leader balancing may take in all, and how many times it re-plans.
const LEADER_BALANCE_BUDGET: Duration = Duration::from_secs(30);
const LEADER_BALANCE_ROUNDS: usize = 6;
/// How long one leader transfer may take to show.
const TRANSFER_WAIT: Duration = Duration::from_secs(3);

/// Leader groups: shard -> (leader, voters) from the nodes' own status, and
/// the up nodes. Waits (until `deadline`) while a shard has no leader; past
/// it, such shards are left out.
async fn leader_view(
    node: &Arc<Node>,
    deadline: tokio::time::Instant,
) -> Result<(
    std::collections::BTreeMap<u32, (NodeId, Vec<NodeId>)>,
    Vec<NodeId>,
)> {
    use std::collections::BTreeMap;
    loop {
        let (nodes, up, shards) = node.with_meta(|meta| {
            let nodes: Vec<(NodeId, String)> = meta.nodes.values().map(|n| (n.id, n.addr.clone())).collect();
            let up = crate::rebalance::up_nodes(meta);
            (nodes, up, meta.shards.keys().copied().collect::<Vec<u32>>())
        })?;
        let asked = nodes.iter().map(|(id, addr)| async move {
            let status = match node.remotes.replica(addr) {
                Ok(mut s) => within(Duration::from_secs(2), s.node_status(pb::NodeStatusRequest {}))
                    .await
                    .ok(),
                Err(_) => None,
            };
            (*id, status)
        });
        // shard -> (term, leader, voters)
        let mut led: BTreeMap<u32, (u64, NodeId, Vec<NodeId>)> = BTreeMap::new();
        for (id, status) in futures::future::join_all(asked).await {
            let Some(status) = status else { continue };
            for g in status.groups {
                let leads = g.group_id != crate::types::META_GROUP && g.leader == id && g.role == "Leader";
                if leads && led.get(&g.group_id).is_none_or(|(term, ..)| g.term > *term) {
                    led.insert(g.group_id, (g.term, id, g.voters));
                }
            }
        }
        let complete = shards.iter().all(|s| led.contains_key(s));
        if complete || tokio::time::Instant::now() >= deadline {
            let groups = led
                .into_iter()
                .map(|(shard, (_, leader, voters))| (shard, (leader, voters)))
                .collect();
            return Ok((groups, up));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks `t.from` to hand `t.shard_id` to `t.to` and waits until `t.to`
/// leads it; false when it did not (in time).
async fn transfer_and_wait(
    node: &Arc<Node>,
    t: crate::rebalance::LeaderTransfer,
    deadline: tokio::time::Instant,
) -> Result<bool> {
    let mut from = node.remotes.replica(&node.node_addr(t.from))?;
    let asked = within(
        STEP_TIMEOUT,
        from.transfer_leader(pb::TransferLeaderRequest {
            group_id: t.shard_id,
            to: t.to,
        }),
    )
    .await;
    if let Err(status) = asked {
        tracing::warn!(shard_id = t.shard_id, from = t.from, to = t.to, %status, "leader transfer for balance");
        return Ok(false);
    }
    let until = deadline.min(tokio::time::Instant::now() + TRANSFER_WAIT);
    let mut target = node.remotes.replica(&node.node_addr(t.to))?;
    while tokio::time::Instant::now() < until {
        if let Ok(status) = within(STEP_TIMEOUT, target.node_status(pb::NodeStatusRequest {})).await {
            let leads = status
                .groups
                .iter()
                .any(|g| g.group_id == t.shard_id && g.leader == t.to && g.role == "Leader");
            if leads {
                return Ok(true);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!(
        shard_id = t.shard_id,
        from = t.from,
        to = t.to,
        "leader transfer did not take"
    );
    Ok(false)
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
