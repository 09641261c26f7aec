//! `confabctl status`: nodes, Raft groups and shards.

use std::collections::BTreeMap;

use confab_router_client::{ClusterMap, GroupStatus, NodeInfo, NodeStatusResponse, RouterClient};
use serde::Serialize;

use crate::report::{EpochReport, RangeReport, node_state_name};
use crate::table::{list, opt, render};

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub slots: u32,
    pub map_version: u64,
    pub meta_leader: Option<u64>,
    pub nodes: Vec<NodeReport>,
    pub groups: Vec<GroupReport>,
    pub shards: Vec<ShardReport>,
}

#[derive(Debug, Serialize)]
pub struct NodeReport {
    pub id: u64,
    pub addr: String,
    /// The state in the cluster map: up, draining, removed.
    pub state: String,
    /// False when the node did not answer NodeStatus.
    pub reachable: bool,
    pub error: Option<String>,
    /// Groups this node leads.
    pub leading: Vec<u32>,
}

#[derive(Debug, Serialize)]
pub struct GroupReport {
    pub group_id: u32,
    /// "meta" or "shard".
    pub kind: &'static str,
    pub leader: Option<u64>,
    /// The node whose status these numbers come from (the leader when it answered).
    pub reported_by: u64,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub entries: u64,
    pub replicas: Vec<ReplicaReport>,
}

#[derive(Debug, Serialize)]
pub struct ReplicaReport {
    pub node: u64,
    pub learner: bool,
    pub matched: Option<u64>,
    /// The leader's last log index minus this replica's matched index.
    pub lag: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ShardReport {
    pub shard_id: u32,
    pub ranges: Vec<RangeReport>,
    pub slot_count: u32,
    pub replicas: Vec<u64>,
    pub epoch: EpochReport,
    pub leader: Option<u64>,
}

/// A node and its NodeStatus answer (or why it gave none).
pub type NodeAnswer = (NodeInfo, Result<NodeStatusResponse, String>);

/// Fetches the map, then every node's status in parallel.
pub async fn run(client: &RouterClient) -> anyhow::Result<StatusReport> {
    let map = client.refresh_map().await?;
    let statuses = client
        .all_node_status()
        .await?
        .into_iter()
        .map(|(node, status)| (node, status.map_err(|e| e.short_reason())))
        .collect::<Vec<_>>();
    Ok(build(&map, &statuses))
}

/// Builds the report from the map and each node's answer (or error).
pub fn build(map: &ClusterMap, statuses: &[NodeAnswer]) -> StatusReport {
    // group id -> (node id, its status of that group), every answer.
    let mut seen: BTreeMap<u32, Vec<(u64, &GroupStatus)>> = BTreeMap::new();
    for (node, status) in statuses {
        if let Ok(status) = status {
            for group in &status.groups {
                seen.entry(group.group_id).or_default().push((node.id, group));
            }
        }
    }
    let groups: Vec<GroupReport> = seen
        .into_iter()
        .filter_map(|(group_id, views)| group_report(group_id, &views))
        .collect();
    let nodes = statuses
        .iter()
        .map(|(node, status)| NodeReport {
            id: node.id,
            addr: node.addr.clone(),
            state: node_state_name(node.state),
            reachable: status.is_ok(),
            error: status.as_ref().err().cloned(),
            leading: groups
                .iter()
                .filter(|g| g.leader == Some(node.id))
                .map(|g| g.group_id)
                .collect(),
        })
        .collect();
    let shards = map
        .shards
        .iter()
        .map(|d| ShardReport {
            shard_id: d.shard_id,
            ranges: d.ranges.iter().map(RangeReport::from).collect(),
            slot_count: d.ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum(),
            replicas: d.replicas.clone(),
            epoch: d.epoch.unwrap_or_default().into(),
            leader: groups
                .iter()
                .find(|g| g.group_id == d.shard_id)
                .and_then(|g| g.leader)
                .or((d.leader != 0).then_some(d.leader)),
        })
        .collect();
    StatusReport {
        slots: map.slots,
        map_version: map.version,
        meta_leader: groups
            .iter()
            .find(|g| g.group_id == 0)
            .and_then(|g| g.leader)
            .or((map.meta_leader != 0).then_some(map.meta_leader)),
        nodes,
        groups,
        shards,
    }
}

/// One group's report from the views of the nodes that answered: the
/// leader's own view when it answered, else the most advanced one.
fn group_report(group_id: u32, views: &[(u64, &GroupStatus)]) -> Option<GroupReport> {
    let (reporter, status) = views
        .iter()
        .find(|(node, g)| g.leader == *node)
        .or_else(|| views.iter().max_by_key(|(_, g)| (g.term, g.commit_index)))?;
    let leader = (status.leader != 0).then_some(status.leader);
    let from_leader = leader == Some(*reporter);
    let mut nodes: Vec<(u64, bool)> = status.voters.iter().map(|&id| (id, false)).collect();
    nodes.extend(status.learners.iter().map(|&id| (id, true)));
    let replicas = nodes
        .into_iter()
        .map(|(node, learner)| {
            let matched = if from_leader {
                status.matched.get(&node).copied()
            } else {
                None
            };
            ReplicaReport {
                node,
                learner,
                matched,
                lag: matched.map(|m| status.last_log_index.saturating_sub(m)),
            }
        })
        .collect();
    Some(GroupReport {
        group_id,
        kind: if group_id == 0 { "meta" } else { "shard" },
        leader,
        reported_by: *reporter,
        term: status.term,
        commit_index: status.commit_index,
        applied_index: status.applied_index,
        last_log_index: status.last_log_index,
        entries: status.entries,
        replicas,
    })
}

/// The report as tables for humans.
pub fn render_text(report: &StatusReport) -> String {
    let mut out = format!(
        "cluster: {} slots, map version {}, meta leader {}\n\nNODES\n",
        report.slots,
        report.map_version,
        opt(report.meta_leader)
    );
    let rows: Vec<Vec<String>> = report
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.id.to_string(),
                n.addr.clone(),
                n.state.clone(),
                if n.reachable { "ok" } else { "down" }.to_owned(),
                list(&n.leading),
                n.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&render(
        &["ID", "ADDR", "STATE", "HEALTH", "LEADS", "ERROR"],
        &rows,
    ));
    out.push_str("\nGROUPS\n");
    let rows: Vec<Vec<String>> = report
        .groups
        .iter()
        .map(|g| {
            let lag: Vec<String> = g
                .replicas
                .iter()
                .map(|r| {
                    let learner = if r.learner { "(learner)" } else { "" };
                    format!("{}{}={}", r.node, learner, opt(r.lag))
                })
                .collect();
            vec![
                g.group_id.to_string(),
                g.kind.to_owned(),
                opt(g.leader),
                g.term.to_string(),
                g.commit_index.to_string(),
                g.applied_index.to_string(),
                g.last_log_index.to_string(),
                g.entries.to_string(),
                list(&lag),
            ]
        })
        .collect();
    let headers = [
        "GROUP", "KIND", "LEADER", "TERM", "COMMIT", "APPLIED", "LAST_LOG", "ENTRIES", "LAG",
    ];
    out.push_str(&render(&headers, &rows));
    out.push_str("\nSHARDS\n");
    let rows: Vec<Vec<String>> = report
        .shards
        .iter()
        .map(|s| {
            vec![
                s.shard_id.to_string(),
                list(&s.ranges),
                s.slot_count.to_string(),
                list(&s.replicas),
                opt(s.leader),
                s.epoch.to_string(),
            ]
        })
        .collect();
    let headers = ["SHARD", "SLOTS", "COUNT", "REPLICAS", "LEADER", "EPOCH"];
    out.push_str(&render(&headers, &rows));
    out
}

#[cfg(test)]
mod tests;
