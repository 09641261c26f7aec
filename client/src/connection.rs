//! One connection to a gateway: handshake, requests matched to responses by
//! request id, pushes on a bounded channel, heartbeats.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb, ErrorCode, Frame, ProtocolVersion};
use futures::{SinkExt, StreamExt};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::tls::ClientTls;

/// What a plain client reads when the gateway speaks TLS: a TLS record
/// (handshake 0x16 or alert 0x15, version 3.x) where a length prefix was
/// expected.
fn looks_like_tls(head: &[u8]) -> bool {
    head.len() >= 2 && (head[0] == 0x15 || head[0] == 0x16) && head[1] == 0x03
}

/// Largest frame the client accepts (history pages can be large).
const MAX_IN_FRAME: usize = 16 << 20;
/// Pushes buffered for the application.
const PUSH_BUFFER: usize = 4096;
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Something the gateway sent unasked.
#[derive(Debug, Clone)]
pub enum Push {
    Frame(Body),
    /// An error frame without request id: the gateway is closing the
    /// connection (idle, going away, bad frame...).
    Error(pb::Error),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Body>>>>;

/// Heartbeat intervals without a frame from the gateway after which the
/// connection counts as dead (a cut link sends no reset: only silence
/// tells).
const SILENT_BEATS: u32 = 3;

/// `heard` while the reader waits for room in the push buffer.
const WAITING_FOR_APP: u64 = u64::MAX;

pub struct Connection {
    out: mpsc::Sender<Bytes>,
    /// When the gateway was last heard from, in ms after `opened`.
    heard: Arc<AtomicU64>,
    opened: tokio::time::Instant,
    pending: Pending,
    next_id: AtomicU64,
    pushes: mpsc::Receiver<Push>,
    pub hello: pb::HelloOk,
    stop: CancellationToken,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max)
        .new_codec()
}

impl Connection {
    /// Connects over plain TCP and shakes hands.
    pub async fn connect(addr: &str) -> Result<Self> {
        Self::connect_with(addr, None).await
    }

    /// Connects over TCP, then TLS with `tls` (plain without), and shakes
    /// hands.
    pub async fn connect_with(addr: &str, tls: Option<&ClientTls>) -> Result<Self> {
        let stream = TcpStream::connect(addr).await.map_err(|source| Error::Connect {
            addr: addr.to_owned(),
            source,
        })?;
        let _ = stream.set_nodelay(true);
        match tls {
            None => {
                let (r, w) = stream.into_split();
                Self::start(r, w).await
            }
            Some(tls) => {
                let stream = tls.connect(addr, stream).await?;
                let (r, w) = tokio::io::split(stream);
                Self::start(r, w).await
            }
        }
    }

    async fn start<R, W>(r: R, w: W) -> Result<Self>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let mut read = FramedRead::new(r, codec(MAX_IN_FRAME));
        let mut write = FramedWrite::new(w, codec(MAX_IN_FRAME));
        let (out, mut out_rx) = mpsc::channel::<Bytes>(1024);
        let (push_tx, pushes) = mpsc::channel(PUSH_BUFFER);
        let pending: Pending = Arc::default();
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = s.cancelled() => break,
                    n = out_rx.recv() => n,
                };
                let Some(b) = next else { break };
                if write.feed(b).await.is_err() {
                    break;
                }
                while let Ok(more) = out_rx.try_recv() {
                    if write.feed(more).await.is_err() {
                        return;
                    }
                }
                if SinkExt::<Bytes>::flush(&mut write).await.is_err() {
                    break;
                }
            }
            let _ = SinkExt::<Bytes>::close(&mut write).await;
        });
        let opened = tokio::time::Instant::now();
        let heard = Arc::new(AtomicU64::new(0));
        let h = heard.clone();
        let p = pending.clone();
        let s = stop.clone();
        // Why the reader stopped, when the gateway sent something unreadable.
        let why: Arc<Mutex<Option<Error>>> = Arc::default();
        let w = why.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = s.cancelled() => break,
                    n = read.next() => n,
                };
                let bytes = match next {
                    Some(Ok(b)) => b,
                    Some(Err(error)) => {
                        let reason = if looks_like_tls(read.read_buffer()) {
                            Error::Tls(
                                "the gateway answered with TLS: this port needs a TLS client \
                                 (--tls-ca FILE, or --tls for the system's CAs)"
                                    .to_owned(),
                            )
                        } else {
                            Error::Protocol(format!("reading from the gateway: {error}"))
                        };
                        *w.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
                        break;
                    }
                    None => break,
                };
                h.store(opened.elapsed().as_millis() as u64, Ordering::Relaxed);
                let Ok(frame) = Frame::decode(bytes.freeze()) else {
                    break;
                };
                let Some(body) = frame.body else { continue };
                if frame.request_id != 0 {
                    let waiter = p
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&frame.request_id);
                    if let Some(w) = waiter {
                        let _ = w.send(body);
                    }
                    continue;
                }
                let push = match body {
                    Body::Error(e) => Push::Error(e),
                    other => Push::Frame(other),
                };
                // Waiting for the application is not silence of the gateway.
                h.store(WAITING_FOR_APP, Ordering::Relaxed);
                if push_tx.send(push).await.is_err() {
                    break;
                }
                h.store(opened.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            // Wake every waiter: the connection is gone.
            p.lock().unwrap_or_else(|e| e.into_inner()).clear();
            s.cancel();
        });
        let mut conn = Self {
            out,
            heard,
            opened,
            pending,
            next_id: AtomicU64::new(1),
            pushes,
            hello: pb::HelloOk::default(),
            stop,
        };
        let reply = conn
            .request(Body::Hello(pb::Hello {
                version: ProtocolVersion::ProtocolVersion1 as i32,
                client: concat!("confab-client/", env!("CARGO_PKG_VERSION")).into(),
            }))
            .await
            .map_err(
                |e| match (&e, why.lock().unwrap_or_else(|e| e.into_inner()).take()) {
                    (Error::Closed, Some(reason)) => reason,
                    _ => e,
                },
            )?;
        let Body::HelloOk(ok) = reply else {
            return Err(Error::Protocol("expected HelloOk".into()));
        };
        conn.hello = ok;
        conn.spawn_heartbeat();
        Ok(conn)
    }

    /// Pings every heartbeat interval (the gateway answers each), and
    /// closes the connection after [`SILENT_BEATS`] intervals without a
    /// frame from the gateway.
    fn spawn_heartbeat(&self) {
        let every = Duration::from_millis(u64::from(self.hello.heartbeat_ms.max(100)));
        let silent_for = every * SILENT_BEATS;
        let (heard, opened) = (self.heard.clone(), self.opened);
        let out = self.out.clone();
        let stop = self.stop.clone();
        let ping = Frame {
            request_id: u64::MAX,
            body: Some(Body::Ping(pb::Ping {})),
        }
        .encode_to_vec();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let heard = heard.load(Ordering::Relaxed);
                if heard != WAITING_FOR_APP && (opened + Duration::from_millis(heard)).elapsed() > silent_for
                {
                    tracing::info!(
                        ?silent_for,
                        "nothing heard from the gateway: the connection is dead"
                    );
                    stop.cancel();
                    return;
                }
                if out.send(Bytes::from(ping.clone())).await.is_err() {
                    return;
                }
            }
        });
    }

    /// Sends a request and waits for its response; an error frame becomes
    /// [`Error::Server`].
    pub async fn request(&self, body: Body) -> Result<Body> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        let bytes = Frame {
            request_id: id,
            body: Some(body),
        }
        .encode_to_vec();
        if self.out.send(Bytes::from(bytes)).await.is_err() {
            return Err(Error::Closed);
        }
        let reply = match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => return Err(Error::Closed),
            Err(_) => {
                self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                return Err(Error::Timeout(REQUEST_TIMEOUT));
            }
        };
        match reply {
            Body::Error(e) if e.code == ErrorCode::RateLimited as i32 => Err(Error::RateLimited {
                message: e.message,
                retry_after: std::time::Duration::from_millis(u64::from(e.retry_after_ms)),
            }),
            Body::Error(e) if e.code == ErrorCode::Busy as i32 => Err(Error::Busy {
                message: e.message,
                retry_after: std::time::Duration::from_millis(u64::from(e.retry_after_ms)),
            }),
            Body::Error(e) => Err(Error::Server {
                code: ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unspecified),
                message: e.message,
            }),
            other => Ok(other),
        }
    }

    /// The next push; `None` once the connection is closed and drained.
    pub async fn next_push(&mut self) -> Option<Push> {
        self.pushes.recv().await
    }

    /// The next push when one is already here; never waits. Pushes wait in
    /// a bounded buffer: a client that does not read them stops reading
    /// the connection once it is full, answers included.
    pub fn try_next_push(&mut self) -> Option<Push> {
        self.pushes.try_recv().ok()
    }

    /// True once the connection ended.
    pub fn is_closed(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.stop.cancel();
    }
}
