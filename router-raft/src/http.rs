//! The router's HTTP endpoint: `/metrics` (Prometheus text), `/healthz`
//! (the process answers), `/readyz` (the map is bootstrapped and every
//! hosted group knows a leader) and `/sd` (Prometheus http_sd: every Confab
//! process that announced itself to this router lately).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::node::Node;

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/sd", get(sd))
        .with_state(node)
}

/// Prometheus http_sd: every process that announced itself lately.
async fn sd(State(node): State<Arc<Node>>) -> axum::Json<Vec<crate::targets::SdGroup>> {
    axum::Json(node.targets.http_sd())
}

async fn metrics(State(node): State<Arc<Node>>) -> (StatusCode, String) {
    crate::status::refresh_gauges(&node.groups());
    confab_common::metrics::render()
}

async fn readyz(State(node): State<Arc<Node>>) -> (StatusCode, String) {
    if let Err(e) = node.meta_state() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"));
    }
    let leaderless: Vec<u32> = node
        .groups()
        .iter()
        .filter(|g| g.leader().is_none())
        .map(|g| g.id)
        .collect();
    if leaderless.is_empty() {
        (StatusCode::OK, "ready\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("groups without a leader: {leaderless:?}\n"),
        )
    }
}
