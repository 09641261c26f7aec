//! Prometheus metrics of one persist instance (its own registry, so several
//! instances can run in one test process).

use std::time::Instant;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    pub db_query_seconds: HistogramVec,
    pub db_query_errors: IntCounterVec,
    pub db_pool_size: IntGauge,
    pub db_pool_idle: IntGauge,
    pub db_pool_max: IntGauge,
    /// TLS on the links to the database and the broker (`link`): 0 plain,
    /// 1 encrypted without verifying the server, 2 verified.
    pub tls_mode: IntGaugeVec,
    pub writer_batches: IntCounter,
    pub writer_messages: IntCounter,
    pub writer_duplicates: IntCounter,
    pub writer_dead_letters: IntCounter,
    pub writer_rejected: IntCounter,
    pub writer_retries: IntCounter,
    pub writer_batch_seconds: HistogramVec,
    pub enqueued: IntCounter,
    pub grpc_requests: IntCounterVec,
    pub subscribers: IntGauge,
    pub read_waits: IntCounterVec,
    /// Inserts refused by a cap, by the cap's name.
    pub limit_refusals: IntCounterVec,
    /// Resume tokens revoked or refused, by reason.
    pub token_revocations: IntCounterVec,
    pub up: Gauge,
    /// Embedded queue: messages enqueued and not yet written (acked).
    pub queue_waiting: IntGauge,
    /// Embedded queue: its files on disk (the log's segments, or RocksDB's WAL and table files).
    pub queue_segments: IntGauge,
    /// Embedded queue on RocksDB: its memory by part.
    pub queue_memory: IntGaugeVec,
    /// Seconds since the oldest message a writer took from the queue and
    /// has not written yet was accepted by its gateway (0 when idle); grows
    /// while the database refuses the batch.
    pub queue_oldest_age: Gauge,
    /// Embedded queue: seconds of one group commit (write + fdatasync).
    pub queue_commit_seconds: Histogram,
    /// Password hashes (argon2) running or waiting for a place.
    pub password_hashes: IntGaugeVec,
    /// Password hashes refused: no place within the queue deadline.
    pub password_hashes_refused: IntCounter,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric names and labels are literals below: a failure is a programming
    // error caught by the first test.
    r.expect("valid metric definition")
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("confab_persist".into()), None).expect("valid registry prefix");
        let buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ];
        let m = Self {
            db_query_seconds: must(HistogramVec::new(
                HistogramOpts::new("db_query_seconds", "Data-access call latency").buckets(buckets.clone()),
                &["op"],
            )),
            db_query_errors: must(IntCounterVec::new(
                Opts::new("db_query_errors_total", "Data-access calls that failed"),
                &["op"],
            )),
            db_pool_size: must(IntGauge::new("db_pool_connections", "Open pool connections")),
            db_pool_idle: must(IntGauge::new("db_pool_idle", "Idle pool connections")),
            db_pool_max: must(IntGauge::new("db_pool_max", "Pool size limit")),
            tls_mode: must(IntGaugeVec::new(
                Opts::new(
                    "tls_mode",
                    "TLS to the database or broker: 0 plain, 1 encrypted unverified, 2 verified",
                ),
                &["link"],
            )),
            writer_batches: must(IntCounter::new("writer_batches_total", "Committed batches")),
            writer_messages: must(IntCounter::new(
                "writer_messages_total",
                "Messages written (first time)",
            )),
            writer_duplicates: must(IntCounter::new(
                "writer_duplicates_total",
                "Redelivered messages already stored, acked without writing",
            )),
            writer_dead_letters: must(IntCounter::new(
                "writer_dead_letters_total",
                "Poison messages moved to the dead-letter queue",
            )),
            writer_rejected: must(IntCounter::new(
                "writer_rejected_total",
                "Messages not written: the sender is no participant of the conversation",
            )),
            writer_retries: must(IntCounter::new(
                "writer_retries_total",
                "Batch attempts that failed with a transient error",
            )),
            writer_batch_seconds: must(HistogramVec::new(
                HistogramOpts::new("writer_batch_seconds", "Batch write + commit latency").buckets(buckets),
                &["backend"],
            )),
            enqueued: must(IntCounter::new("enqueued_total", "Messages enqueued via gRPC")),
            grpc_requests: must(IntCounterVec::new(
                Opts::new("grpc_requests_total", "gRPC requests by method and code"),
                &["method", "code"],
            )),
            subscribers: must(IntGauge::new("subscribers", "Open Subscribe streams")),
            read_waits: must(IntCounterVec::new(
                Opts::new(
                    "read_waits_total",
                    "Reads that waited for a message to be written, by outcome (written, timeout)",
                ),
                &["outcome"],
            )),
            limit_refusals: must(IntCounterVec::new(
                Opts::new(
                    "limit_refusals_total",
                    "Inserts refused by a cap (group_members, pending_friend_requests, ...)",
                ),
                &["limit"],
            )),
            token_revocations: must(IntCounterVec::new(
                Opts::new(
                    "token_revocations_total",
                    "Resume tokens revoked by reason (logout, same_device, kicked, over_cap, expired)",
                ),
                &["reason"],
            )),
            up: must(Gauge::new("up", "1 while serving")),
            queue_waiting: must(IntGauge::new(
                "queue_waiting_messages",
                "Embedded queue: messages enqueued and not yet written",
            )),
            queue_segments: must(IntGauge::new(
                "queue_log_segments",
                "Embedded queue: files on disk (the log's segments, or RocksDB's WAL and table files)",
            )),
            queue_memory: must(IntGaugeVec::new(
                Opts::new(
                    "queue_memory_bytes",
                    "Embedded queue on RocksDB: memory by part (memtables, table_readers, block_cache)",
                ),
                &["part"],
            )),
            queue_oldest_age: must(Gauge::new(
                "queue_oldest_unwritten_age_seconds",
                "Seconds since the oldest message a writer holds and has not written was accepted (0: none)",
            )),
            queue_commit_seconds: must(Histogram::with_opts(
                HistogramOpts::new(
                    "queue_log_commit_seconds",
                    "Embedded queue: one group commit (write + fdatasync)",
                )
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                ]),
            )),
            password_hashes: must(IntGaugeVec::new(
                Opts::new(
                    "password_hashes",
                    "Password hashes (argon2) by state (running, waiting)",
                ),
                &["state"],
            )),
            password_hashes_refused: must(IntCounter::new(
                "password_hashes_refused_total",
                "Password hashes refused (RESOURCE_EXHAUSTED): no place within the queue deadline",
            )),
            registry,
        };
        let r = &m.registry;
        must(r.register(Box::new(m.db_query_seconds.clone())));
        must(r.register(Box::new(m.db_query_errors.clone())));
        must(r.register(Box::new(m.db_pool_size.clone())));
        must(r.register(Box::new(m.db_pool_idle.clone())));
        must(r.register(Box::new(m.db_pool_max.clone())));
        must(r.register(Box::new(m.tls_mode.clone())));
        must(r.register(Box::new(m.writer_batches.clone())));
        must(r.register(Box::new(m.writer_messages.clone())));
        must(r.register(Box::new(m.writer_duplicates.clone())));
        must(r.register(Box::new(m.writer_dead_letters.clone())));
        must(r.register(Box::new(m.writer_rejected.clone())));
        must(r.register(Box::new(m.writer_retries.clone())));
        must(r.register(Box::new(m.writer_batch_seconds.clone())));
        must(r.register(Box::new(m.enqueued.clone())));
        must(r.register(Box::new(m.grpc_requests.clone())));
        must(r.register(Box::new(m.subscribers.clone())));
        must(r.register(Box::new(m.read_waits.clone())));
        must(r.register(Box::new(m.limit_refusals.clone())));
        must(r.register(Box::new(m.token_revocations.clone())));
        must(r.register(Box::new(m.up.clone())));
        must(r.register(Box::new(m.queue_waiting.clone())));
        must(r.register(Box::new(m.queue_oldest_age.clone())));
        must(r.register(Box::new(m.queue_segments.clone())));
        must(r.register(Box::new(m.queue_memory.clone())));
        must(r.register(Box::new(m.queue_commit_seconds.clone())));
        must(r.register(Box::new(m.password_hashes.clone())));
        must(r.register(Box::new(m.password_hashes_refused.clone())));
        // The caps' series exist from the start (a panel shows 0, not nothing).
        for limit in [
            "group_members",
            "pending_friend_requests",
            "pending_group_invites",
        ] {
            m.limit_refusals.with_label_values(&[limit]);
        }
        // So do the queue's memory parts: 0 where no embedded queue runs
        // on RocksDB (RabbitMQ, or the log engine).
        for part in confab_queue::embedded::MEMORY_PARTS {
            m.queue_memory.with_label_values(&[part]);
        }
        m
    }

    /// The registry in Prometheus text format, followed by the process-wide
    /// default registry (the shared crates' series: TLS handshakes, refused
    /// calls).
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let mut families = self.registry.gather();
        families.extend(prometheus::gather());
        let _ = TextEncoder::new().encode(&families, &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Starts timing a data-access call.
    pub fn time(&self, op: &'static str) -> QueryTimer<'_> {
        QueryTimer {
            metrics: self,
            op,
            start: Instant::now(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Records a call's latency, and an error when `fail` is called.
pub struct QueryTimer<'a> {
    metrics: &'a Metrics,
    op: &'static str,
    start: Instant,
}

impl QueryTimer<'_> {
    pub fn finish<T, E>(self, r: Result<T, E>) -> Result<T, E> {
        self.metrics
            .db_query_seconds
            .with_label_values(&[self.op])
            .observe(self.start.elapsed().as_secs_f64());
        if r.is_err() {
            self.metrics.db_query_errors.with_label_values(&[self.op]).inc();
        }
        r
    }
}
