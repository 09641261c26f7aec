//! Tracing set-up: `RUST_LOG`-style filter (default `info`), to stderr, as
//! text or as JSON lines ([`LogFormat`]). Text is coloured only when stderr
//! is a terminal (a log file or a collector gets plain text) and `NO_COLOR`
//! is not set. JSON lines carry stable fields for a collector (Loki):
//! `timestamp`, `level`, `target`, `service`, `node` (the node, gateway or
//! persist id), `message`, then the event's own fields (`user`,
//! `conversation`, `error`, `code`...) and those of the spans it is in
//! (`trace_id` once a request is traced).

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::trace::{Exporter, TraceConfig};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with stable field names.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (text, json)")),
        }
    }
}

impl LogFormat {
    /// The format to use: `flag` when given, else `CONFAB_LOG_FORMAT` when
    /// set (an unknown value is an error), else `configured`.
    pub fn choose(flag: Option<LogFormat>, configured: LogFormat) -> Result<LogFormat, String> {
        if let Some(f) = flag {
            return Ok(f);
        }
        match std::env::var("CONFAB_LOG_FORMAT") {
            Ok(v) if !v.is_empty() => v.parse(),
            _ => Ok(configured),
        }
    }
}

/// Which process writes the log (the `service` and `node` fields).
#[derive(Debug, Clone, Copy)]
pub struct Service {
    pub name: &'static str,
    pub id: Option<u64>,
}

pub fn init() {
    init_with_default("info");
}

/// Like [`init`], with another default level (tests use "warn").
pub fn init_with_default(level: &str) {
    let _ = text(level).try_init();
}

/// Logging for `service` in `format`, filtered by `RUST_LOG` (default
/// `level`), and the trace exporter when `trace` names an OTLP endpoint
/// (the returned [`Exporter`] flushes it at exit). Must run inside the
/// Tokio runtime when tracing is on.
pub fn init_service(
    service: Service,
    format: LogFormat,
    level: &str,
    trace: &TraceConfig,
) -> Result<Option<Exporter>, String> {
    let instance = match service.id {
        Some(id) => format!("{}-{id}", service.name),
        None => service.name.to_owned(),
    };
    let (otel, exporter) = match crate::trace::layer(service.name, &instance, trace)? {
        Some((layer, exporter)) => (Some(layer), Some(exporter)),
        None => (None, None),
    };
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour())
            .with_filter(filter(level))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .event_format(JsonLines { service })
            .with_filter(filter(level))
            .boxed(),
    };
    let _ = tracing_subscriber::registry().with(logs).with(otel).try_init();
    Ok(exporter)
}

/// Exports the spans still buffered (at exit, while the runtime runs).
pub async fn flush(exporter: Option<Exporter>) {
    if let Some(e) = exporter {
        let _ = tokio::task::spawn_blocking(move || e.shutdown()).await;
    }
}

/// Colour only on a terminal, and not when `NO_COLOR` is set.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level))
}

fn text(
    level: &str,
) -> tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::DefaultFields,
    tracing_subscriber::fmt::format::Format,
    EnvFilter,
    fn() -> std::io::Stderr,
> {
    tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(std::io::stderr as fn() -> std::io::Stderr)
        .with_ansi(colour())
}

/// One JSON object per event.
struct JsonLines {
    service: Service,
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        line.insert("timestamp".into(), Value::String(time));
        let meta = event.metadata();
        line.insert(
            "level".into(),
            Value::String(meta.level().as_str().to_ascii_lowercase()),
        );
        line.insert("target".into(), Value::String(meta.target().to_owned()));
        line.insert("service".into(), Value::String(self.service.name.to_owned()));
        if let Some(id) = self.service.id {
            line.insert("node".into(), Value::from(id));
        }
        // The spans' fields (outermost first), then the event's own: the
        // innermost value of a name wins.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(fields) = span
                    .extensions()
                    .get::<tracing_subscriber::fmt::FormattedFields<N>>()
                {
                    // A traced request's spans name its trace: promoted to
                    // a field of its own, for a log search by trace.
                    if let Some(id) = trace_id_of(&fields.fields) {
                        line.insert("trace_id".into(), Value::String(id.to_owned()));
                    }
                    line.insert(
                        format!("span.{}", span.name()),
                        Value::String(fields.fields.clone()),
                    );
                }
            }
        }
        event.record(&mut Fields(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// The `trace_id=` value in a span's formatted fields.
fn trace_id_of(fields: &str) -> Option<&str> {
    let at = fields.find("trace_id=")?;
    let rest = &fields[at + "trace_id=".len()..];
    let id = rest.split(|c: char| c.is_whitespace()).next()?;
    (!id.is_empty()).then_some(id)
}

/// Collects an event's fields into the line.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_owned()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::Bool(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buf").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_the_stable_fields() {
        let buf = Buf::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .event_format(JsonLines {
                service: Service {
                    name: "gateway",
                    id: Some(3),
                },
            })
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(user = 42u64, conversation = "d:1:42", error = %"boom", "send refused");
        });
        let text = String::from_utf8(buf.0.lock().expect("buf").clone()).expect("utf8");
        let line: Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(line["level"], "warn");
        assert_eq!(line["service"], "gateway");
        assert_eq!(line["node"], 3);
        assert_eq!(line["message"], "send refused");
        assert_eq!(line["user"], 42);
        assert_eq!(line["conversation"], "d:1:42");
        assert_eq!(line["error"], "boom");
        assert!(line["timestamp"].as_str().is_some_and(|t| t.contains('T')));
    }

    #[test]
    fn a_traced_spans_id_is_a_field_of_its_own() {
        assert_eq!(
            trace_id_of("trace_id=4bf92f3577b34da6 uid=7"),
            Some("4bf92f3577b34da6")
        );
        assert_eq!(trace_id_of("uid=7"), None);
    }

    #[test]
    fn the_flag_wins_then_the_configured_format() {
        assert_eq!(
            LogFormat::choose(Some(LogFormat::Json), LogFormat::Text),
            Ok(LogFormat::Json)
        );
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
