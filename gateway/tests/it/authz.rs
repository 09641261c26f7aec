//! Authorization with forged ids: another user's group, another pair's
//! conversation, groups that do not exist. Every refusal is a clear
//! FORBIDDEN (or NOT_FOUND for a group one asks to join) and nothing of the
//! conversation leaks into the answer.

use confab_client::proto::frame::Body;
use confab_client::proto::{self as pb};
use confab_client::{Client, DeviceKind, ErrorCode};

use crate::friends::{WAIT, code};
use crate::harness::{Cluster, login, receive, register};

const SECRET: &str = "the secret plan";

async fn fetch(c: &Client, conversation: &str) -> confab_client::Result<Body> {
    c.conn
        .request(Body::Fetch(pb::FetchRequest {
            conversation_id: conversation.into(),
            after_seq: 0,
            limit: 100,
            min_message_id: 0,
        }))
        .await
}

fn forbidden_without_leak(r: confab_client::Result<impl std::fmt::Debug>, what: &str) {
    match r {
        Err(confab_client::Error::Server { code, message }) => {
            assert_eq!(code, ErrorCode::Forbidden, "{what}: {message}");
            assert!(!message.contains(SECRET), "{what} leaked: {message}");
            assert!(
                !message.contains("rustaceans"),
                "{what} leaked the group name: {message}"
            );
        }
        other => panic!("{what}: expected FORBIDDEN, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_ids_get_a_clear_permission_error_and_nothing_leaks() {
    let cluster = Cluster::start(2).await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    let alice_id = register(&g1, "alice").await;
    let bob_id = register(&g2, "bob").await;
    let carol_id = register(&g1, "carol").await;
    let eve_id = register(&g2, "eve").await;
    cluster.befriend("alice", "bob").await;
    let mut alice = login(&g1, "alice", "a", DeviceKind::Mobile).await;
    let mut bob = login(&g2, "bob", "b", DeviceKind::Mobile).await;
    let carol = login(&g1, "carol", "c", DeviceKind::Mobile).await;
    let mut eve = login(&g2, "eve", "e", DeviceKind::Mobile).await;

    let gid = alice.create_group("rustaceans").await.expect("group").group_id;
    alice.invite(gid, "bob").await.expect("invite bob");
    alice.invite(gid, "carol").await.expect("invite carol");
    bob.accept_invite(gid).await.expect("bob accepts");
    carol.accept_invite(gid).await.expect("carol accepts");
    alice.promote(gid, carol_id).await.expect("carol admin");
    let ack = alice.send_to(bob_id, SECRET, "").await.expect("1:1");
    let direct = ack.conversation_id;
    alice.group_send(gid, SECRET, "").await.expect("group message");
    assert_eq!(receive(&mut bob, 2, WAIT).await.len(), 2);
    let group_conv = format!("g:{gid}");

    // eve reads nothing: a pair she is not in, a group she is not in, a
    // group that does not exist (same answer: nothing told about it).
    forbidden_without_leak(eve.history(&direct, 0, 10).await, "history of another pair");
    forbidden_without_leak(fetch(&eve, &direct).await, "fetch of another pair");
    forbidden_without_leak(eve.history(&group_conv, 0, 10).await, "history of another group");
    forbidden_without_leak(fetch(&eve, &group_conv).await, "fetch of another group");
    forbidden_without_leak(eve.group_history(999_999, 0, 10).await, "history of no group");
    forbidden_without_leak(fetch(&eve, "g:999999").await, "fetch of no group");
    let forged = format!("d:{}:{}", eve_id.min(alice_id), eve_id.max(alice_id));
    assert!(
        eve.history(&forged, 0, 10)
            .await
            .expect("her own pair")
            .is_empty(),
        "a pair of her own is empty, not someone else's"
    );
    let synced = eve.sync().await.expect("sync");
    assert!(synced.is_empty(), "sync lists nothing of others: {synced:?}");

    // eve acts on a group she is not in.
    forbidden_without_leak(eve.group_send(gid, "spam", "").await, "send to another group");
    forbidden_without_leak(eve.members(gid).await, "members of another group");
    forbidden_without_leak(eve.join_requests(gid).await, "join requests of another group");
    forbidden_without_leak(eve.invite(gid, "eve").await, "invite herself");
    forbidden_without_leak(eve.approve(gid, eve_id).await, "approve herself");
    forbidden_without_leak(eve.remove_member(gid, bob_id).await, "remove a member");
    forbidden_without_leak(eve.promote(gid, eve_id).await, "promote herself");
    forbidden_without_leak(eve.delete_group(gid).await, "delete another's group");
    forbidden_without_leak(eve.leave_group(gid).await, "leave a group she is not in");
    let e = eve.join_group(999_999, "").await.expect_err("no such group");
    assert_eq!(code(e), Some(ErrorCode::NotFound));
    let e = eve.accept_invite(gid).await.expect_err("no invitation");
    assert_eq!(code(e), Some(ErrorCode::FailedPrecondition));

    // 1:1 needs friendship (allow_strangers is off by default).
    forbidden_without_leak(eve.send_to(alice_id, "hi", "").await, "message a stranger");

    // A plain member (bob) does not approve, invite, remove, promote or
    // delete; an admin (carol) does not promote, delete or remove the owner.
    eve.join_group(gid, "").await.expect("eve asks to join");
    forbidden_without_leak(bob.approve(gid, eve_id).await, "a member approves");
    forbidden_without_leak(bob.join_requests(gid).await, "a member lists requests");
    forbidden_without_leak(bob.invite(gid, "eve").await, "a member invites");
    forbidden_without_leak(bob.remove_member(gid, carol_id).await, "a member removes");
    forbidden_without_leak(bob.promote(gid, bob_id).await, "a member promotes");
    forbidden_without_leak(bob.delete_group(gid).await, "a member deletes");
    forbidden_without_leak(carol.promote(gid, bob_id).await, "an admin promotes");
    forbidden_without_leak(carol.delete_group(gid).await, "an admin deletes");
    forbidden_without_leak(
        carol.remove_member(gid, alice_id).await,
        "an admin removes the owner",
    );
    // The refused requests changed nothing.
    let members = alice.members(gid).await.expect("members");
    assert_eq!(members.len(), 3);
    assert_eq!(alice.join_requests(gid).await.expect("requests").len(), 1);

    // eve is denied, and still reads nothing.
    carol.deny(gid, eve_id).await.expect("an admin denies");
    forbidden_without_leak(eve.history(&group_conv, 0, 10).await, "history after a denial");
    // eve's own messages stay out of others' conversations.
    assert!(bob.sync().await.expect("sync").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_strangers_lets_non_friends_chat() {
    let mut cluster = Cluster::start(0).await;
    cluster
        .start_gateway_with_env(1, &[("CONFAB_ALLOW_STRANGERS", "true")])
        .await;
    let g = cluster.gw(1).to_owned();
    register(&g, "tom").await;
    let una_id = register(&g, "una").await;
    let mut tom = login(&g, "tom", "t", DeviceKind::Mobile).await;
    let mut una = login(&g, "una", "u", DeviceKind::Mobile).await;
    tom.send_to(una_id, "hello stranger", "").await.expect("allowed");
    let got = receive(&mut una, 1, WAIT).await;
    assert_eq!(got[0].body, "hello stranger");
    // Reading stays limited to participants.
    let vic = {
        register(&g, "vic").await;
        login(&g, "vic", "v", DeviceKind::Mobile).await
    };
    forbidden_without_leak(
        vic.history(&got[0].conversation_id, 0, 10).await,
        "a third user reads",
    );
}
