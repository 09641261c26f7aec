//! One client connection, whatever the transport: read a frame, run its
//! handler, queue the answer. Frames out go through one queue bounded in
//! bytes ([`crate::state::outbox`]) and a writer task: while the queue is
//! at its bound the connection's requests are not read; a client that
//! takes nothing for `send_stall_timeout_ms`, or lets the queue pass twice
//! its bound, is disconnected. A connection not logged in within
//! `login_timeout_ms` of its start (or of its logout) is closed, however
//! slowly it trickles its bytes. TCP and WebSocket both end up in
//! [`serve`].
//!
//! A client may pipeline: answers carry the request id and may come in any
//! order. What changes the login (register, login, resume, logout) waits
//! until nothing else of the connection runs, and runs alone; a 1:1 send
//! takes its place in its conversation in the order the connection sent it
//! (its ordered part runs here, its confirm and deliveries beside the
//! rest); group sends run here, one after another; everything else runs
//! beside the rest, up to [`MAX_IN_FLIGHT`] requests at once.
//!
//! Memory of an idle connection is kept small on purpose (a gateway holds
//! tens of thousands): no read or write buffer while idle (see
//! [`crate::wire::stream`]), and a handler's future is boxed while it runs instead
//! of sizing every connection's task for the largest handler.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confab_common::trace;
use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb, ProtocolVersion};
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::LimitsConfig;
use crate::error::Error;
use crate::handler::{self, Conn};
use crate::metrics;
use crate::state::Shared;
use crate::state::guard::AddressSlot;
use crate::state::outbox::{Inbox, Outbox, outbox};
use crate::wire::{frame, stream};

/// How long a refused connection gets to take its error frame.
const REFUSE_WRITE: Duration = Duration::from_secs(1);

/// How long the writer may take to flush the last frames after the
/// connection ended.
const FLUSH_GRACE: Duration = Duration::from_secs(2);

/// Most queued frames the writer takes for one write.
const WRITE_BATCH: usize = 64;

/// Most requests of one connection running at once; past it the
/// connection's next frames wait unread.
pub const MAX_IN_FLIGHT: u32 = 64;

/// How a request runs beside the connection's others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Here, at once, in order (cheap, or ordered among themselves).
    Here,
    /// Alone: after everything in flight ended (they change the login).
    Alone,
    /// A 1:1 send: ordered part here, the rest beside.
    Send,
    /// Beside the others.
    Beside,
}

fn lane(body: &Body) -> Lane {
    match body {
        Body::Ping(_) | Body::GroupSend(_) => Lane::Here,
        Body::Register(_) | Body::Login(_) | Body::Resume(_) | Body::Logout(_) => Lane::Alone,
        Body::Send(_) => Lane::Send,
        _ => Lane::Beside,
    }
}

/// The requests of a connection running beside each other: one permit
/// each (the semaphore is made on the first one, so an idle connection
/// holds none).
#[derive(Default)]
struct InFlight(Option<Arc<Semaphore>>);

impl InFlight {
    async fn permit(&mut self) -> Option<OwnedSemaphorePermit> {
        let s = self
            .0
            .get_or_insert_with(|| Arc::new(Semaphore::new(MAX_IN_FLIGHT as usize)))
            .clone();
        s.acquire_owned().await.ok()
    }

    /// Waits until nothing runs.
    async fn drain(&self) {
        if let Some(s) = &self.0 {
            let _ = s.acquire_many(MAX_IN_FLIGHT).await;
        }
    }
}

/// Answers request `rid` with `r` (from a task beside the connection).
fn answer(conn: &Conn, rid: u64, r: Result<Body, Error>) {
    match r {
        Ok(reply) => conn.send(rid, reply),
        Err(e) => {
            conn.send_error(rid, &e);
            if e.closes() {
                conn.handle(0, String::new()).kill.cancel();
            }
        }
    }
}

/// Where a connection's frames go out.
pub trait Output: Send + 'static {
    /// Writes `frames` in order and flushes them.
    fn write_frames(&mut self, frames: &[Bytes]) -> impl Future<Output = Result<(), Error>> + Send;
    /// Ends the stream (after the last frames were written).
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

impl<W: tokio::io::AsyncWrite + Unpin + Send + 'static> Output for stream::FrameWriter<W> {
    async fn write_frames(&mut self, frames: &[Bytes]) -> Result<(), Error> {
        stream::FrameWriter::write_frames(self, frames).await
    }

    async fn close(&mut self) {
        stream::FrameWriter::close(self).await;
    }
}

/// Any sink of frames as an [`Output`] (the WebSocket side).
pub struct SinkOutput<K>(pub K);

impl<K> Output for SinkOutput<K>
where
    K: Sink<Bytes, Error = Error> + Unpin + Send + 'static,
{
    async fn write_frames(&mut self, frames: &[Bytes]) -> Result<(), Error> {
        for f in frames {
            self.0.feed(f.clone()).await?;
        }
        self.0.flush().await
    }

    async fn close(&mut self) {
        let _ = self.0.close().await;
    }
}

/// A place for a new client connection from `peer` (the gateway's cap and
/// the address's), held while it is open; or the error refusing it.
pub fn admit(shared: &Shared, peer: SocketAddr) -> Result<(OwnedSemaphorePermit, AddressSlot), Error> {
    let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
        tracing::warn!(%peer, "connection limit reached; refusing");
        metrics::CONNECTIONS_REFUSED.with_label_values(&["max"]).inc();
        return Err(Error::TooManyConnections(
            "this gateway is at its connection limit; try another".into(),
        ));
    };
    // Counted, not logged at warn: a flood of them would flood the log.
    let slot = shared.guard.open(peer.ip()).inspect_err(|_| {
        tracing::debug!(%peer, "connections per address at the limit; refusing");
    })?;
    Ok((permit, slot))
}

/// Answers a refused TCP connection with `e` as an error frame, then
/// closes it.
pub async fn refuse_tcp<S: tokio::io::AsyncWrite + Unpin>(mut stream: S, e: &Error) {
    let f = frame::error(0, e);
    let mut out = (f.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&f);
    let _ = tokio::time::timeout(REFUSE_WRITE, async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    })
    .await;
}

/// Until the queue drained below its bound (true), or the client took
/// nothing of it for `stall` (false: it is disconnected).
async fn wait_drained(tx: &Outbox, stall: Duration) -> bool {
    if !tx.is_full() {
        return true;
    }
    metrics::SEND_QUEUE_WAITS.inc();
    loop {
        let before = tx.queued();
        if tokio::time::timeout(stall, tx.drained()).await.is_ok() {
            return true;
        }
        if tx.queued() >= before {
            metrics::SLOW_CONSUMERS.inc();
            tracing::warn!(queued = before, "send queue stalled: disconnecting");
            return false;
        }
    }
}

/// Serves one connection from `peer` until it closes, errs, idles out or
/// misses its login deadline, is killed, or the gateway shuts down.
pub async fn serve<S, O>(shared: Arc<Shared>, transport: &'static str, peer: IpAddr, mut input: S, output: O)
where
    S: Stream<Item = Result<Bytes, Error>> + Unpin + Send,
    O: Output,
{
    let gauge = metrics::CONNECTIONS.with_label_values(&[transport]);
    gauge.inc();
    let limits = &shared.config.limits;
    let (tx, rx) = outbox(limits.send_queue_bytes);
    let stall = Duration::from_millis(limits.send_stall_timeout_ms);
    let kill = CancellationToken::new();
    let writer = tokio::spawn(write_loop(rx, output, kill.clone(), stall));
    let mut conn = Conn::new(shared.clone(), tx.clone(), kill.clone(), peer);
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    let login_within = Duration::from_millis(limits.login_timeout_ms);
    let mut login_deadline = Some(Instant::now() + login_within);
    let mut greeted = false;
    let mut in_flight = InFlight::default();
    let mut send_order = handler::SendOrder::default();
    loop {
        // Back pressure: no request is read while the answers wait.
        let drained = tokio::select! {
            _ = kill.cancelled() => break,
            d = wait_drained(&tx, stall) => d,
        };
        if !drained {
            kill.cancel();
            break;
        }
        login_deadline = match (&conn.login, login_deadline) {
            (Some(_), _) => None,
            (None, None) => Some(Instant::now() + login_within),
            (None, d) => d,
        };
        let wait = login_deadline.map_or(idle, |d| idle.min(d.saturating_duration_since(Instant::now())));
        let next = tokio::select! {
            _ = shared.shutdown.cancelled() => {
                conn.send_error(0, &Error::GoingAway("shutting down"));
                break;
            }
            _ = kill.cancelled() => break,
            r = tokio::time::timeout(wait, input.next()) => r,
        };
        let bytes = match next {
            Err(_) if login_deadline.is_some_and(|d| Instant::now() >= d) => {
                metrics::LOGIN_TIMEOUTS.inc();
                conn.send_error(0, &Error::LoginTimeout(login_within.as_millis() as u64));
                break;
            }
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
        // A sampled request is the root of a trace (nothing otherwise).
        let span = trace::root(|| {
            tracing::info_span!(
                target: trace::TARGET,
                "request",
                otel.name = frame::kind(&body),
                uid = conn.login.as_ref().map_or(0, |l| l.uid),
                request_id = rid,
                trace_id = tracing::field::Empty
            )
        });
        let result = match lane(&body) {
            Lane::Here => Box::pin(handler::dispatch(&mut conn, body).instrument(span)).await,
            Lane::Alone => {
                Box::pin(in_flight.drain()).await;
                // Boxed: the task of an idle connection is not sized for
                // the largest handler's future.
                Box::pin(handler::dispatch(&mut conn, body).instrument(span)).await
            }
            Lane::Send => {
                let Body::Send(r) = body else { continue };
                let begun = handler::begin_send(&conn, r, &mut send_order).instrument(span.clone());
                match Box::pin(begun).await {
                    Ok(finish) => {
                        let Some(permit) = Box::pin(in_flight.permit()).await else {
                            break;
                        };
                        let c = conn.clone();
                        tokio::spawn(
                            async move {
                                answer(&c, rid, finish.await);
                                drop(permit);
                            }
                            .instrument(span),
                        );
                        continue;
                    }
                    Err(e) => Err(e),
                }
            }
            Lane::Beside => {
                let Some(permit) = Box::pin(in_flight.permit()).await else {
                    break;
                };
                let mut c = conn.clone();
                tokio::spawn(
                    async move {
                        let r = handler::dispatch(&mut c, body).await;
                        answer(&c, rid, r);
                        drop(permit);
                    }
                    .instrument(span),
                );
                continue;
            }
        };
        match result {
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
    drop(tx);
    // The writer ends when every sender is gone (the registry dropped ours)
    // and the queue is flushed, or after the grace period.
    let mut writer = writer;
    if tokio::time::timeout(FLUSH_GRACE, &mut writer).await.is_err() {
        writer.abort();
    }
    gauge.dec();
}

fn hello(shared: &Shared, body: Body) -> Result<pb::HelloOk, Error> {
    handshake(&shared.config.limits, shared.gateway_id(), body)
}

/// The answer to a connection's first frame: a Hello of a version this
/// gateway speaks gets HelloOk with the limits; anything else is refused.
pub fn handshake(l: &LimitsConfig, gateway_id: u64, body: Body) -> Result<pb::HelloOk, Error> {
    let Body::Hello(h) = body else {
        return Err(Error::HandshakeRequired);
    };
    if h.version != ProtocolVersion::ProtocolVersion1 as i32 {
        return Err(Error::UnsupportedVersion(h.version));
    }
    Ok(pb::HelloOk {
        version: ProtocolVersion::ProtocolVersion1 as i32,
        gateway_id,
        max_frame_bytes: l.max_frame_bytes,
        heartbeat_ms: l.heartbeat_ms as u32,
        idle_timeout_ms: l.idle_timeout_ms as u32,
    })
}

/// Writes what is queued; a write the client does not take within `stall`
/// (it does not read) ends the connection.
async fn write_loop<O: Output>(mut rx: Inbox, mut out: O, kill: CancellationToken, stall: Duration) {
    while let Some(first) = rx.recv().await {
        // Write what is queued in one go; the batch is dropped after it.
        let mut batch = vec![first];
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Some(more) => batch.push(more),
                None => break,
            }
        }
        let bytes: usize = batch.iter().map(Bytes::len).sum();
        match tokio::time::timeout(stall, out.write_frames(&batch)).await {
            Ok(Ok(())) => rx.written(bytes),
            Ok(Err(_)) => {
                rx.written(bytes);
                kill.cancel();
                return;
            }
            Err(_) => {
                rx.written(bytes);
                metrics::SLOW_CONSUMERS.inc();
                tracing::warn!(
                    bytes,
                    "client took no bytes within the stall timeout: disconnecting"
                );
                kill.cancel();
                return;
            }
        }
    }
    out.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_changes_the_login_runs_alone_and_sends_keep_their_order() {
        assert_eq!(lane(&Body::Login(pb::LoginRequest::default())), Lane::Alone);
        assert_eq!(lane(&Body::Resume(pb::ResumeRequest::default())), Lane::Alone);
        assert_eq!(lane(&Body::Logout(pb::LogoutRequest::default())), Lane::Alone);
        assert_eq!(lane(&Body::Register(pb::RegisterRequest::default())), Lane::Alone);
        assert_eq!(lane(&Body::Send(pb::SendRequest::default())), Lane::Send);
        assert_eq!(
            lane(&Body::GroupSend(pb::GroupSendRequest::default())),
            Lane::Here
        );
        assert_eq!(lane(&Body::Ping(pb::Ping {})), Lane::Here);
        assert_eq!(lane(&Body::Fetch(pb::FetchRequest::default())), Lane::Beside);
        assert_eq!(lane(&Body::History(pb::HistoryRequest::default())), Lane::Beside);
    }

    #[tokio::test]
    async fn a_connection_holds_no_permits_until_it_pipelines_and_drains_them() {
        let mut f = InFlight::default();
        assert!(f.0.is_none(), "an idle connection has no semaphore");
        let p = f.permit().await.expect("a permit");
        let drained = tokio::time::timeout(Duration::from_millis(50), f.drain()).await;
        assert!(drained.is_err(), "a request in flight holds the drain");
        drop(p);
        tokio::time::timeout(Duration::from_secs(5), f.drain())
            .await
            .expect("drains once nothing runs");
    }
}
