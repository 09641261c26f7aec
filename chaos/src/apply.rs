//! Carrying out a schedule while the workload runs: the faults at their
//! times ([`inject`]) and, beside them, the membership changes
//! ([`administer`]), each noted on the run's timeline.

use std::sync::Mutex;
use std::time::Duration;

use confab_router_client::NodeState;
use confab_router_client::RouterClient;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::proxy::LinkMode;
use crate::schedule::AdminOp;
use crate::schedule::Cut;
use crate::schedule::Fault;
use crate::schedule::Schedule;

/// A membership change as carried out.
#[derive(Debug, Clone)]
pub struct AdminRecord {
    pub op: AdminOp,
    /// What it came to (a move names its nodes).
    pub what: String,
    /// From the start of the fault phase.
    pub started: Duration,
    pub ended: Duration,
    /// Completed (else given up, with the reason in `what`).
    pub done: bool,
}

impl AdminRecord {
    /// Whether this change ran while a fault of `windows` held.
    pub fn overlaps(&self, windows: &[(Duration, Duration)]) -> bool {
        windows.iter().any(|&(a, b)| self.started < b && a < self.ended)
    }
}

/// How long a node may take to stop after SIGTERM before it is killed.
pub(crate) const TERM_GRACE: Duration = Duration::from_secs(6);

/// Adds a line to the run's timeline (and prints it).
pub(crate) fn note(timeline: &Mutex<Vec<String>>, phase: Instant, what: String) {
    let line = format!("t+{:>6.2} s  {what}", phase.elapsed().as_secs_f64());
    eprintln!("chaos: {line}");
    timeline.lock().unwrap_or_else(|e| e.into_inner()).push(line);
}

/// Applies the schedule's faults at their times; returns how many were
/// applied, how many SIGTERMs had to be followed by a SIGKILL, and when each
/// applied fault held. A fault that cannot be applied is noted and skipped.
pub(crate) async fn inject(
    cluster: &tokio::sync::Mutex<Cluster>,
    schedule: &Schedule,
    timeline: &Mutex<Vec<String>>,
    start: Instant,
) -> (usize, usize, Vec<(Duration, Duration)>) {
    let mut applied = 0;
    let mut term_timeouts = 0;
    let mut windows = Vec::new();
    for step in &schedule.steps {
        tokio::time::sleep_until(start + step.at).await;
        let from = start.elapsed();
        note(timeline, start, format!("apply: {}", step.fault));
        let res = match step.fault {
            Fault::Isolate { node, cut, hold_ms } => {
                let mode = match cut {
                    Cut::Drop => LinkMode::Drop,
                    Cut::Blackhole => LinkMode::Blackhole,
                };
                {
                    let c = cluster.lock().await;
                    c.links().isolate(node, &c.node_ids(), mode);
                }
                tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                cluster.lock().await.links().heal();
                Ok(())
            }
            Fault::DelayAll {
                fixed_ms,
                jitter_ms,
                hold_ms,
            } => {
                {
                    let c = cluster.lock().await;
                    c.links()
                        .between_nodes(&c.node_ids(), LinkMode::Delay { fixed_ms, jitter_ms });
                }
                tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                cluster.lock().await.links().heal();
                Ok(())
            }
            Fault::Kill { node, down_ms } => {
                let killed = cluster.lock().await.kill(node);
                match killed {
                    Ok(()) => {
                        tokio::time::sleep(Duration::from_millis(down_ms)).await;
                        cluster.lock().await.spawn(node)
                    }
                    Err(e) => Err(e),
                }
            }
            Fault::Pause { node, hold_ms } => {
                let paused = cluster.lock().await.pause(node);
                match paused {
                    Ok(()) => {
                        tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                        cluster.lock().await.resume(node)
                    }
                    Err(e) => Err(e),
                }
            }
            Fault::Terminate { node, down_ms } => {
                let exited = cluster.lock().await.terminate(node, TERM_GRACE).await;
                match exited {
                    Ok(exited) => {
                        match exited {
                            Some(took) => note(
                                timeline,
                                start,
                                format!("node {node} exited {} ms after SIGTERM", took.as_millis()),
                            ),
                            None => {
                                term_timeouts += 1;
                                note(
                                    timeline,
                                    start,
                                    format!(
                                        "node {node} still running {TERM_GRACE:?} after SIGTERM: SIGKILL"
                                    ),
                                );
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(down_ms)).await;
                        cluster.lock().await.spawn(node)
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match res {
            Ok(()) => {
                applied += 1;
                windows.push((from, start.elapsed()));
                note(timeline, start, format!("healed: {}", step.fault.kind()));
            }
            Err(e) => note(
                timeline,
                start,
                format!("could not apply {}: {e}", step.fault.kind()),
            ),
        }
    }
    (applied, term_timeouts, windows)
}

/// How long one membership change may keep retrying before it is given up.
const ADMIN_PATIENCE: Duration = Duration::from_secs(60);

/// Carries out the schedule's membership changes at their times, one after
/// the other, each asked again (they are safe to repeat) until it completes
/// or [`ADMIN_PATIENCE`] runs out.
pub(crate) async fn administer(
    cluster: &tokio::sync::Mutex<Cluster>,
    schedule: &Schedule,
    client: &RouterClient,
    timeline: &Mutex<Vec<String>>,
    start: Instant,
) -> Vec<AdminRecord> {
    let mut records = Vec::new();
    for step in &schedule.admin {
        tokio::time::sleep_until(start + step.at).await;
        let started = start.elapsed();
        note(timeline, start, format!("begin: {}", step.op));
        let (done, what) = match step.op {
            AdminOp::Move { shard, pick } => move_replica(client, shard, pick).await,
            AdminOp::AddNode { node } => add_node(cluster, client, node).await,
            AdminOp::DrainRemove { node } => drain_remove(cluster, client, node).await,
        };
        note(
            timeline,
            start,
            format!(
                "{}: {} ({what})",
                if done { "done" } else { "gave up" },
                step.op.kind()
            ),
        );
        records.push(AdminRecord {
            op: step.op,
            what,
            started,
            ended: start.elapsed(),
            done,
        });
    }
    records
}

/// Retries `f` until it succeeds or [`ADMIN_PATIENCE`] passes; an invalid
/// request is not retried. The last error when it gave up.
async fn patiently<T, F, Fut>(mut f: F) -> std::result::Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, confab_router_client::Error>>,
{
    let deadline = Instant::now() + ADMIN_PATIENCE;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e @ confab_router_client::Error::InvalidArgument(_)) => return Err(e.to_string()),
            Err(e) if Instant::now() >= deadline => return Err(e.to_string()),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// Moves a replica of `shard`: `pick` chooses the replica that leaves (by
/// node id order) and the up node without one that receives it.
async fn move_replica(client: &RouterClient, shard: u32, pick: u64) -> (bool, String) {
    let map = match patiently(|| client.refresh_map()).await {
        Ok(map) => map,
        Err(e) => return (false, format!("no map: {e}")),
    };
    let Some(desc) = map.shards.iter().find(|s| s.shard_id == shard) else {
        return (false, format!("shard {shard} is not in the map"));
    };
    let mut replicas = desc.replicas.clone();
    replicas.sort_unstable();
    let free: Vec<u64> = map
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Up as i32 && !replicas.contains(&n.id))
        .map(|n| n.id)
        .collect();
    if replicas.is_empty() || free.is_empty() {
        return (false, format!("shard {shard}: no node to move a replica to"));
    }
    let from = replicas[(pick % replicas.len() as u64) as usize];
    let to = free[(pick / 7 % free.len() as u64) as usize];
    let what = format!("shard {shard}: node {from} -> node {to}");
    match patiently(|| client.move_replica(shard, from, to)).await {
        Ok(_) => (true, what),
        Err(e) => (false, format!("{what}: {e}")),
    }
}

/// Starts node `node`, waits until the map lists it, then rebalances.
async fn add_node(cluster: &tokio::sync::Mutex<Cluster>, client: &RouterClient, node: u64) -> (bool, String) {
    if let Err(e) = cluster.lock().await.add_node(node).await {
        return (false, format!("starting node {node}: {e}"));
    }
    let listed = patiently(|| async {
        let map = client.refresh_map().await?;
        if map.nodes.iter().any(|n| n.id == node) {
            Ok(())
        } else {
            Err(confab_router_client::Error::InvalidMap(format!(
                "node {node} not in the map yet"
            )))
        }
    });
    if let Err(e) = listed.await {
        return (false, format!("node {node} never joined: {e}"));
    }
    match patiently(|| client.rebalance(false)).await {
        Ok((moves, transfers)) => (
            true,
            format!(
                "node {node} joined; rebalance: {} moves, {transfers} leader transfers",
                moves.len()
            ),
        ),
        Err(e) => (false, format!("node {node} joined; rebalance: {e}")),
    }
}

/// Drains node `node`, removes it, then stops its process.
async fn drain_remove(
    cluster: &tokio::sync::Mutex<Cluster>,
    client: &RouterClient,
    node: u64,
) -> (bool, String) {
    let moves = match patiently(|| client.drain_node(node)).await {
        Ok(moves) => moves.len(),
        Err(e) => return (false, format!("drain of node {node}: {e}")),
    };
    if let Err(e) = patiently(|| client.remove_node(node)).await {
        return (false, format!("node {node} drained ({moves} moves); remove: {e}"));
    }
    match cluster.lock().await.retire(node) {
        Ok(()) => (
            true,
            format!("node {node} drained ({moves} moves), removed, stopped"),
        ),
        Err(e) => (false, format!("node {node} removed; stopping it: {e}")),
    }
}
