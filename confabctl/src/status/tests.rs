use std::collections::HashMap;

use confab_router_client::{NodeState, ShardDescriptor, ShardEpoch, SlotRange};

use super::*;

fn node(id: u64) -> NodeInfo {
    NodeInfo {
        id,
        addr: format!("127.0.0.1:710{id}"),
        state: NodeState::Up as i32,
    }
}

fn group(group_id: u32, leader: u64, matched: &[(u64, u64)]) -> GroupStatus {
    GroupStatus {
        group_id,
        leader,
        term: 3,
        commit_index: 90,
        applied_index: 89,
        last_log_index: 100,
        matched: matched.iter().copied().collect::<HashMap<_, _>>(),
        entries: 5,
        role: String::new(),
        voters: vec![1, 2, 3],
        learners: vec![],
        checksum: 0,
    }
}

fn sample() -> (ClusterMap, Vec<NodeAnswer>) {
    let map = ClusterMap {
        slots: 4096,
        nodes: vec![node(1), node(2), node(3)],
        shards: vec![ShardDescriptor {
            shard_id: 1,
            ranges: vec![SlotRange { start: 0, end: 4096 }],
            replicas: vec![1, 2, 3],
            epoch: Some(ShardEpoch {
                conf_ver: 1,
                version: 1,
            }),
            leader: 0,
        }],
        meta_leader: 1,
        version: 9,
    };
    let leader_view = NodeStatusResponse {
        node_id: 1,
        addr: "127.0.0.1:7101".into(),
        groups: vec![
            group(0, 1, &[(1, 100), (2, 100), (3, 40)]),
            group(1, 1, &[(1, 100), (2, 97)]),
        ],
    };
    let follower_view = NodeStatusResponse {
        node_id: 2,
        addr: "127.0.0.1:7102".into(),
        groups: vec![group(0, 1, &[]), group(1, 1, &[])],
    };
    let statuses = vec![
        (node(1), Ok(leader_view)),
        (node(2), Ok(follower_view)),
        (node(3), Err("connection refused".to_owned())),
    ];
    (map, statuses)
}

#[test]
fn builds_lag_from_the_leader_view() {
    let (map, statuses) = sample();
    let report = build(&map, &statuses);
    assert_eq!(report.groups.len(), 2);
    let shard = &report.groups[1];
    assert_eq!((shard.group_id, shard.leader, shard.reported_by), (1, Some(1), 1));
    let lags: Vec<_> = shard.replicas.iter().map(|r| (r.node, r.lag)).collect();
    assert_eq!(lags, vec![(1, Some(0)), (2, Some(3)), (3, None)]);
    assert_eq!(report.nodes[0].leading, vec![0, 1]);
    assert!(!report.nodes[2].reachable);
    assert_eq!(report.shards[0].leader, Some(1));
    assert_eq!(report.meta_leader, Some(1));
}

#[test]
fn falls_back_to_a_follower_view() {
    let (map, mut statuses) = sample();
    statuses[0].1 = Err("down".into());
    let report = build(&map, &statuses);
    let shard = &report.groups[1];
    assert_eq!(shard.reported_by, 2);
    assert!(shard.replicas.iter().all(|r| r.lag.is_none()));
}

#[test]
fn renders_tables_and_json() {
    let (map, statuses) = sample();
    let report = build(&map, &statuses);
    let text = render_text(&report);
    assert!(
        text.starts_with("cluster: 4096 slots, map version 9, meta leader 1\n"),
        "{text}"
    );
    assert!(
        text.contains("3   127.0.0.1:7103  up     down    -      connection refused"),
        "{text}"
    );
    assert!(
        text.contains("1      shard  1       3     90      89       100       5        1=0,2=3,3=-"),
        "{text}"
    );
    assert!(
        text.contains("1      0..4096  4096   1,2,3     1       conf_ver=1 version=1"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::to_value(&report).expect("json");
    assert_eq!(json["groups"][0]["replicas"][2]["lag"], 60);
    assert_eq!(json["nodes"][2]["reachable"], false);
}
