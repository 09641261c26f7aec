//! A cluster with mutual TLS between every process: chat works end to end
//! (gateway to router, to persist, to another gateway), and the internal
//! services refuse what the certificates do not allow: a forged Deliver,
//! an Enqueue from a non-gateway, a gateway starting under another's
//! identity. Refusals reach no user and no table.

use std::process::Command;
use std::time::Duration;

use confab_client::DeviceKind;
use confab_proto::gateway as gw;
use confab_proto::gateway::gateway_service_client::GatewayServiceClient;
use confab_proto::persist as pp;
use confab_proto::persist::data_service_client::DataServiceClient;
use confab_proto::persist::queue_service_client::QueueServiceClient;
use confab_queue::ConversationId;
use tonic::Code;

use crate::harness::{Cluster, assert_quiet, login, receive, register};

fn channel(addr: &str, tls: confab_net::ClientTls) -> confab_net::Channel {
    let config = confab_net::ChannelConfig::connect_within(Duration::from_secs(2)).with_tls(Some(tls));
    confab_net::channel(addr, &config).expect("channel")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_calls_need_the_right_certificate_and_chat_still_flows() {
    let cluster = Cluster::start_tls(2).await;
    let alice_uid = register(cluster.gw(1), "alice").await;
    let bob_uid = register(cluster.gw(2), "bob").await;
    cluster.befriend("alice", "bob").await;
    let mut alice = login(cluster.gw(1), "alice", "phone", DeviceKind::Mobile).await;
    let mut bob = login(cluster.gw(2), "bob", "phone", DeviceKind::Mobile).await;

    // Across gateways, every hop over mutual TLS.
    alice.send_to(bob_uid, "over TLS", "m1").await.expect("send");
    let got = receive(&mut bob, 1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body, "over TLS");

    // A forged Deliver to bob's sessions on gateway 2, from a router's and
    // from persist's certificate: refused, bob sees nothing.
    let sessions = cluster
        .router_client()
        .await
        .lookup(&[bob_uid])
        .await
        .expect("lookup")
        .remove(&bob_uid)
        .unwrap_or_default();
    assert!(!sessions.is_empty(), "bob is online");
    let forged = gw::DeliverRequest {
        from_gateway: 1,
        pushes: vec![gw::Push {
            session_ids: sessions.iter().map(|s| s.session_id).collect(),
            body: Some(gw::push::Body::Message(confab_client::proto::Message {
                message_id: 1,
                sender: alice_uid,
                body: "forged".into(),
                ..Default::default()
            })),
        }],
    };
    let internal = cluster.gateways[&2].grpc.clone();
    for name in ["router-1", "persist", "admin"] {
        let tls = cluster.client_tls(name).expect("TLS cluster");
        let err = GatewayServiceClient::new(channel(&internal, tls))
            .deliver(forged.clone())
            .await
            .expect_err("a Deliver from a non-gateway");
        assert_eq!(err.code(), Code::PermissionDenied, "{name}: {err:?}");
    }
    assert_quiet(&mut bob, Duration::from_millis(500)).await;

    // Enqueue as alice from a router's certificate: refused, nothing stored.
    let conversation = ConversationId::direct(alice_uid, bob_uid).to_string();
    let enqueue = pp::EnqueueRequest {
        messages: vec![pp::QueuedMessage {
            message_id: 42,
            conversation_id: conversation.clone(),
            sender: alice_uid,
            body: "forged enqueue".into(),
            client_msg_id: "f1".into(),
            server_time_ms: 0,
            traceparent: String::new(),
        }],
    };
    let err = QueueServiceClient::new(channel(
        &cluster.persist,
        cluster.client_tls("router-1").expect("tls"),
    ))
    .enqueue(enqueue)
    .await
    .expect_err("an Enqueue from a router");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // Data access as any user from an admin certificate: refused too.
    let err = DataServiceClient::new(channel(
        &cluster.persist,
        cluster.client_tls("admin").expect("tls"),
    ))
    .authenticate(pp::AuthenticateRequest {
        name: "alice".into(),
        password: "pw".into(),
        ..Default::default()
    })
    .await
    .expect_err("data access from an admin");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_quiet(&mut bob, Duration::from_millis(500)).await;
    let history = alice.history(&conversation, 0, 50).await.expect("history");
    let bodies: Vec<&str> = history.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["over TLS"], "only the real message is stored");

    // A gateway never starts under another gateway's certificate.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab-gateway"));
    cmd.args([
        "--id",
        "3",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--grpc",
        "127.0.0.1:0",
    ])
    .args([
        "--router",
        &cluster.routers.join(","),
        "--persist",
        &cluster.persist,
    ]);
    let dir = cluster.tls.clone().expect("TLS cluster");
    cmd.arg("--tls-ca")
        .arg(dir.join("ca.pem"))
        .arg("--tls-cert")
        .arg(dir.join("gateway-1.pem"))
        .arg("--tls-key")
        .arg(dir.join("gateway-1.key"));
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run the gateway");
    assert!(!out.status.success(), "a gateway started as another");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("names gateway/1, but this process is gateway/3"),
        "{stderr}"
    );

    // Still serving after all that.
    alice.send_to(bob_uid, "still here", "m2").await.expect("send");
    let got = receive(&mut bob, 1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body, "still here");
    drop(cluster);
}
