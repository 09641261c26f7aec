//! The producer chosen by configuration, over every backend.

use crate::amqp::AmqpProducer;
use crate::embedded::EmbeddedQueue;
use crate::envelope::QueuedMessage;
use crate::error::QueueError;
use crate::producer::Producer;
use crate::remote::RemoteProducer;

/// The producer a persist process (or a gateway) is configured with.
pub enum AnyProducer {
    Embedded(EmbeddedQueue),
    Amqp(Box<AmqpProducer>),
    Remote(RemoteProducer),
}

impl Producer for AnyProducer {
    async fn enqueue(&self, msgs: &[QueuedMessage]) -> Result<(), QueueError> {
        match self {
            AnyProducer::Embedded(q) => q.enqueue(msgs).await,
            AnyProducer::Amqp(p) => p.enqueue(msgs).await,
            AnyProducer::Remote(p) => p.enqueue(msgs).await,
        }
    }
}
