//! Moving a shard replica between nodes under load: the new replica catches
//! up by snapshot + log, the old one is dropped, no acknowledged session is
//! lost, and a client with the old map is redirected.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use confab_proto::router as pb;
use confab_proto::router::router_admin_client::RouterAdminClient;
use confab_router_client::MultiDevicePolicy;

use crate::harness::InProc;
use crate::harness::eventually;
use crate::harness::session;

const SHARDS: u32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_moves_under_load_and_nothing_is_lost() {
    // 4 nodes, 3 replicas per shard: every shard has a node without a replica.
    let cluster = InProc::start(4, SHARDS).await;
    let client = cluster.client().await;
    let stale = cluster.client().await;
    let before = stale.refresh_map().await.expect("map");
    let shard = before
        .shards
        .iter()
        .find(|s| s.shard_id == 1)
        .expect("shard 1")
        .clone();
    let from = shard.replicas[0];
    let to = (1..=4u64)
        .find(|n| !shard.replicas.contains(n))
        .expect("a node without shard 1");
    let uids: Vec<u64> = (1..=20_000u64)
        .filter(|&uid| {
            let slot = confab_router_client::slot_of(uid, before.slots);
            shard.ranges.iter().any(|r| r.start <= slot && slot < r.end)
        })
        .take(400)
        .collect();
    for &uid in &uids[..200] {
        client
            .login(uid, session(uid, 1, 1, "a"), MultiDevicePolicy::AllowAll)
            .await
            .expect("login before the move");
    }

    // Writes continue during the move; every one must succeed.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, stop, uids) = (client.clone(), stop.clone(), uids[200..].to_vec());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for uid in uids {
                if stop.load(Ordering::Relaxed) && acked.len() >= 50 {
                    break;
                }
                client
                    .login(uid, session(uid, 1, 1, "a"), MultiDevicePolicy::AllowAll)
                    .await
                    .expect("a login during the move");
                acked.push(uid);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            acked
        })
    };

    let moved = cluster.move_replica(1, from, to).await;
    assert!(moved.replicas.contains(&to) && !moved.replicas.contains(&from));
    assert_eq!(moved.replicas.len(), 3, "never fewer than the replication factor");
    assert_eq!(
        moved.epoch.map(|e| e.conf_ver),
        shard.epoch.map(|e| e.conf_ver + 1)
    );
    // Asking again is harmless: the move is done.
    let again = cluster.move_replica(1, from, to).await;
    assert_eq!(again.epoch, moved.epoch);
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.expect("writer");

    // The old replica is gone from `from`, the new one holds every session.
    assert!(cluster.nodes[&from].running.node.group(1).is_none());
    let leader = cluster.leader_of(1).expect("shard 1 leader");
    eventually(Duration::from_secs(10), "the new replica caught up", || async {
        cluster.applied(to, 1) == cluster.applied(leader, 1)
    })
    .await;
    assert_eq!(cluster.shard_state(to, 1), cluster.shard_state(leader, 1));
    let expected: Vec<u64> = uids[..200].iter().chain(acked.iter()).copied().collect();
    let found = client.lookup(&expected).await.expect("lookup");
    assert_eq!(found.len(), expected.len(), "every acknowledged session is there");

    // A client still holding the old map is redirected, not failed.
    let uid = uids[0];
    assert!(
        stale
            .lookup(&[uid])
            .await
            .expect("stale lookup")
            .contains_key(&uid)
    );
    stale
        .login(
            uid,
            session(uid + 1_000_000, 1, 1, "b"),
            MultiDevicePolicy::AllowAll,
        )
        .await
        .expect("stale client's write");
    cluster.shutdown().await;
}

/// Grow 3 -> 4 and rebalance, then drain and remove a node, while writers
/// and readers run: no caller sees an error, nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grow_rebalance_drain_and_remove_under_load() {
    let mut cluster = InProc::start(3, SHARDS).await;
    let client = cluster.client().await;
    let stop = Arc::new(AtomicBool::new(false));
    let logins = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let load: Vec<_> = (0..4u64)
        .map(|w| {
            let (client, stop, logins) = (client.clone(), stop.clone(), logins.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut uid = 1 + w * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    client
                        .login(uid, session(uid, 1, 1, "a"), MultiDevicePolicy::AllowAll)
                        .await
                        .expect("no login fails during membership changes");
                    acked.push(uid);
                    logins.fetch_add(1, Ordering::Relaxed);
                    let found = client.lookup(&acked[acked.len().saturating_sub(20)..]).await;
                    let found = found.expect("no lookup fails during membership changes");
                    assert!(found.contains_key(&uid), "an acknowledged login is read back");
                    uid += 1;
                }
                acked
            })
        })
        .collect();

    // The load runs before anything changes.
    eventually(Duration::from_secs(20), "the load runs", || async {
        logins.load(Ordering::Relaxed) >= 20
    })
    .await;
    let before_changes = logins.load(Ordering::Relaxed);

    // Grow: node 4 joins, the rebalancer gives it its share. Admin calls
    // go through a client that follows the meta leader (leaderships move
    // while the rebalancer works) with a long deadline, as confabctl's.
    cluster.add_node(4, 1).await;
    let admin = cluster.admin_client();
    eventually(Duration::from_secs(20), "node 4 has the map", || async {
        cluster.nodes[&4].running.node.meta_state().is_ok()
    })
    .await;
    // It learnt the cluster id from the join answer, for its own messages.
    let cluster_id = cluster.nodes[&1].running.node.peers.cluster_id();
    assert_ne!(cluster_id, 0);
    eventually(Duration::from_secs(10), "node 4 has the cluster id", || async {
        cluster.nodes[&4].running.node.peers.cluster_id() == cluster_id
    })
    .await;
    let (plan, _) = admin.rebalance(true).await.expect("dry run");
    assert!(!plan.is_empty() && plan.iter().all(|m| m.to == 4), "{plan:?}");
    let (done, _) = admin.rebalance(false).await.expect("rebalance");
    assert_eq!(done.len(), plan.len());
    let map = client.refresh_map().await.expect("map");
    let held = |map: &pb::ClusterMap, n: u64| map.shards.iter().filter(|s| s.replicas.contains(&n)).count();
    // 4 shards x 3 replicas over 4 nodes: 3 each.
    for n in 1..=4 {
        assert_eq!(held(&map, n), 3, "node {n} in {map:?}");
    }
    let (again, _) = admin.rebalance(true).await.expect("dry run");
    assert!(again.is_empty(), "balanced: {again:?}");

    // Drain node 2 (never below 3 replicas), then remove it.
    admin.drain_node(2).await.expect("drain");
    let map = client.refresh_map().await.expect("map");
    assert_eq!(held(&map, 2), 0);
    assert!(map.shards.iter().all(|s| s.replicas.len() == 3));
    eventually(
        Duration::from_secs(10),
        "a meta leader other than node 2",
        || async { cluster.leader_of(0).is_some_and(|l| l != 2) },
    )
    .await;
    admin.remove_node(2).await.expect("remove");
    let map = client.refresh_map().await.expect("map");
    assert!(map.nodes.iter().all(|n| n.id != 2), "{:?}", map.nodes);
    // A node with replicas cannot be removed.
    let e = admin.remove_node(3).await.expect_err("node 3 holds replicas");
    assert!(
        matches!(e, confab_router_client::Error::InvalidArgument(_)),
        "{e}"
    );

    // Node 2 is gone; its machine comes back with a wiped disk. Under its
    // old id it is refused (its votes and log are lost), under a new id it
    // joins and the rebalancer gives it its share again.
    cluster.stop(2).await;
    // Asked of the meta leader (again if it changed under the call).
    let mut tries = 0;
    let e = loop {
        let meta_leader = cluster.leader_of(0).expect("meta leader");
        let mut admin = RouterAdminClient::connect(format!("http://{}", cluster.peers[&meta_leader]))
            .await
            .expect("connect");
        let refused = admin
            .join(pb::JoinRequest {
                node_id: 3,
                addr: cluster.peers[&3].clone(),
                fresh: true,
            })
            .await
            .expect_err("a wiped node may not reuse a member's id");
        tries += 1;
        if refused.code() != tonic::Code::FailedPrecondition || tries == 20 {
            break refused;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    let meta_leader = cluster.leader_of(0).expect("meta leader");
    cluster.add_node(5, meta_leader).await;
    eventually(Duration::from_secs(20), "node 5 has the map", || async {
        cluster.nodes[&5].running.node.meta_state().is_ok()
    })
    .await;
    admin.rebalance(false).await.expect("rebalance onto node 5");
    let map = client.refresh_map().await.expect("map");
    for n in [1, 3, 4, 5] {
        assert_eq!(held(&map, n), 3, "node {n} in {map:?}");
    }

    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for l in load {
        acked.extend(l.await.expect("load task"));
    }
    assert!(
        acked.len() as u64 > before_changes,
        "logins went on during the membership changes ({before_changes} before, {} in all)",
        acked.len()
    );
    let found = client.lookup(&acked).await.expect("final lookup");
    assert_eq!(found.len(), acked.len(), "every acknowledged login survived");
    cluster.shutdown().await;
}

/// Grow 3 -> 5 and rebalance: replica counts and leader counts per node
/// each differ by at most one (leaders read from the nodes themselves).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn growing_three_to_five_evens_out_replicas_and_leaders() {
    const SHARDS: u32 = 12;
    let mut cluster = InProc::start(3, SHARDS).await;
    for id in [4, 5] {
        cluster.add_node(id, 1).await;
        eventually(Duration::from_secs(30), "the new node has the map", || async {
            cluster.nodes[&id].running.node.meta_state().is_ok()
        })
        .await;
    }
    // Through the client, which finds the meta leader (an election may run).
    let admin = confab_router_client::RouterClient::new(
        cluster.peers.values().cloned().collect(),
        confab_router_client::ClientConfig {
            deadline: Duration::from_secs(120),
            attempt_timeout: Duration::from_secs(110),
            ..Default::default()
        },
    )
    .expect("admin client");
    admin.rebalance(false).await.expect("rebalance");

    let spread = |counts: &std::collections::BTreeMap<u64, usize>| {
        let max = counts.values().max().copied().unwrap_or(0);
        let min = counts.values().min().copied().unwrap_or(0);
        max - min
    };
    let client = cluster.client().await;
    let map = client.refresh_map().await.expect("map");
    let replicas: std::collections::BTreeMap<u64, usize> = (1..=5u64)
        .map(|n| (n, map.shards.iter().filter(|s| s.replicas.contains(&n)).count()))
        .collect();
    assert!(spread(&replicas) <= 1, "replicas per node: {replicas:?}");
    let leaders = || {
        (1..=5u64)
            .map(|n| {
                let led = (1..=SHARDS)
                    .filter(|&g| {
                        cluster.nodes[&n]
                            .running
                            .node
                            .group(g)
                            .is_some_and(|g| g.is_leader(n))
                    })
                    .count();
                (n, led)
            })
            .collect::<std::collections::BTreeMap<u64, usize>>()
    };
    // Polled: a node learns it leads a moment after the transfer.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let led = leaders();
        if led.values().sum::<usize>() == SHARDS as usize && spread(&led) <= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "leaders per node: {led:?} (replicas per node: {replicas:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.shutdown().await;
}
