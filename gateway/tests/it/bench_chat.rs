//! `confab-bench chat --sweep`: the latency-throughput curve, its knee in
//! the JSON and the plot as SVG.

use crate::harness::{Cluster, workspace_bin};

/// A sweep of 20, 40, 60 msg/s on `gateways` with this p99 target (ms);
/// its JSON document.
async fn sweep(gateways: &str, target_ms: &str, svg: &std::path::Path) -> serde_json::Value {
    let out = tokio::process::Command::new(workspace_bin("confab-bench"))
        .args(["--json", "chat", "--gateway", gateways, "--pairs", "10"])
        .args(["--duration", "1", "--warmup", "0", "--drain", "5", "--sweep"])
        .args(["--sweep-from", "20", "--sweep-step", "20", "--sweep-to", "60"])
        .args(["--p99-target-ms", target_ms])
        .arg("--svg")
        .arg(svg)
        .env_remove("CONFAB_GATEWAY")
        .output()
        .await
        .expect("run confab-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_sweep_writes_the_curve_its_knee_and_a_plot() {
    let cluster = Cluster::start(2).await;
    let gateways = format!("{},{}", cluster.gw(1), cluster.gw(2));
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("curve.svg");
    // A light load on a test build (the machine busy with other tests):
    // every step under a generous target, so the sweep runs them all.
    let doc = sweep(&gateways, "2000", &svg).await;
    assert_eq!(doc["scenario"], "chat-sweep", "{doc}");
    let steps = doc["results"]["steps"].as_array().expect("steps");
    let offered: Vec<f64> = steps.iter().filter_map(|s| s["offered"].as_f64()).collect();
    assert_eq!(offered, vec![20.0, 40.0, 60.0], "{doc}");
    for s in steps {
        assert!(s["delivered_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{s}");
        assert!(s["p99_ms"].as_f64().is_some_and(|p| p > 0.0), "{s}");
        assert_eq!(s["lost"], 0, "{s}");
    }
    assert_eq!(doc["results"]["knee_msgs_per_s"], 60.0, "{doc}");
    let plot = std::fs::read_to_string(&svg).expect("the SVG");
    assert!(
        plot.starts_with("<svg") && plot.matches("<circle").count() == 6,
        "{plot}"
    );

    // A target no step can meet: the sweep stops after its first step and
    // has no knee.
    let doc = sweep(&gateways, "0.001", &svg).await;
    assert_eq!(doc["results"]["steps"].as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(doc["results"]["knee_msgs_per_s"], 0.0, "{doc}");
}
