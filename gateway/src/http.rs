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

use crate::connection;
use crate::error::Error;
use crate::service::zone::{NoPick, choose};
use crate::state::Shared;

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
    let output = connection::SinkOutput(Box::pin(output));
    connection::serve(shared, "ws", Box::pin(input), output).await;
    drop(permit);
}

/// `GET /v1/gateway`: the least-loaded live gateway of the caller's zone.
/// Live = registered with the routers and holding its lease, and answering
/// its `Load` call.
async fn pick_gateway(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let timeout = shared.rpc_timeout();
    let live_ids: Option<Vec<u64>> = match shared.router.list_gateways().await {
        Ok(list) => Some(
            list.into_iter()
                .filter(|g| !g.expired)
                .map(|g| g.gateway_id)
                .collect(),
        ),
        Err(error) => {
            tracing::warn!(%error, "listing the gateways failed; answering from the known ones");
            None
        }
    };
    if let Err(error) = shared.peers.refresh(&shared.router).await {
        tracing::warn!(%error, "refreshing the gateway list failed");
    }
    let is_live = |id: u64| live_ids.as_ref().is_none_or(|live| live.contains(&id));
    let mut loads = Vec::new();
    if is_live(shared.gateway_id()) {
        loads.push(crate::internal::load(&shared));
    }
    let others = shared
        .peers
        .snapshot()
        .into_iter()
        .filter(|(id, _)| *id != shared.gateway_id() && is_live(*id));
    let calls = others.map(|(_, mut client)| async move {
        tokio::time::timeout(timeout, client.load(confab_proto::gateway::LoadRequest {})).await
    });
    for r in futures::future::join_all(calls).await {
        if let Ok(Ok(r)) = r {
            loads.push(r.into_inner());
        }
    }
    match choose(&shared.config.zones, peer.ip(), &loads) {
        Ok(p) => Json(p).into_response(),
        Err(NoPick::NoZone) => (StatusCode::NOT_FOUND, "no zone for your address\n").into_response(),
        Err(NoPick::NoLiveGateway { zone }) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no live gateway in zone {zone}\n"),
        )
            .into_response(),
    }
}
