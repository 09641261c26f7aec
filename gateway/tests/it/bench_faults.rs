//! `confab-bench chat` under a fault: a gateway SIGKILLed mid-run. Its
//! users log in again at the other gateway and the final check reads what
//! they missed, as the client library would sync it: the bench's lost and
//! duplicated figures stay true (0 and 0), and it says how many
//! connections came back.

use std::time::Duration;

use crate::harness::{Cluster, workspace_bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_bench_reconnects_and_syncs_when_a_gateway_dies() {
    let mut cluster = Cluster::start(2).await;
    let gateways = format!("{},{}", cluster.gw(1), cluster.gw(2));
    let bench = tokio::process::Command::new(workspace_bin("confab-bench"))
        .args(["--json", "chat", "--gateway", &gateways])
        .args([
            "--pairs",
            "20",
            "--rate",
            "200",
            "--duration",
            "6",
            "--warmup",
            "0",
            "--drain",
            "10",
        ])
        .env_remove("CONFAB_GATEWAY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run confab-bench");
    // Registration and logins take a moment; then the run is under way.
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.kill("gateway-2");
    let out = tokio::time::timeout(Duration::from_secs(90), bench.wait_with_output())
        .await
        .expect("the bench ends")
        .expect("bench output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the bench survives the fault: {stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let r = &summary["results"];
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert!(n("receiver_reconnects") > 0 && n("sender_reconnects") > 0, "{r}");
    assert!(n("acked") > 0, "{r}");
    assert_eq!((n("lost"), n("duplicated")), (0, 0), "{r}");
    assert!(n("delivered") >= n("acked"), "{r}");
}
