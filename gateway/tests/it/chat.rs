//! 1:1 chat across two gateways: both ways, a second device's copies,
//! offline delivery on reconnect (in order, once), and a kick by policy.

use std::time::Duration;

use confab_client::{DeviceKind, Event};

use crate::harness::{Cluster, assert_quiet, login, receive, register};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_both_ways_copies_and_offline_sync() {
    let cluster = Cluster::start(2).await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    let alice_id = register(&g1, "alice").await;
    let bob_id = register(&g2, "bob").await;
    cluster.befriend("alice", "bob").await;

    let mut alice = login(&g1, "alice", "alice-phone", DeviceKind::Mobile).await;
    let mut alice_laptop = login(&g2, "alice", "alice-laptop", DeviceKind::Desktop).await;
    let mut bob = login(&g2, "bob", "bob-phone", DeviceKind::Mobile).await;
    assert!(alice.sync().await.expect("sync").is_empty());
    assert!(bob.sync().await.expect("sync").is_empty());

    // alice (gateway 1) -> bob (gateway 2), and a copy to alice's laptop.
    let ack = alice.send_to_name("bob", "hi bob", "c1").await.expect("send");
    assert_eq!(ack.to_user, bob_id);
    assert_eq!(
        ack.conversation_id,
        format!("d:{}:{}", alice_id.min(bob_id), alice_id.max(bob_id))
    );
    let got = receive(&mut bob, 1, WAIT).await;
    assert_eq!(got.len(), 1, "bob got alice's message");
    assert_eq!((got[0].body.as_str(), got[0].sender), ("hi bob", alice_id));
    assert_eq!(got[0].message_id, ack.message_id);
    let copy = receive(&mut alice_laptop, 1, WAIT).await;
    assert_eq!(copy.len(), 1, "alice's second device got a copy");
    assert_eq!(copy[0].message_id, ack.message_id);

    // bob (gateway 2) -> alice (gateway 1): both of alice's devices.
    let ack = bob.send_to(alice_id, "hi alice", "c2").await.expect("send");
    for dev in [&mut alice, &mut alice_laptop] {
        let got = receive(dev, 1, WAIT).await;
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].message_id, got[0].body.as_str()),
            (ack.message_id, "hi alice")
        );
    }

    // bob goes offline; alice sends 20 more; bob comes back and syncs.
    drop(bob);
    let mut sent = Vec::new();
    for i in 0..20 {
        let ack = alice
            .send_to(bob_id, &format!("offline {i}"), "")
            .await
            .expect("send");
        sent.push(ack.message_id);
    }
    let mut bob = login(&g1, "bob", "bob-phone", DeviceKind::Mobile).await;
    let mut got: Vec<_> = bob.sync().await.expect("sync");
    // Acknowledged but not yet written messages arrive with the commit notice.
    let need = 22usize.saturating_sub(got.len());
    got.extend(receive(&mut bob, need, WAIT).await);
    let ids: Vec<u64> = got.iter().map(|m| m.message_id).collect();
    assert_eq!(ids.len(), 22, "every message once: {ids:?}");
    assert_eq!(&ids[2..], &sent[..], "the offline ones in send order");
    let seqs: Vec<u64> = got.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=22).collect::<Vec<u64>>(), "sequences 1..=22 in order");
    assert_quiet(&mut bob, Duration::from_millis(500)).await;

    // History: newest first, pages.
    let conv = got[0].conversation_id.clone();
    let page = bob.history(&conv, 0, 5).await.expect("history");
    assert_eq!(
        page.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![22, 21, 20, 19, 18]
    );
    let page = bob.history(&conv, 18, 5).await.expect("history");
    assert_eq!(page[0].seq, 17);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_beyond_the_policy_kicks_the_right_device() {
    let cluster = Cluster::start(2).await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    register(&g1, "carol").await;
    let mut phone1 = login(&g1, "carol", "phone-1", DeviceKind::Mobile).await;
    let mut desktop = login(&g1, "carol", "desk", DeviceKind::Desktop).await;
    // one_per_kind (the default): a second phone, on the other gateway,
    // kicks the first phone and leaves the desktop alone.
    let mut phone2 = login(&g2, "carol", "phone-2", DeviceKind::Mobile).await;
    match tokio::time::timeout(WAIT, phone1.next_event()).await {
        Ok(Some(Event::Kicked(k))) => {
            assert_eq!(k.reason, confab_client::proto::KickReason::Policy as i32);
            assert_eq!(k.by_device_id, "phone-2");
        }
        other => panic!("phone-1 expected a kick, got {other:?}"),
    }
    // Then the connection closes.
    let end = tokio::time::timeout(WAIT, phone1.next_event())
        .await
        .expect("closed in time");
    assert!(matches!(end, None | Some(Event::Closed(_))), "{end:?}");
    assert_quiet(&mut desktop, Duration::from_millis(300)).await;
    assert!(phone2.sync().await.is_ok());
    assert!(desktop.sync().await.is_ok(), "the desktop is still logged in");

    // The same device id logging in again replaces its own session.
    let mut desk_again = login(&g2, "carol", "desk", DeviceKind::Desktop).await;
    match tokio::time::timeout(WAIT, desktop.next_event()).await {
        Ok(Some(Event::Kicked(k))) => {
            assert_eq!(k.reason, confab_client::proto::KickReason::SameDevice as i32)
        }
        other => panic!("desktop expected a kick, got {other:?}"),
    }
    assert!(desk_again.sync().await.is_ok());

    // Resume with the token of a device.
    let token = desk_again.me.as_ref().expect("logged in").token.clone();
    drop(desk_again);
    let mut resumed = confab_client::Client::connect(&g1).await.expect("connect");
    let ok = resumed
        .resume(&token, "desk", DeviceKind::Desktop)
        .await
        .expect("resume");
    assert_eq!(ok.name, "carol");
}
