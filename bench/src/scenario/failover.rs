//! `confab-bench failover`: SIGKILL the leader of a shard, time until a write
//! to exactly that shard succeeds again, restart the node, repeat.
//!
//! The routers must have been started with pid files `<pid-dir>/router-<id>.pid`
//! (as `make cluster-up` and `scripts/bench.sh` do); the node is restarted by
//! `--restart-cmd`, in which `{id}` is replaced by the node id.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::bail;
use anyhow::ensure;
use clap::Args;
use confab_router_client::ClientConfig;
use confab_router_client::DeviceKind;
use confab_router_client::MultiDevicePolicy;
use confab_router_client::RouterClient;
use confab_router_client::Session;
use serde_json::json;

use super::RouterSeeds;
use crate::report::Summary;
use crate::stats::Recorder;

#[derive(Debug, Clone, Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    pub routers: RouterSeeds,
    /// Leaders to kill (one after another, cycling through the shards).
    #[arg(long, default_value_t = 5)]
    pub kills: u32,
    /// Directory holding router-<id>.pid files.
    #[arg(long)]
    pub pid_dir: PathBuf,
    /// Shell command restarting node {id} after its kill.
    #[arg(long)]
    pub restart_cmd: String,
    /// Give up on one recovery after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
}

const RECOVERY: &str = "recovery";

pub async fn run(args: &FailoverArgs) -> anyhow::Result<Summary> {
    ensure!((1..=1000).contains(&args.kills), "--kills must be in 1..=1000");
    let give_up = Duration::from_secs_f64(args.timeout);
    let config = ClientConfig {
        // Short attempts: the probe must notice the new leader quickly.
        deadline: Duration::from_millis(300),
        attempt_timeout: Duration::from_millis(150),
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
        ..ClientConfig::default()
    };
    let client = args.routers.connect(config).await?;
    let gateway = client
        .register_gateway(60_001, "confab-bench-failover")
        .await
        .context("registering the bench gateway")?;
    let mut recorder = Recorder::new(&[(RECOVERY, false)])?;
    let started = Instant::now();
    let map = client.refresh_map().await?;
    let shards: Vec<u32> = map.shards.iter().map(|s| s.shard_id).collect();
    ensure!(!shards.is_empty(), "the cluster has no shards");
    for k in 0..args.kills {
        let shard = shards[k as usize % shards.len()];
        let leader = wait_for_leader(&client, shard, give_up).await?;
        let uid = uid_in_shard(&map, shard)?;
        kill_node(args, leader)?;
        let killed = Instant::now();
        let mut probe = 0u64;
        loop {
            // Keep the gateway alive through the outage.
            let _ = client.renew_lease(60_001, gateway.incarnation).await;
            probe += 1;
            let session = Session {
                session_id: (u64::from(k) << 32) | probe,
                gateway_id: 60_001,
                gateway_incarnation: gateway.incarnation,
                device_kind: DeviceKind::Bot as i32,
                device_id: format!("failover-{k}-{probe}"),
                login_at_ms: 0,
            };
            if client
                .login(uid, session, MultiDevicePolicy::AllowAll)
                .await
                .is_ok()
            {
                recorder.success(RECOVERY, killed.elapsed(), 0);
                break;
            }
            if killed.elapsed() > give_up {
                recorder.failure(RECOVERY, "no_recovery".into());
                break;
            }
        }
        eprintln!(
            "kill {}: shard {shard} leader node {leader}: writes back after {:?}",
            k + 1,
            killed.elapsed()
        );
        restart_node(args, leader)?;
        wait_until_hosting(&client, leader, give_up).await?;
    }
    let _ = client.deregister_gateway(60_001, gateway.incarnation).await;
    let settings = BTreeMap::from([("kills".to_owned(), json!(args.kills))]);
    Summary::build("failover", settings, 1, &recorder, started.elapsed())
}

async fn wait_for_leader(client: &RouterClient, shard: u32, within: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(all) = client.all_node_status().await {
            for (info, status) in all {
                if let Ok(st) = status
                    && st
                        .groups
                        .iter()
                        .any(|g| g.group_id == shard && g.leader == info.id)
                {
                    return Ok(info.id);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("shard {shard} has no leader after {within:?}")
}

/// Waits until `node` answers and knows a leader for every group it hosts.
async fn wait_until_hosting(client: &RouterClient, node: u64, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(all) = client.all_node_status().await {
            let ready = all.iter().any(|(info, st)| {
                info.id == node
                    && st
                        .as_ref()
                        .is_ok_and(|s| !s.groups.is_empty() && s.groups.iter().all(|g| g.leader != 0))
            });
            if ready {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("node {node} did not come back within {within:?}")
}

fn uid_in_shard(map: &confab_router_client::ClusterMap, shard: u32) -> anyhow::Result<u64> {
    let keyspace = confab_router_client::ShardMap::new(map.slots, map.shards.iter().cloned())?;
    (1..10_000_000u64)
        .find(|&uid| keyspace.shard_of_uid(uid).is_some_and(|d| d.shard_id == shard))
        .context("no uid hashes into the shard")
}

fn kill_node(args: &FailoverArgs, id: u64) -> anyhow::Result<()> {
    let file = args.pid_dir.join(format!("router-{id}.pid"));
    let pid = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let pid = pid.trim();
    ensure!(pid.parse::<u32>().is_ok(), "{} holds no pid", file.display());
    let status = std::process::Command::new("kill").args(["-KILL", pid]).status()?;
    ensure!(status.success(), "kill -KILL {pid} failed");
    Ok(())
}

fn restart_node(args: &FailoverArgs, id: u64) -> anyhow::Result<()> {
    let cmd = args.restart_cmd.replace("{id}", &id.to_string());
    let status = std::process::Command::new("sh").args(["-c", &cmd]).status()?;
    ensure!(status.success(), "restart command failed: {cmd}");
    Ok(())
}
