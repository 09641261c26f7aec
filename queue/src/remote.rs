//! A producer that enqueues through a persist process's gRPC
//! `QueueService` (how gateways reach the embedded queue).

use confab_net::{Channel, ChannelConfig};
use confab_proto::persist::EnqueueRequest;
use confab_proto::persist::queue_service_client::QueueServiceClient;

use crate::envelope::QueuedMessage;
use crate::error::QueueError;
use crate::producer::Producer;

/// Cheap to clone; one HTTP/2 connection, reconnected by tonic as needed.
#[derive(Clone)]
pub struct RemoteProducer {
    client: QueueServiceClient<Channel>,
}

impl RemoteProducer {
    /// `addr`: a persist process's gRPC address, e.g. `127.0.0.1:7301`.
    /// Connects lazily.
    pub fn new(addr: &str, config: &ChannelConfig) -> Result<Self, QueueError> {
        let channel = confab_net::channel(addr, config).map_err(|e| QueueError::Invalid(e.to_string()))?;
        Ok(Self {
            client: QueueServiceClient::new(channel),
        })
    }
}

impl Producer for RemoteProducer {
    async fn enqueue(&self, msgs: &[QueuedMessage]) -> Result<(), QueueError> {
        let mut client = self.client.clone();
        client
            .enqueue(confab_net::trace::request(EnqueueRequest {
                messages: msgs.to_vec(),
            }))
            .await
            .map_err(|s| match s.code() {
                tonic::Code::InvalidArgument => QueueError::Invalid(s.message().to_owned()),
                _ => QueueError::Remote(s.to_string()),
            })?;
        Ok(())
    }
}
