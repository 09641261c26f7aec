//! [`Batcher`]: one task with one call in flight (or a few, for calls
//! whose order does not matter); requests that arrive meanwhile queue up,
//! and the next call carries all of them. There is no timer: alone, a
//! request goes at once; under load, a batch is what arrived during one
//! call, so the batch size follows the load and the added wait is at most
//! one call. Each caller still waits for the outcome of its own item.
//!
//! A call that carries a traced request's item joins that request's trace
//! as a span of its own (named by the batcher), so the calls it makes to
//! other processes carry the trace context.

use std::future::Future;
use std::sync::Arc;

use confab_common::trace;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{Instrument, Span};

/// An item, who waits for its output, and the traced span it came from.
type Waiter<I, O> = (I, oneshot::Sender<O>, Option<Span>);

/// One call in flight; what arrives meanwhile goes in the next call.
pub struct Batcher<I, O> {
    tx: mpsc::UnboundedSender<Waiter<I, O>>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the batcher's task: `call` gets up to `max` items and returns
    /// one output per item, in order. The task ends with the last handle.
    /// `name` names a traced call's span.
    pub fn spawn<F, Fut>(name: &'static str, max: usize, call: F) -> Self
    where
        F: FnMut(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        Self::spawn_parallel(name, max, 1, call)
    }

    /// As [`Batcher::spawn`], with up to `in_flight` calls at once (for
    /// calls whose order does not matter): the next batch is taken when a
    /// call slot is free, so batches still grow with the load.
    pub fn spawn_parallel<F, Fut>(name: &'static str, max: usize, in_flight: usize, mut call: F) -> Self
    where
        F: FnMut(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Waiter<I, O>>();
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let Some(first) = rx.recv().await else { return };
                let mut items = vec![first];
                while items.len() < max {
                    match rx.try_recv() {
                        Ok(more) => items.push(more),
                        Err(_) => break,
                    }
                }
                let n = items.len();
                let mut inputs = Vec::with_capacity(n);
                let mut waiters = Vec::with_capacity(n);
                let mut traced = None;
                for (i, w, s) in items {
                    inputs.push(i);
                    waiters.push(w);
                    traced = traced.or(s);
                }
                let span = match traced {
                    Some(parent) => tracing::info_span!(
                        target: trace::TARGET,
                        parent: &parent,
                        "batch",
                        otel.name = name,
                        items = n
                    ),
                    None => Span::none(),
                };
                let outputs = call(inputs);
                tokio::spawn(
                    async move {
                        for (w, o) in waiters.into_iter().zip(outputs.await) {
                            let _ = w.send(o);
                        }
                        drop(slot);
                    }
                    .instrument(span),
                );
            }
        });
        Self { tx }
    }

    /// Queues `item` for the next call and waits for its output; `None`
    /// when the batcher is gone (the gateway stops).
    pub async fn call(&self, item: I) -> Option<O> {
        self.submit(item)?.await.ok()
    }

    /// Queues `item` for the next call at once (items go out in the order
    /// they were submitted); the receiver gets its output.
    pub fn submit(&self, item: I) -> Option<oneshot::Receiver<O>> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((item, tx, trace::current())).ok()?;
        Some(rx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn requests_during_a_call_share_the_next_one() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let c = calls.clone();
        let b = Arc::new(Batcher::spawn("test", 100, move |items: Vec<u32>| {
            let c = c.clone();
            let mut gate = gate.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                // The first call waits until the others queued up.
                let _ = gate.wait_for(|open| *open).await;
                items.iter().map(|i| i * 10).collect::<Vec<u32>>()
            }
        }));
        let first = tokio::spawn({
            let b = b.clone();
            async move { b.call(1).await }
        });
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (2..=5)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { b.call(i).await })
            })
            .collect();
        // Let them queue behind the call in flight.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.send(true).expect("gate");
        assert_eq!(first.await.expect("join"), Some(10));
        for (i, r) in rest.into_iter().enumerate() {
            assert_eq!(r.await.expect("join"), Some((i as u32 + 2) * 10));
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "one call alone, then one for the four others"
        );
    }

    #[tokio::test]
    async fn a_lone_request_goes_at_once() {
        let b = Batcher::spawn(
            "test",
            10,
            |items: Vec<u8>| async move { vec![true; items.len()] },
        );
        let r = tokio::time::timeout(Duration::from_secs(5), b.call(7)).await;
        assert_eq!(r.expect("no waiting for company"), Some(true));
    }
}
