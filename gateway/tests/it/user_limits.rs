//! Per-user limits: the message rate (a token bucket per user over all of
//! its connections on a gateway) refuses what is over it with RATE_LIMITED
//! and a retry-after, and every message it accepted is delivered once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use confab_client::proto::ErrorCode;
use confab_client::proto::frame::Body;
use confab_client::proto::{self as pb};
use confab_client::{DeviceKind, Error};
use confab_testkit::http_get;
use futures::future::join_all;

use crate::harness::{Cluster, assert_quiet, login, receive, register};

const WAIT: Duration = Duration::from_secs(10);

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_rate_is_limited_per_user_and_accepted_messages_all_arrive() {
    const RATE: u64 = 5;
    const BURST: u64 = 10;
    let mut cluster = Cluster::start(1).await;
    cluster
        .start_gateway_with_env(
            2,
            &[
                ("CONFAB_USER_LIMITS__MESSAGES_PER_S", "5"),
                ("CONFAB_USER_LIMITS__MESSAGE_BURST", "10"),
            ],
        )
        .await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    let _alice_id = register(&g2, "alice").await;
    let bob_id = register(&g1, "bob").await;
    let carol_id = register(&g1, "carol").await;
    cluster.befriend("alice", "bob").await;
    cluster.befriend("carol", "bob").await;
    // Two connections of alice on the limited gateway share one bucket.
    let phone = login(&g2, "alice", "alice-phone", DeviceKind::Mobile).await;
    let laptop = login(&g2, "alice", "alice-laptop", DeviceKind::Desktop).await;
    let carol = login(&g2, "carol", "carol-phone", DeviceKind::Mobile).await;
    let mut bob = login(&g1, "bob", "bob-phone", DeviceKind::Mobile).await;

    let started = Instant::now();
    let answers = join_all((0..60).map(|i| {
        let c = if i % 2 == 0 { &phone } else { &laptop };
        c.conn.request(Body::Send(pb::SendRequest {
            to_user: bob_id,
            to_name: String::new(),
            body: format!("m{i}"),
            client_msg_id: i.to_string(),
            ..Default::default()
        }))
    }))
    .await;
    let elapsed = started.elapsed();
    let mut accepted = BTreeSet::new();
    let mut refused = 0u64;
    for (i, a) in answers.into_iter().enumerate() {
        match a {
            Ok(Body::SendAck(ack)) => {
                accepted.insert(ack.message_id);
            }
            Err(e @ Error::RateLimited { .. }) => {
                assert_eq!(e.code(), Some(ErrorCode::RateLimited));
                let wait = e.retry_after().expect("a retry-after");
                assert!(
                    wait > Duration::ZERO && wait <= Duration::from_millis(1000 / RATE + 1),
                    "message {i}: retry after {wait:?}"
                );
                assert!(e.to_string().contains("too many messages"), "{e}");
                refused += 1;
            }
            other => panic!("message {i}: expected an ack or RATE_LIMITED, got {other:?}"),
        }
    }
    let most = BURST + (elapsed.as_secs_f64() * RATE as f64).ceil() as u64 + 1;
    assert!(
        accepted.len() as u64 >= BURST && accepted.len() as u64 <= most,
        "{} accepted in {elapsed:?}; the bucket allows {BURST} at once and {RATE}/s",
        accepted.len()
    );
    assert_eq!(accepted.len() as u64 + refused, 60);
    assert!(refused >= 60 - most, "refused {refused}");

    // Another user on the same gateway has a bucket of its own.
    let mut carol = carol;
    let ack = carol
        .send_to(bob_id, "from carol", "c")
        .await
        .expect("carol is not limited by alice");

    // Every accepted message arrives once; no refused one does.
    let mut want = accepted.clone();
    want.insert(ack.message_id);
    let got = receive(&mut bob, want.len(), WAIT).await;
    let got_ids: Vec<u64> = got.iter().map(|m| m.message_id).collect();
    assert_eq!(
        got_ids.len(),
        want.len(),
        "every accepted message delivered: {got_ids:?}"
    );
    assert_eq!(
        got_ids.iter().copied().collect::<BTreeSet<_>>(),
        want,
        "each once"
    );
    assert_quiet(&mut bob, Duration::from_millis(500)).await;
    assert!(got.iter().any(|m| m.sender == carol_id));

    // After the wait it names, the user may send again.
    tokio::time::sleep(Duration::from_millis(1000 / RATE + 50)).await;
    let mut phone = phone;
    phone
        .send_to(bob_id, "later", "l")
        .await
        .expect("a token refilled");

    // Counted.
    let (_, text) = http_get(&cluster.gateways[&2].metrics, "/metrics")
        .await
        .expect("metrics");
    let counted = metric(&text, "confab_gateway_rate_limited_total{bucket=\"message\"}");
    assert_eq!(counted, refused, "the metric counts every refusal");
}

fn limit_reached<T: std::fmt::Debug>(r: confab_client::Result<T>, what: &str) -> String {
    match r {
        Err(Error::Server {
            code: ErrorCode::LimitReached,
            message,
        }) => message,
        other => panic!("{what}: expected LIMIT_REACHED, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_size_pending_invites_and_friend_requests_are_capped_with_a_clear_error() {
    let mut cluster = Cluster::start(1).await;
    cluster.kill("persist");
    cluster
        .restart_persist(&[
            ("CONFAB_LIMITS__MAX_GROUP_MEMBERS", "3"),
            ("CONFAB_LIMITS__MAX_PENDING_FRIEND_REQUESTS", "2"),
            ("CONFAB_LIMITS__MAX_PENDING_INVITES", "2"),
        ])
        .await;
    let g1 = cluster.gw(1).to_owned();
    for name in ["owner", "ann", "ben", "cat", "dan", "eve"] {
        register(&g1, name).await;
    }
    let owner = login(&g1, "owner", "owner-phone", DeviceKind::Mobile).await;
    let group = owner.create_group("small").await.expect("group");
    let gid = group.group_id;
    for name in ["ann", "ben"] {
        owner.invite(gid, name).await.expect("invite");
        let c = login(&g1, name, &format!("{name}-phone"), DeviceKind::Mobile).await;
        c.accept_invite(gid).await.expect("joins");
    }
    // A fourth member: the invitation stands, accepting it is refused and
    // leaves it pending.
    owner
        .invite(gid, "cat")
        .await
        .expect("an invitation is no member yet");
    let cat = login(&g1, "cat", "cat-phone", DeviceKind::Mobile).await;
    let why = limit_reached(cat.accept_invite(gid).await, "a fourth member");
    assert!(why.contains("is full") && why.contains('3'), "{why}");
    let members = owner.members(gid).await.expect("members");
    assert_eq!(members.len(), 3, "the refused accept added no one");
    assert_eq!(cat.invites().await.expect("invites").len(), 1, "still invited");

    // Invitations: two waiting at once (cat's and dan's), the third
    // refused until one is answered; inviting again while pending is no
    // new invitation.
    owner.invite(gid, "dan").await.expect("second invitation");
    owner.invite(gid, "dan").await.expect("the same invitation again");
    let why = limit_reached(owner.invite(gid, "eve").await, "a third invitation");
    assert!(why.contains("invitations waiting for an answer"), "{why}");
    cat.decline_invite(gid).await.expect("cat declines");
    owner
        .invite(gid, "eve")
        .await
        .expect("room again after an answer");

    // Friend requests: two waiting at once, the third refused until one is
    // answered.
    let dan = login(&g1, "dan", "dan-phone", DeviceKind::Mobile).await;
    dan.add_friend("ann", "").await.expect("first request");
    dan.add_friend("ben", "").await.expect("second request");
    let why = limit_reached(dan.add_friend("cat", "").await, "a third request");
    assert!(why.contains("waiting for an answer"), "{why}");
    let ann = login(&g1, "ann", "ann-phone", DeviceKind::Mobile).await;
    ann.decline_friend("dan").await.expect("ann declines");
    dan.add_friend("cat", "")
        .await
        .expect("room again after an answer");
    let requests = dan.friend_requests().await.expect("requests");
    let to: BTreeSet<String> = requests
        .outgoing
        .iter()
        .filter_map(|r| r.to.as_ref().map(|u| u.name.clone()))
        .collect();
    assert_eq!(to, ["ben", "cat"].map(String::from).into(), "what is waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_tokens_are_revoked_on_kick_and_logout_and_expire() {
    let mut cluster = Cluster::start(1).await;
    cluster.kill("persist");
    cluster
        .restart_persist(&[("CONFAB_LIMITS__TOKEN_LIFETIME_MS", "4000")])
        .await;
    let g1 = cluster.gw(1).to_owned();
    register(&g1, "tom").await;
    let mut first = confab_client::Client::connect(&g1).await.expect("connect");
    let old = first
        .login("tom", "pw", "tom-old-phone", DeviceKind::Mobile)
        .await
        .expect("login")
        .token;
    // A second phone: the policy (one per kind) kicks the first, whose
    // token is revoked with it.
    let mut second = confab_client::Client::connect(&g1).await.expect("connect");
    let token = second
        .login("tom", "pw", "tom-new-phone", DeviceKind::Mobile)
        .await
        .expect("login")
        .token;
    // Revoked before the new login was answered.
    let mut c = confab_client::Client::connect(&g1).await.expect("connect");
    let r = c.resume(&old, "tom-old-phone", DeviceKind::Mobile).await;
    assert!(
        matches!(
            r,
            Err(Error::Server {
                code: ErrorCode::BadToken,
                ..
            })
        ),
        "kicked: {r:?}"
    );
    drop(first);
    // Logout revokes the token.
    second.logout().await.expect("logout");
    let mut c = confab_client::Client::connect(&g1).await.expect("connect");
    let r = c.resume(&token, "tom-new-phone", DeviceKind::Mobile).await;
    assert!(
        matches!(
            r,
            Err(Error::Server {
                code: ErrorCode::BadToken,
                ..
            })
        ),
        "{r:?}"
    );
    // A token past its lifetime is refused.
    let mut c = confab_client::Client::connect(&g1).await.expect("connect");
    let token = c
        .login("tom", "pw", "tom-desk", DeviceKind::Desktop)
        .await
        .expect("login")
        .token;
    drop(c);
    let mut c = confab_client::Client::connect(&g1).await.expect("connect");
    c.resume(&token, "tom-desk", DeviceKind::Desktop)
        .await
        .expect("young token");
    drop(c);
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let mut c = confab_client::Client::connect(&g1).await.expect("connect");
    let r = c.resume(&token, "tom-desk", DeviceKind::Desktop).await;
    assert!(
        matches!(
            r,
            Err(Error::Server {
                code: ErrorCode::BadToken,
                ..
            })
        ),
        "expired: {r:?}"
    );
}

/// `min_message_id` makes persist wait only for a message the connection
/// was told of (its own acknowledged send, or a push): a made-up recent id
/// is read at once, and persist never waits (nor polls) for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_wait_only_for_messages_the_connection_was_told_of() {
    let cluster = Cluster::start(1).await;
    let g1 = cluster.gw(1).to_owned();
    register(&g1, "amy").await;
    let bea_id = register(&g1, "bea").await;
    cluster.befriend("amy", "bea").await;
    let mut amy = login(&g1, "amy", "amy-phone", DeviceKind::Mobile).await;
    let mut bea = login(&g1, "bea", "bea-phone", DeviceKind::Mobile).await;
    let ack = amy.send_to(bea_id, "hello", "c1").await.expect("send");
    let pushed = receive(&mut bea, 1, WAIT).await;
    assert_eq!(pushed.first().map(|m| m.message_id), Some(ack.message_id));

    let history = |min: u64| {
        Body::History(pb::HistoryRequest {
            conversation_id: ack.conversation_id.clone(),
            before_seq: 0,
            limit: 10,
            min_message_id: min,
        })
    };
    let gateway = |series: &'static str| {
        let http = cluster.gateways[&1].metrics.clone();
        async move {
            let (_, body) = http_get(&http, "/metrics").await.expect("gateway /metrics");
            metric(&body, series)
        }
    };
    let persist = || async {
        let (_, body) = http_get(&cluster.persist_http, "/metrics")
            .await
            .expect("persist /metrics");
        metric(&body, "confab_persist_read_waits_total{outcome=\"timeout\"}")
            + metric(&body, "confab_persist_read_waits_total{outcome=\"written\"}")
    };
    let waited = "confab_gateway_read_waits_total{outcome=\"waited\"}";
    let not_own = "confab_gateway_read_waits_total{outcome=\"not_own\"}";

    // The sender's own message and the recipient's pushed one are waited for.
    for c in [&amy, &bea] {
        match c.conn.request(history(ack.message_id)).await.expect("history") {
            Body::Messages(m) => assert_eq!(m.messages.len(), 1),
            other => panic!("expected Messages, got {other:?}"),
        }
    }
    assert_eq!(gateway(waited).await, 2);
    assert_eq!(persist().await, 2, "persist checked both");

    // A made-up id (recent, so persist would wait for it) is read at once.
    let forged = ack.message_id + (1 << 12);
    match amy.conn.request(history(forged)).await.expect("history") {
        Body::Messages(m) => assert_eq!(m.messages.len(), 1, "what is stored"),
        other => panic!("expected Messages, got {other:?}"),
    }
    assert_eq!(gateway(not_own).await, 1);
    assert_eq!(persist().await, 2, "persist did not wait for the made-up id");
}
