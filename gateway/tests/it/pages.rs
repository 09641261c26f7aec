//! Every list answer comes in pages: 1,000 friends and 1,000 group members
//! paged through return each exactly once; a request without a page (an
//! older client) gets the first page and the "more" marker; a page asked
//! larger than the maximum gets the maximum; the client library follows
//! the pages (friends, members, groups, join requests, sync).

use std::collections::BTreeSet;

use confab_client::DeviceKind;
use confab_client::proto::frame::Body;
use confab_client::proto::{self as pb};
use confab_proto::persist::{self as db};
use futures::future::join_all;

use crate::harness::{Cluster, login, register};

const N: usize = 1000;

async fn request(c: &confab_client::Client, body: Body) -> Body {
    c.conn.request(body).await.expect("answer")
}

/// A user made straight through persist; "busy, retry in N ms" (too many
/// password hashes at once on a loaded machine) is waited out and tried
/// again, as the gateway's callers do.
async fn create_user(
    d: &mut db::data_service_client::DataServiceClient<tonic::transport::Channel>,
    name: String,
) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let request = db::CreateUserRequest {
            name: name.clone(),
            password: "pw".into(),
        };
        match d.create_user(request).await {
            Ok(r) => return r.into_inner().id,
            Err(s) if s.code() == tonic::Code::ResourceExhausted && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(s) => panic!("user {name}: {s}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_paged_and_each_item_comes_once() {
    let cluster = Cluster::start(1).await;
    let g1 = cluster.gw(1).to_owned();
    let alice_id = register(&g1, "alice").await;
    let mut data = db::data_service_client::DataServiceClient::connect(format!("http://{}", cluster.persist))
        .await
        .expect("connect to persist");
    let group = data
        .create_group(db::CreateGroupRequest {
            owner: alice_id,
            name: "big".into(),
        })
        .await
        .expect("group")
        .into_inner();
    // N users, each alice's friend and a member of her group, straight
    // through persist.
    let mut ids = Vec::new();
    for chunk in (0..N).collect::<Vec<_>>().chunks(50) {
        let made = join_all(chunk.iter().map(|i| {
            let mut d = data.clone();
            async move {
                let id = create_user(&mut d, format!("u{i:04}")).await;
                d.send_friend_request(db::SendFriendRequestRequest {
                    from_user: id,
                    to_user: alice_id,
                    note: String::new(),
                })
                .await
                .expect("friend request");
                d.respond_friend_request(db::RespondFriendRequestRequest {
                    user: alice_id,
                    from_user: id,
                    accept: true,
                })
                .await
                .expect("accept");
                d.request_join(db::RequestJoinRequest {
                    group_id: group.id,
                    user: id,
                    note: String::new(),
                })
                .await
                .expect("join request");
                id
            }
        }))
        .await;
        ids.extend(made);
    }
    // Half of the join requests are approved: 500 members + alice, 500
    // requests still pending.
    for chunk in ids[..N / 2].chunks(50) {
        join_all(chunk.iter().map(|&id| {
            let mut d = data.clone();
            async move {
                d.respond_join(db::RespondJoinRequest {
                    group_id: group.id,
                    user: id,
                    by_user: alice_id,
                    accept: true,
                })
                .await
                .expect("approve")
            }
        }))
        .await;
    }
    let alice = login(&g1, "alice", "alice-phone", DeviceKind::Mobile).await;

    // An older client: no page asked, the first page and the marker.
    let Body::Friends(first) =
        request(&alice, Body::ListFriends(pb::ListFriendsRequest { page: None })).await
    else {
        panic!("expected Friends")
    };
    assert_eq!(first.friends.len(), 100, "the default page size");
    assert!(first.page.as_ref().expect("page info").more, "more follow");

    // By hand, 150 at a time: each friend exactly once, in name order.
    let mut seen = Vec::new();
    let mut page = pb::PageRequest {
        cursor: String::new(),
        limit: 150,
    };
    let mut pages = 0;
    loop {
        let Body::Friends(f) = request(
            &alice,
            Body::ListFriends(pb::ListFriendsRequest {
                page: Some(page.clone()),
            }),
        )
        .await
        else {
            panic!("expected Friends")
        };
        pages += 1;
        assert!(f.friends.len() <= 150);
        seen.extend(
            f.friends
                .iter()
                .map(|f| f.user.as_ref().expect("user").name.clone()),
        );
        let info = f.page.expect("page info");
        if !info.more {
            break;
        }
        page.cursor = info.next_cursor;
    }
    assert_eq!(pages, N.div_ceil(150));
    let expected: Vec<String> = (0..N).map(|i| format!("u{i:04}")).collect();
    assert_eq!(seen, expected, "every friend once, in order");

    // Asking for more than the maximum gets the maximum (1000 by default).
    let Body::Members(m) = request(
        &alice,
        Body::ListMembers(pb::ListMembersRequest {
            group_id: group.id,
            page: Some(pb::PageRequest {
                cursor: String::new(),
                limit: 1_000_000,
            }),
        }),
    )
    .await
    else {
        panic!("expected Members")
    };
    assert_eq!(m.members.len(), N / 2 + 1, "under the maximum: all in one page");
    assert!(!m.page.expect("page info").more);

    // The library follows the pages.
    let friends: Vec<u64> = alice
        .friends()
        .await
        .expect("friends")
        .iter()
        .map(|f| f.user.as_ref().expect("user").user_id)
        .collect();
    assert_eq!(friends.len(), N);
    assert_eq!(friends.iter().collect::<BTreeSet<_>>().len(), N, "no duplicates");
    let members = alice.members(group.id).await.expect("members");
    let member_ids: BTreeSet<u64> = members
        .iter()
        .map(|m| m.user.as_ref().expect("user").user_id)
        .collect();
    assert_eq!(members.len(), N / 2 + 1);
    let mut want: BTreeSet<u64> = ids[..N / 2].iter().copied().collect();
    want.insert(alice_id);
    assert_eq!(member_ids, want, "every member once");
    let requests = alice.join_requests(group.id).await.expect("join requests");
    let requesters: BTreeSet<u64> = requests
        .iter()
        .map(|r| r.user.as_ref().expect("user").user_id)
        .collect();
    assert_eq!(requests.len(), N / 2);
    assert_eq!(
        requesters,
        ids[N / 2..].iter().copied().collect(),
        "every request once"
    );
    let groups = alice.groups().await.expect("groups");
    assert_eq!(groups.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_small_pages_are_followed_by_the_library() {
    let mut cluster = Cluster::start(0).await;
    cluster
        .start_gateway_with_env(
            1,
            &[
                ("CONFAB_USER_LIMITS__PAGE_SIZE", "3"),
                ("CONFAB_USER_LIMITS__MAX_PAGE_SIZE", "4"),
                ("CONFAB_ALLOW_STRANGERS", "true"),
            ],
        )
        .await;
    let g1 = cluster.gw(1).to_owned();
    let bob_id = register(&g1, "bob").await;
    let mut senders = Vec::new();
    for i in 0..10 {
        let name = format!("s{i}");
        register(&g1, &name).await;
        senders.push(login(&g1, &name, &format!("{name}-phone"), DeviceKind::Bot).await);
    }
    let mut sent = BTreeSet::new();
    for s in senders.iter_mut() {
        sent.insert(s.send_to(bob_id, "hello", "").await.expect("send").message_id);
    }
    let creator = &senders[0];
    for i in 0..7 {
        creator.create_group(&format!("g{i}")).await.expect("group");
    }
    // Ten conversations moved for bob: four pages of at most three.
    let mut bob = login(&g1, "bob", "bob-phone", DeviceKind::Mobile).await;
    // Acknowledged is not yet written: once more than a page is, the first
    // page is full and says there is more (and never holds more than 3).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let Body::SyncReply(first) = request(
            &bob,
            Body::Sync(pb::SyncRequest {
                since: 0,
                page: None,
                ..Default::default()
            }),
        )
        .await
        else {
            panic!("expected SyncReply")
        };
        assert!(first.conversations.len() <= 3, "{first:?}");
        if first.conversations.len() == 3 && first.page.as_ref().is_some_and(|p| p.more) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no full first page with more: {first:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut got = BTreeSet::new();
    // Sent messages are acknowledged before they are written: sync until
    // all are there (each once).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while got != sent {
        for m in bob.sync().await.expect("sync") {
            assert!(got.insert(m.message_id), "a message twice");
        }
        assert!(std::time::Instant::now() < deadline, "synced {got:?} of {sent:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        creator.groups().await.expect("groups").len(),
        7,
        "seven groups over three pages"
    );
    let Body::Groups(page) = request(
        creator,
        Body::ListGroups(pb::ListGroupsRequest {
            page: Some(pb::PageRequest {
                cursor: String::new(),
                limit: 100,
            }),
        }),
    )
    .await
    else {
        panic!("expected Groups")
    };
    assert_eq!(page.groups.len(), 4, "the maximum page, whatever is asked");
}
