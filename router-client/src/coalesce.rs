//! Per-node request coalescing: the operations callers start concurrently
//! towards the same router node travel together in one `Batch` RPC.
//!
//! A node's coalescer keeps at most `in_flight` batch RPCs outstanding. An
//! operation that arrives while one is free goes at once (alone, at low load:
//! no added latency, no timer); one that arrives while all are busy waits for
//! the next free one, which then carries everything waiting. Under load one
//! HTTP/2 request thus carries hundreds of operations, and the node proposes
//! the writes of one shard as one log entry. Each operation keeps its own
//! result, its own error and its own retry policy (the caller's driver).

use std::sync::Arc;

use confab_proto::router::{BatchItem, BatchRequest, BatchResult};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::Status;

use confab_net::Channel;
use confab_proto::router::router_data_client::RouterDataClient;

/// The data-plane stub of one node.
type Stub = RouterDataClient<Channel>;

type Reply = Result<BatchResult, Status>;

struct Pending {
    item: BatchItem,
    reply: oneshot::Sender<Reply>,
}

/// The coalescer of one node address. Dropping it (with the pool) ends its
/// task once the batches in flight are answered.
#[derive(Debug)]
pub(crate) struct Coalescer {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Coalescer {
    /// Starts the coalescer's task on the current tokio runtime.
    pub(crate) fn spawn(stub: Stub, in_flight: usize, max_items: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(stub, rx, in_flight.max(1), max_items.max(1)));
        Coalescer { tx }
    }

    /// Sends `item` with the next batch and waits for its result. An
    /// `Err` is the transport's or the batch's status; an item's own failure
    /// is a `BatchResult` holding an `ItemError`.
    pub(crate) async fn call(&self, item: BatchItem) -> Reply {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { item, reply })
            .map_err(|_| Status::unavailable("router client is shutting down"))?;
        rx.await
            .map_err(|_| Status::unavailable("router batch ended without an answer"))?
    }
}

async fn run(stub: Stub, mut rx: mpsc::UnboundedReceiver<Pending>, in_flight: usize, max_items: usize) {
    let permits = Arc::new(Semaphore::new(in_flight));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < max_items {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // A caller that gave up (its attempt timed out) is not sent for.
        batch.retain(|p| !p.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let mut stub = stub.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (items, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.item, p.reply)).unzip();
            let sent = items.len();
            match stub.batch(BatchRequest { items }).await {
                Ok(response) => {
                    let results = response.into_inner().results;
                    if results.len() == sent {
                        for (result, reply) in results.into_iter().zip(replies) {
                            let _ = reply.send(Ok(result));
                        }
                    } else {
                        let status = Status::internal(format!(
                            "a batch of {sent} items was answered with {} results",
                            results.len()
                        ));
                        for reply in replies {
                            let _ = reply.send(Err(status.clone()));
                        }
                    }
                }
                Err(status) => {
                    for reply in replies {
                        let _ = reply.send(Err(status.clone()));
                    }
                }
            }
        });
    }
}

/// The status an item's own failure stands for (what the unary call would
/// have returned), so the usual classification applies to it.
pub(crate) fn item_status(error: confab_proto::router::ItemError) -> Status {
    Status::with_details(
        tonic::Code::from_i32(error.code),
        error.message,
        error.details.into(),
    )
}
