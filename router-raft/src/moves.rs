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
    // Last step, also when an earlier call stopped before it.
    if let Some(addr) = from_addr {
        let dropped = stub(&addr)?
            .drop_replica(pb::DropReplicaRequest { shard_id })
            .await;
        if let Err(status) = dropped {
            // The replica is out of the group already; the node drops it on
            // the next move call or when it restarts with the new map.
            tracing::warn!(shard_id, from, %status, "dropping the old replica");
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
