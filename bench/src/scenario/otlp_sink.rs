//! `confab-bench otlp-sink`: an OTLP/gRPC trace receiver that only counts
//! what it is sent (spans, export calls, traces, processes), for runs that
//! measure what tracing costs: the services export to it as they would to
//! a collector. Prints the counts as JSON when stopped (SIGTERM, SIGINT, or
//! after `--duration`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use serde::Serialize;
use tonic::{Request, Response, Status};

#[derive(Debug, Clone, Args)]
pub struct OtlpSinkArgs {
    /// Where to listen for OTLP/gRPC exports.
    #[arg(long, default_value = "127.0.0.1:4317")]
    pub listen: String,
    /// Seconds to run; 0 = until SIGTERM or SIGINT.
    #[arg(long, default_value_t = 0.0)]
    pub duration: f64,
}

#[derive(Debug, Default, Serialize)]
struct Counts {
    exports: u64,
    spans: u64,
    traces: usize,
    processes: BTreeSet<String>,
    #[serde(skip)]
    trace_ids: BTreeSet<Vec<u8>>,
}

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Counts>>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        req: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        c.exports += 1;
        for rs in req.into_inner().resource_spans {
            let process = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.instance.id")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                });
            if let Some(p) = process {
                c.processes.insert(p);
            }
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                c.spans += 1;
                c.trace_ids.insert(span.trace_id);
            }
        }
        c.traces = c.trace_ids.len();
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Serves until stopped; returns the counts as JSON.
pub async fn run(args: &OtlpSinkArgs) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let sink = Sink::default();
    let stop = confab_common::shutdown::on_signal();
    if args.duration > 0.0 {
        let stop = stop.clone();
        let secs = args.duration;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            stop.cancel();
        });
    }
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(sink.clone()))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            stop.cancelled_owned(),
        )
        .await
        .context("OTLP receiver")?;
    let counts = sink.0.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = serde_json::to_string_pretty(&*counts)?;
    out.push('\n');
    Ok(out)
}
