//! A connection's send queue, bounded in bytes: what its requests answer
//! and what is pushed to it (deliveries, kicks, notifications), in order,
//! until its writer takes it.
//!
//! Two bounds: at `limit` bytes the connection stops reading requests
//! ([`Outbox::drained`] waits until the writer took some), so a client
//! that pipelines faster than it reads is slowed, not buffered; past
//! twice `limit` a push is refused and the connection killed (slow
//! consumer), since pushes come from elsewhere and never wait. Answers to
//! the connection's own requests ([`Outbox::answer`]) are always queued:
//! no request is read while the queue is at `limit`, so they add at most
//! one answer per request in flight. What one connection holds queued
//! stays under `2 * limit` plus its requests in flight's answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use crate::metrics;

#[derive(Debug)]
struct Queued {
    bytes: AtomicUsize,
    limit: usize,
    taken: Notify,
}

/// The sending side (cloned into the registry's handle).
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<Queued>,
}

/// The writer's side.
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<Queued>,
}

/// What became of a frame handed to [`Outbox::push`].
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Past the hard bound: the client does not read.
    Full,
    /// The connection is gone.
    Closed,
}

/// A queue of at most `limit` bytes before the connection's reads stop.
pub fn outbox(limit: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(Queued {
        bytes: AtomicUsize::new(0),
        limit,
        taken: Notify::new(),
    });
    (
        Outbox {
            tx,
            queued: queued.clone(),
        },
        Inbox { rx, queued },
    )
}

impl Outbox {
    /// Queues `frame` unless the queue is past twice its limit.
    pub fn push(&self, frame: Bytes) -> Pushed {
        let n = frame.len();
        let before = self.queued.bytes.fetch_add(n, Ordering::SeqCst);
        if before + n > 2 * self.queued.limit {
            self.queued.bytes.fetch_sub(n, Ordering::SeqCst);
            return Pushed::Full;
        }
        if self.tx.send(frame).is_err() {
            self.queued.bytes.fetch_sub(n, Ordering::SeqCst);
            return Pushed::Closed;
        }
        metrics::SEND_QUEUE_BYTES.add(n as i64);
        Pushed::Queued
    }

    /// Queues the answer to one of the connection's own requests (bounded
    /// by the requests in flight, see above).
    pub fn answer(&self, frame: Bytes) -> Pushed {
        let n = frame.len();
        self.queued.bytes.fetch_add(n, Ordering::SeqCst);
        if self.tx.send(frame).is_err() {
            self.queued.bytes.fetch_sub(n, Ordering::SeqCst);
            return Pushed::Closed;
        }
        metrics::SEND_QUEUE_BYTES.add(n as i64);
        Pushed::Queued
    }

    /// Bytes queued now.
    pub fn queued(&self) -> usize {
        self.queued.bytes.load(Ordering::SeqCst)
    }

    /// True while the queue is at its limit (reads should wait).
    pub fn is_full(&self) -> bool {
        self.queued() >= self.queued.limit
    }

    /// Waits until the queue is below its limit.
    pub async fn drained(&self) {
        loop {
            let taken = self.queued.taken.notified();
            tokio::pin!(taken);
            taken.as_mut().enable();
            if !self.is_full() {
                return;
            }
            taken.await;
        }
    }
}

impl Inbox {
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }

    pub fn try_recv(&mut self) -> Option<Bytes> {
        self.rx.try_recv().ok()
    }

    /// The writer wrote `n` bytes of what it took: they leave the queue.
    pub fn written(&self, n: usize) {
        self.queued.bytes.fetch_sub(n, Ordering::SeqCst);
        metrics::SEND_QUEUE_BYTES.sub(n as i64);
        self.queued.taken.notify_waiters();
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        // What was never written leaves the queue with it.
        self.rx.close();
        let mut left = 0;
        while let Ok(f) = self.rx.try_recv() {
            left += f.len();
        }
        if left > 0 {
            self.written(left);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn reads_wait_at_the_limit_and_frames_past_twice_it_are_refused() {
        let (out, mut inbox) = outbox(100);
        assert_eq!(out.push(Bytes::from(vec![0; 60])), Pushed::Queued);
        assert!(!out.is_full());
        assert_eq!(out.push(Bytes::from(vec![0; 60])), Pushed::Queued);
        assert!(out.is_full(), "120 of 100 bytes");
        assert_eq!(out.push(Bytes::from(vec![0; 60])), Pushed::Queued);
        assert_eq!(
            out.push(Bytes::from(vec![0; 60])),
            Pushed::Full,
            "240 is past twice the limit"
        );
        assert_eq!(out.queued(), 180);
        assert_eq!(
            out.answer(Bytes::from(vec![0; 60])),
            Pushed::Queued,
            "an answer is queued past the bound"
        );
        let extra = inbox.recv().await.expect("a frame");
        inbox.written(extra.len());
        assert_eq!(out.queued(), 180);
        let waiting = tokio::time::timeout(Duration::from_millis(50), out.drained()).await;
        assert!(waiting.is_err(), "a full queue holds the reads");
        let first = inbox.recv().await.expect("a frame");
        let second = inbox.try_recv().expect("a frame");
        inbox.written(first.len() + second.len());
        tokio::time::timeout(Duration::from_secs(5), out.drained())
            .await
            .expect("drained below the limit");
        drop(inbox);
        assert_eq!(out.queued(), 0, "what was left leaves with the writer");
        assert_eq!(out.push(Bytes::from_static(b"x")), Pushed::Closed);
    }
}
