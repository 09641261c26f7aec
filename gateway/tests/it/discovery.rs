//! Service discovery: every process announces its metrics address to every
//! router, and `GET /sd` on any router lists them all (Prometheus
//! http_sd). A real Prometheus configured with nothing but the http_sd URL
//! scrapes every router, gateway and persist process, and a router added
//! later without touching its configuration; a process that stops drops out.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use confab_testkit::{free_addr, http_get, missing};

use crate::harness::{Cluster, eventually};

/// (role, node, address) of every target `/sd` at `http` lists.
async fn sd(http: &str) -> BTreeSet<(String, String, String)> {
    let Some((200, answer)) = http_get(http, "/sd").await else {
        return BTreeSet::new();
    };
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let groups: Vec<serde_json::Value> = serde_json::from_str(body).expect("http_sd JSON");
    groups
        .iter()
        .flat_map(|g| {
            let labels = &g["labels"];
            let role = labels["role"].as_str().unwrap_or_default().to_owned();
            let node = labels["node"].as_str().unwrap_or_default().to_owned();
            g["targets"].as_array().into_iter().flatten().map(move |t| {
                (
                    role.clone(),
                    node.clone(),
                    t.as_str().unwrap_or_default().to_owned(),
                )
            })
        })
        .collect()
}

/// The repository's `rel` (the tests run in the gateway crate's directory).
fn repo_path(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

/// Every expression deploy/ evaluates: (where, PromQL).
fn deploy_expressions() -> Vec<(String, String)> {
    let out = Command::new("python3")
        .arg(repo_path("scripts/observability-exprs.py"))
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    list.iter()
        .map(|v| {
            (
                v["source"].as_str().unwrap_or_default().to_owned(),
                v["expr"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// How many series `expr` returns at Prometheus `addr` now.
async fn query(addr: &str, expr: &str) -> usize {
    let encoded: String = expr
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let Some(body) = get_1_0(addr, &format!("/api/v1/query?query={encoded}")).await else {
        return 0;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["data"]["result"].as_array().map_or(0, Vec::len)
}

/// The body of `GET path` over HTTP/1.0 (never chunked).
async fn get_1_0(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.ok()?;
    answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

/// 1:1 and group messages, a bad request and a refused send, through
/// both gateways: every kind of series the dashboards show gets samples.
async fn chat_load(cluster: &Cluster) {
    use crate::harness::{login, register};
    use confab_client::DeviceKind;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    register(&g1, "load-a").await;
    let b = register(&g2, "load-b").await;
    let stranger = register(&g2, "load-c").await;
    cluster.befriend("load-a", "load-b").await;
    let mut a = login(&g1, "load-a", "a1", DeviceKind::Desktop).await;
    let mut bc = login(&g2, "load-b", "b1", DeviceKind::Mobile).await;
    let group = a.create_group("load").await.expect("group").group_id;
    // Within the per-user message rate (20/s by default).
    for i in 0..20 {
        a.send_to(b, &format!("m{i}"), "").await.expect("send");
        a.group_send(group, &format!("g{i}"), "")
            .await
            .expect("group send");
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let _ = a.send_to(stranger, "not a friend", "").await;
    let _ = bc.sync().await;
    let _ = a.history(&format!("g:{group}"), 0, 10).await;
}

/// (job-less) `up` samples Prometheus at `addr` has: (role, node) -> value.
async fn up(addr: &str) -> BTreeSet<(String, String, String)> {
    let Some((200, answer)) = http_get(addr, "/api/v1/query?query=up").await else {
        return BTreeSet::new();
    };
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return BTreeSet::new();
    };
    v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let m = &r["metric"];
            (
                m["role"].as_str().unwrap_or_default().to_owned(),
                m["node"].as_str().unwrap_or_default().to_owned(),
                r["value"][1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_finds_every_process_through_the_routers() {
    // Mutual TLS inside, as `make cluster-up` runs it.
    let mut cluster = Cluster::start_tls(2).await;
    let mut want: BTreeSet<(String, String, String)> = BTreeSet::new();
    for (i, http) in cluster.router_http.iter().enumerate() {
        want.insert(("router".into(), (i + 1).to_string(), http.clone()));
    }
    for (id, gw) in &cluster.gateways {
        want.insert(("gateway".into(), id.to_string(), gw.metrics.clone()));
    }
    want.insert(("persist".into(), "1".into(), cluster.persist_http.clone()));
    for http in cluster.router_http.clone() {
        eventually(Duration::from_secs(20), "every process in /sd", || async {
            sd(&http).await == want
        })
        .await;
    }

    // A real Prometheus, told nothing but router 1's /sd.
    if Command::new("prometheus").arg("--version").output().is_err() {
        missing(
            "prometheus",
            "the prometheus binary is not installed (make check-deploy installs it)",
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}/*.yml\n\
             scrape_configs:\n  - job_name: confab\n    http_sd_configs:\n      - url: http://{}/sd\n        \
             refresh_interval: 1s\n    relabel_configs:\n      - source_labels: [role]\n        target_label: job\n        \
             replacement: confab-$1\n",
            repo_path("deploy/prometheus/rules").display(),
            cluster.router_http[0]
        ),
    )
    .expect("write config");
    let web = free_addr();
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).expect("log"))
        .spawn()
        .expect("start prometheus");
    let all_up = |n: usize| {
        let web = web.clone();
        async move {
            let got = up(&web).await;
            got.len() == n && got.iter().all(|(_, _, v)| v == "1")
        }
    };
    eventually(Duration::from_secs(30), "6 targets up in Prometheus", || {
        all_up(6)
    })
    .await;
    let got = up(&web).await;
    let roles: Vec<&str> = got.iter().map(|(r, _, _)| r.as_str()).collect();
    assert_eq!(
        roles,
        vec!["gateway", "gateway", "persist", "router", "router", "router"],
        "{got:?}"
    );

    // Under a short chat load, every expression the dashboards and the
    // alert rules use returns data (no panel left empty by a typo or a
    // renamed metric).
    chat_load(&cluster).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let exprs = deploy_expressions();
    assert!(exprs.len() > 50, "the dashboards and rules hold expressions");
    let mut empty = Vec::new();
    for (source, expr) in &exprs {
        if query(&web, expr).await == 0 {
            empty.push(format!("{source}: {expr}"));
        }
    }
    assert!(
        empty.is_empty(),
        "{} expressions return no data:\n{}",
        empty.len(),
        empty.join("\n")
    );

    // A router added later is scraped without touching the configuration.
    cluster.add_router(4).await;
    eventually(Duration::from_secs(30), "the added router up too", || all_up(7)).await;
    assert!(
        up(&web)
            .await
            .contains(&("router".into(), "4".into(), "1".into()))
    );

    // A process that stops drops out of /sd once its announcements lapse.
    let gone = cluster.gateways[&2].metrics.clone();
    cluster.kill("gateway-2");
    let http = cluster.router_http[0].clone();
    eventually(
        Duration::from_secs(30),
        "the stopped gateway out of /sd",
        || async {
            let now = sd(&http).await;
            !now.is_empty() && !now.iter().any(|(_, _, addr)| *addr == gone)
        },
    )
    .await;
    let _ = prometheus.kill();
    let _ = prometheus.wait();
}

/// With mutual TLS each process announces as its certificate names it
/// (persist certificates carry no id), and nothing else may announce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mutual_tls_each_process_announces_itself_only() {
    let cluster = Cluster::start_tls(1).await;
    let http = cluster.router_http[0].clone();
    let five = || async {
        let got = sd(&http).await;
        let roles: Vec<&str> = got.iter().map(|(r, _, _)| r.as_str()).collect();
        roles == ["gateway", "persist", "router", "router", "router"]
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !five().await {
        assert!(
            std::time::Instant::now() < deadline,
            "5 targets in /sd; got {:?}\nlogs:\n{}",
            sd(&http).await,
            cluster.log("router-1")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Gateway 1's certificate announcing itself as gateway 9 is refused.
    use confab_proto::router::router_discovery_client::RouterDiscoveryClient;
    use confab_proto::router::{AnnounceRequest, Target};
    let channel = confab_net::channel(
        &cluster.routers[0],
        &confab_net::ChannelConfig::connect_within(Duration::from_secs(5))
            .with_tls(cluster.client_tls("gateway-1")),
    )
    .expect("channel");
    let forged = AnnounceRequest {
        target: Some(Target {
            role: "gateway".into(),
            id: 9,
            metrics_addr: "127.0.0.1:1".into(),
            zone: String::new(),
        }),
        ttl_ms: 60_000,
    };
    let e = RouterDiscoveryClient::new(channel)
        .announce(forged)
        .await
        .expect_err("another gateway's id");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
}

/// Every process's /metrics passes `promtool check metrics` (names, units,
/// HELP, types).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_metrics_pass_promtool() {
    if Command::new("promtool").arg("--version").output().is_err() {
        missing("promtool", "not installed (make check-deploy installs it)");
        return;
    }
    let cluster = Cluster::start(1).await;
    // A message through, so that labelled series exist.
    let g = cluster.gw(1).to_owned();
    crate::harness::register(&g, "pm1").await;
    let mut targets: Vec<(String, String)> = cluster
        .router_http
        .iter()
        .enumerate()
        .map(|(i, h)| (format!("router-{}", i + 1), h.clone()))
        .collect();
    targets.push(("gateway-1".into(), cluster.gateways[&1].metrics.clone()));
    targets.push(("persist".into(), cluster.persist_http.clone()));
    let mut problems = Vec::new();
    for (name, addr) in targets {
        let (code, answer) = http_get(&addr, "/metrics").await.expect("metrics");
        assert_eq!(code, 200, "{name}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("promtool");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() || !said.trim().is_empty() {
            problems.push(format!("{name}:\n{said}"));
        }
    }
    assert!(
        problems.is_empty(),
        "promtool check metrics:\n{}",
        problems.join("\n")
    );
}
