//! Pipelining on one connection: many sends in flight at once are all
//! acknowledged, reach the recipient in the order they were sent and are
//! stored in that order; other requests are answered meanwhile.

use std::time::Duration;

use confab_client::DeviceKind;
use confab_client::proto::frame::Body;
use confab_client::proto::{self as pb};
use futures::future::join_all;

use crate::harness::{Cluster, login, receive, register};

const WAIT: Duration = Duration::from_secs(10);
const N: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_in_flight_together_keep_their_order() {
    let cluster = Cluster::start(2).await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    let alice_id = register(&g1, "alice").await;
    let bob_id = register(&g2, "bob").await;
    cluster.befriend("alice", "bob").await;
    let alice = login(&g1, "alice", "alice-phone", DeviceKind::Mobile).await;
    let mut bob = login(&g2, "bob", "bob-phone", DeviceKind::Mobile).await;

    // All written before the first answer can come back.
    let sends = (0..N).map(|i| {
        alice.conn.request(Body::Send(pb::SendRequest {
            to_user: bob_id,
            to_name: String::new(),
            body: format!("m{i}"),
            client_msg_id: i.to_string(),
            ..Default::default()
        }))
    });
    let lookup = alice.conn.request(Body::LookupUser(pb::LookupUserRequest {
        user_id: bob_id,
        name: String::new(),
    }));
    let (acks, user) = tokio::join!(join_all(sends), lookup);
    match user.expect("lookup answered beside the sends") {
        Body::User(u) => assert_eq!(u.name, "bob"),
        other => panic!("expected User, got {other:?}"),
    }
    for (i, ack) in acks.into_iter().enumerate() {
        match ack.expect("send acked") {
            Body::SendAck(a) => assert_eq!(a.client_msg_id, i.to_string(), "each answer carries its request"),
            other => panic!("expected SendAck, got {other:?}"),
        }
    }

    let got = receive(&mut bob, N, WAIT).await;
    let bodies: Vec<String> = got.iter().map(|m| m.body.clone()).collect();
    let expected: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, expected, "pushed in send order");

    let conversation = format!("d:{}:{}", alice_id.min(bob_id), alice_id.max(bob_id));
    let mut stored = Vec::new();
    for _ in 0..100 {
        stored = alice.history(&conversation, 0, 100).await.expect("history");
        if stored.len() == N {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stored.sort_by_key(|m| m.seq);
    let bodies: Vec<String> = stored.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, expected, "stored in send order");
}
