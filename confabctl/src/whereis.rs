//! `confabctl whereis UID`: the slot, shard, replicas, leader and epoch of a user.

use confab_router_client::{ClusterMap, RouterClient, Whereis};
use serde::Serialize;

use crate::report::{EpochReport, RangeReport};
use crate::table::{list, opt, render};

#[derive(Debug, Serialize)]
pub struct WhereisReport {
    pub uid: u64,
    pub slot: u32,
    pub shard_id: u32,
    pub ranges: Vec<RangeReport>,
    pub epoch: EpochReport,
    pub leader: Option<u64>,
    pub leader_addr: Option<String>,
    pub replicas: Vec<ReplicaAddr>,
}

#[derive(Debug, Serialize)]
pub struct ReplicaAddr {
    pub id: u64,
    pub addr: Option<String>,
}

pub async fn run(client: &RouterClient, uid: u64) -> anyhow::Result<WhereisReport> {
    let map = client.refresh_map().await?;
    let mut whereis = client.whereis(uid).await?;
    if whereis.leader.is_none() {
        // The map does not know the leader: ask the nodes themselves.
        let shard = whereis.shard.shard_id;
        let statuses = client.all_node_status().await?;
        let leader = statuses
            .iter()
            .filter_map(|(_, status)| status.as_ref().ok())
            .flat_map(|status| &status.groups)
            .find(|g| g.group_id == shard && g.leader != 0)
            .map(|g| g.leader);
        whereis.leader = leader.and_then(|id| {
            let node = map.nodes.iter().find(|n| n.id == id)?;
            Some((id, node.addr.clone()))
        });
    }
    Ok(build(&map, &whereis))
}

pub fn build(map: &ClusterMap, w: &Whereis) -> WhereisReport {
    let addr_of = |id: u64| map.nodes.iter().find(|n| n.id == id).map(|n| n.addr.clone());
    WhereisReport {
        uid: w.uid,
        slot: w.slot,
        shard_id: w.shard.shard_id,
        ranges: w.shard.ranges.iter().map(RangeReport::from).collect(),
        epoch: w.shard.epoch.unwrap_or_default().into(),
        leader: w.leader.as_ref().map(|(id, _)| *id),
        leader_addr: w.leader.as_ref().map(|(_, addr)| addr.clone()),
        replicas: w
            .shard
            .replicas
            .iter()
            .map(|&id| ReplicaAddr {
                id,
                addr: addr_of(id),
            })
            .collect(),
    }
}

pub fn render_text(r: &WhereisReport) -> String {
    let replicas: Vec<String> = r
        .replicas
        .iter()
        .map(|x| format!("{}@{}", x.id, opt(x.addr.as_deref())))
        .collect();
    let rows = vec![
        vec!["uid".to_owned(), r.uid.to_string()],
        vec!["slot".to_owned(), r.slot.to_string()],
        vec!["shard".to_owned(), r.shard_id.to_string()],
        vec!["shard slots".to_owned(), list(&r.ranges)],
        vec!["epoch".to_owned(), r.epoch.to_string()],
        vec![
            "leader".to_owned(),
            match (&r.leader, &r.leader_addr) {
                (Some(id), Some(addr)) => format!("{id}@{addr}"),
                (id, _) => opt(*id),
            },
        ],
        vec!["replicas".to_owned(), list(&replicas)],
    ];
    render(&["FIELD", "VALUE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_router_client::{NodeInfo, ShardDescriptor, ShardEpoch, SlotRange};

    #[test]
    fn renders_a_user() {
        let map = ClusterMap {
            nodes: vec![NodeInfo {
                id: 1,
                addr: "127.0.0.1:7101".into(),
                state: 1,
            }],
            ..Default::default()
        };
        let w = Whereis {
            uid: 42,
            slot: 851,
            shard: ShardDescriptor {
                shard_id: 4,
                ranges: vec![SlotRange {
                    start: 768,
                    end: 1024,
                }],
                replicas: vec![1, 2],
                epoch: Some(ShardEpoch {
                    conf_ver: 2,
                    version: 1,
                }),
                leader: 1,
            },
            leader: Some((1, "127.0.0.1:7101".into())),
        };
        let report = build(&map, &w);
        let text = render_text(&report);
        assert!(text.contains("shard slots  768..1024"), "{text}");
        assert!(text.contains("leader       1@127.0.0.1:7101"), "{text}");
        assert!(text.contains("replicas     1@127.0.0.1:7101,2@-"), "{text}");
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["epoch"]["conf_ver"], 2);
        assert_eq!(json["replicas"][1]["addr"], serde_json::Value::Null);
    }
}
