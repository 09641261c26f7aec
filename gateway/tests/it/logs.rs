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
