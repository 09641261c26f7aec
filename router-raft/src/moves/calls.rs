//! The calls the meta leader makes to other routers during a move: their
//! deadline, sending a replica change to the shard's leader (following
//! NotLeader hints), and asking the giving node to drop its replica, now or
//! later in the background.

use std::sync::Arc;
use std::time::Duration;

use confab_net::Backoff;
use confab_net::Retryable;
use confab_proto::router as pb;

use crate::error::Result;
use crate::error::RouterError;
use crate::node::Node;
use crate::remote::within;
use crate::sm::meta::ShardRecord;
use crate::types::NodeId;

/// How long one step may take (a learner catching up a large shard included).
pub(super) const STEP_TIMEOUT: Duration = Duration::from_secs(120);

pub(super) fn remote(what: &str, addr: &str, status: &tonic::Status) -> RouterError {
    RouterError::NotReady(format!(
        "{what} at {addr}: {}: {}",
        status.code(),
        status.message()
    ))
}

/// Asks the node at `addr` to drop its replica of `shard_id`. It refuses
/// while its copy of the map still lists it there: retried until its meta
/// replica caught up (normally milliseconds).
pub(super) async fn drop_old_replica(node: &Node, addr: &str, shard_id: u32) -> Result<(), DropError> {
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
pub(super) enum DropError {
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
pub(super) async fn drop_later(node: Arc<Node>, shard_id: u32, from: NodeId, addr: String) {
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

/// Sends `change` to the shard's leader (this node or another), following
/// NotLeader answers.
pub(super) async fn on_shard_leader(
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
