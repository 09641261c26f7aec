//! persist killed with SIGKILL while a user sends: what was acknowledged is
//! stored once, in send order, and reaches the recipient once persist is
//! back; what was sent while it was down is refused, never acknowledged
//! (on the embedded queue; with the gateways publishing to RabbitMQ the
//! broker takes it, and it is stored once persist is back). Persist's SQL
//! writer is off until the kill, so the acknowledged messages exist only in
//! the queue (the embedded log, or the broker): the restart must take them
//! from there.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use confab_client::DeviceKind;

use crate::harness::{Cluster, login, receive, register};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_killed_mid_chat_loses_no_acknowledged_message() {
    let mut cluster = Cluster::start(1).await;
    let g = cluster.gw(1).to_owned();
    register(&g, "carol").await;
    let dave_id = register(&g, "dave").await;
    cluster.befriend("carol", "dave").await;
    let mut carol = login(&g, "carol", "carol-phone", DeviceKind::Mobile).await;
    cluster.kill("persist");
    cluster
        .restart_persist(&[("CONFAB_WRITER__ENABLED", "false")])
        .await;

    let mut acked: Vec<u64> = Vec::new();
    let mut refused = 0;
    let mut n = 0;
    let mut send = async |carol: &mut confab_client::Client, acked: &mut Vec<u64>| {
        n += 1;
        match carol.send_to(dave_id, &format!("m{n}"), "").await {
            Ok(ack) => {
                acked.push(ack.message_id);
                true
            }
            Err(_) => false,
        }
    };
    while acked.len() < 40 {
        assert!(
            send(&mut carol, &mut acked).await,
            "sends succeed while persist runs"
        );
    }

    cluster.kill("persist");
    for _ in 0..5 {
        if !send(&mut carol, &mut acked).await {
            refused += 1;
        }
    }
    if cluster.publishes_to_broker() {
        assert_eq!(
            refused, 0,
            "the broker takes sends while persist is down: acknowledged, stored once it is back"
        );
    } else {
        assert_eq!(
            refused, 5,
            "sends while persist is down are refused, not acknowledged"
        );
    }

    cluster.restart_persist(&[]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.len() < 80 {
        assert!(
            Instant::now() < deadline,
            "sends did not recover after persist came back"
        );
        if !send(&mut carol, &mut acked).await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // dave was offline throughout: his sync (and the commit notices of what
    // is still being written) brings every acknowledged message, once.
    let mut dave = login(&g, "dave", "dave-phone", DeviceKind::Mobile).await;
    let mut got = dave.sync().await.expect("sync");
    let deadline = Instant::now() + WAIT;
    let want: HashSet<u64> = acked.iter().copied().collect();
    while got.iter().filter(|m| want.contains(&m.message_id)).count() < acked.len() {
        assert!(
            Instant::now() < deadline,
            "acknowledged messages missing after the restart"
        );
        got.extend(receive(&mut dave, 1, Duration::from_millis(500)).await);
    }
    let ids: Vec<u64> = got.iter().map(|m| m.message_id).collect();
    let distinct: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "no message twice: {ids:?}");
    let in_order: Vec<u64> = ids.iter().copied().filter(|id| want.contains(id)).collect();
    assert_eq!(in_order, acked, "the acknowledged ones in send order");
    let seqs: Vec<u64> = got.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=got.len() as u64).collect::<Vec<u64>>(),
        "sequences without gaps or repeats"
    );
}
