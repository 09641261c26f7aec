//! HTTP endpoints: `GET /metrics` (Prometheus text), `GET /healthz` (the
//! process runs), `GET /readyz` (schema migrated and database answering).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::db::Db;

#[derive(Clone)]
pub struct HttpState {
    pub db: Db,
    pub ready: Arc<AtomicBool>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(s): State<HttpState>) -> String {
    s.db.update_pool_gauges();
    s.db.metrics().render()
}

async fn readyz(State(s): State<HttpState>) -> (StatusCode, &'static str) {
    if !s.ready.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n");
    }
    match tokio::time::timeout(Duration::from_secs(2), s.db.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n"),
    }
}
