//! A gateway killed with SIGKILL: its users show offline within the lease,
//! reconnect to the other gateway and lose no acknowledged message.

use std::time::{Duration, Instant};

use confab_client::DeviceKind;

use crate::harness::{Cluster, LEASE_MS, eventually, login, receive, register};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_gateway_users_go_offline_and_lose_nothing() {
    let mut cluster = Cluster::start(2).await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    register(&g1, "frank").await;
    let gina_id = register(&g1, "gina").await;
    cluster.befriend("frank", "gina").await;
    let mut frank = login(&g1, "frank", "f", DeviceKind::Mobile).await;
    let mut gina = login(&g2, "gina", "g", DeviceKind::Mobile).await;
    gina.sync().await.expect("sync");
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(
            frank
                .send_to(gina_id, &format!("before {i}"), "")
                .await
                .expect("send")
                .message_id,
        );
    }
    assert_eq!(receive(&mut gina, 5, Duration::from_secs(10)).await.len(), 5);

    cluster.kill("gateway-2");
    let killed = Instant::now();
    let router = cluster.router_client().await;
    eventually(
        Duration::from_millis(LEASE_MS * 4),
        "gina offline after the lease",
        || {
            let router = router.clone();
            async move {
                router
                    .lookup(&[gina_id])
                    .await
                    .is_ok_and(|m| !m.contains_key(&gina_id))
            }
        },
    )
    .await;
    let offline_after = killed.elapsed();
    assert!(
        offline_after < Duration::from_millis(LEASE_MS * 3),
        "offline after {offline_after:?}"
    );

    // Messages sent meanwhile are acknowledged (durable) ...
    for i in 0..5 {
        acked.push(
            frank
                .send_to(gina_id, &format!("after {i}"), "")
                .await
                .expect("send")
                .message_id,
        );
    }
    // ... and gina, reconnecting to gateway 1, gets each once, in order.
    let mut gina = login(&g1, "gina", "g", DeviceKind::Mobile).await;
    let mut got = gina.sync().await.expect("sync");
    let need = 10usize.saturating_sub(got.len());
    got.extend(receive(&mut gina, need, Duration::from_secs(10)).await);
    let ids: Vec<u64> = got.iter().map(|m| m.message_id).collect();
    assert_eq!(ids, acked, "every acknowledged message, once, in order");
}
