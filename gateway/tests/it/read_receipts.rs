//! Read marks and typing across two gateways, a user with two devices:
//! unread counts in sync before and after a read, receipts pushed to the
//! other user and to the reader's other device, the same state after
//! logging out and in on another device; typing reaches the other user,
//! is rate limited per conversation and refused to strangers.

use std::time::Duration;

use confab_client::proto::{ConversationState, ReadReceipt, Typing};
use confab_client::{Client, DeviceKind, ErrorCode, Peer, Update};

use crate::friends::{WAIT, code, wait_for};
use crate::harness::{Cluster, login, register};

/// The state of `conversation` as `c`'s sync lists it, once `ok` holds
/// (the writer commits a little after the send's ack).
pub async fn state_of(
    c: &Client,
    conversation: &str,
    ok: impl Fn(&ConversationState) -> bool,
) -> ConversationState {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = c.conversations().await.expect("sync");
        if let Some(s) = list.into_iter().find(|s| s.conversation_id == conversation)
            && ok(&s)
        {
            return s;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{conversation} never got the expected state");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn receipt(c: &mut Client, what: &str) -> ReadReceipt {
    wait_for(c, WAIT, what, |u| match u {
        Update::Receipt(r) => Some(r),
        _ => None,
    })
    .await
}

async fn receipt_or_typing(c: &mut Client, what: &str) -> Result<ReadReceipt, Typing> {
    wait_for(c, WAIT, what, |u| match u {
        Update::Receipt(r) => Some(Ok(r)),
        Update::Typing(t) => Some(Err(t)),
        _ => None,
    })
    .await
}

fn direct(a: u64, b: u64) -> String {
    format!("d:{}:{}", a.min(b), a.max(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_marks_receipts_unread_counts_and_typing() {
    let cluster = Cluster::start(2).await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    let alice = register(&g1, "alice").await;
    let bob = register(&g2, "bob").await;
    register(&g1, "carol").await;
    cluster.befriend("alice", "bob").await;
    let ab = direct(alice, bob);

    let mut a1 = login(&g1, "alice", "alice-phone", DeviceKind::Mobile).await;
    let mut a2 = login(&g2, "alice", "alice-laptop", DeviceKind::Desktop).await;
    let mut b1 = login(&g2, "bob", "bob-phone", DeviceKind::Mobile).await;
    let carol = login(&g1, "carol", "carol-phone", DeviceKind::Mobile).await;
    for i in 1..=3 {
        b1.send_to_name("alice", &format!("hi {i}"), "")
            .await
            .expect("send");
    }
    let s = state_of(&a1, &ab, |s| s.seq == 3).await;
    assert_eq!((s.read_seq, s.unread_count, s.peer_read_seq), (0, 3, 0));
    let s = state_of(&b1, &ab, |s| s.seq == 3).await;
    assert_eq!(
        (s.unread_count, s.peer_read_seq),
        (0, 0),
        "own messages are not unread"
    );

    // alice reads up to 2 on her phone: bob and her laptop (the other
    // gateway) are told.
    let r = a1.mark_read(&Peer::Name("bob".into()), 2).await.expect("read");
    assert_eq!(
        (r.conversation_id.as_str(), r.reader, r.read_seq),
        (ab.as_str(), alice, 2)
    );
    let got = receipt(&mut b1, "bob gets alice's receipt").await;
    assert_eq!(
        (got.reader, got.read_seq, got.conversation_id.as_str()),
        (alice, 2, ab.as_str())
    );
    let got = receipt(&mut a2, "alice's laptop gets her receipt").await;
    assert_eq!((got.reader, got.read_seq), (alice, 2));
    let s = state_of(&a1, &ab, |_| true).await;
    assert_eq!((s.read_seq, s.unread_count), (2, 1));
    let s = state_of(&b1, &ab, |_| true).await;
    assert_eq!(s.peer_read_seq, 2);

    // Never back; by id; 0 = the newest.
    let r = a2.mark_read(&Peer::Id(bob), 1).await.expect("read back");
    assert_eq!(r.read_seq, 2, "a read mark never moves back");
    let r = a2
        .mark_read(&Peer::Name("bob".into()), 0)
        .await
        .expect("read all");
    assert_eq!(r.read_seq, 3);
    assert_eq!(receipt(&mut b1, "the second receipt").await.read_seq, 3);
    assert_eq!(
        receipt(&mut a1, "alice's phone hears of her laptop's read")
            .await
            .read_seq,
        3
    );
    assert_eq!(state_of(&a2, &ab, |_| true).await.unread_count, 0);

    // Across reconnects and devices: alice logs out and in on a tablet,
    // bob on another gateway; sync shows the same marks.
    a1.logout().await.expect("logout");
    a2.logout().await.expect("logout");
    b1.logout().await.expect("logout");
    let a3 = login(&g2, "alice", "alice-tablet", DeviceKind::Tablet).await;
    let s = state_of(&a3, &ab, |_| true).await;
    assert_eq!((s.seq, s.read_seq, s.unread_count, s.peer_read_seq), (3, 3, 0, 0));
    let mut b2 = login(&g1, "bob", "bob-laptop", DeviceKind::Desktop).await;
    let s = state_of(&b2, &ab, |_| true).await;
    assert_eq!((s.read_seq, s.unread_count, s.peer_read_seq), (0, 0, 3));

    // Bad input and strangers.
    let e = a3
        .mark_read(&Peer::Name("nobody".into()), 0)
        .await
        .expect_err("no such user");
    assert_eq!(code(e), Some(ErrorCode::UserNotFound));
    let e = a3
        .mark_read(&Peer::Group(424_242), 0)
        .await
        .expect_err("no such group");
    assert_eq!(code(e), Some(ErrorCode::Forbidden));
    let e = carol
        .typing(&Peer::Name("alice".into()))
        .await
        .expect_err("a stranger");
    assert_eq!(code(e), Some(ErrorCode::Forbidden));
    use confab_client::proto::{MarkReadRequest, TypingRequest, UserRef, frame::Body};
    let both = Body::MarkRead(MarkReadRequest {
        user: Some(UserRef {
            user_id: bob,
            name: String::new(),
        }),
        group_id: 7,
        seq: 0,
    });
    let e = a3.conn.request(both).await.expect_err("user and group");
    assert_eq!(code(e), Some(ErrorCode::InvalidArgument));
    let e = a3
        .conn
        .request(Body::Typing(TypingRequest::default()))
        .await
        .expect_err("neither");
    assert_eq!(code(e), Some(ErrorCode::InvalidArgument));

    // Typing reaches bob (on the other gateway), not alice's own devices;
    // a second one at once is refused with the wait.
    let mut a4 = login(&g1, "alice", "alice-web", DeviceKind::Web).await;
    a3.typing(&Peer::Name("bob".into())).await.expect("typing");
    let t = wait_for(&mut b2, WAIT, "bob sees alice typing", |u| match u {
        Update::Typing(t) => Some(t),
        _ => None,
    })
    .await;
    assert_eq!((t.user_id, t.conversation_id.as_str()), (alice, ab.as_str()));
    let e = a3.typing(&Peer::Name("bob".into())).await.expect_err("too soon");
    let wait = e.retry_after().expect("a wait");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(2),
        "{wait:?}"
    );
    assert_eq!(code(e), Some(ErrorCode::RateLimited));

    // A group: alice's read goes to her other device, not to bob.
    let g = a3.create_group("readers").await.expect("group");
    a3.invite(g.group_id, "bob").await.expect("invite");
    b2.accept_invite(g.group_id).await.expect("join");
    let ack = b2.group_send(g.group_id, "to all", "").await.expect("group send");
    let gid = ack.conversation_id.clone();
    let s = state_of(&a3, &gid, |s| s.seq == 1).await;
    assert_eq!((s.unread_count, s.peer_read_seq), (1, 0));
    let r = a3
        .mark_read(&Peer::Group(g.group_id), 0)
        .await
        .expect("group read");
    assert_eq!(r.read_seq, 1);
    let got = receipt_or_typing(&mut a4, "alice's other device").await;
    assert_eq!(got.map(|r| r.read_seq).ok(), Some(1));
    a3.typing(&Peer::Group(g.group_id))
        .await
        .expect("typing in the group");
    match receipt_or_typing(&mut b2, "bob sees typing, and no receipt of alice's group read").await {
        Err(t) => assert_eq!((t.user_id, t.conversation_id.as_str()), (alice, gid.as_str())),
        Ok(r) => panic!("a member got another's group receipt: {r:?}"),
    }
    assert_eq!(state_of(&a3, &gid, |_| true).await.unread_count, 0);
    let e = carol
        .typing(&Peer::Group(g.group_id))
        .await
        .expect_err("not a member");
    assert_eq!(code(e), Some(ErrorCode::Forbidden));
}
