//! The gRPC `QueueService`: `Enqueue` (durable before it answers) and
//! `Subscribe` (a stream of commits for a gateway).

use std::pin::Pin;

use confab_common::trace;
use confab_proto::persist as pb;
use confab_proto::persist::queue_service_server::QueueService;
use confab_queue::{Producer, QueueError};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::PersistService;
use crate::error::Error;

/// Most messages in one `Enqueue` call.
pub const MAX_ENQUEUE: usize = 5000;

type MovedStream = Pin<Box<dyn Stream<Item = Result<pb::MovedBatch, Status>> + Send>>;

/// Keeps the subscriber gauge right however the stream ends.
struct SubscriberGuard(prometheus::IntGauge);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[tonic::async_trait]
impl QueueService for PersistService {
    async fn enqueue(&self, r: Request<pb::EnqueueRequest>) -> Result<Response<pb::EnqueueReply>, Status> {
        let span = trace::continued(
            confab_net::trace::parent(&r),
            || tracing::info_span!(target: trace::TARGET, "persist.enqueue", trace_id = tracing::field::Empty),
        );
        let msgs = r.into_inner().messages;
        let out = async {
            if msgs.len() > MAX_ENQUEUE {
                return Err(Error::Queue(QueueError::Invalid(format!(
                    "at most {MAX_ENQUEUE} messages per call"
                ))));
            }
            self.producer.enqueue(&msgs).await?;
            self.metrics.enqueued.inc_by(msgs.len() as u64);
            Ok(pb::EnqueueReply {
                accepted: msgs.len() as u32,
            })
        }
        .instrument(span)
        .await;
        self.reply("enqueue", out)
    }

    type SubscribeStream = MovedStream;

    async fn subscribe(&self, _r: Request<pb::SubscribeRequest>) -> Result<Response<MovedStream>, Status> {
        let rx = self.hub.subscribe();
        self.metrics.subscribers.inc();
        let guard = SubscriberGuard(self.metrics.subscribers.clone());
        let shutdown = self.shutdown.clone();
        let stream = futures::stream::unfold((rx, guard, shutdown), |(mut rx, guard, shutdown)| async move {
            let item = tokio::select! {
                _ = shutdown.cancelled() => return None,
                item = rx.recv() => item,
            };
            let batch = match item {
                Ok(b) => (*b).clone(),
                Err(RecvError::Lagged(_)) => pb::MovedBatch {
                    moved: vec![],
                    lagged: true,
                },
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(batch), (rx, guard, shutdown)))
        });
        self.metrics
            .grpc_requests
            .with_label_values(&["subscribe", "Ok"])
            .inc();
        Ok(Response::new(Box::pin(stream)))
    }
}
