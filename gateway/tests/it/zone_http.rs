//! `GET /v1/gateway` against two real gateways configured with zones: the
//! caller's address picks the zone, the zone's least-loaded live gateway
//! answers, callers outside every zone fall back to "public".

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use confab_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::harness::{Cluster, Gw, eventually, free_addr, http_get};

/// Gateways started by this test, killed on drop.
struct Started(Vec<Child>);

impl Drop for Started {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

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

fn start_gateway(cluster: &Cluster, id: u64) -> (Child, Gw) {
    let gw = Gw {
        client: free_addr(),
        http: free_addr(),
        grpc: free_addr(),
    };
    let list = |v: &[String]| {
        v.iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let toml = format!(
        "id = {id}\nlisten = \"{}\"\nhttp = \"{}\"\ngrpc = \"{}\"\nrouters = [{}]\npersist = [{}]\n{ZONES}",
        gw.client,
        gw.http,
        gw.grpc,
        list(&cluster.routers),
        list(std::slice::from_ref(&cluster.persist)),
    );
    let file = cluster.dir.path().join(format!("zoned-gateway-{id}.toml"));
    std::fs::write(&file, toml).expect("write gateway config");
    let log = std::fs::File::create(cluster.dir.path().join(format!("zoned-gateway-{id}.log"))).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_confab-gateway"))
        .arg("--config")
        .arg(&file)
        .env_remove("CONFAB_BIN_DIR")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn gateway");
    (child, gw)
}

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
    let cluster = Cluster::start(0).await;
    let (c1, g1) = start_gateway(&cluster, 1);
    let (c2, g2) = start_gateway(&cluster, 2);
    let mut started = Started(vec![c1, c2]);
    for g in [&g1, &g2] {
        eventually(Duration::from_secs(30), "zoned gateway ready", || async {
            matches!(http_get(&g.http, "/readyz").await, Some((200, _)))
        })
        .await;
    }

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
    let _ = started.0[1].kill();
    let _ = started.0[1].wait();
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
