//! The gateway's Prometheus metrics, in the default registry (rendered by
//! `confab_common::metrics::render` on `GET /metrics`).

use std::sync::LazyLock;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec,
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
        "Connections closed because their send queue went past its bound or stalled",
    )
});

/// Client connections refused at accept, by reason ("per_ip": the
/// address's cap; "max": the gateway's).
pub static CONNECTIONS_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_gateway_connections_refused_total",
        "Client connections refused at accept by reason (per_ip, max)",
        &["reason"],
    )
});

/// Requests refused by a rate limit, by bucket ("login_ip",
/// "login_account", "register_ip", "message": a user's message rate).
pub static RATE_LIMITED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_gateway_rate_limited_total",
        "Requests refused by a rate limit, by bucket (login_ip, login_account, register_ip, message)",
        &["bucket"],
    )
});

/// WebSocket frames or messages refused from their header for being over
/// the frame limit.
pub static WS_TOO_LARGE: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "confab_gateway_ws_too_large_total",
        "WebSocket frames or messages refused for being over max_frame_bytes (never buffered)",
    )
});

pub static LOGIN_TIMEOUTS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "confab_gateway_login_timeouts_total",
        "Connections closed for not logging in within login_timeout_ms",
    )
});

/// Bytes queued for clients, every connection together.
pub static SEND_QUEUE_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    prometheus::register_int_gauge!(Opts::new(
        "confab_gateway_send_queue_bytes",
        "Bytes queued for clients (answers and pushes not yet written), all connections"
    ))
    .unwrap_or_else(|e| panic!("metric: {e}"))
});

/// Connections whose requests waited unread for their send queue to drain.
pub static SEND_QUEUE_WAITS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "confab_gateway_send_queue_waits_total",
        "Times a connection stopped reading requests until its send queue drained",
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

/// Client certificate reloads (SIGHUP) by result (ok, failed).
pub static TLS_RELOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_gateway_client_tls_reloads_total",
        "Reloads of the client ports' certificate and key (SIGHUP) by result (ok, failed)",
        &["result"],
    )
});

/// Open HTTP connections on the public port (an upgrade to WebSocket
/// leaves this count).
pub static HTTP_CONNECTIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(Opts::new(
        "confab_gateway_http_connections",
        "Open HTTP connections on the public port (not yet upgraded to WebSocket)"
    ))
    .unwrap_or_else(|e| panic!("metric: {e}"))
});

/// Public HTTP connections closed by the gateway, by reason (limit: over
/// limits.max_http_connections; header_timeout: headers not in within
/// limits.http_header_timeout_ms).
pub static HTTP_CLOSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_gateway_http_closed_total",
        "Public HTTP connections closed by the gateway by reason (limit, header_timeout)",
        &["reason"],
    )
});

/// List answers by list and whether more pages follow.
pub static LIST_PAGES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_gateway_list_pages_total",
        "List answer pages by list and page (more: others follow, last)",
        &["list", "page"],
    )
});

/// Reads naming `min_message_id`, by what became of the wait.
pub static READ_WAITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_gateway_read_waits_total",
        "Fetch and History requests naming min_message_id, by outcome (waited: a message the \
         connection sent or was pushed; not_own: any other id, read at once; busy: too many waits)",
        &["outcome"],
    )
});

/// Resends (a send repeated after a lost ack) by outcome: `stored` (the
/// first attempt was found stored, its ack returned) or `queued` (queued
/// again; the writer keeps whichever copy came first).
pub static RESENDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "confab_gateway_resends_total",
        "Sends repeated by clients after a lost ack, by outcome",
        &["outcome"],
    )
});

/// Touches every metric so that `/metrics` lists them from the start.
pub fn init() {
    for outcome in ["stored", "queued"] {
        RESENDS.with_label_values(&[outcome]);
    }
    for reason in ["max", "per_ip"] {
        CONNECTIONS_REFUSED.with_label_values(&[reason]);
    }
    for bucket in ["message", "login_ip", "login_account", "register_ip"] {
        RATE_LIMITED.with_label_values(&[bucket]);
    }
    for (path, outcome) in [
        ("local", "ok"),
        ("local", "missing"),
        ("remote", "ok"),
        ("remote", "failed"),
    ] {
        DELIVERIES.with_label_values(&[path, outcome]);
    }
    for result in ["ok", "failed"] {
        TLS_RELOADS.with_label_values(&[result]);
    }
    for reason in ["limit", "header_timeout"] {
        HTTP_CLOSED.with_label_values(&[reason]);
    }
    LazyLock::force(&HTTP_CONNECTIONS);
    LazyLock::force(&CONNECTIONS);
    LazyLock::force(&FRAMES_IN);
    LazyLock::force(&FRAMES_OUT);
    LazyLock::force(&ERRORS);
    LazyLock::force(&SEND_LATENCY);
    LazyLock::force(&DELIVERIES);
    LazyLock::force(&KICKS);
    LazyLock::force(&SLOW_CONSUMERS);
    LazyLock::force(&CONNECTIONS_REFUSED);
    LazyLock::force(&RATE_LIMITED);
    LazyLock::force(&LOGIN_TIMEOUTS);
    LazyLock::force(&WS_TOO_LARGE);
    LazyLock::force(&SEND_QUEUE_BYTES);
    LazyLock::force(&SEND_QUEUE_WAITS);
    LazyLock::force(&SOCIAL_CACHE);
    LazyLock::force(&SOCIAL_PUSHES);
    LazyLock::force(&PRESENCE_EVENTS);
    LazyLock::force(&GROUP_SEND_LATENCY);
    LazyLock::force(&GROUP_FANOUT);
    LazyLock::force(&LIST_PAGES);
    LazyLock::force(&READ_WAITS);
}
