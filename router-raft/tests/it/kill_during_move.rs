//! SIGKILL of a participant while a shard replica move is in flight, with
//! real router processes: the killed node restarts from its data dir, the
//! move is asked for again until it completes (every step is safe to
//! repeat), and then every acknowledged session is readable, the shard has
//! exactly its replication factor of replicas, and the old replica is gone.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use confab_proto::router as pb;
use confab_proto::router::router_replica_client::RouterReplicaClient;
use confab_router_client::ClientConfig;
use confab_router_client::MultiDevicePolicy;
use confab_router_client::RouterClient;
use prost::Message;

use crate::harness::Procs;
use crate::harness::client;
use crate::harness::eventually;
use crate::harness::login_many;
use crate::harness::session;
use crate::process::group_views;

const SHARDS: u32 = 4;
const REPLICAS: usize = 3;

/// A client for admin calls: one move attempt may last while a replica
/// catches up.
fn admin_client(addrs: Vec<String>) -> RouterClient {
    let config = ClientConfig {
        deadline: Duration::from_secs(25),
        attempt_timeout: Duration::from_secs(20),
        ..Default::default()
    };
    RouterClient::new(addrs, config).expect("admin client")
}

/// Asks for the move until it completes (each attempt may fail while a node
/// restarts or a group elects a leader).
async fn move_until_done(admin: &RouterClient, shard: u32, from: u64, to: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match admin.move_replica(shard, from, to).await {
            Ok(desc) => {
                assert!(
                    desc.replicas.contains(&to) && !desc.replicas.contains(&from),
                    "{desc:?}"
                );
                return;
            }
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "move of shard {shard} {from} -> {to} did not complete within {within:?}: {error}"
                );
                eprintln!("move of shard {shard} asked again after: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Whether node `addr` hosts a replica of `group`.
async fn hosts(client: &RouterClient, addr: &str, group: u32) -> Option<bool> {
    let status = client.node_status(addr).await.ok()?;
    Some(status.groups.iter().any(|g| g.group_id == group))
}

/// Sends `req` to the leader of its shard, following NotLeader answers.
async fn change_replicas_at_leader(addrs: &[String], req: pb::ChangeReplicasRequest) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut target = addrs[0].clone();
    let mut next = 0;
    loop {
        let answer = async {
            let mut stub = RouterReplicaClient::connect(format!("http://{target}"))
                .await
                .ok()?;
            Some(stub.change_replicas(req.clone()).await)
        }
        .await;
        match answer {
            Some(Ok(resp)) => return resp.into_inner().voters,
            Some(Err(status)) => {
                let hint = pb::RouteError::decode(status.details())
                    .ok()
                    .and_then(|e| match e.kind {
                        Some(pb::route_error::Kind::NotLeader(nl)) if !nl.leader_addr.is_empty() => {
                            Some(nl.leader_addr)
                        }
                        _ => None,
                    });
                assert!(Instant::now() < deadline, "no leader took the change: {status:?}");
                if let Some(leader) = hint {
                    target = leader;
                    continue;
                }
            }
            None => assert!(Instant::now() < deadline, "no node answered the change"),
        }
        next += 1;
        target = addrs[next % addrs.len()].clone();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_a_shard_move_then_the_move_completes_and_nothing_is_lost() {
    let started = Instant::now();
    let mut procs = Procs::start(4, SHARDS);
    let client = client(procs.addrs()).await;
    let admin = admin_client(procs.addrs());
    eventually(Duration::from_secs(30), "cluster ready", || async {
        let views = group_views(&client).await;
        views.len() == SHARDS as usize + 1
            && views.iter().all(|(g, v)| {
                let width = if *g == 0 { 4 } else { REPLICAS };
                v.len() == width && v.iter().all(|x| x.1 != 0)
            })
    })
    .await;

    // Sessions on every shard, then a writer that goes on through the moves.
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let written = login_many(&client, 1..=1_000).await;
    for r in written {
        acked
            .lock()
            .expect("lock")
            .push(r.expect("initial writes succeed"));
    }
    eprintln!(
        "cluster up, sessions written: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut uid = 1_000_000u64;
            while !stop.load(Ordering::Relaxed) {
                // An error is an unknown outcome: not counted as acknowledged.
                if client
                    .login(uid, session(uid, 1, 1, "d"), MultiDevicePolicy::AllowAll)
                    .await
                    .is_ok()
                {
                    acked.lock().expect("lock").push(uid);
                }
                uid += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let map = client.refresh_map().await.expect("map");
    let shard_of = |id: u32| {
        map.shards
            .iter()
            .find(|s| s.shard_id == id)
            .expect("shard")
            .clone()
    };
    let missing =
        |s: &pb::ShardDescriptor| (1..=4u64).find(|n| !s.replicas.contains(n)).expect("a free node");
    let peers = procs.peers.clone();
    let addr = |id: u64| peers[&id].clone();

    // 1. SIGKILL the receiving node as soon as its new replica exists (the
    //    learner is catching up), restart it, ask again until done.
    let a = shard_of(1);
    let (a_from, a_to) = (a.replicas[1], missing(&a));
    let start_move = || {
        let admin = admin.clone();
        tokio::spawn(async move { admin.move_replica(1, a_from, a_to).await })
    };
    let mut first = start_move();
    let to_addr = addr(a_to);
    // A move that answered before its replica was seen (refused by a meta
    // leader that just changed, or done already) is asked again, so that
    // a handle to a move is always there to await below.
    let deadline = Instant::now() + Duration::from_secs(40);
    while hosts(&client, &to_addr, 1).await != Some(true) {
        if first.is_finished() {
            let answer = (&mut first).await.expect("move task");
            eprintln!("the move of shard 1 answered before its replica was seen: {answer:?}");
            // (Asking again is safe: a finished move answers at once.)
            first = start_move();
        }
        assert!(
            Instant::now() < deadline,
            "no replica of shard 1 appeared on node {a_to} within 40 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let in_flight = !first.is_finished();
    procs.kill(a_to);
    eprintln!("node {a_to} killed (move of shard 1 {a_from} -> {a_to} in flight: {in_flight})");
    procs.spawn(a_to);
    let first = tokio::time::timeout(Duration::from_secs(30), first).await;
    eprintln!("the interrupted move answered: {first:?}");
    move_until_done(&admin, 1, a_from, a_to, Duration::from_secs(40)).await;
    eprintln!("first move done: {:.1} s", started.elapsed().as_secs_f64());

    // 2. The step boundary that a crash of the meta leader's move leaves:
    //    voters already swapped, the map not yet told. SIGKILL the giving
    //    node there, restart it, and ask for the move again.
    let b = shard_of(2);
    let (b_from, b_to) = (b.replicas[2], missing(&b));
    RouterReplicaClient::connect(format!("http://{}", addr(b_to)))
        .await
        .expect("connect")
        .create_replica(pb::CreateReplicaRequest { shard_id: 2 })
        .await
        .expect("create replica");
    let voters = change_replicas_at_leader(
        &procs.addrs(),
        pb::ChangeReplicasRequest {
            shard_id: 2,
            add: b_to,
            add_addr: addr(b_to),
            remove: b_from,
        },
    )
    .await;
    assert!(voters.contains(&b_to) && !voters.contains(&b_from), "{voters:?}");
    procs.kill(b_from);
    procs.spawn(b_from);
    move_until_done(&admin, 2, b_from, b_to, Duration::from_secs(40)).await;
    eprintln!("second move done: {:.1} s", started.elapsed().as_secs_f64());

    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");

    // Each moved shard: exactly its replication factor, the new node in,
    // the old one out of the map, the group's voters and every node's disk.
    let map = client.refresh_map().await.expect("map");
    for (shard, from, to) in [(1u32, a_from, a_to), (2, b_from, b_to)] {
        let desc = map.shards.iter().find(|s| s.shard_id == shard).expect("shard");
        assert_eq!(desc.replicas.len(), REPLICAS, "shard {shard}: {desc:?}");
        assert!(
            desc.replicas.contains(&to) && !desc.replicas.contains(&from),
            "{desc:?}"
        );
        let want: BTreeSet<u64> = desc.replicas.iter().copied().collect();
        let old = addr(from);
        eventually(Duration::from_secs(20), "the moved group settles", || async {
            let Some(false) = hosts(&client, &old, shard).await else {
                return false;
            };
            let Ok(all) = client.all_node_status().await else {
                return false;
            };
            let holders: BTreeSet<u64> = all
                .iter()
                .filter(|(_, st)| {
                    st.as_ref()
                        .is_ok_and(|st| st.groups.iter().any(|g| g.group_id == shard))
                })
                .map(|(n, _)| n.id)
                .collect();
            let voters_agree = all.iter().all(|(_, st)| {
                st.as_ref().is_ok_and(|st| {
                    st.groups.iter().filter(|g| g.group_id == shard).all(|g| {
                        g.voters.iter().copied().collect::<BTreeSet<u64>>() == want && g.learners.is_empty()
                    })
                })
            });
            holders == want && voters_agree
        })
        .await;
    }

    // Every acknowledged session is there.
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() > 1_000, "the writer wrote during the moves");
    for chunk in acked.chunks(1000) {
        let found = client.lookup(chunk).await.expect("lookup");
        for uid in chunk {
            let sessions = found
                .get(uid)
                .unwrap_or_else(|| panic!("acknowledged uid {uid} lost"));
            assert!(
                sessions.iter().any(|s| s.session_id == *uid),
                "session of uid {uid} lost"
            );
        }
    }
    for id in 1..=4 {
        assert!(
            !procs.log(id).contains("panicked"),
            "node {id} panicked:\n{}",
            procs.log(id)
        );
    }
    eprintln!("kill during a move: {:.1} s", started.elapsed().as_secs_f64());
}
