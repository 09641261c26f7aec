//! The TCP side of the client protocol: every frame behind a 4-byte
//! big-endian length ([`FrameReader`], [`FrameWriter`]).
//!
//! No buffer is kept while a connection is idle: the reader allocates when
//! bytes arrive and lets go once every frame in them is taken; the writer
//! builds one buffer per batch of queued frames and drops it after the
//! write. Idle connections are most connections, so this is most of a
//! gateway's memory per connection.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::error::Error;

/// Largest frame the gateway writes (a page of history can be large; the
/// read limit for clients is `limits.max_frame_bytes`).
pub const MAX_OUT_FRAME: usize = 16 << 20;

/// Bytes of the length prefix: 4, big-endian.
const PREFIX: usize = 4;

/// The least a read asks the socket for: a few small frames at once.
const READ_CHUNK: usize = 2048;

/// Reads length-prefixed frames from a TCP stream, holding memory only
/// while bytes are in hand.
pub struct FrameReader {
    read: OwnedReadHalf,
    buf: BytesMut,
    limit: u32,
}

impl FrameReader {
    /// Frames longer than `limit` are refused with FRAME_TOO_LARGE.
    pub fn new(read: OwnedReadHalf, limit: u32) -> Self {
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
            // Wait without a buffer; allocate only once bytes are there.
            if let Err(e) = self.read.readable().await {
                return Some(Err(Error::Io(e)));
            }
            let missing = self.missing();
            self.buf.reserve(missing.max(READ_CHUNK));
            match self.read.try_read_buf(&mut self.buf) {
                Ok(0) if self.buf.is_empty() => return None,
                Ok(0) => {
                    return Some(Err(Error::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed inside a frame",
                    ))));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Some(Err(Error::Io(e))),
            }
        }
    }

    /// A whole frame from the buffer, if there is one.
    fn take(&mut self) -> Result<Option<Bytes>, Error> {
        if self.buf.len() < PREFIX {
            self.release_if_empty();
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if len > self.limit {
            return Err(Error::FrameTooLarge { limit: self.limit });
        }
        let len = len as usize;
        if self.buf.len() < PREFIX + len {
            return Ok(None);
        }
        self.buf.advance(PREFIX);
        let frame = self.buf.split_to(len).freeze();
        self.release_if_empty();
        Ok(Some(frame))
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

/// Writes length-prefixed frames to a TCP stream: one write per batch.
pub struct FrameWriter {
    write: OwnedWriteHalf,
}

impl FrameWriter {
    pub fn new(write: OwnedWriteHalf) -> Self {
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
        self.write.write_all(&buf).await.map_err(Error::Io)
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
}
