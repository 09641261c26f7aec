//! Real router processes: 10,000 sessions, then the leader of every shard
//! killed with SIGKILL one after another while writes continue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use confab_router_client::MultiDevicePolicy;
use confab_router_client::RouterClient;

use crate::harness::Procs;
use crate::harness::client;
use crate::harness::eventually;
use crate::harness::login_many;
use crate::harness::session;

const SHARDS: u32 = 6;

/// group -> (leader, per node (applied, entries)) from every node that answers.
pub(crate) async fn group_views(client: &RouterClient) -> BTreeMap<u32, Vec<(u64, u64, u64, u64)>> {
    let mut views: BTreeMap<u32, Vec<(u64, u64, u64, u64)>> = BTreeMap::new();
    if let Ok(all) = client.all_node_status().await {
        for (info, status) in all {
            if let Ok(st) = status {
                for g in st.groups {
                    views.entry(g.group_id).or_default().push((
                        info.id,
                        g.leader,
                        g.applied_index,
                        g.entries,
                    ));
                }
            }
        }
    }
    views
}

async fn leader_of(client: &RouterClient, group: u32) -> Option<u64> {
    let views = group_views(client).await;
    let v = views.get(&group)?;
    // The leader a replica names and which names itself.
    v.iter()
        .find(|(node, leader, ..)| node == leader)
        .map(|(node, ..)| *node)
}

pub(crate) fn uid_in_shard(map: &confab_router_client::ClusterMap, shard: u32, from: u64) -> u64 {
    let keyspace =
        confab_router_client::ShardMap::new(map.slots, map.shards.iter().cloned()).expect("valid map");
    (from..)
        .find(|&uid| keyspace.shard_of_uid(uid).is_some_and(|d| d.shard_id == shard))
        .expect("some uid hashes into every shard")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_of_every_shard_leader_loses_no_acknowledged_session() {
    let mut procs = Procs::start(3, SHARDS);
    let client = client(procs.addrs()).await;
    eventually(Duration::from_secs(60), "cluster ready", || async {
        let views = group_views(&client).await;
        views.len() == SHARDS as usize + 1
            && views.values().all(|v| v.len() == 3 && v.iter().all(|x| x.1 != 0))
    })
    .await;

    // 10,000 sessions, 32 at a time.
    let acked: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let results = login_many(&client, 1..=10_000).await;
    for r in results {
        let uid = r.expect("initial writes succeed");
        acked.lock().expect("lock").push((uid, uid));
    }

    // Writes continue in the background through every kill.
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(1_000_000));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (client, acked, stop, next) = (client.clone(), acked.clone(), stop.clone(), next.clone());
        writers.push(tokio::spawn(async move {
            let mut failures = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let uid = next.fetch_add(1, Ordering::Relaxed);
                match client
                    .login(uid, session(uid, 1, 1, "d"), MultiDevicePolicy::AllowAll)
                    .await
                {
                    Ok(_) => acked.lock().expect("lock").push((uid, uid)),
                    // Unknown outcome: it may or may not be there; never counted as acked.
                    Err(_) => failures += 1,
                }
            }
            failures
        }));
    }

    let map = client.refresh_map().await.expect("map");
    for shard in 1..=SHARDS {
        let victim = leader_of(&client, shard).await.expect("shard has a leader");
        procs.kill(victim);
        let killed_at = Instant::now();
        // A write to exactly that shard must succeed again.
        let probe = uid_in_shard(&map, shard, 2_000_000 + u64::from(shard) * 10_000);
        let mut recovered = None;
        while killed_at.elapsed() < Duration::from_secs(20) {
            if client
                .login(probe, session(probe, 1, 1, "probe"), MultiDevicePolicy::AllowAll)
                .await
                .is_ok()
            {
                recovered = Some(killed_at.elapsed());
                acked.lock().expect("lock").push((probe, probe));
                break;
            }
        }
        let recovered =
            recovered.unwrap_or_else(|| panic!("shard {shard} took no write after its leader died"));
        eprintln!("shard {shard}: leader node {victim} killed, writes resumed after {recovered:?}");
        procs.spawn(victim);
        eventually(
            Duration::from_secs(60),
            "restarted node rejoins every group",
            || async {
                let views = group_views(&client).await;
                views
                    .values()
                    .all(|v| v.iter().any(|(node, leader, ..)| *node == victim && *leader != 0))
            },
        )
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let failures = w.await.expect("writer");
        eprintln!("background writer: {failures} writes with an unknown outcome");
    }

    // Every acknowledged session is there.
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() > 10_000 + SHARDS as usize);
    for chunk in acked.chunks(1000) {
        let uids: Vec<u64> = chunk.iter().map(|(u, _)| *u).collect();
        let found = client.lookup(&uids).await.expect("lookup");
        for (uid, sid) in chunk {
            let sessions = found
                .get(uid)
                .unwrap_or_else(|| panic!("acknowledged uid {uid} lost"));
            assert!(
                sessions.iter().any(|s| s.session_id == *sid),
                "session {sid} of uid {uid} lost"
            );
        }
    }

    // Every replica converges: same applied index and same session count per group.
    eventually(Duration::from_secs(30), "replicas converge", || async {
        let views = group_views(&client).await;
        views.len() == SHARDS as usize + 1
            && views
                .values()
                .all(|v| v.len() == 3 && v.iter().all(|x| x.2 == v[0].2 && x.3 == v[0].3))
    })
    .await;
    for id in 1..=3 {
        assert!(
            !procs.log(id).contains("panicked"),
            "node {id} panicked:\n{}",
            procs.log(id)
        );
    }
}
