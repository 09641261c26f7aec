//! `confabctl leader transfer`: move a group's leadership to another node.

use std::time::Duration;

use anyhow::{Context, bail};
use confab_router_client::RouterClient;
use serde::Serialize;
use tokio::time::Instant;

use crate::cli::TransferArgs;

#[derive(Debug, Serialize)]
pub struct TransferReport {
    pub group_id: u32,
    pub to: u64,
    /// True once node `to` reported itself leader of the group.
    pub confirmed: bool,
    pub elapsed_ms: u64,
}

const POLL: Duration = Duration::from_millis(100);

pub async fn run(client: &RouterClient, args: &TransferArgs) -> anyhow::Result<TransferReport> {
    let (group_id, to) = (args.group_id(), args.to);
    let started = Instant::now();
    let map = client.refresh_map().await?;
    let addr = map
        .nodes
        .iter()
        .find(|n| n.id == to)
        .map(|n| n.addr.clone())
        .with_context(|| format!("node {to} is not in the cluster map"))?;
    if group_id != 0 {
        let shard = map
            .shards
            .iter()
            .find(|s| s.shard_id == group_id)
            .with_context(|| format!("shard {group_id} is not in the cluster map"))?;
        if !shard.replicas.contains(&to) {
            bail!(
                "node {to} is not a replica of shard {group_id} (replicas {:?})",
                shard.replicas
            );
        }
    }
    client.transfer_leader(group_id, to).await?;
    let mut confirmed = false;
    if !args.no_wait {
        let deadline = started + client.config().deadline;
        while Instant::now() < deadline {
            if let Ok(status) = client.node_status(&addr).await
                && status
                    .groups
                    .iter()
                    .any(|g| g.group_id == group_id && g.leader == to)
            {
                confirmed = true;
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        if !confirmed {
            bail!(
                "leadership transfer of group {group_id} to node {to} requested, \
                 but node {to} does not lead it after {:?}",
                started.elapsed()
            );
        }
    }
    Ok(TransferReport {
        group_id,
        to,
        confirmed,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

pub fn render_text(r: &TransferReport) -> String {
    let group = if r.group_id == 0 {
        "meta group".to_owned()
    } else {
        format!("shard {}", r.group_id)
    };
    if r.confirmed {
        format!("{group}: node {} leads now ({} ms)\n", r.to, r.elapsed_ms)
    } else {
        format!("{group}: leadership transfer to node {} requested\n", r.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_transfers() {
        let mut r = TransferReport {
            group_id: 0,
            to: 2,
            confirmed: true,
            elapsed_ms: 120,
        };
        assert_eq!(render_text(&r), "meta group: node 2 leads now (120 ms)\n");
        r.group_id = 7;
        r.confirmed = false;
        assert_eq!(
            render_text(&r),
            "shard 7: leadership transfer to node 2 requested\n"
        );
    }
}
