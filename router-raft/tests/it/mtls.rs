//! Mutual TLS on real router processes: every plane refuses a caller
//! without a certificate, with one from another CA, of the wrong role or of
//! the wrong id, with a clear status and a counter, and nothing changes.

use std::path::Path;
use std::time::Duration;

use confab_proto::router as pb;
use confab_proto::router::raft_service_client::RaftServiceClient;
use confab_proto::router::router_admin_client::RouterAdminClient;
use confab_proto::router::router_data_client::RouterDataClient;
use confab_proto::router::router_replica_client::RouterReplicaClient;
use confab_router::types::TypeConfig;
use confab_router_client::{ClientConfig, ClientTls, RouterClient};
use confab_tls::{Ca, Identity, TlsFiles};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::harness::{Procs, eventually, sample, scrape};

/// A CA, the routers' certificates and the callers' certificates, in `dir`.
fn issue_all(dir: &Path, routers: u64) -> Ca {
    let ca = Ca::new("test cluster CA", 1).expect("CA");
    ca.pem().write(dir, "ca").expect("write CA");
    let hosts = ["127.0.0.1".to_owned(), "localhost".to_owned()];
    let issue = |identity: Identity, name: &str| {
        ca.issue(Some(identity), &hosts, 1)
            .expect("issue")
            .write(dir, name)
            .expect("write");
    };
    for id in 1..=routers {
        issue(Identity::router(id), &format!("router-{id}"));
    }
    issue(Identity::admin(), "admin");
    issue(Identity::gateway(7), "gateway-7");
    issue(Identity::router(9), "router-9");
    issue(Identity::persist(), "persist");
    ca
}

fn client_tls(dir: &Path, name: &str) -> ClientTls {
    ClientTls::load(&TlsFiles::in_dir(dir, name)).expect("client TLS")
}

fn channel(addr: &str, tls: &ClientTls) -> Channel {
    let config =
        confab_net::ChannelConfig::connect_within(Duration::from_secs(2)).with_tls(Some(tls.clone()));
    confab_net::channel(addr, &config).expect("channel")
}

/// TLS that trusts the cluster CA but presents no certificate.
fn anonymous(addr: &str, dir: &Path) -> Channel {
    let ca = std::fs::read(dir.join("ca.pem")).expect("CA");
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
        .expect("tls")
        .connect_lazy()
}

/// Each shard's replicas and epoch, as the map says (leaders may move on
/// their own; replicas and epochs change only by a move).
async fn replicas(addr: &str, tls: &ClientTls) -> Vec<(u32, Vec<u64>, Option<pb::ShardEpoch>)> {
    let map = RouterDataClient::new(channel(addr, tls))
        .get_cluster_map(pb::GetClusterMapRequest {})
        .await
        .expect("the admin reads the map")
        .into_inner();
    let mut shards: Vec<_> = map
        .shards
        .into_iter()
        .map(|s| (s.shard_id, s.replicas, s.epoch))
        .collect();
    shards.sort_by_key(|s| s.0);
    shards
}

/// The highest Raft term of any group on the node at `addr`.
async fn highest_term(addr: &str, tls: &ClientTls) -> u64 {
    let status = RouterAdminClient::new(channel(addr, tls))
        .node_status(pb::NodeStatusRequest::default())
        .await
        .expect("the admin reads node status")
        .into_inner();
    status.groups.iter().map(|g| g.term).max().unwrap_or(0)
}

async fn refused_total(http: &[String]) -> f64 {
    let mut total = 0.0;
    for addr in http {
        let text = scrape(addr).await;
        total += text
            .lines()
            .filter(|l| l.starts_with("confab_rpc_refused_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_plane_refuses_callers_its_certificates_do_not_allow() {
    let certs = tempfile::tempdir().expect("tempdir");
    let dir = certs.path();
    issue_all(dir, 3);
    let procs = Procs::start_tls(3, 4, dir);
    let addr = procs.peers[&1].clone();
    let http: Vec<String> = procs.http.values().cloned().collect();
    let admin = client_tls(dir, "admin");
    let gateway = client_tls(dir, "gateway-7");

    // The cluster forms over mutual TLS: the routers speak Raft and the
    // replica plane to each other with their own certificates.
    let seeds = procs.addrs();
    let admin_client = RouterClient::new(
        seeds.clone(),
        ClientConfig {
            deadline: Duration::from_secs(10),
            tls: Some(admin.clone()),
            ..Default::default()
        },
    )
    .expect("client");
    eventually(
        Duration::from_secs(60),
        "the TLS cluster has every shard led",
        || async {
            let statuses = admin_client.all_node_status().await.unwrap_or_default();
            statuses.len() == 3
                && statuses.iter().all(|(_, s)| {
                    s.as_ref()
                        .is_ok_and(|s| !s.groups.is_empty() && s.groups.iter().all(|g| g.leader != 0))
                })
        },
    )
    .await;
    let replicas_before = replicas(&addr, &admin).await;
    let refused_before = refused_total(&http).await;

    // Plain gRPC to a TLS port: the call fails, nothing is served.
    let plain = Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    let err = RouterAdminClient::new(plain)
        .node_status(pb::NodeStatusRequest::default())
        .await
        .expect_err("plain gRPC to a TLS port");
    assert_ne!(err.code(), Code::Ok);

    // TLS without a client certificate: UNAUTHENTICATED on every plane.
    let err = RouterAdminClient::new(anonymous(&addr, dir))
        .move_replica(pb::MoveReplicaRequest {
            shard_id: 1,
            from: 1,
            to: 2,
        })
        .await
        .expect_err("no certificate");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = RouterDataClient::new(anonymous(&addr, dir))
        .register_gateway(pb::RegisterGatewayRequest {
            gateway_id: 7,
            addr: "127.0.0.1:1".into(),
        })
        .await
        .expect_err("no certificate");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // A certificate from another CA: the handshake fails (the call errs;
    // the handshake failure is counted below).
    let other = tempfile::tempdir().expect("tempdir");
    let other_ca = Ca::new("another CA", 1).expect("CA");
    other_ca
        .issue(Some(Identity::admin()), &[], 1)
        .expect("issue")
        .write(other.path(), "admin")
        .expect("write");
    std::fs::copy(dir.join("ca.pem"), other.path().join("ca.pem")).expect("copy CA");
    let foreign = client_tls(other.path(), "admin");
    let err = RouterAdminClient::new(channel(&addr, &foreign))
        .remove_node(pb::RemoveNodeRequest { node_id: 3 })
        .await
        .expect_err("a certificate of another CA");
    assert!(
        !matches!(err.code(), Code::PermissionDenied | Code::Unauthenticated),
        "refused before any request is read: {err:?}"
    );

    // The wrong role: a gateway may not move replicas, change a shard's
    // replicas, speak Raft or join as a router.
    let err = RouterAdminClient::new(channel(&addr, &gateway))
        .move_replica(pb::MoveReplicaRequest {
            shard_id: 1,
            from: 1,
            to: 2,
        })
        .await
        .expect_err("MoveReplica from a gateway");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("gateway/7"), "{}", err.message());
    let err = RouterReplicaClient::new(channel(&addr, &gateway))
        .change_replicas(pb::ChangeReplicasRequest {
            shard_id: 1,
            add: 0,
            add_addr: String::new(),
            remove: 2,
        })
        .await
        .expect_err("ChangeReplicas from a gateway");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = RouterReplicaClient::new(channel(&addr, &client_tls(dir, "persist")))
        .join(pb::JoinRequest {
            node_id: 5,
            addr: "127.0.0.1:1".into(),
            ..Default::default()
        })
        .await
        .expect_err("Join from persist");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // Raft AppendEntries with a huge term: from a gateway (wrong role), and
    // from router 9 claiming to be leader 1 (wrong id). Either would depose
    // the leaders if it reached a group.
    let forged = openraft::raft::AppendEntriesRequest::<TypeConfig> {
        vote: openraft::Vote::new(1_000_000, 1),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    };
    let payload = postcard::to_stdvec(&forged).expect("encode");
    for (who, tls) in [("gateway", &gateway), ("router 9", &client_tls(dir, "router-9"))] {
        let err = RaftServiceClient::new(channel(&addr, tls))
            .append_entries(pb::RaftRequest {
                group_id: 0,
                payload: payload.clone(),
                to_node: 1,
                cluster_id: 0,
            })
            .await
            .expect_err("forged AppendEntries");
        assert_eq!(err.code(), Code::PermissionDenied, "{who}: {err:?}");
    }

    // A gateway registers only under its own id.
    let err = RouterDataClient::new(channel(&addr, &gateway))
        .register_gateway(pb::RegisterGatewayRequest {
            gateway_id: 8,
            addr: "127.0.0.1:1".into(),
        })
        .await
        .expect_err("registering another gateway's id");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // A router 9 certificate joining as node 5.
    let err = RouterReplicaClient::new(channel(&addr, &client_tls(dir, "router-9")))
        .join(pb::JoinRequest {
            node_id: 5,
            addr: "127.0.0.1:1".into(),
            ..Default::default()
        })
        .await
        .expect_err("joining under another id");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // Nothing changed: the same replicas and epochs, no group took the
    // forged term, no gateway 8.
    assert_eq!(replicas(&addr, &admin).await, replicas_before);
    for a in procs.peers.values() {
        assert!(
            highest_term(a, &admin).await < 1_000_000,
            "a forged vote reached a group on {a}"
        );
    }
    let gateways = admin_client.list_gateways().await.expect("gateways");
    assert!(gateways.iter().all(|g| g.gateway_id != 8), "{gateways:?}");
    // Each refusal was counted (9 above: 2 unauthenticated, 4 role, 3 id).
    let refused = refused_total(&http).await - refused_before;
    assert_eq!(refused, 9.0, "refusals counted");
    let handshakes: f64 = {
        let mut n = 0.0;
        for a in &http {
            n += sample(
                &scrape(a).await,
                "confab_tls_handshake_failures_total{listener=\"grpc\",reason=\"error\"}",
            );
        }
        n
    };
    assert!(
        handshakes >= 2.0,
        "plain and foreign handshakes counted: {handshakes}"
    );

    // The allowed callers still work: the gateway registers as itself, the
    // admin reads the cluster.
    let gateway_client = RouterClient::new(
        seeds,
        ClientConfig {
            deadline: Duration::from_secs(10),
            tls: Some(gateway.clone()),
            ..Default::default()
        },
    )
    .expect("client");
    gateway_client
        .register_gateway(7, "127.0.0.1:1")
        .await
        .expect("gateway 7 registers as itself");
    let gateways = admin_client.list_gateways().await.expect("gateways");
    assert!(gateways.iter().any(|g| g.gateway_id == 7), "{gateways:?}");
    drop(procs);
}
