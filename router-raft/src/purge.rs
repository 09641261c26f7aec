//! The meta leader's lease task: expires the gateways whose lease
//! deadline passed (`ExpireGateway`), then purges each expired incarnation's
//! sessions on every shard until all confirm, and `PurgeDone` clears it. A
//! purge interrupted by a leader change is redone by the next leader
//! (purging is idempotent).

use std::sync::Arc;
use std::time::Duration;

use confab_proto::router as pb;
use tokio_util::sync::CancellationToken;

use crate::error::RouterError;
use crate::node::Node;
use crate::remote::within;
use crate::sm::meta::MetaCommand;
use crate::sm::meta::MetaState;
use crate::sm::shard::ShardCommand;
use crate::sm::shard::ShardReply;
use crate::types::Command;
use crate::types::Reply;

/// Runs lease expiry and pending purges while this node leads the meta group.
pub async fn run(node: Arc<Node>, shutdown: CancellationToken) {
    let tick = (node.leases.lease() / 10).clamp(Duration::from_millis(50), Duration::from_millis(500));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let Ok(meta) = node.meta() else { continue };
        if !meta.is_leader(node.id) {
            node.leases.clear();
            continue;
        }
        let Ok(state) = node.meta_state() else { continue };
        for (gateway_id, incarnation) in node.leases.expired(&state) {
            tracing::warn!(gateway_id, incarnation, "gateway lease expired");
            crate::metrics::GATEWAYS_EXPIRED.inc();
            let cmd = Command::Meta(MetaCommand::ExpireGateway {
                gateway_id,
                incarnation,
            });
            if let Err(error) = node.propose(&meta, cmd).await {
                tracing::warn!(%error, gateway_id, "proposing lease expiry");
            }
        }
        for (gateway_id, incarnation) in state.pending_purges.clone() {
            match purge_everywhere(&node, &state, gateway_id, incarnation).await {
                Ok(purged) => {
                    tracing::info!(gateway_id, incarnation, purged, "gateway sessions purged");
                    let cmd = Command::Meta(MetaCommand::PurgeDone {
                        gateway_id,
                        incarnation,
                    });
                    if let Err(error) = node.propose(&meta, cmd).await {
                        tracing::warn!(%error, gateway_id, "proposing purge done");
                    }
                }
                Err(error) => tracing::warn!(%error, gateway_id, "purge incomplete, will retry"),
            }
        }
    }
}

/// Purges the incarnation from every shard; fails if any shard did not confirm.
async fn purge_everywhere(
    node: &Arc<Node>,
    state: &MetaState,
    gateway_id: u64,
    incarnation: u64,
) -> Result<u64, RouterError> {
    let tasks = state.shards.values().map(|shard| {
        let node = node.clone();
        let replicas = shard.replicas.clone();
        let shard_id = shard.id;
        async move { purge_shard(&node, shard_id, &replicas, gateway_id, incarnation).await }
    });
    let results = futures::future::join_all(tasks).await;
    let mut total = 0;
    for r in results {
        total += r?;
    }
    Ok(total)
}

/// Purges one shard: locally when this node leads it, else at its leader.
pub async fn purge_shard(
    node: &Arc<Node>,
    shard_id: u32,
    replicas: &[u64],
    gateway_id: u64,
    incarnation: u64,
) -> Result<u64, RouterError> {
    if let Some(g) = node.group(shard_id)
        && g.is_leader(node.id)
    {
        let cmd = Command::Shard(ShardCommand::PurgeGateway {
            gateway_id,
            incarnation,
        });
        return match node.propose(&g, cmd).await? {
            Reply::Shard(ShardReply::Purged { count }) => Ok(count),
            other => Err(RouterError::Internal(format!("purge answered {other:?}"))),
        };
    }
    // Ask the replicas, following a NotLeader hint once per replica.
    let mut last = RouterError::NotReady(format!("no replica of shard {shard_id} answered"));
    for &replica in replicas {
        let mut addr = node.node_addr(replica);
        for _ in 0..2 {
            if addr.is_empty() {
                break;
            }
            match purge_remote(node, &addr, shard_id, gateway_id, incarnation).await {
                Ok(n) => return Ok(n),
                Err(PurgeError::Redirect(next)) => addr = next,
                Err(PurgeError::Other(e)) => {
                    last = e;
                    break;
                }
            }
        }
    }
    Err(last)
}

enum PurgeError {
    Redirect(String),
    Other(RouterError),
}

/// How long one purge at another node may take.
const PURGE_TIMEOUT: Duration = Duration::from_secs(3);

async fn purge_remote(
    node: &Node,
    addr: &str,
    shard_id: u32,
    gateway_id: u64,
    incarnation: u64,
) -> Result<u64, PurgeError> {
    let mut stub = node.remotes.replica(addr).map_err(PurgeError::Other)?;
    let req = pb::PurgeGatewayRequest {
        shard_id,
        gateway_id,
        incarnation,
    };
    match within(PURGE_TIMEOUT, stub.purge_gateway(req)).await {
        Ok(resp) => Ok(resp.purged),
        Err(status) => match confab_route::not_leader_hint(&status) {
            Some(a) => Err(PurgeError::Redirect(a)),
            None => Err(PurgeError::Other(RouterError::NotReady(format!(
                "{addr}: {}",
                status.message()
            )))),
        },
    }
}
