//! Prometheus metrics of a router node.
//!
//! Process-wide counters and histograms live here as statics in the default
//! registry; per-group gauges (leader, term, indexes, lag, sessions) are
//! refreshed from Raft metrics just before each scrape (see `http.rs`).

use std::sync::LazyLock;

use prometheus::Histogram;
use prometheus::HistogramOpts;
use prometheus::HistogramVec;
use prometheus::IntCounter;
use prometheus::IntCounterVec;
use prometheus::IntGaugeVec;
use prometheus::Opts;

fn counter(name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    prometheus::register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    prometheus::register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    prometheus::register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric");
    prometheus::register(Box::new(h.clone())).expect("metric registered once");
    h
}

fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("valid metric");
    prometheus::register(Box::new(h.clone())).expect("metric registered once");
    h
}

fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.000_05, 2.0, 18).expect("valid buckets")
}

pub static WAL_SYNC_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "confab_router_wal_sync_seconds",
        "WAL fsync duration",
        latency_buckets(),
    )
});
pub static WAL_SYNC_BATCH: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "confab_router_wal_sync_batch",
        "Log writes made durable by one WAL fsync",
        prometheus::exponential_buckets(1.0, 2.0, 12).expect("valid buckets"),
    )
});
pub static LOG_ENTRIES_APPENDED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "confab_router_log_entries_appended_total",
        "Raft log entries appended",
    )
});
pub static SNAPSHOTS_BUILT: LazyLock<IntCounter> =
    LazyLock::new(|| counter("confab_router_snapshots_built_total", "Snapshots built"));
pub static SNAPSHOTS_INSTALLED: LazyLock<IntCounter> =
    LazyLock::new(|| counter("confab_router_snapshots_installed_total", "Snapshots installed"));
/// Proposal latency (propose -> applied) by command kind.
pub static PROPOSAL_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "confab_router_proposal_seconds",
        "Time from proposal to applied, by command",
        &["command"],
        latency_buckets(),
    )
});
/// Linearizable read latency (leadership check + wait for apply + read).
pub static READ_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "confab_router_read_seconds",
        "Linearizable read latency per shard part",
        latency_buckets(),
    )
});
/// Readers served by one leadership check.
pub static WRITE_BATCH: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "confab_router_write_batch",
        "Session writes carried by one shard log entry",
        prometheus::exponential_buckets(1.0, 2.0, 12).expect("valid buckets"),
    )
});

pub static REBALANCE_DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_router_rebalance_moves_total",
        "Replica moves the rebalancer planned (dry runs) or ran",
        &["kind"],
    )
});

pub static MOVES_IN_PROGRESS: LazyLock<prometheus::IntGauge> = LazyLock::new(|| {
    let g = prometheus::IntGauge::new(
        "confab_router_moves_in_progress",
        "Replica moves this node is running",
    )
    .expect("valid gauge");
    prometheus::register(Box::new(g.clone())).expect("register gauge");
    g
});

pub static LEARNER_CATCH_UP_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "confab_router_learner_catch_up_seconds",
        "Time for a new replica to catch up as a learner (snapshot + log)",
        prometheus::exponential_buckets(0.01, 2.0, 16).expect("valid buckets"),
    )
});

pub static READ_BATCH: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "confab_router_read_batch",
        "Linearizable reads served by one leadership check",
        prometheus::exponential_buckets(1.0, 2.0, 12).expect("valid buckets"),
    )
});
pub static RPC_TOTAL: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("confab_router_rpc_total", "RPCs served by method", &["method"]));
pub static RPC_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_router_rpc_errors_total",
        "RPC errors by method and kind",
        &["method", "kind"],
    )
});
/// Requests answered with a redirect instead of a result, by kind:
/// `not_leader`, `epoch_not_match`, `tombstone` (a replica this node gave
/// away), `shard_not_found`.
pub static REDIRECTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_router_redirects_total",
        "Requests answered with a routing redirect, by kind",
        &["kind"],
    )
});

/// Counts a failed call (or batch item, or lookup part) of `method`: its
/// error kind, and the redirect it is, if any.
pub fn count_error(method: &str, e: &crate::error::RouterError) {
    RPC_ERRORS.with_label_values(&[method, e.kind()]).inc();
    if let Some(kind) = e.redirect_kind() {
        REDIRECTS.with_label_values(&[kind]).inc();
    }
}

fn snapshot_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 2.0, 16).expect("valid buckets")
}

/// Full snapshots this node sent to a lagging replica or a new learner.
pub static SNAPSHOTS_SENT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_router_snapshots_sent_total",
        "Full snapshots sent to other replicas, by outcome",
        &["outcome"],
    )
});
pub static SNAPSHOT_SENT_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "confab_router_snapshot_sent_bytes_total",
        "Bytes of snapshot data sent",
    )
});
pub static SNAPSHOT_SEND_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "confab_router_snapshot_send_seconds",
        "Time to send a snapshot until the receiver installed it",
        snapshot_buckets(),
    )
});
/// Raft RPCs refused because they were meant for another node id or came
/// from another cluster.
pub static RAFT_MISADDRESSED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "confab_router_raft_misaddressed_total",
        "Raft RPCs refused: meant for another node id or sent by another cluster (a wrong or stale peer address)",
    )
});
/// Full snapshots this node received (and installed, when `ok`).
pub static SNAPSHOTS_RECEIVED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_router_snapshots_received_total",
        "Full snapshots received from a leader, by outcome",
        &["outcome"],
    )
});
pub static SNAPSHOT_RECEIVED_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "confab_router_snapshot_received_bytes_total",
        "Bytes of snapshot data received",
    )
});
pub static SNAPSHOT_RECEIVE_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "confab_router_snapshot_receive_seconds",
        "Time to install a received snapshot",
        snapshot_buckets(),
    )
});

pub static RAFT_RPC_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_router_raft_rpc_total",
        "Raft RPCs sent to peers by kind and outcome",
        &["kind", "outcome"],
    )
});
pub static GROUP_GAUGE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "confab_router_group",
        "Per-group Raft state: leader, term, commit, applied, last_log, is_leader",
        &["group", "field"],
    )
});
pub static REPLICA_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "confab_router_replica_lag_entries",
        "Leader only: entries a replica is behind the leader's last log",
        &["group", "replica"],
    )
});
pub static SHARD_SESSIONS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "confab_router_shard_sessions",
        "Sessions held per shard",
        &["shard"],
    )
});
pub static GATEWAYS_EXPIRED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "confab_router_gateway_leases_expired_total",
        "Gateway leases that ran out",
    )
});

/// Makes every metric exist from the start (at zero), with the label values
/// of its small, known domains, so that a dashboard panel or an alert shows
/// 0 rather than nothing before the first event.
pub fn init() {
    for m in [
        &*LOG_ENTRIES_APPENDED,
        &*SNAPSHOTS_BUILT,
        &*SNAPSHOTS_INSTALLED,
        &*SNAPSHOT_SENT_BYTES,
        &*SNAPSHOT_RECEIVED_BYTES,
        &*RAFT_MISADDRESSED,
        &*GATEWAYS_EXPIRED,
    ] {
        m.inc_by(0);
    }
    for h in [
        &*READ_SECONDS,
        &*WRITE_BATCH,
        &*LEARNER_CATCH_UP_SECONDS,
        &*READ_BATCH,
        &*SNAPSHOT_SEND_SECONDS,
        &*SNAPSHOT_RECEIVE_SECONDS,
    ] {
        // Dereferenced above: registered, with empty buckets.
        h.get_sample_count();
    }
    MOVES_IN_PROGRESS.add(0);
    for kind in ["planned", "run"] {
        REBALANCE_DECISIONS.with_label_values(&[kind]);
    }
    for outcome in ["ok", "error"] {
        SNAPSHOTS_SENT.with_label_values(&[outcome]);
        SNAPSHOTS_RECEIVED.with_label_values(&[outcome]);
    }
    for kind in ["not_leader", "epoch_not_match", "tombstone", "shard_not_found"] {
        REDIRECTS.with_label_values(&[kind]);
    }
}
