//! The gateway's HTTP side. The public port ([`public`], served by
//! [`serve_public`]): `/healthz`, `/readyz`, `/ws` (the client protocol
//! over WebSocket, one binary message per frame, into the same connection
//! handler as TCP) and `GET /v1/gateway` (the least-loaded live gateway of
//! the caller's network zone), and the web client at `/` (see [`web`]);
//! HTTPS and WSS with `[client_tls]`, a
//! header-read deadline and a connection limit. The internal port
//! ([`internal`]): `/metrics`, `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::client_tls::{ClientPorts, HTTP_LISTENER};
use crate::connection;
use crate::error::Error;
use crate::metrics;
use crate::service::zone::{NoPick, choose};
use crate::state::Shared;
use crate::web;

/// The public port's routes (no `/metrics`: that is on the internal port).
pub fn public(shared: Arc<Shared>) -> Router {
    let mut routes = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/ws", get(ws))
        .route("/v1/gateway", get(pick_gateway));
    if shared.config.web_client {
        routes = routes
            .route("/", get(web::serve))
            .route("/assets/{*file}", get(web::serve));
    }
    routes.with_state(shared)
}

/// The internal port's routes: Prometheus and health.
pub fn internal(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(|| async { confab_common::metrics::render() }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(shared)
}

/// Serves the public port until `shutdown`: each connection in a task of
/// its own (the TLS handshake included, under its deadline, so the accept
/// loop never waits for one), at most `limits.max_http_connections` open
/// (over it a new one is closed at once), every request's headers within
/// `limits.http_header_timeout_ms`. On shutdown, requests in progress are
/// finished.
pub async fn serve_public(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<Arc<ClientPorts>>,
    shutdown: CancellationToken,
) {
    let app = public(shared.clone());
    let limits = &shared.config.limits;
    let open = Arc::new(Semaphore::new(limits.max_http_connections));
    let header_timeout = Duration::from_millis(limits.http_header_timeout_ms);
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(error) => {
                tracing::warn!(%error, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            metrics::HTTP_CLOSED.with_label_values(&["limit"]).inc();
            tracing::debug!(%remote, "HTTP connection limit reached; closing");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            metrics::HTTP_CONNECTIONS.inc();
            match tls {
                None => serve_connection(stream, remote, app, header_timeout, shutdown).await,
                Some(tls) => {
                    match tls
                        .http
                        .handshake(stream, HTTP_LISTENER, tls.handshake_timeout)
                        .await
                    {
                        Ok(s) => serve_connection(s, remote, app, header_timeout, shutdown).await,
                        Err(error) => tracing::debug!(%error, %remote, "HTTPS handshake failed"),
                    }
                }
            }
            metrics::HTTP_CONNECTIONS.dec();
            drop(permit);
        });
    }
    connections.close();
    connections.wait().await;
}

/// One HTTP/1.1 connection (upgrades to WebSocket included: the upgraded
/// socket is served by the `/ws` handler's own task).
async fn serve_connection<I>(
    io: I,
    remote: SocketAddr,
    app: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: axum::http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        app.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        if error.is_timeout() {
            metrics::HTTP_CLOSED.with_label_values(&["header_timeout"]).inc();
            tracing::debug!(%remote, "HTTP headers not in before the deadline; closed");
        } else {
            tracing::debug!(%error, %remote, "HTTP connection ended");
        }
    }
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

/// Room over the frame limit for the WebSocket framing itself.
const WS_OVERHEAD: usize = 64;

async fn ws(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let limit = shared.config.limits.max_frame_bytes;
    // Refused before the upgrade: over the gateway's or the address's cap.
    let held = match connection::admit(&shared, peer) {
        Ok(h) => h,
        Err(e) => return (StatusCode::TOO_MANY_REQUESTS, format!("{e}\n")).into_response(),
    };
    // A frame or message over the limit is refused from its header, before
    // its payload is buffered.
    upgrade
        .max_frame_size(limit as usize + WS_OVERHEAD)
        .max_message_size(limit as usize + WS_OVERHEAD)
        .on_upgrade(move |socket| serve_ws(shared, socket, limit, peer, held))
}

async fn serve_ws<H: Send>(shared: Arc<Shared>, socket: WebSocket, limit: u32, peer: SocketAddr, held: H) {
    let (sink, stream) = socket.split();
    let input = stream.filter_map(move |m| {
        futures::future::ready(match m {
            Ok(Message::Binary(b)) if b.len() > limit as usize => Some(Err(Error::FrameTooLarge { limit })),
            Ok(Message::Binary(b)) => Some(Ok(b)),
            Ok(Message::Text(_)) => Some(Err(Error::BadFrame("text message; frames are binary".into()))),
            Ok(Message::Close(_)) => None,
            Ok(Message::Ping(_) | Message::Pong(_)) => None,
            Err(e) => Some(Err(read_error(e, limit))),
        })
    });
    let output = sink
        .sink_map_err(|e| Error::Io(std::io::Error::other(e)))
        .with(|b: Bytes| futures::future::ready(Ok::<_, Error>(Message::Binary(b))));
    let output = connection::SinkOutput(Box::pin(output));
    connection::serve(shared, "ws", peer.ip(), Box::pin(input), output).await;
    drop(held);
}

/// A WebSocket read error: a frame or message over the limit (refused from
/// its header, counted) is FRAME_TOO_LARGE like on TCP; the rest ends the
/// connection as a transport error.
fn read_error(e: axum::Error, limit: u32) -> Error {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
    let inner = e.into_inner();
    match inner.downcast_ref::<WsError>() {
        Some(WsError::Capacity(CapacityError::MessageTooLong { size, .. })) => {
            metrics::WS_TOO_LARGE.inc();
            tracing::info!(size, limit, "WebSocket frame over the limit refused");
            Error::FrameTooLarge { limit }
        }
        _ => Error::Io(std::io::Error::other(inner)),
    }
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
