//! Bad input gets its typed error; nothing is lost and nobody panics.

use confab_proto::router as pb;
use confab_proto::router::raft_service_client::RaftServiceClient;
use confab_proto::router::router_data_client::RouterDataClient;
use confab_router_client::MultiDevicePolicy;
use prost::Message;
use tonic::Code;

use crate::harness::InProc;
use crate::harness::session;

fn route_error(status: &tonic::Status) -> pb::route_error::Kind {
    pb::RouteError::decode(status.details())
        .expect("routing error details")
        .kind
        .expect("a kind")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_bad_request_gets_its_typed_error() {
    let cluster = InProc::start(3, 4).await;
    let client = cluster.client().await;
    let uid = 7;
    client
        .login(uid, session(70, 1, 1, "d"), MultiDevicePolicy::AllowAll)
        .await
        .expect("a session that must survive everything below");
    let map = client.refresh_map().await.expect("map");
    let slot = confab_router_client::slot_of(uid, map.slots);
    let shard = map
        .shards
        .iter()
        .find(|s| s.ranges.iter().any(|r| r.start <= slot && slot < r.end))
        .expect("shard of uid")
        .clone();
    let leader = cluster.leader_of(shard.shard_id).expect("leader");
    let follower = (1..=3).find(|&n| n != leader).expect("a follower");
    let leader_addr = cluster.peers[&leader].clone();
    let mut at_leader = RouterDataClient::connect(format!("http://{leader_addr}"))
        .await
        .expect("connect");
    let login = |shard_id, epoch, session: Option<pb::Session>, policy| pb::LoginRequest {
        shard_id,
        epoch,
        uid,
        session,
        policy,
    };

    // Malformed: no session, an unknown policy, an unknown device kind.
    let e = at_leader
        .login(login(shard.shard_id, shard.epoch, None, 0))
        .await
        .expect_err("no session");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = at_leader
        .login(login(
            shard.shard_id,
            shard.epoch,
            Some(session(71, 1, 1, "x")),
            99,
        ))
        .await
        .expect_err("bad policy");
    assert_eq!(e.code(), Code::InvalidArgument);
    let mut odd = session(72, 1, 1, "y");
    odd.device_kind = 1234;
    let e = at_leader
        .login(login(shard.shard_id, shard.epoch, Some(odd), 0))
        .await
        .expect_err("bad device kind");
    assert_eq!(e.code(), Code::InvalidArgument);

    // Malformed bytes on the Raft transport, addressed right (to the
    // leader, no cluster id, or this cluster's, or another's).
    let raft = RaftServiceClient::connect(format!("http://{leader_addr}"))
        .await
        .expect("connect");
    let garbage = |to_node, cluster_id| {
        let mut raft = raft.clone();
        let request = pb::RaftRequest {
            group_id: shard.shard_id,
            payload: vec![0xff; 13],
            to_node,
            cluster_id,
        };
        async move { raft.append_entries(request).await.expect_err("refused") }
    };
    let cluster_id = confab_router::node::cluster_id_of("confab", &cluster.peers);
    for id in [0, cluster_id] {
        assert_eq!(garbage(leader, id).await.code(), Code::InvalidArgument);
    }
    // A Raft message meant for another node (a sender with a wrong or stale
    // address for it) is refused before any group sees it.
    let e = garbage(follower, 0).await;
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains(&format!("not node {follower}")), "{e:?}");
    // Every bootstrapping node computed the same cluster id from the peer
    // list; a message from another cluster is refused the same way.
    for (id, n) in &cluster.nodes {
        assert_eq!(n.running.node.peers.cluster_id(), cluster_id, "node {id}");
    }
    let e = garbage(leader, cluster_id ^ 1).await;
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("another cluster"), "{e:?}");

    // An unknown shard.
    let e = at_leader
        .login(login(999, shard.epoch, Some(session(73, 1, 1, "z")), 0))
        .await
        .expect_err("unknown shard");
    assert!(matches!(route_error(&e), pb::route_error::Kind::ShardNotFound(s) if s.shard_id == 999));

    // A stale epoch: the answer carries the current descriptors.
    let stale = Some(pb::ShardEpoch {
        conf_ver: 0,
        version: 0,
    });
    let e = at_leader
        .login(login(shard.shard_id, stale, Some(session(74, 1, 1, "w")), 0))
        .await
        .expect_err("stale epoch");
    match route_error(&e) {
        pb::route_error::Kind::EpochNotMatch(m) => {
            assert_eq!(m.current.len(), 4, "all current descriptors attached");
            assert!(
                m.current
                    .iter()
                    .any(|d| d.shard_id == shard.shard_id && d.epoch == shard.epoch)
            );
        }
        other => panic!("expected EpochNotMatch, got {other:?}"),
    }

    // The right epoch but a uid that another shard owns.
    let other = map
        .shards
        .iter()
        .find(|s| s.shard_id != shard.shard_id)
        .expect("other shard");
    let e = at_leader
        .login(login(
            other.shard_id,
            other.epoch,
            Some(session(75, 1, 1, "v")),
            0,
        ))
        .await
        .expect_err("uid outside the shard");
    assert!(matches!(route_error(&e), pb::route_error::Kind::EpochNotMatch(_)));

    // A write to a follower: NotLeader naming the real leader.
    let mut at_follower = RouterDataClient::connect(format!("http://{}", cluster.peers[&follower]))
        .await
        .expect("connect");
    let e = at_follower
        .login(login(
            shard.shard_id,
            shard.epoch,
            Some(session(76, 1, 1, "u")),
            0,
        ))
        .await
        .expect_err("write to follower");
    match route_error(&e) {
        pb::route_error::Kind::NotLeader(nl) => {
            assert_eq!(nl.group_id, shard.shard_id);
            assert_eq!(nl.leader_id, leader);
            assert_eq!(nl.leader_addr, leader_addr);
        }
        other => panic!("expected NotLeader, got {other:?}"),
    }

    // An oversized lookup is refused whole.
    let huge = pb::LookupRequest {
        parts: vec![pb::ShardLookup {
            shard_id: shard.shard_id,
            epoch: shard.epoch,
            uids: vec![uid; 100_001],
        }],
    };
    let e = at_leader.lookup(huge).await.expect_err("oversized lookup");
    assert_eq!(e.code(), Code::InvalidArgument);

    // A batch: each item gets its own outcome, good items are not held
    // back by bad ones.
    use pb::batch_item::Op;
    use pb::batch_result::Result as Answer;
    let item = |op| pb::BatchItem { op: Some(op) };
    let batch = pb::BatchRequest {
        items: vec![
            item(Op::Login(login(
                shard.shard_id,
                shard.epoch,
                Some(session(80, 1, 1, "b1")),
                0,
            ))),
            item(Op::Login(login(
                shard.shard_id,
                stale,
                Some(session(81, 1, 1, "b2")),
                0,
            ))),
            pb::BatchItem { op: None },
            item(Op::Login(login(shard.shard_id, shard.epoch, None, 0))),
            item(Op::Lookup(pb::ShardLookup {
                shard_id: shard.shard_id,
                epoch: shard.epoch,
                uids: vec![uid],
            })),
            item(Op::Logout(pb::LogoutRequest {
                shard_id: shard.shard_id,
                epoch: shard.epoch,
                uid,
                session_id: 80,
            })),
        ],
    };
    let results = at_leader.batch(batch).await.expect("batch").into_inner().results;
    let answers: Vec<Answer> = results
        .into_iter()
        .map(|r| r.result.expect("every item answered"))
        .collect();
    assert_eq!(answers.len(), 6);
    assert!(matches!(&answers[0], Answer::Login(r) if r.kicked.is_empty() && r.log_index > 0));
    let item_status = |a: &Answer| match a {
        Answer::Error(e) => tonic::Status::with_details(
            Code::from_i32(e.code),
            e.message.clone(),
            e.details.clone().into(),
        ),
        other => panic!("expected an item error, got {other:?}"),
    };
    assert!(matches!(
        route_error(&item_status(&answers[1])),
        pb::route_error::Kind::EpochNotMatch(_)
    ));
    assert_eq!(item_status(&answers[2]).code(), Code::InvalidArgument);
    assert_eq!(item_status(&answers[3]).code(), Code::InvalidArgument);
    match &answers[4] {
        Answer::Lookup(part) => {
            assert!(part.error.is_none());
            // The lookup ran concurrently with the login of session 80: it
            // sees 70, and 80 only if the login was applied first.
            let ids: Vec<u64> = part.users[0].sessions.iter().map(|s| s.session_id).collect();
            assert!(ids.contains(&70), "{ids:?}");
        }
        other => panic!("expected a lookup result, got {other:?}"),
    }
    assert!(matches!(&answers[5], Answer::Logout(_)));
    // An oversized batch is refused whole.
    let e = at_leader
        .batch(pb::BatchRequest {
            items: vec![pb::BatchItem { op: None }; 10_001],
        })
        .await
        .expect_err("oversized batch");
    assert_eq!(e.code(), Code::InvalidArgument);

    // Nothing was lost, nothing extra was written, everyone still serves:
    // session 80 is gone again (its logout ran after or before its login;
    // the login came first in the batch, but both run concurrently, so log
    // it out once more to settle it).
    client.logout(uid, 80).await.expect("logout 80");
    let found = client.lookup(&[uid]).await.expect("lookup");
    let ids: Vec<u64> = found[&uid].iter().map(|s| s.session_id).collect();
    assert_eq!(ids, vec![70]);
    for id in 1..=3 {
        assert!(
            cluster.nodes[&id].running.node.meta_state().is_ok(),
            "node {id} still up"
        );
    }
    cluster.shutdown().await;
}
