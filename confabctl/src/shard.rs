//! `confabctl shard move`: move a shard's replica to another node.

use std::time::Duration;

use anyhow::Context;
use confab_router_client::{ClientConfig, RouterClient};
use serde::Serialize;
use tokio::time::Instant;

use crate::cli::MoveArgs;

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

pub async fn run_move(seeds: &[String], args: &MoveArgs) -> anyhow::Result<MoveReport> {
    let timeout = Duration::try_from_secs_f64(args.move_timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--move-timeout must be a positive number of seconds")?;
    // One attempt may last as long as the new replica takes to catch up.
    let config = ClientConfig {
        deadline: timeout,
        attempt_timeout: timeout,
        ..ClientConfig::default()
    };
    let client = RouterClient::new(seeds.to_vec(), config)?;
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
