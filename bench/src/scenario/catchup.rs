//! `confab-bench catchup`: fills one shard with N sessions, then moves one of
//! its replicas to another node and times the move, which is dominated by
//! the new replica catching up as a learner (snapshot + log). Then it reads
//! every replica's state back (`NodeStatus` with checksums): the new
//! replica's session count and checksum must equal the leader's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use clap::Args;
use confab_router_client::{ClientConfig, DeviceKind, MultiDevicePolicy, Session, ShardMap};
use serde_json::json;
use tokio::time::Instant;

use super::RouterSeeds;
use crate::report::Summary;
use crate::stats::{Recorder, router_error_kind};

#[derive(Debug, Clone, Args)]
pub struct CatchupArgs {
    #[command(flatten)]
    pub routers: RouterSeeds,
    /// The shard to fill and move.
    #[arg(long, default_value_t = 1)]
    pub shard: u32,
    /// Sessions written into the shard before the move.
    #[arg(long, default_value_t = 1_000_000)]
    pub sessions: u64,
    /// The node that receives the new replica (it must hold none of the
    /// shard); by default the first such node.
    #[arg(long)]
    pub to: Option<u64>,
    /// Logins in flight while filling.
    #[arg(long, default_value_t = 512)]
    pub concurrency: usize,
    /// Gateway id the sessions are registered under (deregistered at the end,
    /// which purges them).
    #[arg(long, default_value_t = 60_002)]
    pub gateway_id: u64,
}

const FILL: &str = "fill_login";
const MOVE: &str = "move";

pub async fn run(args: &CatchupArgs) -> anyhow::Result<Summary> {
    ensure!(
        (1..=10_000_000).contains(&args.sessions),
        "--sessions must be in 1..=10000000"
    );
    ensure!(
        (1..=100_000).contains(&args.concurrency),
        "--concurrency must be in 1..=100000"
    );
    let client = args
        .routers
        .connect(ClientConfig {
            deadline: Duration::from_secs(600),
            attempt_timeout: Duration::from_secs(600),
            ..ClientConfig::default()
        })
        .await?;
    let map = client.refresh_map().await?;
    let desc = map
        .shards
        .iter()
        .find(|s| s.shard_id == args.shard)
        .with_context(|| format!("shard {} is not in the map", args.shard))?
        .clone();
    let to = match args.to {
        Some(to) => to,
        None => map
            .nodes
            .iter()
            .map(|n| n.id)
            .find(|n| !desc.replicas.contains(n))
            .context("every node already holds the shard: add a node first")?,
    };
    ensure!(
        !desc.replicas.contains(&to),
        "node {to} already holds shard {}",
        args.shard
    );
    // Move a follower's replica: the leader keeps serving, as in a rebalance.
    let from = desc
        .replicas
        .iter()
        .copied()
        .find(|&r| r != desc.leader)
        .context("the shard has no follower to move")?;
    let keyspace = Arc::new(ShardMap::new(map.slots, map.shards.iter().cloned())?);
    let registered = client
        .register_gateway(args.gateway_id, "confab-bench-catchup")
        .await?;
    let incarnation = registered.incarnation;
    let renew = {
        let client = client.clone();
        let (id, lease) = (args.gateway_id, registered.lease_ms);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(lease / 3)).await;
                let _ = client.renew_lease(id, incarnation).await;
            }
        })
    };

    let mut recorder = Recorder::new(&[(FILL, false), (MOVE, false)])?;
    let next = Arc::new(AtomicU64::new(1));
    let written = Arc::new(AtomicU64::new(0));
    let fill_started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (client, keyspace, next, written) =
                (client.clone(), keyspace.clone(), next.clone(), written.clone());
            let (shard, target, gateway_id) = (args.shard, args.sessions, args.gateway_id);
            tokio::spawn(async move {
                let mut rec = Recorder::new(&[(FILL, false)]).expect("one op kind");
                while written.load(Ordering::Relaxed) < target {
                    let uid = loop {
                        let uid = next.fetch_add(1, Ordering::Relaxed);
                        if keyspace.shard_of_uid(uid).is_some_and(|d| d.shard_id == shard) {
                            break uid;
                        }
                    };
                    let session = Session {
                        session_id: uid,
                        gateway_id,
                        gateway_incarnation: incarnation,
                        device_kind: DeviceKind::Bot as i32,
                        device_id: "catchup".into(),
                        login_at_ms: 0,
                    };
                    let started = Instant::now();
                    match client.login(uid, session, MultiDevicePolicy::AllowAll).await {
                        Ok(_) => {
                            written.fetch_add(1, Ordering::Relaxed);
                            rec.success(FILL, started.elapsed(), 1);
                        }
                        Err(error) => rec.failure(FILL, router_error_kind(&error)),
                    }
                }
                rec
            })
        })
        .collect();
    for w in workers {
        recorder.merge(w.await.context("fill worker")?)?;
    }
    let fill_elapsed = fill_started.elapsed();

    let started = Instant::now();
    let moved = client.move_replica(args.shard, from, to).await;
    let move_elapsed = started.elapsed();
    match &moved {
        Ok(_) => recorder.success(MOVE, move_elapsed, 1),
        Err(error) => recorder.failure(MOVE, router_error_kind(error)),
    }
    // The new replica read back, while the lease still holds the sessions.
    let verified = match &moved {
        Ok(desc) => Some(verify(&client, args.shard, &desc.replicas, to).await),
        Err(_) => None,
    };
    renew.abort();
    if let Err(error) = client.deregister_gateway(args.gateway_id, incarnation).await {
        eprintln!("warning: deregistering the bench gateway: {error}");
    }
    let moved = moved.context("moving the replica")?;
    let verified = verified.context("no replica to read back")??;
    let settings = BTreeMap::from([
        ("shard".to_owned(), json!(args.shard)),
        ("sessions".to_owned(), json!(args.sessions)),
        ("from".to_owned(), json!(from)),
        ("to".to_owned(), json!(to)),
    ]);
    let mut summary = Summary::build("catchup", settings, args.concurrency, &recorder, fill_elapsed)?;
    summary
        .results
        .insert("sessions_in_shard".into(), json!(written.load(Ordering::Relaxed)));
    summary
        .results
        .insert("fill_s".into(), json!(fill_elapsed.as_secs_f64()));
    summary
        .results
        .insert("move_s".into(), json!(move_elapsed.as_secs_f64()));
    summary
        .results
        .insert("replicas_after".into(), json!(moved.replicas));
    summary
        .results
        .insert("replica_sessions".into(), json!(verified.replica_sessions));
    summary
        .results
        .insert("leader_sessions".into(), json!(verified.leader_sessions));
    summary
        .results
        .insert("checksum".into(), json!(format!("{:016x}", verified.checksum)));
    Ok(summary)
}

/// What the new replica holds, next to its leader.
struct Verified {
    replica_sessions: u64,
    leader_sessions: u64,
    checksum: u64,
}

/// Reads shard `shard`'s state on every replica (with checksums) until the
/// new replica `to` has applied what the leader had committed when asked,
/// then compares the two: the same session count and checksum, or an
/// error saying how they differ.
async fn verify(
    client: &confab_router_client::RouterClient,
    shard: u32,
    replicas: &[u64],
    to: u64,
) -> anyhow::Result<Verified> {
    let map = client.refresh_map().await?;
    let addr_of = |id: u64| {
        map.nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.addr.clone())
            .with_context(|| format!("node {id} not in the map"))
    };
    let status_of = |id: u64| async move {
        let addr = addr_of(id)?;
        let status = client.node_status_of(&addr, true).await?;
        status
            .groups
            .into_iter()
            .find(|g| g.group_id == shard)
            .with_context(|| format!("node {id} holds no replica of shard {shard}"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut leader = None;
        for &id in replicas {
            let s = status_of(id).await?;
            if s.leader == id {
                leader = Some(s);
            }
        }
        let leader = leader.context("no replica of the shard says it leads")?;
        let replica = status_of(to).await?;
        if replica.applied_index >= leader.commit_index {
            anyhow::ensure!(
                (replica.entries, replica.checksum) == (leader.entries, leader.checksum),
                "the new replica differs from its leader: {} sessions (checksum {:016x}) against {} ({:016x})",
                replica.entries,
                replica.checksum,
                leader.entries,
                leader.checksum
            );
            return Ok(Verified {
                replica_sessions: replica.entries,
                leader_sessions: leader.entries,
                checksum: replica.checksum,
            });
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the new replica applied {} of the leader's {} entries within 30 s",
            replica.applied_index,
            leader.commit_index
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
