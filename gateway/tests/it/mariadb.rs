//! The message path on MariaDB: persist stores into a fresh MariaDB
//! database (sqlx's MySQL driver) behind two gateways. Friends, 1:1 and
//! group messages live and once, history in order, read marks and unread
//! counts by sync, a recall, all read back from MariaDB.

use std::time::Duration;

use confab_client::proto::frame::Body;
use confab_client::proto::{self as pb};
use confab_client::{DeviceKind, Peer};
use confab_testkit::{missing, unique};

use crate::harness::backends::MariaDb;
use crate::harness::{Cluster, login, receive, register};
use crate::read_receipts::state_of;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_groups_reads_and_recalls_on_mariadb() {
    let Some(db) = MariaDb::create(unique("confab_gw")) else {
        missing(
            "MariaDB",
            "the mariadb client could not create a database at 127.0.0.1:3306",
        );
        return;
    };
    let url = db.url();
    let mut cluster = Cluster::start(0).await;
    cluster.kill("persist");
    cluster.restart_persist(&[("DATABASE_URL", url.as_str())]).await;
    for id in [1, 2] {
        cluster.start_gateway(id).await;
    }
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    register(&g1, "mia").await;
    let ned = register(&g2, "ned").await;
    // A name that differs only in case is another user.
    let other = register(&g2, "Ned").await;
    assert_ne!(other, ned);
    cluster.befriend("mia", "ned").await;
    let mut mia = login(&g1, "mia", "m1", DeviceKind::Desktop).await;
    let mut ned_c = login(&g2, "ned", "n1", DeviceKind::Mobile).await;
    assert_eq!(mia.friends().await.expect("friends").len(), 1);

    let mut acked = Vec::new();
    for i in 0..20 {
        let ack = mia
            .send_to(ned, &format!("m{i}"), &format!("c{i}"))
            .await
            .expect("send");
        acked.push(ack.message_id);
    }
    // A resend (after a lost ack) is the same message: the original's ack,
    // found in MariaDB by the sender's client message id.
    let resend = pb::SendRequest {
        to_user: ned,
        body: "m0".into(),
        client_msg_id: "c0".into(),
        resend: true,
        ..Default::default()
    };
    let again = match mia.conn.request(Body::Send(resend)).await.expect("resend") {
        Body::SendAck(a) => a,
        other => panic!("expected SendAck, got {other:?}"),
    };
    assert_eq!(again.message_id, acked[0], "a resend gets the original ack");
    let group = mia.create_group("on-mariadb").await.expect("group");
    let gid = group.group_id;
    ned_c.join_group(gid, "").await.expect("ask to join");
    mia.approve(gid, ned).await.expect("approve");
    let gack = mia.group_send(gid, "to the group", "").await.expect("group send");

    let got = receive(&mut ned_c, 21, Duration::from_secs(20)).await;
    let ids: Vec<u64> = got.iter().map(|m| m.message_id).collect();
    assert_eq!(ids[..20], acked[..], "1:1 messages live, once, in order");
    assert_eq!(ids[20], gack.message_id, "the group message");

    let conv = format!("d:{}:{}", mia.uid().min(ned), mia.uid().max(ned));
    let history = ned_c.history(&conv, 0, 100).await.expect("history");
    let bodies: Vec<&str> = history.iter().rev().map(|m| m.body.as_str()).collect();
    let want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, want, "stored once each, in order");
    let g = ned_c.group_history(gid, 0, 10).await.expect("group history");
    assert_eq!(
        g.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["to the group"]
    );

    // Read marks: 20 unread, then 5 after reading up to 15.
    let s = state_of(&ned_c, &conv, |s| s.seq == 20).await;
    assert_eq!((s.read_seq, s.unread_count), (0, 20));
    ned_c.mark_read(&Peer::Id(mia.uid()), 15).await.expect("read");
    let s = state_of(&ned_c, &conv, |s| s.read_seq == 15).await;
    assert_eq!(s.unread_count, 5);
    let s = state_of(&mia, &conv, |s| s.peer_read_seq == 15).await;
    assert_eq!(s.seq, 20);

    // A recall empties the message everywhere.
    let r = mia.recall(acked[19]).await.expect("recall");
    assert_eq!(r.message_id, acked[19]);
    let history = ned_c
        .history(&conv, 0, 100)
        .await
        .expect("history after the recall");
    let recalled = history
        .iter()
        .find(|m| m.message_id == acked[19])
        .expect("still listed");
    assert!(recalled.recalled && recalled.body.is_empty(), "its text is gone");
}
