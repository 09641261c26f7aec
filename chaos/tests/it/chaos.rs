//! The chaos run against 3 real router processes behind proxies: a seeded
//! short schedule for CI, a long one for `make chaos`.
//!
//! `CONFAB_CHAOS_SEED` and `CONFAB_CHAOS_SECS` override the seed and the
//! length; the router binary comes from `CONFAB_BIN_DIR` or beside the test.

use confab_chaos::origin::Origin;
use confab_chaos::run;
use confab_chaos::run::ChaosOptions;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

async fn chaos(default_secs: u64) {
    let seed = env_u64("CONFAB_CHAOS_SEED").unwrap_or(20_251_127);
    let secs = env_u64("CONFAB_CHAOS_SECS").unwrap_or(default_secs);
    let options = ChaosOptions::new(seed, secs).expect("router binary");
    let steps = options.schedule.steps.len();
    let report = run::run(options).await.expect("chaos run");
    let summary = report.summary();
    eprintln!("{summary}");
    assert!(report.passed(), "{summary}");
    assert_eq!(report.faults_injected, steps, "every fault applied:\n{summary}");
    assert!(report.check.ops > 1000, "too little load checked:\n{summary}");
    // The proxies saw Raft traffic from each other node: the link faults
    // cut real links, not just client traffic.
    for (node, counts) in &report.proxies {
        let peers = counts
            .accepted
            .keys()
            .filter(|o| matches!(o, Origin::Node(n) if n != node))
            .count();
        assert_eq!(peers, 2, "proxy of node {node} saw {:?}", counts.accepted);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_short_is_linearizable() {
    chaos(24).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "minutes long: `make chaos`"]
async fn chaos_long() {
    chaos(300).await;
}
