//! The receiving side of the queue, and what it hands out.

use std::future::Future;
use std::time::Duration;

use crate::envelope::Encoding;
use crate::error::QueueError;

/// One queue entry taken from a queue and not yet acknowledged.
#[derive(Debug)]
pub struct Delivery<T> {
    pub payload: Vec<u8>,
    pub encoding: Encoding,
    pub partition: u32,
    pub token: T,
}

/// The receiving side of the queue, for one writer task.
pub trait Consumer: Send {
    type Token: Send + 'static;

    /// Waits for at least one delivery, then takes what else arrives within
    /// `linger`, up to `max` in all.
    fn next_batch(
        &mut self,
        max: usize,
        linger: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery<Self::Token>>, QueueError>> + Send;

    /// Acknowledges deliveries (their messages are committed).
    fn ack(&mut self, tokens: Vec<Self::Token>) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Moves a poison delivery to the dead-letter queue.
    fn dead_letter(
        &mut self,
        delivery: Delivery<Self::Token>,
        reason: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Sets aside part of a delivery: `part` (an encoded [`QueuedBatch`] of
    /// the messages refused) goes to the dead-letter queue with `reason`,
    /// then the delivery is acknowledged (the caller committed the rest).
    /// Never acknowledges before the part is durable among the dead letters.
    ///
    /// [`QueuedBatch`]: crate::QueuedBatch
    fn dead_letter_part(
        &mut self,
        delivery: Delivery<Self::Token>,
        part: Vec<u8>,
        reason: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// A short name for logs and metrics.
    fn backend(&self) -> &'static str;
}
