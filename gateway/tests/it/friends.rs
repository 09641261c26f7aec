//! Friends across two gateways: search, requests with their pushes (live,
//! or listed at the next login), accept / decline / remove, the friend list
//! with presence, presence pushes on login and logout, and on a gateway
//! killed with SIGKILL.

use std::time::Duration;

use confab_client::proto::{FriendEvent, FriendEventKind, GroupEvent, GroupEventKind, PresenceChanged};
use confab_client::{Client, DeviceKind, ErrorCode, Update};

use crate::harness::{Cluster, LEASE_MS, login, receive, register};

pub const WAIT: Duration = Duration::from_secs(10);

/// The next update `pick` accepts (others are skipped); panics after `within`.
pub async fn wait_for<T>(
    c: &mut Client,
    within: Duration,
    what: &str,
    mut pick: impl FnMut(Update) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, c.next_update()).await {
            Ok(Some(u)) => {
                if let Some(t) = pick(u) {
                    return t;
                }
            }
            Ok(None) => panic!("connection closed while waiting for {what}"),
            Err(_) => panic!("timed out after {within:?} waiting for {what}"),
        }
    }
}

pub async fn friend_event(c: &mut Client, kind: FriendEventKind) -> FriendEvent {
    wait_for(c, WAIT, &format!("friend event {kind:?}"), |u| match u {
        Update::Friend(e) if e.kind == kind as i32 => Some(e),
        _ => None,
    })
    .await
}

pub async fn group_event(c: &mut Client, kind: GroupEventKind) -> GroupEvent {
    wait_for(c, WAIT, &format!("group event {kind:?}"), |u| match u {
        Update::Group(e) if e.kind == kind as i32 => Some(e),
        _ => None,
    })
    .await
}

/// The next presence push about `uid` that satisfies `ok`.
pub async fn presence(
    c: &mut Client,
    uid: u64,
    within: Duration,
    what: &str,
    ok: impl Fn(&PresenceChanged) -> bool,
) -> PresenceChanged {
    wait_for(c, within, what, |u| match u {
        Update::Presence(p) if p.user_id == uid && ok(&p) => Some(p),
        _ => None,
    })
    .await
}

pub fn code(e: confab_client::Error) -> Option<ErrorCode> {
    e.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friend_flow_with_pushes_and_presence() {
    let cluster = Cluster::start(2).await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    let alice_id = register(&g1, "alice").await;
    let bob_id = register(&g2, "bob").await;
    register(&g1, "carol").await;
    for n in ["sam1", "sam2", "sam3"] {
        register(&g1, n).await;
    }
    let mut alice = login(&g1, "alice", "alice-phone", DeviceKind::Mobile).await;
    let mut bob = login(&g2, "bob", "bob-phone", DeviceKind::Mobile).await;

    // Search by prefix, paged.
    let page = alice.search_users("sam", "", 2).await.expect("search");
    let names: Vec<&str> = page.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, vec!["sam1", "sam2"]);
    let page = alice.search_users("sam", "sam2", 2).await.expect("next page");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].name, "sam3");
    assert_eq!(
        alice.search_users("bo", "", 0).await.expect("search")[0].user_id,
        bob_id
    );

    // Strangers cannot chat.
    let e = alice.send_to(bob_id, "hi?", "").await.expect_err("not friends");
    assert_eq!(code(e), Some(ErrorCode::Forbidden));

    // A request is pushed live to the other gateway; the accept comes back.
    let r = alice.add_friend("bob", "hi bob").await.expect("request");
    assert!(!r.became_friends);
    let e = friend_event(&mut bob, FriendEventKind::Requested).await;
    assert_eq!(e.user.as_ref().map(|u| u.user_id), Some(alice_id));
    assert_eq!(e.note, "hi bob");
    let pending = bob.friend_requests().await.expect("requests");
    assert_eq!(pending.incoming.len(), 1);
    assert_eq!(
        pending.incoming[0].from.as_ref().map(|u| u.name.as_str()),
        Some("alice")
    );
    bob.accept_friend("alice").await.expect("accept");
    let e = friend_event(&mut alice, FriendEventKind::Accepted).await;
    assert_eq!(e.user.as_ref().map(|u| u.user_id), Some(bob_id));

    // The friend list with presence (a batch lookup in the routers).
    let friends = alice.friends().await.expect("friends");
    assert_eq!(friends.len(), 1);
    assert!(friends[0].online);
    assert_eq!(friends[0].devices.len(), 1);
    assert_eq!(friends[0].devices[0].device_id, "bob-phone");
    alice
        .send_to(bob_id, "now we talk", "")
        .await
        .expect("friends chat");
    assert_eq!(receive(&mut bob, 1, WAIT).await.len(), 1);

    // A request to someone offline is seen at its next login; a decline
    // is pushed back.
    alice.add_friend("carol", "").await.expect("request to carol");
    let carol = login(&g2, "carol", "carol-phone", DeviceKind::Mobile).await;
    let pending = carol.friend_requests().await.expect("carol's requests");
    assert_eq!(pending.incoming.len(), 1);
    assert_eq!(
        pending.incoming[0].from.as_ref().map(|u| u.user_id),
        Some(alice_id)
    );
    carol.decline_friend("alice").await.expect("decline");
    let e = friend_event(&mut alice, FriendEventKind::Declined).await;
    assert_eq!(e.user.as_ref().map(|u| u.name.as_str()), Some("carol"));
    assert_eq!(alice.friends().await.expect("friends").len(), 1, "still only bob");

    // Presence: a second device of bob (other gateway), then logouts.
    let mut bob_laptop = login(&g1, "bob", "bob-laptop", DeviceKind::Desktop).await;
    presence(&mut alice, bob_id, WAIT, "bob's second device", |p| {
        p.online && p.devices.len() == 2
    })
    .await;
    drop(bob);
    let p = presence(&mut alice, bob_id, WAIT, "bob's phone gone", |p| {
        p.devices.len() == 1
    })
    .await;
    assert!(p.online, "online while any device is");
    assert_eq!(p.devices[0].device_id, "bob-laptop");
    bob_laptop.logout().await.expect("logout");
    presence(&mut alice, bob_id, WAIT, "bob offline", |p| !p.online).await;
    let friends = alice.friends().await.expect("friends");
    assert!(!friends[0].online && friends[0].devices.is_empty());

    // bob comes back and sees alice online; then removes her.
    let mut bob = login(&g2, "bob", "bob-phone", DeviceKind::Mobile).await;
    presence(&mut alice, bob_id, WAIT, "bob back", |p| p.online).await;
    let friends = bob.friends().await.expect("bob's friends");
    assert_eq!(friends.len(), 1);
    assert!(friends[0].online, "alice is online");
    bob.remove_friend("alice").await.expect("remove");
    let e = friend_event(&mut alice, FriendEventKind::Removed).await;
    assert_eq!(e.user.as_ref().map(|u| u.user_id), Some(bob_id));
    assert!(alice.friends().await.expect("friends").is_empty());
    let e = alice
        .send_to(bob_id, "still there?", "")
        .await
        .expect_err("not friends");
    assert_eq!(code(e), Some(ErrorCode::Forbidden));
    let e = bob
        .remove_friend("alice")
        .await
        .expect_err("not friends any more");
    assert_eq!(code(e), Some(ErrorCode::FailedPrecondition));
    // Crossing requests make friends at once.
    bob.add_friend("alice", "").await.expect("bob asks");
    let r = alice.add_friend("bob", "").await.expect("alice asks too");
    assert!(r.became_friends);
    friend_event(&mut bob, FriendEventKind::Accepted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_see_a_killed_gateways_users_go_offline() {
    let mut cluster = Cluster::start(2).await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    register(&g1, "kim").await;
    let lee_id = register(&g1, "lee").await;
    let max_id = register(&g1, "max").await;
    cluster.befriend("kim", "lee").await;
    cluster.befriend("kim", "max").await;
    let mut kim = login(&g1, "kim", "kim-phone", DeviceKind::Mobile).await;
    let _lee = login(&g2, "lee", "lee-phone", DeviceKind::Mobile).await;
    let _max_phone = login(&g2, "max", "max-phone", DeviceKind::Mobile).await;
    let _max_desk = login(&g1, "max", "max-desk", DeviceKind::Desktop).await;
    for uid in [lee_id, max_id] {
        presence(&mut kim, uid, WAIT, "friend online", |p| p.online).await;
    }
    // Wait until kim's gateway saw max's second device (both devices known).
    let friends = kim.friends().await.expect("friends");
    assert!(friends.iter().all(|f| f.online), "{friends:?}");

    cluster.kill("gateway-2");
    let started = std::time::Instant::now();
    // Within the lease (plus a poll and the purge): lee offline, max still
    // online on the desktop that lives on gateway 1.
    let within = Duration::from_millis(LEASE_MS * 3 + 2_000);
    presence(&mut kim, lee_id, within, "lee offline after the kill", |p| {
        !p.online
    })
    .await;
    let took = started.elapsed();
    let friends = kim.friends().await.expect("friends");
    let lee = friends
        .iter()
        .find(|f| f.user.as_ref().is_some_and(|u| u.user_id == lee_id));
    assert!(lee.is_some_and(|f| !f.online), "the routers agree: {friends:?}");
    let max = friends
        .iter()
        .find(|f| f.user.as_ref().is_some_and(|u| u.user_id == max_id));
    assert!(
        max.is_some_and(|f| f.online && f.devices.len() == 1 && f.devices[0].device_id == "max-desk"),
        "{friends:?}"
    );
    eprintln!("lee shown offline {took:?} after the SIGKILL (lease {LEASE_MS} ms)");
}
