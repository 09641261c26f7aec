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
//!
//! The queue is a deque under a lock in the one allocation both sides
//! share, not a channel: a channel's first block of slots is allocated
//! with it and kept (about 1.5 KiB), and a gateway holds tens of thousands
//! of mostly idle connections.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::metrics;

#[derive(Debug)]
struct Queued {
    bytes: AtomicUsize,
    limit: usize,
    /// The writer took bytes.
    taken: Notify,
    frames: Mutex<VecDeque<Bytes>>,
    /// A frame arrived, or the last sender went.
    arrived: Notify,
    senders: AtomicUsize,
    /// The writer is gone: nothing is queued any more.
    closed: AtomicBool,
}

impl Queued {
    fn frames(&self) -> MutexGuard<'_, VecDeque<Bytes>> {
        self.frames.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending side (cloned into the registry's handle).
#[derive(Debug)]
pub struct Outbox {
    queued: Arc<Queued>,
}

/// The writer's side.
pub struct Inbox {
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
    let queued = Arc::new(Queued {
        bytes: AtomicUsize::new(0),
        limit,
        taken: Notify::new(),
        frames: Mutex::new(VecDeque::new()),
        arrived: Notify::new(),
        senders: AtomicUsize::new(1),
        closed: AtomicBool::new(false),
    });
    (
        Outbox {
            queued: queued.clone(),
        },
        Inbox { queued },
    )
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.queued.senders.fetch_add(1, Ordering::SeqCst);
        Outbox {
            queued: self.queued.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.queued.senders.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The writer ends once it took what is left.
            self.queued.arrived.notify_one();
        }
    }
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
        self.enqueue(frame)
    }

    /// Queues the answer to one of the connection's own requests (bounded
    /// by the requests in flight, see above).
    pub fn answer(&self, frame: Bytes) -> Pushed {
        self.queued.bytes.fetch_add(frame.len(), Ordering::SeqCst);
        self.enqueue(frame)
    }

    /// Appends `frame` (its bytes already counted) unless the writer is
    /// gone.
    fn enqueue(&self, frame: Bytes) -> Pushed {
        let n = frame.len();
        {
            let mut frames = self.queued.frames();
            // Checked under the lock the writer's drop takes: a frame is
            // either taken by the writer or refused here, never left.
            if self.queued.closed.load(Ordering::SeqCst) {
                drop(frames);
                self.queued.bytes.fetch_sub(n, Ordering::SeqCst);
                return Pushed::Closed;
            }
            frames.push_back(frame);
        }
        metrics::SEND_QUEUE_BYTES.add(n as i64);
        self.queued.arrived.notify_one();
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
    /// The next frame, waiting for one; `None` once every sender is gone
    /// and the queue is empty.
    pub async fn recv(&mut self) -> Option<Bytes> {
        loop {
            if let Some(f) = self.try_recv() {
                return Some(f);
            }
            if self.queued.senders.load(Ordering::SeqCst) == 0 {
                // A frame queued before the last sender went is taken first.
                return self.try_recv();
            }
            // A notification sent since the check is kept as a permit.
            self.queued.arrived.notified().await;
        }
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        let mut frames = self.queued.frames();
        let f = frames.pop_front();
        // A drained queue keeps no room: most connections are idle.
        if frames.is_empty() && frames.capacity() > 0 {
            *frames = VecDeque::new();
        }
        f
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
        let left: usize = {
            let mut frames = self.queued.frames();
            self.queued.closed.store(true, Ordering::SeqCst);
            let left = frames.iter().map(Bytes::len).sum();
            *frames = VecDeque::new();
            left
        };
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

    #[tokio::test]
    async fn the_writer_takes_every_frame_in_order_then_ends_with_the_last_sender() {
        let (out, mut inbox) = outbox(1 << 20);
        let other = out.clone();
        let waiter = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(f) = inbox.recv().await {
                inbox.written(f.len());
                got.push(f);
            }
            got
        });
        for i in 0..100u8 {
            let to = if i % 2 == 0 { &out } else { &other };
            assert_eq!(to.push(Bytes::from(vec![i])), Pushed::Queued);
            if i % 10 == 0 {
                tokio::task::yield_now().await;
            }
        }
        drop(out);
        assert_eq!(other.answer(Bytes::from_static(b"last")), Pushed::Queued);
        drop(other);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the writer ends once the senders are gone")
            .expect("writer");
        assert_eq!(got.len(), 101, "nothing lost");
        for (i, f) in got.iter().take(100).enumerate() {
            assert_eq!(f[..], [i as u8], "in order");
        }
        assert_eq!(&got[100][..], b"last");
    }
}
