//! A node that gave a shard replica away keeps a tombstone naming the
//! shard's new replicas: a client with a map from before the move is
//! redirected in one round trip while it lasts, and once it expired the node
//! answers `ShardNotFound` and the client re-reads the map. Either way the
//! caller sees no error. The move also ships a snapshot, which the snapshot
//! and redirect metrics show.

use std::sync::Arc;
use std::time::Duration;

use confab_proto::router as pb;
use confab_proto::router::router_data_client::RouterDataClient;
use confab_router_client::MultiDevicePolicy;
use confab_router_client::RouterClient;
use openraft::async_runtime::WatchReceiver;
use prost::Message;

use crate::harness::InProc;
use crate::harness::client;
use crate::harness::eventually;
use crate::harness::sample;
use crate::harness::scrape;
use crate::harness::session;

const SHARDS: u32 = 4;
const SHARD: u32 = 1;

/// A client whose map comes from `addr` alone, so it names the leader that
/// node knows.
async fn client_of(addr: &str) -> RouterClient {
    let c = client(vec![addr.to_string()]).await;
    c.refresh_map().await.expect("map");
    c
}

/// What node `addr` answers to a login on `SHARD` at `epoch`.
async fn raw_login(addr: &str, epoch: Option<pb::ShardEpoch>, uid: u64) -> tonic::Status {
    let mut stub = RouterDataClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    stub.login(pb::LoginRequest {
        shard_id: SHARD,
        epoch,
        uid,
        session: Some(session(uid + 5_000_000, 1, 1, "raw")),
        policy: MultiDevicePolicy::AllowAll as i32,
    })
    .await
    .expect_err("the node holds no replica of the shard")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_client_follows_the_tombstone_then_refreshes_after_it_expired() {
    let cluster = InProc::start_with(
        4,
        SHARDS,
        Arc::new(|c| {
            c.tombstone_ms = 2000;
            // Snapshot (and purge) early, so the new replica catches up by snapshot.
            c.raft.snapshot_after_logs = 50;
            c.raft.logs_kept_after_snapshot = 10;
        }),
    )
    .await;
    let client = cluster.client().await;
    let before = client.refresh_map().await.expect("map");
    let shard = before
        .shards
        .iter()
        .find(|s| s.shard_id == SHARD)
        .expect("shard")
        .clone();
    // Move the leader's replica away: clients with the old map ask it first.
    let from = cluster.leader_of(SHARD).expect("leader");
    let to = (1..=4u64)
        .find(|n| !shard.replicas.contains(n))
        .expect("a node without the shard");
    let keyspace = confab_router_client::ShardMap::new(before.slots, before.shards.clone()).expect("map");
    let uids: Vec<u64> = (1..)
        .filter(|&uid| keyspace.shard_of_uid(uid).is_some_and(|d| d.shard_id == SHARD))
        .take(120)
        .collect();
    for &uid in &uids[..100] {
        client
            .login(uid, session(uid, 1, 1, "a"), MultiDevicePolicy::AllowAll)
            .await
            .expect("login");
    }
    let raft = cluster.nodes[&from]
        .running
        .node
        .group(SHARD)
        .expect("hosted")
        .raft;
    eventually(
        Duration::from_secs(20),
        "the leader purged its early log",
        || async { raft.metrics().borrow_watched().purged.is_some() },
    )
    .await;

    // Four clients with the map of before the move, led to `from`.
    let from_addr = cluster.peers[&from].clone();
    let mut stale = Vec::new();
    for _ in 0..4 {
        let c = client_of(&from_addr).await;
        let desc = c
            .cached_map()
            .expect("map")
            .shards
            .into_iter()
            .find(|s| s.shard_id == SHARD);
        assert_eq!(
            desc.map(|d| d.leader),
            Some(from),
            "the stale client asks {from} first"
        );
        stale.push(c);
    }
    let old_version = stale[0].cached_map().expect("map").version;

    let moved = cluster.move_replica(SHARD, from, to).await;
    assert!(cluster.nodes[&from].running.node.group(SHARD).is_none());
    let http = cluster.http[&to].clone();
    let metrics_before = scrape(&http).await;
    let redirects =
        |text: &str, kind: &str| sample(text, &format!("confab_router_redirects_total{{kind=\"{kind}\"}}"));

    // While the tombstone lasts: the old node redirects to the new replicas.
    let status = raw_login(&from_addr, shard.epoch, uids[100]).await;
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    match pb::RouteError::decode(status.details())
        .expect("route error")
        .kind
    {
        Some(pb::route_error::Kind::EpochNotMatch(e)) => {
            assert_eq!(e.current.len(), 1);
            assert_eq!(e.current[0].replicas, moved.replicas);
            assert_eq!(e.current[0].epoch, moved.epoch);
        }
        other => panic!("expected a redirect to the new replicas, got {other:?}"),
    }
    let found = stale[0].lookup(&uids[..100]).await.expect("stale lookup");
    assert_eq!(found.len(), 100, "every session read through the redirect");
    stale[1]
        .login(
            uids[101],
            session(uids[101], 1, 1, "a"),
            MultiDevicePolicy::AllowAll,
        )
        .await
        .expect("stale login");
    for c in &stale[..2] {
        let map = c.cached_map().expect("map");
        assert_eq!(
            map.version, old_version,
            "the redirect fixed the route, no map refresh"
        );
        let desc = map.shards.iter().find(|s| s.shard_id == SHARD).expect("shard");
        assert_eq!(desc.replicas, moved.replicas);
    }
    let metrics_during = scrape(&http).await;
    assert!(
        redirects(&metrics_during, "tombstone") >= redirects(&metrics_before, "tombstone") + 3.0,
        "the old node served tombstone redirects (raw login, lookup, login)"
    );

    // Once it expired: ShardNotFound, and the client refreshes its map.
    let node = cluster.nodes[&from].running.node.clone();
    eventually(Duration::from_secs(10), "the tombstone expired", || async {
        node.tombstones.get(SHARD).is_none()
    })
    .await;
    let status = raw_login(&from_addr, shard.epoch, uids[102]).await;
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert!(matches!(
        pb::RouteError::decode(status.details())
            .expect("route error")
            .kind,
        Some(pb::route_error::Kind::ShardNotFound(_))
    ));
    let found = stale[2].lookup(&uids[..100]).await.expect("lookup after expiry");
    assert_eq!(found.len(), 100);
    stale[3]
        .login(
            uids[103],
            session(uids[103], 1, 1, "a"),
            MultiDevicePolicy::AllowAll,
        )
        .await
        .expect("login after expiry");
    for c in &stale[2..] {
        let map = c.cached_map().expect("map");
        assert!(map.version > old_version, "the client re-read the map");
        let desc = map.shards.iter().find(|s| s.shard_id == SHARD).expect("shard");
        assert_eq!(desc.replicas, moved.replicas);
    }
    let found = client.lookup(&[uids[101], uids[103]]).await.expect("lookup");
    assert_eq!(found.len(), 2, "the stale clients' logins are there");

    // The metrics: redirects by kind, and the snapshot the move shipped.
    let text = scrape(&http).await;
    assert!(redirects(&text, "shard_not_found") >= redirects(&metrics_during, "shard_not_found") + 3.0);
    for name in [
        "confab_router_snapshots_sent_total{outcome=\"ok\"}",
        "confab_router_snapshot_sent_bytes_total",
        "confab_router_snapshot_send_seconds_count",
        "confab_router_snapshots_received_total{outcome=\"ok\"}",
        "confab_router_snapshot_received_bytes_total",
        "confab_router_snapshot_receive_seconds_count",
    ] {
        assert!(sample(&text, name) > 0.0, "{name} after a move:\n{text}");
    }
    cluster.shutdown().await;
}
