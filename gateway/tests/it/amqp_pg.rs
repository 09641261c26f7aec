//! The whole message path on the production backends: gateways publishing
//! straight to RabbitMQ (publisher confirms), persist consuming it into
//! PostgreSQL. 1:1 and group messages across two gateways arrive live, once,
//! and history read back from PostgreSQL holds each once, in order.

use std::time::Duration;

use confab_client::DeviceKind;
use confab_testkit::{missing, unique};

use crate::harness::backends::Backends;
use crate::harness::{Cluster, login, receive, register};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_through_rabbitmq_into_postgresql() {
    let Some(backends) = Backends::create(unique("confab_gw"), unique("confab.gwtest")) else {
        missing("PostgreSQL", "psql could not create a database at 127.0.0.1:5432");
        return;
    };
    let url = backends.url();
    let mut cluster = Cluster::start(0).await;
    cluster.kill("persist");
    cluster.restart_persist(&backends.persist_env(&url)).await;
    let queue = backends.gateway_env();
    for id in [1, 2] {
        cluster.start_gateway_with_env(id, &queue).await;
    }
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    register(&g1, "pia").await;
    let ole = register(&g2, "ole").await;
    cluster.befriend("pia", "ole").await;
    let mut pia = login(&g1, "pia", "p1", DeviceKind::Desktop).await;
    let mut ole_c = login(&g2, "ole", "o1", DeviceKind::Mobile).await;

    let mut acked = Vec::new();
    for i in 0..20 {
        let ack = pia.send_to(ole, &format!("m{i}"), "").await.expect("send");
        acked.push(ack.message_id);
    }
    let group = pia.create_group("amqp-pg").await.expect("group");
    let gid = group.group_id;
    ole_c.join_group(gid, "").await.expect("ask to join");
    pia.approve(gid, ole).await.expect("approve");
    let gack = pia.group_send(gid, "to the group", "").await.expect("group send");

    let got = receive(&mut ole_c, 21, Duration::from_secs(20)).await;
    let ids: Vec<u64> = got.iter().map(|m| m.message_id).collect();
    assert_eq!(ids[..20], acked[..], "1:1 messages live, once, in order");
    assert_eq!(ids[20], gack.message_id, "the group message");

    // Stored once each, in order, in PostgreSQL (history reads it back).
    let conv = format!("d:{}:{}", pia.uid().min(ole), pia.uid().max(ole));
    let history = ole_c.history(&conv, 0, 100).await.expect("history");
    let bodies: Vec<&str> = history.iter().rev().map(|m| m.body.as_str()).collect();
    let want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, want, "stored once each, in order");
    let g = ole_c.group_history(gid, 0, 10).await.expect("group history");
    assert_eq!(
        g.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["to the group"]
    );
    drop(backends);
}
