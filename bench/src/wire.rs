//! The gateway's client protocol spoken directly (length-prefixed protobuf
//! frames), for scenarios whose own cost must stay small next to what they
//! measure: no task per connection beyond the scenario's own, no request
//! table, no client-side state. confab-client is the full client; this is
//! the least a load generator needs.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context, bail};
use bytes::{Buf, Bytes, BytesMut};
use confab_client::ClientTls;
use confab_client::proto::frame::Body;
use confab_client::proto::{self as pb, DeviceKind, ErrorCode, Frame};
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection to a gateway, plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection of a scenario that may run over TLS (`--tls-ca`, `--tls`).
pub type Stream = Box<dyn Io>;

/// Connects to `addr` (resolved to `target`), over TLS with `tls`.
pub async fn connect_stream(
    addr: &str,
    target: SocketAddr,
    tls: Option<&ClientTls>,
) -> anyhow::Result<Stream> {
    let s = connect(None, target).await?;
    Ok(match tls {
        None => Box::new(s),
        Some(tls) => Box::new(tls.connect(addr, s).await?),
    })
}

/// Largest frame accepted from a gateway.
const MAX_FRAME: usize = 16 << 20;

/// A frame with its 4-byte big-endian length prefix, appended to `out`.
pub fn encode_into(out: &mut Vec<u8>, request_id: u64, body: Body) {
    let f = Frame {
        request_id,
        body: Some(body),
    };
    let len = f.encoded_len();
    out.reserve(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    // Encoding into a Vec with room cannot fail.
    let _ = f.encode(out);
}

/// A frame with its length prefix.
pub fn encode(request_id: u64, body: Body) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, request_id, body);
    out
}

/// Reads whole frames from a byte stream.
#[derive(Default)]
pub struct Frames {
    buf: BytesMut,
}

impl Frames {
    /// The next frame; `None` at the end of the stream.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> anyhow::Result<Option<Frame>> {
        loop {
            if let Some(bytes) = self.take()? {
                return Ok(Some(Frame::decode(bytes)?));
            }
            self.buf.reserve(16 * 1024);
            if r.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                bail!("connection closed inside a frame");
            }
        }
    }

    fn take(&mut self) -> anyhow::Result<Option<Bytes>> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_FRAME {
            bail!("a frame of {len} bytes");
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        self.buf.advance(4);
        Ok(Some(self.buf.split_to(len).freeze()))
    }
}

/// Connects to `target`, from `src` when given.
pub async fn connect(src: Option<Ipv4Addr>, target: SocketAddr) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(src) = src {
        socket.bind(SocketAddr::from((src, 0)))?;
    }
    let s = socket.connect(target).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// One request and its answer on a connection with nothing else in flight
/// (pushes in between are skipped); an error frame is an error.
pub async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    request_id: u64,
    body: Body,
) -> anyhow::Result<Body> {
    s.write_all(&encode(request_id, body)).await?;
    // Over TLS a write may leave its record in the session's buffer (the
    // socket said "not now", e.g. the task's cooperative budget ran out);
    // only a flush is sure to send it before we wait for the answer.
    s.flush().await?;
    let mut len = [0u8; 4];
    loop {
        s.read_exact(&mut len).await?;
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_FRAME {
            bail!("a frame of {n} bytes");
        }
        let mut buf = vec![0u8; n];
        s.read_exact(&mut buf).await?;
        let f = Frame::decode(buf.as_slice())?;
        if f.request_id != request_id {
            continue;
        }
        return match f.body {
            Some(Body::Error(e)) => Err(server_error(&e)),
            Some(b) => Ok(b),
            None => bail!("an empty frame"),
        };
    }
}

/// What an error frame said ("CODE: message"); callers find it in an
/// `anyhow::Error` with `downcast_ref`.
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ServerError {
    pub code: ErrorCode,
    pub message: String,
    /// BUSY and RATE_LIMITED: when to try again.
    pub retry_after: Option<std::time::Duration>,
}

/// An error frame as an error ([`ServerError`]).
pub fn server_error(e: &pb::Error) -> anyhow::Error {
    ServerError {
        code: ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unspecified),
        message: e.message.clone(),
        retry_after: (e.retry_after_ms > 0)
            .then(|| std::time::Duration::from_millis(e.retry_after_ms.into())),
    }
    .into()
}

/// When `e` says to try again later: the wait it asks for.
pub fn retry_after(e: &anyhow::Error) -> Option<std::time::Duration> {
    e.downcast_ref::<ServerError>().and_then(|s| s.retry_after)
}

/// Shakes hands on `s`.
pub async fn hello<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> anyhow::Result<()> {
    let hello = Body::Hello(pb::Hello {
        version: pb::ProtocolVersion::ProtocolVersion1 as i32,
        client: "confab-bench".into(),
    });
    match request(s, 1, hello).await? {
        Body::HelloOk(_) => Ok(()),
        other => bail!("expected HelloOk, got {other:?}"),
    }
}

/// Logs `name` in on `s` (after the handshake); returns the LoginOk.
pub async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    name: &str,
    password: &str,
    device: &str,
) -> anyhow::Result<pb::LoginOk> {
    let body = Body::Login(pb::LoginRequest {
        name: name.to_owned(),
        password: password.to_owned(),
        device_id: device.to_owned(),
        device_kind: DeviceKind::Bot as i32,
    });
    match request(s, 2, body)
        .await
        .with_context(|| format!("logging {name} in"))?
    {
        Body::LoginOk(ok) => Ok(ok),
        other => bail!("expected LoginOk, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_come_back_whole_from_any_split() {
        let mut wire = Vec::new();
        encode_into(&mut wire, 7, Body::Ping(pb::Ping {}));
        encode_into(
            &mut wire,
            0,
            Body::MessagePush(pb::MessagePush {
                message: Some(pb::Message {
                    body: "x".repeat(3000),
                    ..Default::default()
                }),
            }),
        );
        let (mut a, mut b) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for chunk in wire.chunks(5) {
                a.write_all(chunk).await.expect("write");
            }
        });
        let mut frames = Frames::default();
        let first = frames.next(&mut b).await.expect("read").expect("frame");
        assert_eq!(first.request_id, 7);
        let second = frames.next(&mut b).await.expect("read").expect("frame");
        assert!(matches!(second.body, Some(Body::MessagePush(_))));
        writer.await.expect("writer");
        assert!(frames.next(&mut b).await.expect("read").is_none());
    }

    /// A write may leave its bytes in the stream's own buffer (a TLS
    /// session does when the socket is not ready for them): a request is
    /// flushed before its answer is waited for, or it is never sent.
    #[tokio::test]
    async fn a_request_is_flushed_before_its_answer_is_awaited() {
        let (a, mut gateway) = tokio::io::duplex(4096);
        let mut client = tokio::io::BufWriter::new(a);
        let answers = tokio::spawn(async move {
            let mut frames = Frames::default();
            let f = frames.next(&mut gateway).await.expect("read").expect("a request");
            let ok = encode(f.request_id, Body::HelloOk(pb::HelloOk::default()));
            gateway.write_all(&ok).await.expect("answer");
        });
        let ping = Body::Ping(pb::Ping {});
        let answer = tokio::time::timeout(std::time::Duration::from_secs(5), request(&mut client, 1, ping))
            .await
            .expect("answered, not left in a buffer")
            .expect("request");
        assert!(matches!(answer, Body::HelloOk(_)), "{answer:?}");
        answers.await.expect("gateway");
    }
}
