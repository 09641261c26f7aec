//! A send is idempotent by its client message id: a resend after a lost
//! ack gets the first attempt's ack and stores nothing new, and the client
//! library sends again, on a new connection, what was never acknowledged
//! (and keeps a resend answered "not yet" for the next one).
//! Text the SQL backends refuse is refused at the door. A second gateway
//! with a live gateway's id is refused at registration.

use std::time::Duration;

use confab_client::proto::frame::Body;
use confab_client::proto::{self as pb};
use confab_client::{Connection, DeviceKind, ErrorCode, Event, Unacked};

use crate::harness::{Cluster, login, receive, register};

const WAIT: Duration = Duration::from_secs(10);

fn send(to_user: u64, body: &str, key: &str, resend: bool) -> pb::SendRequest {
    pb::SendRequest {
        to_user,
        body: body.into(),
        client_msg_id: key.into(),
        resend,
        ..Default::default()
    }
}

async fn ack_of(c: &confab_client::Client, req: pb::SendRequest) -> pb::SendAck {
    match c.conn.request(Body::Send(req)).await.expect("send") {
        Body::SendAck(a) => a,
        other => panic!("expected SendAck, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_gets_the_first_ack_and_the_library_resends_after_a_reconnect() {
    let cluster = Cluster::start(1).await;
    let g = cluster.gw(1).to_owned();
    register(&g, "rosa").await;
    let sam = register(&g, "sam").await;
    cluster.befriend("rosa", "sam").await;
    let mut rosa = login(&g, "rosa", "rosa-phone", DeviceKind::Mobile).await;
    let mut sam_c = login(&g, "sam", "sam-phone", DeviceKind::Mobile).await;

    // The same send twice: the second is marked a resend.
    let first = ack_of(&rosa, send(sam, "hello", "k-1", false)).await;
    let again = ack_of(&rosa, send(sam, "hello", "k-1", true)).await;
    assert_eq!(
        again.message_id, first.message_id,
        "the resend's ack is the original's"
    );
    assert_eq!(again.conversation_id, first.conversation_id);
    let got = receive(&mut sam_c, 1, WAIT).await;
    assert_eq!(
        got.iter().map(|m| m.message_id).collect::<Vec<_>>(),
        vec![first.message_id]
    );

    // A resend must name the message it repeats.
    let e = rosa
        .conn
        .request(Body::Send(send(sam, "x", "", true)))
        .await
        .expect_err("no key");
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");

    // Two sends whose answers were lost (say the connection broke): one
    // reached the gateway and is stored, the other never left.
    let reached = send(sam, "reached", "k-2", false);
    let stored = ack_of(&rosa, reached.clone()).await;
    let never_left = send(sam, "never left", "k-3", false);
    rosa.outbox.add(Unacked::Direct(reached));
    rosa.outbox.add(Unacked::Direct(never_left));
    let back = rosa
        .reconnect(Connection::connect(&g).await.expect("connect"))
        .await
        .expect("reconnect");
    assert!(rosa.outbox.is_empty(), "every send is acknowledged now");
    assert_eq!(back.acks.len(), 2);
    assert_eq!(
        back.acks[0].message_id, stored.message_id,
        "the stored one keeps its id"
    );
    assert_eq!(back.acks[1].client_msg_id, "k-3");

    // Sam gets "reached" once (live) and "never left" once (its commit
    // notice: a resend is not pushed, it is fetched).
    let got = receive(&mut sam_c, 2, WAIT).await;
    let mut bodies: Vec<String> = got.iter().map(|m| m.body.clone()).collect();
    bodies.sort();
    assert_eq!(bodies, vec!["never left", "reached"]);
    crate::harness::assert_quiet(&mut sam_c, Duration::from_millis(500)).await;

    // Stored once each, in the order of the first attempts.
    let history = rosa
        .history(&first.conversation_id, 0, 50)
        .await
        .expect("history");
    let keys: Vec<&str> = history.iter().rev().map(|m| m.client_msg_id.as_str()).collect();
    assert_eq!(keys, vec!["k-1", "k-2", "k-3"]);
}

/// A resend answered "not yet" (its first attempt is queued, not written)
/// stays in the outbox with the sends after it: the first attempt may
/// still be stored. Once the writer runs, the next resend gets the first
/// attempt's ack, and each message is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_answered_not_yet_stays_in_the_outbox() {
    let mut cluster = Cluster::start(1).await;
    let g = cluster.gw(1).to_owned();
    register(&g, "nora").await;
    let otto = register(&g, "otto").await;
    cluster.befriend("nora", "otto").await;
    let mut nora = login(&g, "nora", "nora-phone", DeviceKind::Mobile).await;
    cluster.kill("persist");
    cluster
        .restart_persist(&[("CONFAB_WRITER__ENABLED", "false")])
        .await;

    // Queued and acknowledged, but the ack is lost; a later send never left.
    let queued = send(otto, "queued", "q-1", false);
    let first = ack_of(&nora, queued.clone()).await;
    nora.outbox.add(Unacked::Direct(queued));
    nora.outbox
        .add(Unacked::Direct(send(otto, "after", "q-2", false)));
    let e = nora
        .reconnect(Connection::connect(&g).await.expect("connect"))
        .await
        .expect_err("nothing is written yet");
    assert_eq!(e.code(), Some(ErrorCode::Unavailable), "{e}");
    let left: Vec<&str> = nora.outbox.pending().map(Unacked::client_msg_id).collect();
    assert_eq!(left, vec!["q-1", "q-2"], "both stay, in order");

    cluster.kill("persist");
    cluster.restart_persist(&[]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let acks = loop {
        match nora.resend_pending().await {
            Ok(acks) => break acks,
            Err(e) if confab_client::not_settled(&e) => {
                assert!(std::time::Instant::now() < deadline, "still {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("resend refused: {e}"),
        }
    };
    assert!(nora.outbox.is_empty());
    assert_eq!(acks.len(), 2);
    assert_eq!(acks[0].message_id, first.message_id, "the first attempt's ack");
    assert_eq!(acks[1].client_msg_id, "q-2");
    let history = nora
        .history(&first.conversation_id, 0, 50)
        .await
        .expect("history");
    let keys: Vec<&str> = history.iter().rev().map(|m| m.client_msg_id.as_str()).collect();
    assert_eq!(keys, vec!["q-1", "q-2"], "stored once each, in order");
}

/// Two copies of one send, and the pushed one is not the one stored: a
/// first attempt whose copy reached the queue after its resend's (its
/// gateway frozen, or a republish after a broken channel) is pushed once
/// confirmed, then skipped by the writer as a duplicate of the resend's
/// copy, which is stored. A device that showed the pushed copy is told it
/// is the stored one (`Event::Replaced`), never shown a second message; a
/// device that has the stored copy drops the late push.
///
/// Here the stored copy comes first by construction: a resend that stores
/// the message, then a first attempt with its client id (pushed, then
/// skipped by the writer), to a device that has not synced yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_copy_that_was_not_stored_is_replaced_by_the_stored_one() {
    let cluster = Cluster::start(1).await;
    let g = cluster.gw(1).to_owned();
    register(&g, "ilse").await;
    let max = register(&g, "max").await;
    cluster.befriend("ilse", "max").await;
    let ilse = login(&g, "ilse", "ilse-phone", DeviceKind::Mobile).await;

    let stored = ack_of(&ilse, send(max, "hi", "c-1", true)).await;
    let mut phone = login(&g, "max", "max-phone", DeviceKind::Mobile).await;
    let late = ack_of(&ilse, send(max, "hi", "c-1", false)).await;
    assert_ne!(late.message_id, stored.message_id, "two copies");
    let shown = receive(&mut phone, 1, WAIT).await;
    assert_eq!(
        shown.iter().map(|m| m.message_id).collect::<Vec<_>>(),
        vec![late.message_id],
        "the pushed copy is shown"
    );
    let synced = phone.sync().await.expect("sync");
    assert!(synced.is_empty(), "not a second message: {synced:?}");
    match tokio::time::timeout(WAIT, phone.next_event()).await {
        Ok(Some(Event::Replaced { old_id, message })) => {
            assert_eq!(old_id, late.message_id);
            assert_eq!(message.message_id, stored.message_id);
            assert_eq!(message.body, "hi");
        }
        other => panic!("expected the stored copy to replace the pushed one, got {other:?}"),
    }

    // A device that synced the stored copy first drops the late push.
    let mut desk = login(&g, "max", "max-desk", DeviceKind::Desktop).await;
    let synced = desk.sync().await.expect("sync");
    assert_eq!(
        synced.iter().map(|m| m.message_id).collect::<Vec<_>>(),
        vec![stored.message_id]
    );
    ack_of(&ilse, send(max, "hi", "c-1", false)).await;
    let after = ack_of(&ilse, send(max, "after", "c-2", false)).await;
    let next = receive(&mut desk, 1, WAIT).await;
    assert_eq!(
        next.iter().map(|m| m.message_id).collect::<Vec<_>>(),
        vec![after.message_id],
        "the late copy is not shown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_refused_before_the_queue() {
    let cluster = Cluster::start(1).await;
    let g = cluster.gw(1).to_owned();
    register(&g, "nul").await;
    let to = register(&g, "lun").await;
    cluster.befriend("nul", "lun").await;
    let c = login(&g, "nul", "d", DeviceKind::Desktop).await;
    for (body, key) in [("a\0b", "k"), ("bell\u{7}", "k2"), ("ok", "key\u{1b}")] {
        let e = c
            .conn
            .request(Body::Send(send(to, body, key, false)))
            .await
            .expect_err("refused");
        assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");
        assert!(e.to_string().contains("control character"), "{e}");
    }
    let e = c
        .conn
        .request(Body::GroupSend(pb::GroupSendRequest {
            group_id: 1,
            body: "x\0".into(),
            ..Default::default()
        }))
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");
    // Tabs and line breaks are text.
    ack_of(&c, send(to, "two\tcolumns\r\nand lines", "k4", false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_with_a_live_gateways_id_is_refused() {
    let mut cluster = Cluster::start(1).await;
    let twin = cluster.spawn_gateway_twin("gateway-1-twin", 1);
    assert!(
        !cluster
            .ready_within("gateway-1-twin", &twin.metrics, Duration::from_secs(4))
            .await,
        "the twin must not serve under a live gateway's id"
    );
    let log = cluster.log("gateway-1-twin");
    assert!(
        log.contains("held by a live gateway"),
        "the twin says why:\n{log}"
    );
    // The live one is untouched: it still serves.
    let g = cluster.gw(1).to_owned();
    register(&g, "still").await;
    // Once the live one is gone and its lease ran out, the id is free: the
    // twin (retrying meanwhile) takes over.
    cluster.kill("gateway-1");
    assert!(
        cluster
            .ready_within("gateway-1-twin", &twin.metrics, Duration::from_secs(25))
            .await,
        "the twin registers once the id is free:\n{}",
        cluster.log("gateway-1-twin")
    );
    let c = confab_client::Client::connect(&twin.client)
        .await
        .expect("connect");
    c.register("after", "pw").await.expect("the twin serves");
}
