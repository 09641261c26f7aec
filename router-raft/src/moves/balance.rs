//! Balancing, on the meta leader: replica moves until the replica counts
//! are even (`rebalance::plan`), then leader transfers until the leader
//! counts are.

use std::sync::Arc;
use std::time::Duration;

use confab_proto::router as pb;

use super::calls::STEP_TIMEOUT;
use super::replica::move_replica;
use crate::error::Result;
use crate::node::Node;
use crate::rebalance::PlannedMove;
use crate::remote::within;
use crate::types::NodeId;

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
                Ok(mut s) => within(
                    Duration::from_secs(2),
                    s.node_status(pb::NodeStatusRequest::default()),
                )
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
        if let Ok(status) = within(STEP_TIMEOUT, target.node_status(pb::NodeStatusRequest::default())).await {
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
