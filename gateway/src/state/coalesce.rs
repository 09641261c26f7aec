//! Coalescing of the send path's calls to its dependencies: enqueues to
//! persist's queue, session lookups in the routers and `Deliver` calls to
//! other gateways.
//!
//! Each is a [`Batcher`]: what arrives during one call goes in the next,
//! and each caller still waits for the outcome of its own item (a sender is
//! acked only after its message is confirmed).
//!
//! [`Coalescers`] holds the gateway's batchers: enqueues in a few lanes by
//! conversation (one call in flight per lane keeps each conversation's
//! messages in send order), one lookup lane (a few calls in flight: their
//! order does not matter), a few `Deliver` lanes per peer gateway, by
//! conversation (one call in flight each: a conversation's pushes keep the
//! order they were handed over in).
//!
//! The calls themselves are the gateway's ([`Backend`], implemented by
//! [`crate::state::Shared`]): this module knows how to batch them, not
//! whom they reach.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use confab_proto::gateway::Push;
use confab_queue::{ConversationId, Producer, QueuedMessage};
use confab_router_client::RouterClient;
use confab_router_client::Session;
use prometheus::{Histogram, HistogramOpts, register_histogram};

use super::batcher::Batcher;
use crate::error::Error;

/// Enqueue lanes (by conversation).
const ENQUEUE_LANES: u32 = 8;
/// `Deliver` lanes per peer gateway (by conversation).
const DELIVER_LANES: u32 = 4;
/// Most messages in one enqueue call (persist takes up to 5,000).
const MAX_ENQUEUE: usize = 1000;
/// Most sends whose users one lookup carries.
const MAX_LOOKUP: usize = 512;
/// Lookups in flight at once (a lookup's order does not matter; one at a
/// time would bound sends/s by batch size / lookup latency).
const LOOKUPS_IN_FLIGHT: usize = 4;
/// Most messages in one `Deliver` call.
const MAX_DELIVER: usize = 512;

fn batch_histogram(name: &str, help: &str) -> Histogram {
    register_histogram!(
        HistogramOpts::new(name, help)
            .buckets(prometheus::exponential_buckets(1.0, 2.0, 12).unwrap_or_default())
    )
    .unwrap_or_else(|e| panic!("metric {name}: {e}"))
}

/// Messages per enqueue call.
pub static ENQUEUE_BATCH: LazyLock<Histogram> = LazyLock::new(|| {
    batch_histogram(
        "confab_gateway_enqueue_batch",
        "Messages per enqueue call to the queue",
    )
});

/// Sends per router lookup.
pub static LOOKUP_BATCH: LazyLock<Histogram> =
    LazyLock::new(|| batch_histogram("confab_gateway_lookup_batch", "Sends per session lookup"));

/// Messages per Deliver call to another gateway.
pub static DELIVER_BATCH: LazyLock<Histogram> = LazyLock::new(|| {
    batch_histogram(
        "confab_gateway_deliver_batch",
        "Messages per Deliver call to another gateway",
    )
});

fn call_histogram(name: &str, help: &str) -> Histogram {
    register_histogram!(
        HistogramOpts::new(name, help)
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 14).unwrap_or_default())
    )
    .unwrap_or_else(|e| panic!("metric {name}: {e}"))
}

/// Seconds of one enqueue call (until the queue confirmed).
pub static ENQUEUE_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    call_histogram(
        "confab_gateway_enqueue_call_seconds",
        "Seconds of one enqueue call, until the queue confirmed it",
    )
});

/// Seconds of one batched session lookup.
pub static LOOKUP_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    call_histogram(
        "confab_gateway_lookup_call_seconds",
        "Seconds of one batched session lookup in the routers",
    )
});

/// Seconds of one Deliver call to another gateway.
pub static DELIVER_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    call_histogram(
        "confab_gateway_deliver_call_seconds",
        "Seconds of one Deliver call to another gateway",
    )
});

/// Why an enqueue failed, per message (cloneable, unlike [`Error`]).
#[derive(Debug, Clone)]
pub enum EnqueueFailure {
    Invalid(String),
    Unavailable(String),
}

impl From<EnqueueFailure> for Error {
    fn from(f: EnqueueFailure) -> Self {
        match f {
            EnqueueFailure::Invalid(m) => Error::Invalid(m),
            EnqueueFailure::Unavailable(detail) => Error::Unavailable {
                what: "queue",
                detail,
            },
        }
    }
}

fn failure(e: confab_queue::QueueError) -> EnqueueFailure {
    match e {
        confab_queue::QueueError::Invalid(m) => EnqueueFailure::Invalid(m),
        other => EnqueueFailure::Unavailable(other.to_string()),
    }
}

type EnqueueOutcome = Result<(), EnqueueFailure>;
type Sessions = Option<Vec<Session>>;
/// The `Deliver` lane of one peer gateway.
type DeliverLane = Arc<Batcher<Vec<Push>, bool>>;
/// A peer gateway and one of its lanes.
type DeliverKey = (u64, u32);

/// What the batched calls reach: the queue the messages go to, the
/// routers' session lookup, and one `Deliver` call to another gateway.
pub trait Backend: Send + Sync + 'static {
    type Queue: Producer;

    fn queue(&self) -> &Self::Queue;

    fn router(&self) -> &RouterClient;

    /// One `Deliver` call to gateway `gw`: true when it succeeded.
    fn to_gateway(&self, gw: u64, pushes: Vec<Push>) -> impl Future<Output = bool> + Send;
}

/// The gateway's batchers. They hold the gateway state weakly, so they end
/// when it is dropped.
pub struct Coalescers<B> {
    enqueue: Vec<Batcher<QueuedMessage, EnqueueOutcome>>,
    lookup: Batcher<Vec<u64>, Sessions>,
    deliver: Mutex<HashMap<DeliverKey, DeliverLane>>,
    shared: Weak<B>,
}

impl<B: Backend> Coalescers<B> {
    /// Must run inside the runtime (it spawns the batchers' tasks).
    pub fn new(shared: Weak<B>, rpc_timeout: Duration) -> Self {
        LazyLock::force(&ENQUEUE_BATCH);
        LazyLock::force(&LOOKUP_BATCH);
        LazyLock::force(&DELIVER_BATCH);
        LazyLock::force(&ENQUEUE_SECONDS);
        LazyLock::force(&LOOKUP_SECONDS);
        LazyLock::force(&DELIVER_SECONDS);
        let enqueue = (0..ENQUEUE_LANES)
            .map(|_| {
                let s = shared.clone();
                Batcher::spawn("gateway.enqueue", MAX_ENQUEUE, move |msgs| {
                    enqueue_batch(s.clone(), rpc_timeout, msgs)
                })
            })
            .collect();
        let s = shared.clone();
        let lookup = Batcher::spawn_parallel("gateway.lookup", MAX_LOOKUP, LOOKUPS_IN_FLIGHT, move |items| {
            lookup_batch(s.clone(), rpc_timeout, items)
        });
        Self {
            enqueue,
            lookup,
            deliver: Mutex::new(HashMap::new()),
            shared,
        }
    }

    /// Hands `msg` to its lane's next enqueue call now (so messages of one
    /// conversation go out in the order of these calls); the future is Ok
    /// once the queue confirmed it.
    pub fn enqueue(&self, msg: QueuedMessage) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let lane = ConversationId::partition(&msg.conversation_id, ENQUEUE_LANES) as usize;
        let rx = self.enqueue[lane].submit(msg);
        async move {
            match rx {
                Some(rx) => match rx.await {
                    Ok(r) => r.map_err(Error::from),
                    Err(_) => Err(Error::GoingAway("shutting down")),
                },
                None => Err(Error::GoingAway("shutting down")),
            }
        }
    }

    /// The sessions of `uids` (batched with other sends' lookups); `None`
    /// when the lookup failed (recipients will sync).
    pub async fn lookup(&self, uids: Vec<u64>) -> Option<Vec<Session>> {
        self.lookup.call(uids).await.flatten()
    }

    /// Hands `pushes` (of `conversation`) to gateway `gw`'s next `Deliver`
    /// call in the conversation's lane now (pushes of one conversation go
    /// out in the order they were handed over); the future is true when
    /// that call succeeded.
    pub fn deliver(
        &self,
        gw: u64,
        conversation: &str,
        pushes: Vec<Push>,
    ) -> impl Future<Output = bool> + Send + 'static {
        let lane = ConversationId::partition(conversation, DELIVER_LANES);
        let batcher = {
            let mut map = self.deliver.lock().unwrap_or_else(|p| p.into_inner());
            map.entry((gw, lane))
                .or_insert_with(|| {
                    let s = self.shared.clone();
                    Arc::new(Batcher::spawn("gateway.deliver_to", MAX_DELIVER, move |items| {
                        deliver_batch(s.clone(), gw, items)
                    }))
                })
                .clone()
        };
        let rx = batcher.submit(pushes);
        async move {
            match rx {
                Some(rx) => rx.await.unwrap_or(false),
                None => false,
            }
        }
    }
}

async fn enqueue_batch<B: Backend>(
    shared: Weak<B>,
    timeout: Duration,
    msgs: Vec<QueuedMessage>,
) -> Vec<EnqueueOutcome> {
    let n = msgs.len();
    let Some(shared) = shared.upgrade() else {
        return vec![Err(EnqueueFailure::Unavailable("gateway stopping".into())); n];
    };
    ENQUEUE_BATCH.observe(n as f64);
    let once = |msgs: &[QueuedMessage]| {
        let shared = shared.clone();
        let msgs = msgs.to_vec();
        async move {
            let _timer = ENQUEUE_SECONDS.start_timer();
            match tokio::time::timeout(timeout, shared.queue().enqueue(&msgs)).await {
                Ok(r) => r.map_err(failure),
                Err(_) => Err(EnqueueFailure::Unavailable("timed out".into())),
            }
        }
    };
    match once(&msgs).await {
        Ok(()) => vec![Ok(()); n],
        // One invalid message fails the whole call: find it, let the rest go.
        Err(EnqueueFailure::Invalid(_)) if n > 1 => {
            let mut out = Vec::with_capacity(n);
            for m in msgs.chunks(1) {
                out.push(once(m).await);
            }
            out
        }
        Err(e) => vec![Err(e); n],
    }
}

async fn lookup_batch<B: Backend>(shared: Weak<B>, timeout: Duration, items: Vec<Vec<u64>>) -> Vec<Sessions> {
    let n = items.len();
    let Some(shared) = shared.upgrade() else {
        return vec![None; n];
    };
    let mut seen = HashSet::new();
    let all: Vec<u64> = items
        .iter()
        .flatten()
        .copied()
        .filter(|u| seen.insert(*u))
        .collect();
    LOOKUP_BATCH.observe(n as f64);
    let timer = LOOKUP_SECONDS.start_timer();
    let found = tokio::time::timeout(timeout, shared.router().lookup(&all)).await;
    timer.observe_duration();
    match found {
        Ok(Ok(found)) => items
            .iter()
            .map(|uids| {
                Some(
                    uids.iter()
                        .filter_map(|u| found.get(u))
                        .flatten()
                        .cloned()
                        .collect(),
                )
            })
            .collect(),
        Ok(Err(error)) => {
            tracing::warn!(%error, uids = all.len(), "lookup failed; recipients will sync");
            vec![None; n]
        }
        Err(_) => {
            tracing::warn!(uids = all.len(), "lookup timed out; recipients will sync");
            vec![None; n]
        }
    }
}

async fn deliver_batch<B: Backend>(shared: Weak<B>, gw: u64, items: Vec<Vec<Push>>) -> Vec<bool> {
    let n = items.len();
    let Some(shared) = shared.upgrade() else {
        return vec![false; n];
    };
    DELIVER_BATCH.observe(n as f64);
    let pushes: Vec<Push> = items.into_iter().flatten().collect();
    let timer = DELIVER_SECONDS.start_timer();
    let ok = shared.to_gateway(gw, pushes).await;
    timer.observe_duration();
    vec![ok; n]
}
