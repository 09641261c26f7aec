//! One client connection, whatever the transport: read a frame, run its
//! handler, queue the answer. Frames out go through one bounded queue and a
//! writer task; a client that stops reading fills the queue and is
//! disconnected. TCP and WebSocket both end up in [`serve`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb, ProtocolVersion};
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::frame;
use crate::handler::{self, Conn};
use crate::metrics;
use crate::state::Shared;

/// How long the writer may take to flush the last frames after the
/// connection ended.
const FLUSH_GRACE: Duration = Duration::from_secs(2);

/// Serves one connection until it closes, errs, idles out, is killed, or
/// the gateway shuts down.
pub async fn serve<S, K>(shared: Arc<Shared>, transport: &'static str, mut input: S, output: K)
where
    S: Stream<Item = Result<Bytes, Error>> + Unpin + Send,
    K: Sink<Bytes, Error = Error> + Unpin + Send + 'static,
{
    let gauge = metrics::CONNECTIONS.with_label_values(&[transport]);
    gauge.inc();
    let (tx, rx) = mpsc::channel(shared.config.limits.send_queue_frames);
    let kill = CancellationToken::new();
    let writer = tokio::spawn(write_loop(rx, output, kill.clone()));
    let mut conn = Conn::new(shared.clone(), tx, kill.clone());
    let idle = Duration::from_millis(shared.config.limits.idle_timeout_ms);
    let mut greeted = false;
    loop {
        let next = tokio::select! {
            _ = shared.shutdown.cancelled() => {
                conn.send_error(0, &Error::GoingAway("shutting down"));
                break;
            }
            _ = kill.cancelled() => break,
            r = tokio::time::timeout(idle, input.next()) => r,
        };
        let bytes = match next {
            Err(_) => {
                conn.send_error(0, &Error::IdleTimeout(idle.as_millis() as u64));
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(Error::Io(_)))) => break,
            Ok(Some(Err(e))) => {
                conn.send_error(0, &e);
                break;
            }
            Ok(Some(Ok(b))) => b,
        };
        let f = match frame::decode(&bytes) {
            Ok(f) => f,
            Err(e) => {
                conn.send_error(0, &e);
                break;
            }
        };
        let rid = f.request_id;
        let Some(body) = f.body else {
            metrics::FRAMES_IN.with_label_values(&["unknown"]).inc();
            conn.send_error(rid, &Error::UnknownRequest("empty or unknown frame body"));
            continue;
        };
        metrics::FRAMES_IN.with_label_values(&[frame::kind(&body)]).inc();
        if !greeted {
            match hello(&shared, body) {
                Ok(ok) => {
                    greeted = true;
                    conn.send(rid, Body::HelloOk(ok));
                    continue;
                }
                Err(e) => {
                    conn.send_error(rid, &e);
                    break;
                }
            }
        }
        match handler::dispatch(&mut conn, body).await {
            Ok(reply) => conn.send(rid, reply),
            Err(e) => {
                conn.send_error(rid, &e);
                if e.closes() {
                    break;
                }
            }
        }
    }
    conn.end().await;
    drop(conn);
    // The writer ends when every sender is gone (the registry dropped ours)
    // and the queue is flushed, or after the grace period.
    let mut writer = writer;
    if tokio::time::timeout(FLUSH_GRACE, &mut writer).await.is_err() {
        writer.abort();
    }
    gauge.dec();
}

fn hello(shared: &Shared, body: Body) -> Result<pb::HelloOk, Error> {
    let Body::Hello(h) = body else {
        return Err(Error::HandshakeRequired);
    };
    if h.version != ProtocolVersion::ProtocolVersion1 as i32 {
        return Err(Error::UnsupportedVersion(h.version));
    }
    let l = &shared.config.limits;
    Ok(pb::HelloOk {
        version: ProtocolVersion::ProtocolVersion1 as i32,
        gateway_id: shared.gateway_id(),
        max_frame_bytes: l.max_frame_bytes,
        heartbeat_ms: l.heartbeat_ms as u32,
        idle_timeout_ms: l.idle_timeout_ms as u32,
    })
}

async fn write_loop<K>(mut rx: mpsc::Receiver<Bytes>, mut out: K, kill: CancellationToken)
where
    K: Sink<Bytes, Error = Error> + Unpin + Send,
{
    while let Some(first) = rx.recv().await {
        // Feed what is queued, then flush once.
        if out.feed(first).await.is_err() {
            kill.cancel();
            return;
        }
        while let Ok(more) = rx.try_recv() {
            if out.feed(more).await.is_err() {
                kill.cancel();
                return;
            }
        }
        if out.flush().await.is_err() {
            kill.cancel();
            return;
        }
    }
    let _ = out.close().await;
}
