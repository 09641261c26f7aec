//! Following persist's commits (`QueueService.Subscribe` of every persist
//! process): each committed message becomes a ConversationMoved push to the
//! participants connected here, so a client that synced just before the
//! write still learns about it. A lagged stream (events dropped) or a
//! reconnect asks every client here to sync again.

use std::sync::Arc;
use std::time::Duration;

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};
use confab_proto::persist::SubscribeRequest;
use confab_proto::persist::queue_service_client::QueueServiceClient;
use confab_queue::ConversationId;
use futures::StreamExt;

use crate::frame;
use crate::state::Shared;

pub async fn follow(shared: Arc<Shared>, addr: String) {
    let uri = if addr.contains("://") {
        addr.clone()
    } else {
        format!("http://{addr}")
    };
    let mut first = true;
    loop {
        let stream = async {
            let mut client = QueueServiceClient::connect(uri.clone())
                .await
                .map_err(|e| e.to_string())?;
            client
                .subscribe(SubscribeRequest {})
                .await
                .map(|r| r.into_inner())
                .map_err(|s| s.to_string())
        };
        let stream = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            s = stream => s,
        };
        match stream {
            Ok(mut s) => {
                if !first {
                    resync_all(&shared);
                }
                first = false;
                loop {
                    let next = tokio::select! {
                        _ = shared.shutdown.cancelled() => return,
                        n = s.next() => n,
                    };
                    match next {
                        Some(Ok(batch)) => {
                            if batch.lagged {
                                resync_all(&shared);
                            }
                            for m in batch.moved {
                                announce(&shared, m);
                            }
                        }
                        Some(Err(status)) => {
                            tracing::warn!(%status, persist = %addr, "commit stream failed");
                            break;
                        }
                        None => break,
                    }
                }
            }
            Err(error) => tracing::debug!(%error, persist = %addr, "cannot subscribe to commits"),
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

fn announce(shared: &Arc<Shared>, m: confab_proto::persist::ConversationMoved) {
    let conversation = m.conversation_id.parse::<ConversationId>();
    if let Ok(ConversationId::Group(g)) = conversation {
        crate::social::announce_group_moved(shared, g, m);
        return;
    }
    let Ok(ConversationId::Direct { lo, hi }) = conversation else {
        return;
    };
    let bytes = frame::push(Body::Moved(pb::ConversationMoved {
        conversation_id: m.conversation_id,
        seq: m.seq,
        message_id: m.message_id,
        sender: m.sender,
    }));
    let uids: &[u64] = if lo == hi { &[lo] } else { &[lo, hi] };
    for uid in uids {
        for (_, h) in shared.registry.of_user(*uid) {
            h.push(bytes.clone());
        }
    }
}

fn resync_all(shared: &Shared) {
    let bytes = frame::push(Body::Resync(pb::ResyncNeeded {}));
    for (_, h) in shared.registry.all() {
        h.push(bytes.clone());
    }
}
