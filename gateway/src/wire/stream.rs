//! The TCP side of the client protocol: every frame behind a 4-byte
//! big-endian length ([`FrameReader`], [`FrameWriter`]), over plain TCP or
//! over TLS.
//!
//! No buffer is kept while a connection is idle: the reader allocates when
//! bytes arrive and lets go once every frame in them is taken; the writer
//! builds one buffer per batch of queued frames and drops it after the
//! write. Idle connections are most connections, so this is most of a
//! gateway's memory per connection.

use std::io;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::error::Error;

/// Largest frame the gateway writes (a page of history can be large; the
/// read limit for clients is `limits.max_frame_bytes`).
pub const MAX_OUT_FRAME: usize = 16 << 20;

/// Bytes of the length prefix: 4, big-endian.
const PREFIX: usize = 4;

/// The least a read asks the socket for: a few small frames at once.
const READ_CHUNK: usize = 2048;

/// Appends what `r` sends next to `buf` and returns the count (0 at the
/// end of the stream). While `buf` is empty (an idle connection, the usual
/// case) nothing is allocated until bytes are there: each poll reads into a
/// scratch array that lives only for that poll (a pending read took no
/// bytes), and what arrived is copied out. Inside a frame the room for
/// `want` more bytes is made first and read into directly.
async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut BytesMut, want: usize) -> io::Result<usize> {
    if !buf.is_empty() {
        buf.reserve(want);
        return r.read_buf(buf).await;
    }
    std::future::poll_fn(|cx| {
        let mut scratch = [0u8; READ_CHUNK];
        let mut read = ReadBuf::new(&mut scratch);
        std::task::ready!(Pin::new(&mut *r).poll_read(cx, &mut read))?;
        let got = read.filled();
        buf.extend_from_slice(got);
        Poll::Ready(Ok(got.len()))
    })
    .await
}

/// Reads length-prefixed frames from a byte stream (TCP, or TLS over it),
/// holding memory only while bytes are in hand (TLS keeps its own buffers
/// besides).
pub struct FrameReader<R = OwnedReadHalf> {
    read: R,
    buf: BytesMut,
    limit: u32,
}

impl<R: AsyncRead + Unpin + Send> FrameReader<R> {
    /// Frames longer than `limit` are refused with FRAME_TOO_LARGE.
    pub fn new(read: R, limit: u32) -> Self {
        Self {
            read,
            buf: BytesMut::new(),
            limit,
        }
    }

    /// The next frame; `None` at a clean end of stream (between frames).
    pub async fn next_frame(&mut self) -> Option<Result<Bytes, Error>> {
        loop {
            match self.take() {
                Ok(Some(frame)) => return Some(Ok(frame)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            let want = self.missing().max(READ_CHUNK);
            match fill(&mut self.read, &mut self.buf, want).await {
                Ok(0) if self.buf.is_empty() => return None,
                Ok(0) => {
                    return Some(Err(Error::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed inside a frame",
                    ))));
                }
                Ok(_) => {}
                Err(e) => return Some(Err(Error::Io(e))),
            }
        }
    }

    /// A whole frame from the buffer, if there is one.
    fn take(&mut self) -> Result<Option<Bytes>, Error> {
        let frame = split_frame(&mut self.buf, self.limit)?;
        self.release_if_empty();
        Ok(frame)
    }

    /// Bytes still needed to complete the frame in hand (0 when unknown).
    fn missing(&self) -> usize {
        if self.buf.len() < PREFIX {
            return 0;
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        (PREFIX + len).saturating_sub(self.buf.len())
    }

    /// Drops the buffer's hold on its allocation once nothing is left in it
    /// (frames already taken keep their part alive only as long as they live).
    fn release_if_empty(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }

    /// Whether the reader holds an allocation (tests).
    pub fn holds_buffer(&self) -> bool {
        self.buf.capacity() > 0
    }
}

/// Takes one whole frame (without its prefix) off the front of `buf`, if
/// one is there; a prefix over `limit` is FRAME_TOO_LARGE before any of the
/// frame is waited for. The reader's buffer goes through this as bytes
/// arrive.
pub fn split_frame(buf: &mut BytesMut, limit: u32) -> Result<Option<Bytes>, Error> {
    if buf.len() < PREFIX {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len > limit {
        return Err(Error::FrameTooLarge { limit });
    }
    let len = len as usize;
    if buf.len() < PREFIX + len {
        return Ok(None);
    }
    buf.advance(PREFIX);
    Ok(Some(buf.split_to(len).freeze()))
}

/// Writes length-prefixed frames to a TCP (or TLS) stream: one write per
/// batch.
pub struct FrameWriter<W = OwnedWriteHalf> {
    write: W,
}

impl<W: AsyncWrite + Unpin + Send> FrameWriter<W> {
    pub fn new(write: W) -> Self {
        Self { write }
    }

    /// Writes `frames` in order with one buffer, dropped afterwards.
    pub async fn write_frames(&mut self, frames: &[Bytes]) -> Result<(), Error> {
        let mut total = 0;
        for f in frames {
            if f.len() > MAX_OUT_FRAME {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("outgoing frame of {} bytes is over {MAX_OUT_FRAME}", f.len()),
                )));
            }
            total += PREFIX + f.len();
        }
        let mut buf = Vec::with_capacity(total);
        for f in frames {
            buf.extend_from_slice(&(f.len() as u32).to_be_bytes());
            buf.extend_from_slice(f);
        }
        self.write.write_all(&buf).await.map_err(Error::Io)?;
        // TLS holds written records until flushed; plain TCP's flush is free.
        self.write.flush().await.map_err(Error::Io)
    }

    pub async fn close(&mut self) {
        let _ = self.write.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
        (a.expect("connect"), b.expect("accept").0)
    }

    fn prefixed(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[tokio::test]
    async fn frames_split_anywhere_arrive_whole_and_idle_holds_no_buffer() {
        let (mut client, server) = pair().await;
        let (read, _write) = server.into_split();
        let mut r = FrameReader::new(read, 1 << 20);
        let big = vec![7u8; 10_000];
        let mut wire = prefixed(b"one");
        wire.extend(prefixed(&big));
        wire.extend(prefixed(b""));
        // In pieces that cut through prefixes and bodies.
        let task = tokio::spawn(async move {
            for chunk in wire.chunks(3) {
                client.write_all(chunk).await.expect("write");
                client.flush().await.expect("flush");
            }
            client
        });
        assert_eq!(r.next_frame().await.expect("frame").expect("ok"), &b"one"[..]);
        assert_eq!(r.next_frame().await.expect("frame").expect("ok"), &big[..]);
        assert_eq!(r.next_frame().await.expect("frame").expect("ok"), &b""[..]);
        assert!(!r.holds_buffer(), "nothing in hand: no allocation kept");
        let client = task.await.expect("writer");
        drop(client);
        assert!(r.next_frame().await.is_none(), "clean end between frames");
    }

    /// Polls `r` for its next frame once: it is waiting (nothing was sent).
    fn waits<R: AsyncRead + Unpin + Send>(r: &mut FrameReader<R>) {
        use futures::FutureExt;
        assert!(r.next_frame().now_or_never().is_none(), "nothing to read yet");
    }

    #[tokio::test]
    async fn a_reader_waiting_for_its_next_frame_holds_no_buffer_on_tcp_or_any_stream() {
        let (mut client, server) = pair().await;
        let mut r = FrameReader::new(server.into_split().0, 1 << 20);
        client.write_all(&prefixed(b"hello")).await.expect("write");
        assert_eq!(r.next_frame().await.expect("frame").expect("ok"), &b"hello"[..]);
        // The socket was readable last; the next read finds nothing.
        waits(&mut r);
        assert!(!r.holds_buffer(), "TCP: waiting holds no allocation");

        // Any other stream (TLS goes this way): the same.
        let (mut a, b) = tokio::io::duplex(64 << 10);
        let mut r = FrameReader::new(b, 1 << 20);
        a.write_all(&prefixed(b"hello")).await.expect("write");
        assert_eq!(r.next_frame().await.expect("frame").expect("ok"), &b"hello"[..]);
        waits(&mut r);
        assert!(!r.holds_buffer(), "stream: waiting holds no allocation");
        // Inside a frame the room for the rest is kept, and the rest arrives.
        let whole = prefixed(&[9u8; 5000]);
        a.write_all(&whole[..100]).await.expect("write");
        waits(&mut r);
        assert!(r.holds_buffer(), "half a frame in hand");
        a.write_all(&whole[100..]).await.expect("write");
        assert_eq!(
            r.next_frame().await.expect("frame").expect("ok"),
            &[9u8; 5000][..]
        );
        assert!(!r.holds_buffer());
    }

    #[tokio::test]
    async fn an_over_long_prefix_is_frame_too_large_and_a_cut_frame_an_error() {
        let (mut client, server) = pair().await;
        let mut r = FrameReader::new(server.into_split().0, 100);
        client.write_all(&101u32.to_be_bytes()).await.expect("write");
        assert!(matches!(
            r.next_frame().await,
            Some(Err(Error::FrameTooLarge { limit: 100 }))
        ));

        let (mut client, server) = pair().await;
        let mut r = FrameReader::new(server.into_split().0, 100);
        client.write_all(&prefixed(b"abcdef")[..6]).await.expect("write");
        drop(client);
        assert!(matches!(r.next_frame().await, Some(Err(Error::Io(_)))));
    }

    #[tokio::test]
    async fn the_writer_prefixes_every_frame() {
        let (client, server) = pair().await;
        let mut w = FrameWriter::new(client.into_split().1);
        let mut r = FrameReader::new(server.into_split().0, 1 << 20);
        let frames = [Bytes::from_static(b"a"), Bytes::from_static(b"bcd")];
        w.write_frames(&frames).await.expect("write");
        assert_eq!(r.next_frame().await.expect("frame").expect("ok"), &b"a"[..]);
        assert_eq!(r.next_frame().await.expect("frame").expect("ok"), &b"bcd"[..]);
    }

    mod props {
        use confab_proto::client::frame::Body;
        use confab_proto::client::{self as pb, Frame, ProtocolVersion};
        use proptest::prelude::*;
        use prost::Message;

        use super::super::split_frame;
        use crate::config::LimitsConfig;
        use crate::connection::handshake;
        use crate::handler::precheck;
        use crate::wire::frame;
        use bytes::BytesMut;

        fn body() -> impl Strategy<Value = Body> {
            let s = || "\\PC{0,80}";
            prop_oneof![
                any::<i32>().prop_map(|version| Body::Hello(pb::Hello {
                    version,
                    client: "t".into()
                })),
                (s(), s(), s()).prop_map(|(name, password, device_id)| Body::Login(pb::LoginRequest {
                    name,
                    password,
                    device_id,
                    device_kind: 1,
                })),
                (any::<u64>(), s(), s(), s()).prop_map(|(to_user, to_name, body, client_msg_id)| {
                    Body::Send(pb::SendRequest {
                        to_user,
                        to_name,
                        body,
                        client_msg_id,
                        ..Default::default()
                    })
                }),
                (any::<u64>(), s(), s()).prop_map(|(group_id, body, client_msg_id)| {
                    Body::GroupSend(pb::GroupSendRequest {
                        group_id,
                        body,
                        client_msg_id,
                        ..Default::default()
                    })
                }),
                (s(), any::<u64>(), any::<u32>()).prop_map(|(conversation_id, before_seq, limit)| {
                    Body::History(pb::HistoryRequest {
                        conversation_id,
                        before_seq,
                        limit,
                        min_message_id: 0,
                    })
                }),
                Just(Body::Ping(pb::Ping {})),
            ]
        }

        /// Frames as a client sends them: each behind its 4-byte length.
        fn wire(frames: &[Frame]) -> Vec<u8> {
            let mut w = Vec::new();
            for f in frames {
                let b = f.encode_to_vec();
                w.extend_from_slice(&(b.len() as u32).to_be_bytes());
                w.extend_from_slice(&b);
            }
            w
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn arbitrary_bytes_split_decode_and_check_never_panic(
                b in proptest::collection::vec(any::<u8>(), 0..1024),
                limit in 0..2048u32,
            ) {
                let mut buf = BytesMut::from(&b[..]);
                while let Ok(Some(f)) = split_frame(&mut buf, limit) {
                    prop_assert!(f.len() <= limit as usize);
                    if let Ok(Frame { body: Some(body), .. }) = frame::decode(&f) {
                        let _ = precheck(&body, &LimitsConfig::default(), 7);
                        let _ = handshake(&LimitsConfig::default(), 1, body);
                    }
                }
            }

            #[test]
            fn frames_round_trip_through_the_prefix_in_any_chunks(
                frames in proptest::collection::vec((1..u64::MAX, body()), 0..8),
                chunk in 1..64usize,
            ) {
                let frames: Vec<Frame> = frames
                    .into_iter()
                    .map(|(request_id, body)| Frame { request_id, body: Some(body) })
                    .collect();
                let bytes = wire(&frames);
                let mut buf = BytesMut::new();
                let mut got = Vec::new();
                for piece in bytes.chunks(chunk) {
                    buf.extend_from_slice(piece);
                    while let Some(f) = split_frame(&mut buf, 1 << 20)? {
                        got.push(frame::decode(&f)?);
                    }
                }
                prop_assert!(buf.is_empty());
                prop_assert_eq!(got, frames);
            }

            #[test]
            fn the_checks_answer_as_the_limits_say(body_len in 0..600usize, cmid_len in 0..100usize) {
                let limits = LimitsConfig { max_body_bytes: 300, ..LimitsConfig::default() };
                let send = Body::Send(pb::SendRequest {
                    to_user: 2,
                    body: "x".repeat(body_len),
                    client_msg_id: "c".repeat(cmid_len),
                    ..Default::default()
                });
                let ok = (1..=300).contains(&body_len) && cmid_len <= 64;
                prop_assert_eq!(precheck(&send, &limits, 7).is_ok(), ok);
                let hello = Body::Hello(pb::Hello { version: ProtocolVersion::ProtocolVersion1 as i32, client: String::new() });
                prop_assert_eq!(handshake(&limits, 3, hello)?.gateway_id, 3);
            }
        }

        /// Writes the seed corpus of the fuzz target `client_frame` under
        /// `$CONFAB_FUZZ_SEEDS` (`make fuzz-seeds`): the chunk-size byte, then
        /// a Hello and requests as a client sends them.
        #[test]
        #[ignore = "writes the fuzz seed corpus"]
        fn write_fuzz_seeds() {
            let Some(root) = std::env::var_os("CONFAB_FUZZ_SEEDS") else {
                return;
            };
            let dir = std::path::PathBuf::from(root).join("client_frame");
            std::fs::create_dir_all(&dir).expect("dir");
            let hello = Frame {
                request_id: 1,
                body: Some(Body::Hello(pb::Hello {
                    version: 1,
                    client: "seed".into(),
                })),
            };
            let requests = [
                (
                    "login",
                    Body::Login(pb::LoginRequest {
                        name: "alice".into(),
                        password: "pw".into(),
                        device_id: "laptop".into(),
                        device_kind: 1,
                    }),
                ),
                (
                    "send",
                    Body::Send(pb::SendRequest {
                        to_user: 2,
                        body: "hello".into(),
                        client_msg_id: "c1".into(),
                        ..Default::default()
                    }),
                ),
                (
                    "group-send",
                    Body::GroupSend(pb::GroupSendRequest {
                        group_id: 4,
                        body: "hi".into(),
                        client_msg_id: "c2".into(),
                        ..Default::default()
                    }),
                ),
                (
                    "history",
                    Body::History(pb::HistoryRequest {
                        conversation_id: "d:2:7".into(),
                        before_seq: 10,
                        limit: 50,
                        min_message_id: 0,
                    }),
                ),
                (
                    "fetch",
                    Body::Fetch(pb::FetchRequest {
                        conversation_id: "g:4".into(),
                        after_seq: 3,
                        limit: 0,
                        min_message_id: 0,
                    }),
                ),
                ("ping", Body::Ping(pb::Ping {})),
            ];
            for (name, body) in requests {
                let mut seed = vec![7u8];
                seed.extend(wire(&[
                    hello.clone(),
                    Frame {
                        request_id: 2,
                        body: Some(body),
                    },
                ]));
                std::fs::write(dir.join(name), seed).expect("write");
            }
        }
    }
}
