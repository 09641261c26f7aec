//! A gateway whose lease runs out loses exactly its own sessions.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

use confab_router_client::MultiDevicePolicy;

use crate::harness::InProc;
use crate::harness::eventually;
use crate::harness::session;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_lease_purges_exactly_that_gateways_sessions() {
    let cluster = InProc::start(3, 4).await;
    let client = cluster.client().await;
    let a = client
        .register_gateway(11, "127.0.0.1:1")
        .await
        .expect("register a");
    let b = client
        .register_gateway(12, "127.0.0.1:2")
        .await
        .expect("register b");
    assert!(a.lease_ms > 0 && b.incarnation > a.incarnation);

    // B keeps renewing throughout; A renews only while its users log in.
    let renew_client = client.clone();
    let a_silent = Arc::new(AtomicBool::new(false));
    let a_stops = a_silent.clone();
    let renewer = tokio::spawn(async move {
        loop {
            let _ = renew_client.renew_lease(12, b.incarnation).await;
            if !a_stops.load(Ordering::Relaxed) {
                let _ = renew_client.renew_lease(11, a.incarnation).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    // Users 1..=100 on gateway A; users 51..=150 on gateway B (51..=100 on both).
    for uid in 1..=100u64 {
        client
            .login(
                uid,
                session(uid * 2, 11, a.incarnation, "a"),
                MultiDevicePolicy::AllowAll,
            )
            .await
            .expect("login on a");
    }
    for uid in 51..=150u64 {
        client
            .login(
                uid,
                session(uid * 2 + 1, 12, b.incarnation, "b"),
                MultiDevicePolicy::AllowAll,
            )
            .await
            .expect("login on b");
    }
    a_silent.store(true, Ordering::Relaxed);
    let silent_since = std::time::Instant::now();

    let uids: Vec<u64> = (1..=150).collect();
    eventually(Duration::from_secs(15), "gateway A's sessions purged", || async {
        match client.lookup(&uids).await {
            Ok(found) => found.values().flatten().all(|s| s.gateway_id != 11),
            Err(e) => {
                eprintln!("lookup failed: {e}");
                false
            }
        }
    })
    .await;
    assert!(
        silent_since.elapsed() >= Duration::from_millis(1500),
        "no purge before the lease ran out"
    );
    let found = client.lookup(&uids).await.expect("lookup");
    for uid in 1..=50u64 {
        assert!(!found.contains_key(&uid), "uid {uid} was only on A: offline");
    }
    for uid in 51..=150u64 {
        let sessions = &found[&uid];
        assert_eq!(sessions.len(), 1, "uid {uid} keeps exactly its B session");
        assert_eq!(sessions[0].gateway_id, 12);
    }
    // A is gone from the registry; its incarnation can no longer renew.
    let gateways = client.list_gateways().await.expect("list");
    assert!(gateways.iter().all(|g| g.gateway_id != 11 || g.expired));
    eventually(Duration::from_secs(10), "purge completes", || async {
        client
            .list_gateways()
            .await
            .map(|g| g.iter().all(|g| g.gateway_id != 11))
            .unwrap_or(false)
    })
    .await;
    assert!(client.renew_lease(11, a.incarnation).await.is_err());
    // A login still carrying the dead incarnation is refused, not resurrected.
    let late = client
        .login(
            1,
            session(9_999, 11, a.incarnation, "late"),
            MultiDevicePolicy::AllowAll,
        )
        .await;
    assert!(late.is_err(), "login on a purged gateway incarnation must fail");
    assert!(!client.lookup(&[1]).await.expect("lookup").contains_key(&1));
    renewer.abort();
    cluster.shutdown().await;
}
