//! An in-process 3-node cluster: replication, failover, restart from disk.

use std::collections::BTreeMap;
use std::time::Duration;

use confab_router_client::MultiDevicePolicy;

use crate::harness::InProc;
use crate::harness::eventually;
use crate::harness::session;

const SHARDS: u32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_replicate_fail_over_and_catch_up() {
    let mut cluster = InProc::start(3, SHARDS).await;
    let client = cluster.client().await;

    // Sessions on every shard, several devices per user.
    let mut written: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for uid in 1..=300u64 {
        for dev in 0..2u64 {
            let sid = uid * 10 + dev;
            let out = client
                .login(
                    uid,
                    session(sid, 1, 1, &format!("d{dev}")),
                    MultiDevicePolicy::AllowAll,
                )
                .await
                .expect("login");
            assert!(out.kicked.is_empty());
            written.entry(uid).or_default().push(sid);
        }
    }
    let uids: Vec<u64> = written.keys().copied().collect();
    let found = client.lookup(&uids).await.expect("lookup");
    assert_eq!(found.len(), uids.len(), "every user is online");
    for (uid, sids) in &written {
        let mut got: Vec<u64> = found[uid].iter().map(|s| s.session_id).collect();
        got.sort_unstable();
        assert_eq!(&got, sids, "sessions of uid {uid}");
    }

    // Stop the leader of shard 1; the cluster keeps serving every shard.
    let victim = cluster.leader_of(1).expect("shard 1 has a leader");
    cluster.stop(victim).await;
    for uid in 301..=400u64 {
        client
            .login(uid, session(uid * 10, 1, 1, "d0"), MultiDevicePolicy::AllowAll)
            .await
            .expect("login after failover");
        written.insert(uid, vec![uid * 10]);
    }
    let uids: Vec<u64> = written.keys().copied().collect();
    let found = client.lookup(&uids).await.expect("lookup after failover");
    assert_eq!(found.len(), uids.len(), "nothing acknowledged was lost");

    // The stopped node restarts from disk and catches up on every group.
    cluster.restart(victim).await;
    cluster.wait_ready().await;
    let groups: Vec<u32> = (1..=SHARDS).collect();
    eventually(Duration::from_secs(20), "restarted node catches up", || async {
        groups.iter().all(|&g| {
            let leader = cluster.leader_of(g).expect("leader");
            cluster.applied(victim, g) == cluster.applied(leader, g)
        })
    })
    .await;
    for &g in &groups {
        let leader = cluster.leader_of(g).expect("leader");
        assert_eq!(
            cluster.shard_state(victim, g),
            cluster.shard_state(leader, g),
            "replica state of shard {g} on node {victim} equals the leader's"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_device_policy_is_decided_in_the_state_machine() {
    let cluster = InProc::start(3, SHARDS).await;
    let client = cluster.client().await;
    let uid = 42;
    client
        .login(uid, session(1, 1, 1, "phone-a"), MultiDevicePolicy::OnePerKind)
        .await
        .expect("login");
    let mut desktop = session(2, 1, 1, "desk");
    desktop.device_kind = confab_router_client::DeviceKind::Desktop as i32;
    client
        .login(uid, desktop, MultiDevicePolicy::OnePerKind)
        .await
        .expect("login");
    let out = client
        .login(uid, session(3, 2, 1, "phone-b"), MultiDevicePolicy::OnePerKind)
        .await
        .expect("login");
    let kicked: Vec<u64> = out.kicked.iter().map(|s| s.session_id).collect();
    assert_eq!(
        kicked,
        vec![1],
        "the second phone kicks the first, not the desktop"
    );
    let out = client
        .login(uid, session(4, 2, 1, "web"), MultiDevicePolicy::OneInAll)
        .await
        .expect("login");
    let mut kicked: Vec<u64> = out.kicked.iter().map(|s| s.session_id).collect();
    kicked.sort_unstable();
    assert_eq!(kicked, vec![2, 3]);
    assert!(client.logout(uid, 4).await.expect("logout"));
    assert!(!client.logout(uid, 4).await.expect("second logout"));
    assert!(client.lookup(&[uid]).await.expect("lookup").is_empty());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_node_hands_its_leaderships_off_first() {
    let mut cluster = InProc::start(3, SHARDS).await;
    let client = cluster.client().await;
    // The node leading the most groups (meta included) is the one to stop.
    let groups: Vec<u32> = (0..=SHARDS).collect();
    let leading = |cluster: &InProc, id: u64| {
        groups
            .iter()
            .filter(|&&g| cluster.leader_of(g) == Some(id))
            .count()
    };
    let victim = (1..=3u64)
        .max_by_key(|&id| leading(&cluster, id))
        .expect("a node");
    assert!(leading(&cluster, victim) > 0, "node {victim} leads something");
    for uid in 1..=50u64 {
        client
            .login(uid, session(uid, 1, 1, "d"), MultiDevicePolicy::AllowAll)
            .await
            .expect("login");
    }

    // While the node is still up and heartbeating, no follower can time out
    // and win an election: a leadership that moves now was handed over.
    let node = cluster.nodes[&victim].running.node.clone();
    let still = node.hand_off_leaderships(Duration::from_secs(5)).await;
    assert_eq!(still, 0, "every leadership handed off within the budget");
    assert_eq!(leading(&cluster, victim), 0);
    for &g in &groups {
        let leader = cluster.leader_of(g).expect("every group has a leader");
        assert_ne!(leader, victim, "group {g}");
    }

    // The stop itself (which hands off again, finding nothing) loses nothing.
    cluster.stop(victim).await;
    let uids: Vec<u64> = (1..=50).collect();
    let found = client.lookup(&uids).await.expect("lookup");
    assert_eq!(found.len(), 50);
    client
        .login(51, session(51, 1, 1, "d"), MultiDevicePolicy::AllowAll)
        .await
        .expect("writes go on");
    cluster.shutdown().await;
}
