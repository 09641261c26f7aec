//! Recalls across two gateways: every device of both users is told (the
//! recalling one answered), history shows the message recalled with its
//! body gone, a device offline during the recall finds it by sync; a
//! repeat answers the same; another's message, an unknown one and one past
//! the window (a gateway with a short window) are refused; a group's
//! members are told too.

use std::time::Duration;

use confab_client::proto::Recalled;
use confab_client::{Client, Connection, DeviceKind, ErrorCode, Event};

use crate::friends::{WAIT, code};
use crate::harness::{Cluster, login, receive, register};
use crate::read_receipts::state_of;

async fn recalled(c: &mut Client, what: &str) -> Recalled {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, c.next_event()).await {
            Ok(Some(Event::Recalled(r))) => return r,
            Ok(Some(Event::Message(_))) => {}
            Ok(other) => panic!("{what}: unexpected {other:?}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_reaches_every_device_and_history() {
    let mut cluster = Cluster::start(2).await;
    cluster
        .start_gateway_with_env(3, &[("CONFAB_USER_LIMITS__RECALL_WINDOW_MS", "1000")])
        .await;
    let (g1, g2, g3) = (
        cluster.gw(1).to_owned(),
        cluster.gw(2).to_owned(),
        cluster.gw(3).to_owned(),
    );
    let alice = register(&g1, "alice").await;
    register(&g2, "bob").await;
    cluster.befriend("alice", "bob").await;

    let mut a1 = login(&g1, "alice", "alice-phone", DeviceKind::Mobile).await;
    let mut a2 = login(&g2, "alice", "alice-laptop", DeviceKind::Desktop).await;
    let mut b1 = login(&g2, "bob", "bob-phone", DeviceKind::Mobile).await;
    let mut b2 = login(&g1, "bob", "bob-laptop", DeviceKind::Desktop).await;

    let first = a1.send_to_name("bob", "keep this", "").await.expect("send");
    let ack = a1
        .send_to_name("bob", "oops, wrong chat", "")
        .await
        .expect("send");
    let conv = ack.conversation_id.clone();
    assert_eq!(receive(&mut b1, 2, WAIT).await.len(), 2);
    assert_eq!(receive(&mut b2, 2, WAIT).await.len(), 2);
    assert_eq!(receive(&mut a2, 2, WAIT).await.len(), 2, "alice's copies");
    // bob's laptop has seen both, then goes offline (its connection drops).
    state_of(&b2, &conv, |s| s.seq == 2).await;
    b2.conn.close();

    // At once after the ack: the recall waits for the message to be written.
    let r = a1.recall(ack.message_id).await.expect("recall");
    assert_eq!(
        (r.message_id, r.by, r.seq, r.conversation_id.as_str()),
        (ack.message_id, alice, 3, conv.as_str())
    );
    for (c, who) in [(&mut b1, "bob's phone"), (&mut a2, "alice's laptop")] {
        let got = recalled(c, who).await;
        assert_eq!(
            (got.message_id, got.entry_id, got.by),
            (r.message_id, r.entry_id, alice),
            "{who}"
        );
    }
    let page = b1.history(&conv, 0, 10).await.expect("history");
    let gone = page
        .iter()
        .find(|m| m.message_id == ack.message_id)
        .expect("listed");
    assert!(gone.recalled && gone.body.is_empty(), "{gone:?}");
    let kept = page
        .iter()
        .find(|m| m.message_id == first.message_id)
        .expect("kept");
    assert_eq!((kept.body.as_str(), kept.recalled), ("keep this", false));
    let entry = page
        .iter()
        .find(|m| m.recall_of == ack.message_id)
        .expect("the entry");
    assert_eq!((entry.seq, entry.sender, entry.body.as_str()), (3, alice, ""));
    let s = state_of(&b1, &conv, |s| s.seq == 3).await;
    assert_eq!(
        s.unread_count, 1,
        "the recalled message and the entry are not unread"
    );

    // bob's laptop comes back: its sync brings the recall.
    let back = b2
        .reconnect(Connection::connect(&g1).await.expect("connect"))
        .await
        .expect("reconnect");
    let entries: Vec<_> = back.messages.iter().filter(|m| m.recall_of != 0).collect();
    assert_eq!(entries.len(), 1, "{:?}", back.messages);
    assert_eq!((entries[0].recall_of, entries[0].seq), (ack.message_id, 3));

    // Again: the same answer; others' and unknown messages are refused.
    let again = a2.recall(ack.message_id).await.expect("recall again");
    assert_eq!((again.entry_id, again.seq), (r.entry_id, r.seq));
    let e = b1.recall(first.message_id).await.expect_err("alice's message");
    assert_eq!(code(e), Some(ErrorCode::Forbidden));
    let e = a1.recall(first.message_id + 999_999).await.expect_err("unknown");
    assert_eq!(code(e), Some(ErrorCode::NotFound));
    let e = a1.recall(r.entry_id).await.expect_err("an entry");
    assert_eq!(code(e), Some(ErrorCode::InvalidArgument));
    let e = a1.recall(0).await.expect_err("no id");
    assert_eq!(code(e), Some(ErrorCode::InvalidArgument));

    // Past the window (gateway 3 allows 1 s): refused, nothing changed.
    let mut a3 = login(&g3, "alice", "alice-web", DeviceKind::Web).await;
    let late = a3
        .send_to_name("bob", "too late to take back", "")
        .await
        .expect("send");
    state_of(&a3, &conv, |s| s.seq == 4).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let e = a3.recall(late.message_id).await.expect_err("past the window");
    assert_eq!(code(e), Some(ErrorCode::RecallWindowPassed));
    let page = a3.history(&conv, 0, 1).await.expect("history");
    assert_eq!(
        (page[0].body.as_str(), page[0].recalled),
        ("too late to take back", false)
    );

    // A group: every member's devices are told.
    let g = a1.create_group("takebacks").await.expect("group");
    a1.invite(g.group_id, "bob").await.expect("invite");
    b1.accept_invite(g.group_id).await.expect("join");
    let sent = a1
        .group_send(g.group_id, "to the group", "")
        .await
        .expect("group send");
    let r = a1.recall(sent.message_id).await.expect("group recall");
    let got = recalled(&mut b1, "bob in the group").await;
    assert_eq!(
        (got.message_id, got.conversation_id.as_str()),
        (sent.message_id, r.conversation_id.as_str())
    );
    let got = recalled(&mut a2, "alice's other device in the group").await;
    assert_eq!(got.message_id, sent.message_id);
}
