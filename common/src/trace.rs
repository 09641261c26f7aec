//! Traces across processes: OpenTelemetry spans exported over OTLP/gRPC,
//! W3C trace context (`traceparent`) between processes.
//!
//! Off by default: with no OTLP endpoint configured nothing is installed,
//! [`sample`] is false and [`traceparent`] is `None`, so the message path
//! pays one relaxed atomic load. When on, a gateway decides at each client
//! request whether to trace it ([`sample`], the configured ratio); only a
//! traced request creates spans, and only its calls carry a
//! `traceparent`. Every other process makes a span only for a call (or a
//! queued message) that carries one, as a child of the caller's span: one
//! sampled message is one trace from the sending gateway through persist,
//! the routers and the receiving gateway.
//!
//! Confab's trace spans use the target [`TARGET`]; the exporter sees only
//! those (log events stay in the logs, which name the trace id).

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The target of every span meant for the trace exporter.
pub const TARGET: &str = "confab::trace";

/// The `[tracing]` section of every service's configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TraceConfig {
    /// Where spans go: an OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`.
    /// Empty: tracing off.
    pub otlp_endpoint: String,
    /// The fraction of client requests a gateway traces, 0 to 1 (a process
    /// other than a gateway follows its caller's decision).
    pub sample_ratio: f64,
}

impl Default for TraceConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            sample_ratio: 0.01,
        }
    }
}

impl TraceConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(format!(
                "tracing.sample_ratio must be between 0 and 1, not {}",
                self.sample_ratio
            ));
        }
        let e = &self.otlp_endpoint;
        if !(e.is_empty() || e.starts_with("http://") || e.starts_with("https://")) {
            return Err(format!(
                "tracing.otlp_endpoint must be an http:// or https:// URL, not {e:?}"
            ));
        }
        Ok(())
    }
}

static ON: AtomicBool = AtomicBool::new(false);
/// The sample ratio scaled to `u64::MAX` (a request is traced when a
/// random `u64` falls below it).
static THRESHOLD: AtomicU64 = AtomicU64::new(0);

/// Whether spans are exported at all.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Whether to trace a new client request (the configured ratio).
pub fn sample() -> bool {
    if !enabled() {
        return false;
    }
    let threshold = THRESHOLD.load(Ordering::Relaxed);
    threshold == u64::MAX || next_random() < threshold
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let here = &t as *const u64 as u64;
    (t ^ here.rotate_left(32)) | 1
}

/// xorshift64*: a sampling decision, not a secret.
fn next_random() -> u64 {
    RNG.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// The current span when it is one of a traced request's (what a batched
/// call made on its behalf joins).
pub fn current() -> Option<Span> {
    if !enabled() {
        return None;
    }
    let span = Span::current();
    (span.metadata()?.target() == TARGET).then_some(span)
}

/// The W3C `traceparent` of the current span when it is traced (what a
/// call or a queued message carries to the next process).
pub fn traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = Span::current().context();
    if !cx.span().span_context().is_sampled() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` (not yet entered) a child of the remote span `traceparent`
/// names; a malformed value leaves it a root.
pub fn adopt(span: &Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx: Context = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The span `make` creates, as a child of `traceparent`, when tracing is on
/// and the caller traced this call; `Span::none()` otherwise (nothing is
/// recorded and nothing is exported).
pub fn continued(traceparent: Option<&str>, make: impl FnOnce() -> Span) -> Span {
    match traceparent {
        Some(tp) if enabled() && !tp.is_empty() => {
            let span = make();
            adopt(&span, tp);
            record_trace_id(&span);
            span
        }
        _ => Span::none(),
    }
}

/// A new trace's root span from `make` when this request is sampled;
/// `Span::none()` otherwise.
pub fn root(make: impl FnOnce() -> Span) -> Span {
    if !sample() {
        return Span::none();
    }
    let span = make();
    record_trace_id(&span);
    span
}

/// Names the trace in the span's `trace_id` field (declared `Empty` by the
/// span), so log lines inside it carry the id a trace viewer finds.
fn record_trace_id(span: &Span) {
    let id = span.context().span().span_context().trace_id();
    span.record("trace_id", tracing::field::display(id));
}

/// The installed exporter: flushes what is still buffered on
/// [`Exporter::shutdown`].
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Exports what is buffered and stops (blocks: call it from a blocking
    /// thread while the runtime still runs).
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("trace exporter shutdown: {error}");
        }
    }
}

/// The layer that exports Confab's trace spans for `service` (`name`,
/// `instance` such as "gateway-2"), or `None` when tracing is off. Must
/// run inside the Tokio runtime (the exporter's gRPC channel lives there).
pub fn layer<S>(
    service: &str,
    instance: &str,
    config: &TraceConfig,
) -> Result<Option<(impl Layer<S> + use<S>, Exporter)>, String>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    config.validate()?;
    if config.otlp_endpoint.is_empty() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(config.otlp_endpoint.clone())
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("OTLP exporter for {}: {e}", config.otlp_endpoint))?;
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(Duration::from_millis(500))
                .with_max_queue_size(8192)
                .build(),
        )
        .build();
    let resource = Resource::builder()
        .with_service_name(format!("confab-{service}"))
        .with_attribute(KeyValue::new("service.instance.id", instance.to_owned()))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        // A gateway decides (`sample`); everyone else follows the caller.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("confab");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        // Neither the busy/idle split of each span (two clock reads at
        // every poll of a traced future) nor OpenTelemetry's own current
        // context (spans are found through tracing's): a traced request
        // costs its spans and their export, not a bookkeeping per poll.
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_filter(exported_only());
    THRESHOLD.store(threshold(config.sample_ratio), Ordering::Relaxed);
    ON.store(true, Ordering::Relaxed);
    Ok(Some((layer, Exporter { provider })))
}

/// The exporter's filter: Confab's trace spans (all at INFO), decided once
/// per call site. A filter the subscriber can cache (not a closure asked at
/// every event) keeps the many `trace!`/`debug!` of the libraries on the
/// message path (h2, hyper, tonic, and `log` records) disabled for good,
/// as with tracing off.
fn exported_only() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::INFO)
}

fn threshold(ratio: f64) -> u64 {
    if ratio >= 1.0 {
        u64::MAX
    } else {
        (ratio.max(0.0) * u64::MAX as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_is_checked() {
        let bad = TraceConfig {
            sample_ratio: 1.5,
            ..TraceConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = TraceConfig {
            otlp_endpoint: "127.0.0.1:4317".into(),
            ..TraceConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("http://"));
        assert!(TraceConfig::default().validate().is_ok());
    }

    #[test]
    fn the_threshold_follows_the_ratio() {
        assert_eq!(threshold(1.0), u64::MAX);
        assert_eq!(threshold(0.0), 0);
        let hits = (0..100_000).filter(|_| next_random() < threshold(0.01)).count();
        assert!((500..1500).contains(&hits), "{hits} of 100,000 at 1%");
    }

    #[test]
    fn off_means_no_trace_context() {
        // No exporter installed in this test process.
        assert!(!sample());
        assert_eq!(traceparent(), None);
        assert!(
            continued(
                Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                || { tracing::info_span!(target: TARGET, "x") }
            )
            .is_none()
        );
    }

    #[test]
    fn the_exporter_leaves_other_events_disabled_at_their_call_sites() {
        use tracing_subscriber::layer::SubscriberExt;
        let exported = tracing_subscriber::layer::Identity::new().with_filter(exported_only());
        let subscriber = tracing_subscriber::registry().with(exported);
        // A hint of INFO: a library's debug! or trace! (and a `log`
        // record) is off before any filter is asked.
        assert_eq!(
            tracing::Subscriber::max_level_hint(&subscriber),
            Some(tracing::level_filters::LevelFilter::INFO)
        );
        let dispatch = tracing::Dispatch::new(subscriber);
        tracing::dispatcher::with_default(&dispatch, || {
            assert!(tracing::enabled!(target: TARGET, tracing::Level::INFO));
            assert!(!tracing::enabled!(target: "h2::codec", tracing::Level::INFO));
        });
    }
}
