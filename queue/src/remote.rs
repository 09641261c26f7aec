//! A producer that enqueues through a persist process's gRPC
//! `QueueService` (how gateways reach the embedded queue).

use confab_proto::persist::EnqueueRequest;
use confab_proto::persist::queue_service_client::QueueServiceClient;
use tonic::transport::Channel;

use crate::envelope::QueuedMessage;
use crate::error::QueueError;
use crate::producer::Producer;

/// Cheap to clone; one HTTP/2 connection, reconnected by tonic as needed.
#[derive(Clone)]
pub struct RemoteProducer {
    client: QueueServiceClient<Channel>,
}

impl RemoteProducer {
    /// `endpoint`: e.g. `http://127.0.0.1:7301`. Connects lazily.
    pub fn new(endpoint: &str) -> Result<Self, QueueError> {
        let channel = Channel::from_shared(endpoint.to_owned())
            .map_err(|e| QueueError::Invalid(format!("bad endpoint {endpoint:?}: {e}")))?
            .connect_lazy();
        Ok(Self {
            client: QueueServiceClient::new(channel),
        })
    }
}

impl Producer for RemoteProducer {
    async fn enqueue(&self, msgs: &[QueuedMessage]) -> Result<(), QueueError> {
        let mut client = self.client.clone();
        client
            .enqueue(EnqueueRequest {
                messages: msgs.to_vec(),
            })
            .await
            .map_err(|s| match s.code() {
                tonic::Code::InvalidArgument => QueueError::Invalid(s.message().to_owned()),
                _ => QueueError::Remote(s.to_string()),
            })?;
        Ok(())
    }
}
