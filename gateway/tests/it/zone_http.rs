//! `GET /v1/gateway` against two real gateways configured with zones: the
//! caller's address picks the zone, the zone's least-loaded live gateway
//! answers, callers outside every zone fall back to "public".

use std::time::Duration;

use confab_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::harness::{Cluster, eventually};

const ZONES: &str = r#"
[[zones]]
name = "loopback-2"
cidrs = ["127.0.0.2/32"]
gateways = [2]

[[zones]]
name = "public"
cidrs = []
gateways = [1, 2]
"#;

/// `GET /v1/gateway` of gateway `http`, sent from source address `src`:
/// (status, body).
async fn ask_from(src: &str, http: &str) -> (u16, String) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{src}:0").parse().expect("source address"))
        .expect("bind source");
    let mut s = socket
        .connect(http.parse().expect("http address"))
        .await
        .expect("connect");
    s.write_all(b"GET /v1/gateway HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).await.expect("response");
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// The JSON answer: (gateway_id, addr, zone, connections).
async fn pick_from(src: &str, http: &str) -> (u64, String, String, u64) {
    let (code, body) = ask_from(src, http).await;
    assert_eq!(code, 200, "GET /v1/gateway from {src}: {body}");
    let v: serde_json::Value = serde_json::from_str(body.trim()).expect("JSON answer");
    (
        v["gateway_id"].as_u64().expect("gateway_id"),
        v["addr"].as_str().expect("addr").to_owned(),
        v["zone"].as_str().expect("zone").to_owned(),
        v["connections"].as_u64().expect("connections"),
    )
}

async fn connections(addr: &str, n: usize) -> Vec<Client> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Client::connect(addr).await.expect("connect"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_answers_by_zone_and_load() {
    let mut cluster = Cluster::start(0).await;
    cluster.start_gateway_with_config(1, ZONES).await;
    cluster.start_gateway_with_config(2, ZONES).await;
    let g1 = cluster.gateways[&1].clone();
    let g2 = cluster.gateways[&2].clone();

    // Outside every cidr: the public zone, both idle, the lower id wins.
    let (id, addr, zone, conns) = pick_from("127.0.0.1", &g1.http).await;
    assert_eq!(
        (id, addr.as_str(), zone.as_str(), conns),
        (1, g1.client.as_str(), "public", 0)
    );

    // Load on gateway 1: public callers are sent to gateway 2, whichever
    // gateway they ask.
    let _on_1 = connections(&g1.client, 3).await;
    for asked in [&g1.http, &g2.http] {
        let (id, addr, zone, conns) = pick_from("127.0.0.1", asked).await;
        assert_eq!(
            (id, addr.as_str(), zone.as_str(), conns),
            (2, g2.client.as_str(), "public", 0)
        );
    }

    // 127.0.0.2 is in zone loopback-2, which reaches gateway 2 only.
    let _on_2 = connections(&g2.client, 5).await;
    let (id, addr, zone, conns) = pick_from("127.0.0.2", &g1.http).await;
    assert_eq!(
        (id, addr.as_str(), zone.as_str(), conns),
        (2, g2.client.as_str(), "loopback-2", 5)
    );
    // Public callers now get gateway 1 again (3 < 5).
    let (id, _, zone, conns) = pick_from("127.0.0.1", &g2.http).await;
    assert_eq!((id, zone.as_str(), conns), (1, "public", 3));

    // Gateway 2 dies: its zone has no live gateway left, public falls back
    // to gateway 1.
    cluster.kill("gateway-2");
    eventually(
        Duration::from_secs(20),
        "loopback-2 has no live gateway",
        || async {
            let (code, body) = ask_from("127.0.0.2", &g1.http).await;
            code == 503 && body.contains("loopback-2")
        },
    )
    .await;
    let (id, _, zone, _) = pick_from("127.0.0.1", &g1.http).await;
    assert_eq!((id, zone.as_str()), (1, "public"));
}
