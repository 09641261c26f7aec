//! The "conversation moved" announcements: every writer commit becomes one
//! [`MovedBatch`], broadcast to the gRPC `Subscribe` streams of gateways.

use std::sync::Arc;

use confab_proto::persist::{ConversationMoved, MovedBatch};
use tokio::sync::broadcast;

use crate::db::WrittenMessage;

/// Fan-out of commits to subscribers; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<MovedBatch>>,
}

impl Hub {
    /// `capacity`: commits a slow subscriber may lag behind before it is
    /// told it lagged.
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }

    pub fn publish(&self, written: &[WrittenMessage]) {
        if written.is_empty() || self.tx.receiver_count() == 0 {
            return;
        }
        let moved = written
            .iter()
            .map(|w| ConversationMoved {
                conversation_id: w.conversation_id.clone(),
                seq: w.seq,
                message_id: w.message_id,
                sender: w.sender,
            })
            .collect();
        let _ = self.tx.send(Arc::new(MovedBatch { moved, lagged: false }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<MovedBatch>> {
        self.tx.subscribe()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(1024)
    }
}
