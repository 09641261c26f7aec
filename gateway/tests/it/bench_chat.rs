//! `confab-bench chat --sweep`: the latency-throughput curve, its knee in
//! the JSON and the plot as SVG.

use crate::harness::{Cluster, workspace_bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_sweep_writes_the_curve_its_knee_and_a_plot() {
    let cluster = Cluster::start(2).await;
    let gateways = format!("{},{}", cluster.gw(1), cluster.gw(2));
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("curve.svg");
    let out = tokio::process::Command::new(workspace_bin("confab-bench"))
        .args(["--json", "chat", "--gateway", &gateways, "--pairs", "10"])
        .args(["--duration", "1", "--warmup", "0", "--drain", "5"])
        .args([
            "--sweep",
            "--sweep-from",
            "20",
            "--sweep-step",
            "20",
            "--sweep-to",
            "60",
        ])
        .arg("--svg")
        .arg(&svg)
        .env_remove("CONFAB_GATEWAY")
        .output()
        .await
        .expect("run confab-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["scenario"], "chat-sweep", "{doc}");
    let steps = doc["results"]["steps"].as_array().expect("steps");
    let offered: Vec<f64> = steps.iter().filter_map(|s| s["offered"].as_f64()).collect();
    assert_eq!(
        offered,
        vec![20.0, 40.0, 60.0],
        "a light load stays under the target: {doc}"
    );
    for s in steps {
        assert!(s["delivered_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{s}");
        assert!(s["p99_ms"].as_f64().is_some_and(|p| p > 0.0 && p < 50.0), "{s}");
        assert_eq!(s["lost"], 0, "{s}");
    }
    assert_eq!(doc["results"]["knee_msgs_per_s"], 60.0, "{doc}");
    let plot = std::fs::read_to_string(&svg).expect("the SVG");
    assert!(
        plot.starts_with("<svg") && plot.matches("<circle").count() == 6,
        "{plot}"
    );
}
