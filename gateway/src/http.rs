//! The gateway's HTTP side: `/metrics`, `/healthz`, `/readyz`, `/ws` (the
//! client protocol over WebSocket, one binary message per frame, into the
//! same connection handler as TCP) and `GET /v1/gateway` (the least-loaded
//! live gateway of the caller's network zone).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::Serialize;

use crate::connection;
use crate::error::Error;
use crate::state::Shared;
use crate::zone::zone_of;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(|| async { confab_common::metrics::render() }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/ws", get(ws))
        .route("/v1/gateway", get(pick_gateway))
        .with_state(shared)
}

async fn readyz(State(shared): State<Arc<Shared>>) -> (StatusCode, &'static str) {
    if shared.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not registered with the routers\n",
        )
    }
}

async fn ws(State(shared): State<Arc<Shared>>, upgrade: WebSocketUpgrade) -> Response {
    let limit = shared.config.limits.max_frame_bytes;
    upgrade
        .max_message_size(limit as usize * 4)
        .on_upgrade(move |socket| serve_ws(shared, socket, limit))
}

async fn serve_ws(shared: Arc<Shared>, socket: WebSocket, limit: u32) {
    let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
        return;
    };
    let (sink, stream) = socket.split();
    let input = stream.filter_map(move |m| {
        futures::future::ready(match m {
            Ok(Message::Binary(b)) if b.len() > limit as usize => Some(Err(Error::FrameTooLarge { limit })),
            Ok(Message::Binary(b)) => Some(Ok(b)),
            Ok(Message::Text(_)) => Some(Err(Error::BadFrame("text message; frames are binary".into()))),
            Ok(Message::Close(_)) => None,
            Ok(Message::Ping(_) | Message::Pong(_)) => None,
            Err(e) => Some(Err(Error::Io(std::io::Error::other(e)))),
        })
    });
    let output = sink
        .sink_map_err(|e| Error::Io(std::io::Error::other(e)))
        .with(|b: Bytes| futures::future::ready(Ok::<_, Error>(Message::Binary(b))));
    connection::serve(shared, "ws", Box::pin(input), Box::pin(output)).await;
    drop(permit);
}

#[derive(Serialize)]
struct Pick {
    gateway_id: u64,
    addr: String,
    zone: String,
    connections: u32,
}

async fn pick_gateway(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let zones = &shared.config.zones;
    let (zone, allowed) = match zone_of(zones, peer.ip()) {
        Some(z) => (z.name.clone(), Some(z.gateways.clone())),
        None if zones.is_empty() => ("default".to_owned(), None),
        None => return (StatusCode::NOT_FOUND, "no zone for your address\n").into_response(),
    };
    let timeout = shared.rpc_timeout();
    if let Err(error) = shared.peers.refresh(&shared.router, timeout).await {
        tracing::warn!(%error, "refreshing the gateway list failed");
    }
    let mut best = None::<Pick>;
    let me = crate::internal::load(&shared);
    let mut loads = vec![me];
    for (id, mut client) in shared.peers.snapshot() {
        if id == shared.gateway_id() {
            continue;
        }
        let call = tokio::time::timeout(timeout, client.load(confab_proto::gateway::LoadRequest {}));
        if let Ok(Ok(r)) = call.await {
            loads.push(r.into_inner());
        }
    }
    for l in loads {
        if allowed.as_ref().is_some_and(|a| !a.contains(&l.gateway_id)) {
            continue;
        }
        if best.as_ref().is_none_or(|b| l.connections < b.connections) {
            best = Some(Pick {
                gateway_id: l.gateway_id,
                addr: l.client_addr,
                zone: zone.clone(),
                connections: l.connections,
            });
        }
    }
    match best {
        Some(p) => Json(p).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no live gateway in your zone\n").into_response(),
    }
}
