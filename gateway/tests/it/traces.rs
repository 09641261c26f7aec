//! Traces across hops: every process of a cluster exports its spans over
//! OTLP/gRPC to a receiver in this test. One message from a user on
//! gateway 1 to a user on gateway 2 is one trace: the client request at
//! the sending gateway (the root), its enqueue and persist's commit, the
//! router lookup, the delivery at the receiving gateway, all joined by
//! the W3C trace context the calls and the queued message carry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_client::DeviceKind;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tonic::{Request, Response, Status};

use crate::harness::{Cluster, login, receive, register};

/// One exported span: the process that made it, its name, ids.
#[derive(Clone, Debug)]
struct Got {
    process: String,
    name: String,
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
}

/// The test's OTLP receiver: keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Got>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut got = self.0.lock().expect("spans");
        for rs in req.into_inner().resource_spans {
            let process = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.instance.id")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                got.push(Got {
                    process: process.clone(),
                    name: span.name,
                    trace: span.trace_id,
                    id: span.span_id,
                    parent: span.parent_span_id,
                });
            }
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    /// The spans of the trace whose root is a `send` request, once it has
    /// spans from every process in `want`.
    fn send_trace(&self, want: &[&str]) -> Option<Vec<Got>> {
        let got = self.0.lock().expect("spans").clone();
        let mut by_trace: HashMap<Vec<u8>, Vec<Got>> = HashMap::new();
        for g in got {
            by_trace.entry(g.trace.clone()).or_default().push(g);
        }
        by_trace.into_values().find(|spans| {
            let processes: BTreeSet<&str> = spans.iter().map(|s| s.process.as_str()).collect();
            spans.iter().any(|s| s.name == "send" && s.parent.is_empty())
                && want.iter().all(|p| processes.iter().any(|q| q.starts_with(p)))
        })
    }
}

/// The (role, span name) pairs of a trace: `gateway-2` counts as `gateway`.
fn hops_of(trace: &[Got]) -> BTreeSet<(String, String)> {
    trace
        .iter()
        .map(|s| {
            let process = s.process.split('-').next().unwrap_or_default().to_owned();
            (process, s.name.clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_is_one_trace_across_four_processes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let receiver = Receiver::default();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let cluster = Cluster::start_with_env(
        2,
        &[
            ("CONFAB_TRACING__OTLP_ENDPOINT", &endpoint),
            ("CONFAB_TRACING__SAMPLE_RATIO", "1"),
        ],
    )
    .await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    register(&g1, "tracy").await;
    register(&g1, "otto").await;
    cluster.befriend("tracy", "otto").await;
    let mut tracy = login(&g1, "tracy", "laptop", DeviceKind::Desktop).await;
    let mut otto = login(&g2, "otto", "phone", DeviceKind::Mobile).await;
    tracy
        .send_to_name("otto", "follow me", "t-1")
        .await
        .expect("send");
    let got = receive(&mut otto, 1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body, "follow me");

    // The gateways, persist and the routers export within a second or so.
    // Each process exports in its own batches, so a trace can be seen
    // from all four before its last hop has arrived: wait for every hop.
    let want = ["gateway-1", "gateway-2", "persist", "router-"];
    // Published straight to RabbitMQ, a message has no enqueue hop at
    // persist: its context travels in the message's headers to the commit.
    let enqueue_at_persist = !cluster.publishes_to_broker();
    let want_hops: Vec<(&str, &str)> = [
        ("gateway", "gateway.enqueue"),
        ("persist", "persist.enqueue"),
        ("persist", "persist.commit"),
        ("gateway", "gateway.lookup"),
        ("router", "router.lookup"),
        ("gateway", "gateway.deliver_to"),
        ("gateway", "gateway.deliver"),
    ]
    .into_iter()
    .filter(|hop| hop.1 != "persist.enqueue" || enqueue_at_persist)
    .collect();
    let mut trace = None;
    for _ in 0..100 {
        trace = receiver.send_trace(&want);
        if trace.as_ref().is_some_and(|t| {
            want_hops
                .iter()
                .all(|hop| hops_of(t).contains(&(hop.0.to_owned(), hop.1.to_owned())))
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let Some(trace) = trace else {
        let seen: BTreeMap<String, BTreeSet<String>> =
            receiver
                .0
                .lock()
                .expect("spans")
                .iter()
                .fold(BTreeMap::new(), |mut m, g| {
                    m.entry(g.process.clone()).or_default().insert(g.name.clone());
                    m
                });
        panic!("no send trace with spans from {want:?}; spans seen per process: {seen:?}");
    };

    // One tree: a single root, every other span's parent in the trace.
    let ids: BTreeSet<&[u8]> = trace.iter().map(|s| s.id.as_slice()).collect();
    let roots: Vec<&Got> = trace.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(roots.len(), 1, "one root: {trace:#?}");
    assert_eq!(
        (roots[0].process.as_str(), roots[0].name.as_str()),
        ("gateway-1", "send")
    );
    for s in &trace {
        assert!(
            s.parent.is_empty() || ids.contains(s.parent.as_slice()),
            "{} at {} has a parent outside the trace: {trace:#?}",
            s.name,
            s.process
        );
    }
    // Each hop is there, in the process it belongs to.
    let hops = hops_of(&trace);
    for hop in want_hops {
        assert!(
            hops.contains(&(hop.0.to_owned(), hop.1.to_owned())),
            "no {} span at a {}: {hops:?}",
            hop.1,
            hop.0
        );
    }
    let delivered_at = trace
        .iter()
        .find(|s| s.name == "gateway.deliver")
        .map(|s| s.process.clone());
    assert_eq!(delivered_at.as_deref(), Some("gateway-2"));
    let processes: BTreeSet<&str> = trace.iter().map(|s| s.process.as_str()).collect();
    assert!(processes.len() >= 4, "{processes:?}");
    server.abort();
}
