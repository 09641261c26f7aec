//! What the gateway writes to its log file.

use crate::harness::Cluster;

/// A log file (stderr not a terminal) carries no terminal colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_file_carries_no_colour_codes() {
    let mut cluster = Cluster::start(0).await;
    cluster.start_gateway_with_env(1, &[("RUST_LOG", "info")]).await;
    let log = cluster.log("gateway-1");
    assert!(log.contains("INFO"), "the gateway logged at info: {log}");
    assert!(
        !log.contains('\u{1b}'),
        "no escape sequence in a log file: {log:?}"
    );
}

/// Every line of a process started with `--log-format json` (or
/// `CONFAB_LOG_FORMAT=json`) is one JSON object with the stable fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_stable_fields() {
    let mut cluster = Cluster::start(0).await;
    cluster
        .start_gateway_with_args(7, &["--log-format", "json"], &[("RUST_LOG", "info")])
        .await;
    cluster.kill("persist");
    cluster
        .restart_persist(&[("CONFAB_LOG_FORMAT", "json"), ("RUST_LOG", "info")])
        .await;
    for (name, service, node) in [("gateway-7", "gateway", 7), ("persist", "persist", 1)] {
        // The restarted persist's log is appended to the first one's.
        let log = cluster.log(name);
        let lines: Vec<&str> = log.lines().filter(|l| l.starts_with('{')).collect();
        assert!(lines.len() >= 2, "{name} logged JSON lines: {log}");
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(v["service"], service, "{line}");
            assert_eq!(v["node"], node, "{line}");
            assert!(v["level"].is_string() && v["target"].is_string(), "{line}");
            assert!(v["timestamp"].as_str().is_some_and(|t| t.contains('T')), "{line}");
            assert!(v["message"].is_string(), "{line}");
        }
    }
}
