//! HTTP endpoints: `GET /metrics` (Prometheus text), `GET /healthz` (the
//! process runs and its embedded queue, if any, can still write), `GET
//! /readyz` (that, the schema migrated and the database answering).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use confab_queue::embedded::EmbeddedQueue;

use crate::db::Db;

#[derive(Clone)]
pub struct HttpState {
    pub db: Db,
    pub ready: Arc<AtomicBool>,
    /// The embedded queue, when that is the backend.
    pub queue: Option<EmbeddedQueue>,
}

impl HttpState {
    /// A queue log that can no longer write makes the process useless
    /// until a restart: say so, so a supervisor restarts it.
    fn queue_failed(&self) -> bool {
        self.queue.as_ref().is_some_and(EmbeddedQueue::failed)
    }
}

const QUEUE_FAILED: &str = "embedded queue log cannot write (see the log); restart the process\n";

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(s): State<HttpState>) -> String {
    s.db.update_pool_gauges();
    if let Some(q) = &s.queue {
        let m = s.db.metrics();
        m.queue_waiting.set(q.len() as i64);
        m.queue_segments.set(q.segments() as i64);
        for (part, bytes) in q.memory() {
            m.queue_memory.with_label_values(&[part]).set(bytes as i64);
        }
    }
    s.db.metrics().render()
}

async fn healthz(State(s): State<HttpState>) -> (StatusCode, &'static str) {
    if s.queue_failed() {
        return (StatusCode::SERVICE_UNAVAILABLE, QUEUE_FAILED);
    }
    (StatusCode::OK, "ok\n")
}

async fn readyz(State(s): State<HttpState>) -> (StatusCode, &'static str) {
    if s.queue_failed() {
        return (StatusCode::SERVICE_UNAVAILABLE, QUEUE_FAILED);
    }
    if !s.ready.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n");
    }
    match tokio::time::timeout(Duration::from_secs(2), s.db.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n"),
    }
}
