//! The gateway's Prometheus metrics, in the default registry (rendered by
//! `confab_common::metrics::render` on `GET /metrics`).

use std::sync::LazyLock;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, register_histogram,
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge_vec,
};

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register_int_counter_vec!(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("metric {name}: {e}"))
}

fn counter(name: &str, help: &str) -> IntCounter {
    register_int_counter!(Opts::new(name, help)).unwrap_or_else(|e| panic!("metric {name}: {e}"))
}

/// Open client connections by transport ("tcp", "ws").
pub static CONNECTIONS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        Opts::new(
            "confab_gateway_connections",
            "Open client connections by transport"
        ),
        &["transport"]
    )
    .unwrap_or_else(|e| panic!("metric: {e}"))
});

pub static FRAMES_IN: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_gateway_frames_in_total",
        "Client frames received by kind",
        &["kind"],
    )
});

pub static FRAMES_OUT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_gateway_frames_out_total",
        "Client frames sent by kind",
        &["kind"],
    )
});

pub static ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_gateway_errors_total",
        "Error frames sent by code",
        &["code"],
    )
});

/// From receiving a Send to acking it (enqueue confirmed, delivered).
pub static SEND_LATENCY: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        HistogramOpts::new("confab_gateway_send_seconds", "Send request to ack, seconds")
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 14).unwrap_or_default())
    )
    .unwrap_or_else(|e| panic!("metric: {e}"))
});

/// Where a 1:1 send's time goes: `confirm` (handed to the enqueue batch ->
/// the queue's confirm), `lookup` (the recipients' sessions, concurrent
/// with the confirm), `order` (waiting for the connection's previous send
/// to hand over its pushes), `deliver` (pushes handed -> other gateways'
/// calls done).
pub static SEND_PHASE: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        HistogramOpts::new(
            "confab_gateway_send_phase_seconds",
            "Time of each phase of a 1:1 send, seconds"
        )
        .buckets(prometheus::exponential_buckets(0.0005, 2.0, 14).unwrap_or_default()),
        &["phase"]
    )
    .unwrap_or_else(|e| panic!("metric: {e}"))
});

/// Pushes handed to a session's queue (local) or to another gateway.
pub static DELIVERIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_gateway_deliveries_total",
        "Message pushes by path (local, remote) and outcome",
        &["path", "outcome"],
    )
});

pub static KICKS: LazyLock<IntCounter> =
    LazyLock::new(|| counter("confab_gateway_kicks_total", "Sessions kicked by a newer login"));

pub static SLOW_CONSUMERS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "confab_gateway_slow_consumers_total",
        "Connections closed because their send queue was full",
    )
});

/// Friend-list and member-list cache lookups by kind and outcome.
pub static SOCIAL_CACHE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_gateway_social_cache_total",
        "Friend-list and member-list cache lookups by kind (friends, groups) and outcome (hit, miss)",
        &["kind", "outcome"],
    )
});

/// Friend, group and presence pushes handed to sessions here.
pub static SOCIAL_PUSHES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_gateway_social_pushes_total",
        "Friend, group and presence pushes to sessions here by outcome",
        &["outcome"],
    )
});

/// Presence announcements by cause (login, logout, gateway_gone).
pub static PRESENCE_EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_gateway_presence_events_total",
        "Presence changes announced by cause",
        &["cause"],
    )
});

/// From receiving a GroupSend to acking it.
pub static GROUP_SEND_LATENCY: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        HistogramOpts::new(
            "confab_gateway_group_send_seconds",
            "GroupSend request to ack, seconds"
        )
        .buckets(prometheus::exponential_buckets(0.0005, 2.0, 14).unwrap_or_default())
    )
    .unwrap_or_else(|e| panic!("metric: {e}"))
});

/// Sessions a group message was pushed to.
pub static GROUP_FANOUT: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "confab_gateway_group_fanout_sessions_total",
        "Sessions group messages were pushed to",
    )
});

/// Touches every metric so that `/metrics` lists them from the start.
pub fn init() {
    LazyLock::force(&CONNECTIONS);
    LazyLock::force(&FRAMES_IN);
    LazyLock::force(&FRAMES_OUT);
    LazyLock::force(&ERRORS);
    LazyLock::force(&SEND_LATENCY);
    LazyLock::force(&DELIVERIES);
    LazyLock::force(&KICKS);
    LazyLock::force(&SLOW_CONSUMERS);
    LazyLock::force(&SOCIAL_CACHE);
    LazyLock::force(&SOCIAL_PUSHES);
    LazyLock::force(&PRESENCE_EVENTS);
    LazyLock::force(&GROUP_SEND_LATENCY);
    LazyLock::force(&GROUP_FANOUT);
}
