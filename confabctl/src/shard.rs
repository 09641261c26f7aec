//! Replica placement: `shard move`, `rebalance`, `node add|drain|remove`.

use std::time::Duration;

use anyhow::Context;
use confab_router_client::{ClientConfig, ClientTls, RouterClient};
use serde::Serialize;
use tokio::time::Instant;

use crate::cli::{MoveArgs, NodeAddArgs};

#[derive(Debug, Serialize)]
pub struct MoveReport {
    pub shard_id: u32,
    pub from: u64,
    pub to: u64,
    /// The replicas after the move.
    pub replicas: Vec<u64>,
    pub conf_ver: u64,
    pub elapsed_ms: u64,
}

/// A client whose single attempt may last `secs` (replicas catching up).
pub fn long_client(seeds: &[String], secs: f64, tls: Option<ClientTls>) -> anyhow::Result<RouterClient> {
    let timeout = Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--move-timeout must be a positive number of seconds")?;
    let config = ClientConfig {
        deadline: timeout,
        attempt_timeout: timeout,
        tls,
        ..ClientConfig::default()
    };
    Ok(RouterClient::new(seeds.to_vec(), config)?)
}

/// What a rebalance, drain, add or remove did (or, dry, would do).
#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub action: String,
    pub dry_run: bool,
    pub moves: Vec<MoveLine>,
    pub leader_transfers: u32,
    pub elapsed_ms: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct MoveLine {
    pub shard_id: u32,
    pub from: u64,
    pub to: u64,
}

fn lines(moves: Vec<confab_router_client::PlannedMove>) -> Vec<MoveLine> {
    moves
        .into_iter()
        .map(|m| MoveLine {
            shard_id: m.shard_id,
            from: m.from,
            to: m.to,
        })
        .collect()
}

fn elapsed(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

pub async fn rebalance(client: &RouterClient, dry_run: bool) -> anyhow::Result<PlanReport> {
    let started = Instant::now();
    let (moves, leader_transfers) = client.rebalance(dry_run).await?;
    Ok(PlanReport {
        action: "rebalance".into(),
        dry_run,
        moves: lines(moves),
        leader_transfers,
        elapsed_ms: elapsed(started),
    })
}

pub async fn node_add(client: &RouterClient, args: &NodeAddArgs) -> anyhow::Result<PlanReport> {
    let started = Instant::now();
    client.join(args.id, &args.addr).await?;
    let (moves, leader_transfers) = if args.no_rebalance {
        (Vec::new(), 0)
    } else {
        client.rebalance(false).await?
    };
    Ok(PlanReport {
        action: format!("add node {}", args.id),
        dry_run: false,
        moves: lines(moves),
        leader_transfers,
        elapsed_ms: elapsed(started),
    })
}

pub async fn node_drain(client: &RouterClient, id: u64) -> anyhow::Result<PlanReport> {
    let started = Instant::now();
    let moves = client.drain_node(id).await?;
    Ok(PlanReport {
        action: format!("drain node {id}"),
        dry_run: false,
        moves: lines(moves),
        leader_transfers: 0,
        elapsed_ms: elapsed(started),
    })
}

pub async fn node_remove(client: &RouterClient, id: u64) -> anyhow::Result<PlanReport> {
    let started = Instant::now();
    client.remove_node(id).await?;
    Ok(PlanReport {
        action: format!("remove node {id}"),
        dry_run: false,
        moves: Vec::new(),
        leader_transfers: 0,
        elapsed_ms: elapsed(started),
    })
}

pub fn render_plan(r: &PlanReport) -> String {
    let mut out = format!(
        "{}{}: {} replica move(s), {} leader transfer(s), {} ms\n",
        r.action,
        if r.dry_run { " (dry run)" } else { "" },
        r.moves.len(),
        r.leader_transfers,
        r.elapsed_ms
    );
    for m in &r.moves {
        out.push_str(&format!(
            "  shard {}: node {} -> node {}\n",
            m.shard_id, m.from, m.to
        ));
    }
    out
}

pub async fn run_move(
    seeds: &[String],
    args: &MoveArgs,
    tls: Option<ClientTls>,
) -> anyhow::Result<MoveReport> {
    // One attempt may last as long as the new replica takes to catch up.
    let client = long_client(seeds, args.move_timeout, tls)?;
    let started = Instant::now();
    let shard = client.move_replica(args.shard, args.from, args.to).await?;
    Ok(MoveReport {
        shard_id: shard.shard_id,
        from: args.from,
        to: args.to,
        replicas: shard.replicas,
        conf_ver: shard.epoch.map_or(0, |e| e.conf_ver),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

pub fn render_move(r: &MoveReport) -> String {
    format!(
        "shard {}: replica moved from node {} to node {} in {} ms; replicas {:?}, conf_ver {}\n",
        r.shard_id, r.from, r.to, r.elapsed_ms, r.replicas, r.conf_ver
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_plan() {
        let r = PlanReport {
            action: "rebalance".into(),
            dry_run: true,
            moves: vec![MoveLine {
                shard_id: 2,
                from: 1,
                to: 5,
            }],
            leader_transfers: 0,
            elapsed_ms: 3,
        };
        assert_eq!(
            render_plan(&r),
            "rebalance (dry run): 1 replica move(s), 0 leader transfer(s), 3 ms\n  shard 2: node 1 -> node 5\n"
        );
    }

    #[test]
    fn renders_a_move() {
        let r = MoveReport {
            shard_id: 3,
            from: 1,
            to: 4,
            replicas: vec![4, 2, 3],
            conf_ver: 2,
            elapsed_ms: 850,
        };
        assert_eq!(
            render_move(&r),
            "shard 3: replica moved from node 1 to node 4 in 850 ms; replicas [4, 2, 3], conf_ver 2\n"
        );
    }
}
