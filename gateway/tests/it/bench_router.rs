//! The router benchmarks measure what they say: `confab-bench router` reads
//! a populated table (it logs in `--sessions` sessions first and reports the
//! share of the uids asked that had one); `confab-bench catchup` reads the
//! moved replica back and compares it with its leader.

use crate::harness::{Cluster, workspace_bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_lookups_read_a_populated_table_and_report_the_hit_ratio() {
    let cluster = Cluster::start(0).await;
    let routers = cluster.routers.join(",");
    let out = tokio::process::Command::new(workspace_bin("confab-bench"))
        .args(["--json", "router", "--router", &routers, "--mix", "lookups"])
        .args(["--sessions", "2000", "--users", "4000", "--batch", "50"])
        .args(["--concurrency", "8", "--duration", "1", "--seed", "7"])
        .output()
        .await
        .expect("run confab-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("2000 sessions logged in"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let ratio = summary["results"]["hit_ratio"].as_f64().expect("hit_ratio");
    // Half of uids 1..=4000 have a session: the ratio is about one half.
    assert!((0.4..0.6).contains(&ratio), "hit ratio {ratio}: {summary}");
    assert!(
        summary["results"]["uids_asked"].as_u64().unwrap_or(0) > 1000,
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catchup_bench_reads_the_new_replica_back() {
    let mut cluster = Cluster::start(0).await;
    cluster.add_router(4).await;
    let routers = cluster.routers.join(",");
    let out = tokio::process::Command::new(workspace_bin("confab-bench"))
        .args(["--json", "catchup", "--router", &routers])
        .args([
            "--shard",
            "1",
            "--sessions",
            "3000",
            "--to",
            "4",
            "--concurrency",
            "64",
        ])
        .output()
        .await
        .expect("run confab-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let r = &summary["results"];
    assert_eq!(r["replica_sessions"], r["leader_sessions"], "{r}");
    // The fill writes at least --sessions (a few more in flight at the end).
    assert_eq!(r["replica_sessions"], r["sessions_in_shard"], "{r}");
    assert!(r["replica_sessions"].as_u64().unwrap_or(0) >= 3000, "{r}");
    assert!(
        r["checksum"].as_str().is_some_and(|c| c != "0000000000000000"),
        "{r}"
    );
    assert!(
        r["replicas_after"]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n == 4)),
        "{r}"
    );
}

/// `confab-bench group` with several groups whose owners send at once,
/// unpaced: every member gets every group's every message, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_bench_runs_several_groups_at_once() {
    let cluster = Cluster::start(2).await;
    let gateways = format!("{},{}", cluster.gw(1), cluster.gw(2));
    let out = tokio::process::Command::new(workspace_bin("confab-bench"))
        .args(["--json", "group", "--gateway", &gateways])
        .args([
            "--groups",
            "3",
            "--members",
            "20",
            "--messages",
            "10",
            "--interval-ms",
            "0",
        ])
        .env_remove("CONFAB_GATEWAY")
        .output()
        .await
        .expect("run confab-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let r = &doc["results"];
    assert_eq!(r["sent"], 30, "{doc}");
    assert_eq!(r["delivered"], 600, "3 groups x 10 messages x 20 members: {doc}");
    assert_eq!(
        (r["lost"].as_u64(), r["duplicated"].as_u64()),
        (Some(0), Some(0)),
        "{doc}"
    );
    assert_eq!(r["messages_complete"], 30, "{doc}");
    assert!(r["deliveries_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{doc}");
}
