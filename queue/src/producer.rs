//! The sending side of the queue.

use std::future::Future;

use crate::envelope::QueuedMessage;
use crate::error::QueueError;

/// The sending side of the queue.
pub trait Producer: Send + Sync {
    /// Enqueues `msgs` in order; Ok only once every one of them is durable.
    /// Messages are validated first: an invalid one fails the whole call.
    fn enqueue(&self, msgs: &[QueuedMessage]) -> impl Future<Output = Result<(), QueueError>> + Send;
}
