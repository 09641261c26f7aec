//! `confabctl top` against a running cluster: the processes come from a
//! router's /sd, their figures from their own /metrics.

use std::process::Stdio;
use std::time::Duration;

use confab_client::{Client, DeviceKind};
use confab_testkit::{eventually, free_addr, http_get};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::cluster::{Cluster, SHARDS};

/// The roles /sd at `http` lists, sorted.
async fn sd_roles(http: &str) -> Vec<String> {
    let Some((200, answer)) = http_get(http, "/sd").await else {
        return Vec::new();
    };
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let groups: Vec<Value> = serde_json::from_str(body).unwrap_or_default();
    let mut roles: Vec<String> = groups
        .iter()
        .filter_map(|g| g["labels"]["role"].as_str().map(str::to_owned))
        .collect();
    roles.sort();
    roles
}

/// Registers a user, logs it in on a desktop and a phone, and sends group
/// messages from the desktop (each reaches the phone) until aborted; every
/// tenth message the phone logs out and in again (session writes).
async fn chat_load(gateway: &str) -> tokio::task::JoinHandle<()> {
    let mut desktop = Client::connect(gateway).await.expect("connect");
    desktop.register("top-load", "pw").await.expect("register");
    desktop
        .login("top-load", "pw", "desktop", DeviceKind::Desktop)
        .await
        .expect("login");
    let mut phone = Client::connect(gateway).await.expect("connect");
    phone
        .login("top-load", "pw", "phone", DeviceKind::Mobile)
        .await
        .expect("login");
    let group = desktop.create_group("top").await.expect("group").group_id;
    tokio::spawn(async move {
        for i in 0.. {
            desktop
                .group_send(group, &format!("m{i}"), "")
                .await
                .expect("group send");
            if i % 10 == 9 {
                phone.logout().await.expect("logout");
                phone
                    .login("top-load", "pw", "phone", DeviceKind::Mobile)
                    .await
                    .expect("login again");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

fn confabctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_confabctl"));
    cmd.env_remove("CONFAB_ROUTER").kill_on_drop(true);
    cmd
}

/// `top --json` once: its stdout (which must be one JSON document and
/// nothing else) parsed.
async fn top_json(http: &str) -> Value {
    let out = confabctl()
        .args(["top", "--json", "--http", http, "--interval", "1"])
        .output()
        .await
        .expect("run confabctl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "confabctl top --json failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    println!("confabctl top --json:\n{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{stdout}"))
}

fn number(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

/// A rate: null while the process has no such counter (a router no
/// client called yet), else a number of at least 0.
fn rate(v: &Value, what: &str) {
    assert!(v.is_null() || number(v, what) >= 0.0, "{what}: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_shows_every_process_of_a_running_cluster() {
    let cluster = Cluster::start().await;
    let http = cluster.router_http[0].clone();
    let all = ["gateway", "persist", "router", "router", "router"];
    eventually(Duration::from_secs(20), "the 5 processes in /sd", || async {
        sd_roles(&http).await == all
    })
    .await;
    // A connection that never logs in, and a user on two devices whose
    // group messages reach the other device while top looks.
    let _idle = tokio::net::TcpStream::connect(&cluster.gateway)
        .await
        .expect("connect to the gateway");
    let load = chat_load(&cluster.gateway).await;
    eventually(Duration::from_secs(10), "3 connections counted", || async {
        http_get(&cluster.gateway_metrics, "/metrics")
            .await
            .is_some_and(|(_, text)| text.contains("confab_gateway_connections{transport=\"tcp\"} 3"))
    })
    .await;

    let report = top_json(&http).await;
    load.abort();
    assert_eq!(report["sd"], format!("http://{http}/sd"));
    let interval = number(&report["interval_secs"], "interval_secs");
    assert!((0.9..3.0).contains(&interval), "{interval}");

    let routers = report["routers"].as_array().expect("routers");
    assert_eq!(routers.len(), 3, "{report:#}");
    let mut leading = 0.0;
    for (router, addr) in routers.iter().zip(&cluster.router_http) {
        assert!(router["error"].is_null(), "{router}");
        assert_eq!(router["addr"], addr.as_str());
        leading += number(&router["leading"], "leading");
        rate(&router["writes_per_sec"], "writes_per_sec");
        rate(&router["reads_per_sec"], "reads_per_sec");
    }
    // Every group has one leader: the meta group and each shard.
    assert_eq!(leading as u64, SHARDS + 1, "{report:#}");
    // The user's shard leader wrote its sessions and served the lookups.
    let some = |field: &str| routers.iter().any(|r| r[field].as_f64().is_some_and(|v| v > 0.0));
    for field in ["writes_per_sec", "write_p99_ms", "reads_per_sec", "read_p99_ms"] {
        assert!(some(field), "no router with {field}: {report:#}");
    }
    assert!(
        routers.iter().any(|r| r["raft_lag"].is_u64()),
        "a leader reports its replicas' lag: {report:#}"
    );

    let gateways = report["gateways"].as_array().expect("gateways");
    assert_eq!(gateways.len(), 1, "{report:#}");
    assert_eq!(gateways[0]["node"], "1");
    assert_eq!(gateways[0]["addr"], cluster.gateway_metrics.as_str());
    assert!(gateways[0]["error"].is_null());
    assert_eq!(number(&gateways[0]["connections"], "connections"), 3.0);
    assert!(
        number(&gateways[0]["messages_per_sec"], "messages_per_sec") > 0.0,
        "{report:#}"
    );
    assert!(
        number(&gateways[0]["deliveries_per_sec"], "deliveries_per_sec") > 0.0,
        "{report:#}"
    );

    let persist = report["persist"].as_array().expect("persist");
    assert_eq!(persist.len(), 1, "{report:#}");
    assert_eq!(persist[0]["addr"], cluster.persist_http.as_str());
    assert!(number(&persist[0]["queue_depth"], "queue_depth") >= 0.0);
    assert_eq!(number(&persist[0]["dead_letters"], "dead_letters"), 0.0);
    assert!(
        number(&persist[0]["writes_per_sec"], "writes_per_sec") > 0.0,
        "{report:#}"
    );
    assert_eq!(
        number(&persist[0]["dead_letters_per_sec"], "dead_letters_per_sec"),
        0.0
    );
    number(&persist[0]["oldest_unwritten_secs"], "oldest_unwritten_secs");

    // Without --json and without a terminal: a sample per interval, a
    // blank line apart, until stopped.
    let mut watch = confabctl()
        .args(["top", "--http", &http, "--interval", "0.5"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run confabctl top");
    let mut stdout = watch.stdout.take().expect("stdout");
    let mut text = String::new();
    let mut buf = [0; 4096];
    while text.matches("PERSIST").count() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(10), stdout.read(&mut buf))
            .await
            .expect("a sample within 10 s")
            .expect("read");
        assert!(n > 0, "confabctl top stopped:\n{text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    watch.kill().await.expect("stop confabctl top");
    println!("confabctl top:\n{text}");
    assert!(!text.contains('\x1b'), "no terminal, no escapes:\n{text}");
    let second = text.find("\n\nhttp://").expect("a blank line between samples");
    assert!(text[second..].contains("ROUTERS\nNODE  ADDR"), "{text}");
    assert!(
        text.matches(&format!("{} ", cluster.router_http[2])).count() >= 2,
        "{text}"
    );
}

#[tokio::test]
async fn top_without_a_router_fails_naming_the_address() {
    let nobody = free_addr();
    let out = confabctl()
        .args(["top", "--json", "--http", &nobody, "--interval", "0.1"])
        .output()
        .await
        .expect("run confabctl");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!("error: cannot read the process list from http://{nobody}/sd: connection refused")
    );
}
