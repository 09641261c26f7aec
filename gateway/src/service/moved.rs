//! Following persist's commits (`QueueService.Subscribe` of every persist
//! process): each committed message becomes a ConversationMoved push to the
//! participants connected here, so a client that synced just before the
//! write still learns about it. A lagged stream (events dropped) or a
//! reconnect asks every client here to sync again. Whether a stream is up
//! also decides which persist process answers data access
//! ([`crate::state::persists`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confab_net::{Backoff, ChannelConfig};
use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};
use confab_proto::persist::SubscribeRequest;
use confab_proto::persist::queue_service_client::QueueServiceClient;
use confab_queue::ConversationId;
use futures::StreamExt;

use crate::service::social;
use crate::state::Shared;
use crate::wire::frame;

/// How long to wait before subscribing again after the stream failed or
/// could not be opened.
const RESUBSCRIBE: Backoff = Backoff::exponential(Duration::from_millis(500), Duration::from_millis(500));

/// Follows the commits of persist process `i` (of the configured ones), at
/// `addr`.
pub async fn follow(shared: Arc<Shared>, i: usize, addr: String) {
    let channel = match confab_net::channel(
        &addr,
        &ChannelConfig::default().with_tls(shared.cluster_tls.clone()),
    ) {
        Ok(channel) => channel,
        Err(error) => {
            tracing::error!(%error, "not following persist's commits");
            return;
        }
    };
    let mut first = true;
    let mut delays = RESUBSCRIBE.delays();
    loop {
        let stream = async {
            QueueServiceClient::new(channel.clone())
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
                shared.data.set_up(i, true);
                delays = RESUBSCRIBE.delays();
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
                shared.data.set_up(i, false);
            }
            Err(error) => {
                shared.data.set_up(i, false);
                tracing::debug!(%error, persist = %addr, "cannot subscribe to commits");
            }
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(delays.next().unwrap_or(Duration::from_millis(500))) => {}
        }
    }
}

fn announce(shared: &Arc<Shared>, m: confab_proto::persist::ConversationMoved) {
    match m.conversation_id.parse::<ConversationId>() {
        Ok(ConversationId::Group(g)) => announce_group(shared, g, m.sender, moved_frame(m)),
        Ok(ConversationId::Direct { lo, hi }) => {
            let bytes = moved_frame(m);
            let uids: &[u64] = if lo == hi { &[lo] } else { &[lo, hi] };
            for uid in uids {
                for (_, h) in shared.registry.of_user(*uid) {
                    h.push(bytes.clone());
                }
            }
        }
        Err(_) => {}
    }
}

fn moved_frame(m: confab_proto::persist::ConversationMoved) -> Bytes {
    frame::push(Body::Moved(pb::ConversationMoved {
        conversation_id: m.conversation_id,
        seq: m.seq,
        message_id: m.message_id,
        sender: m.sender,
    }))
}

/// A group message was committed: tell the members connected here. The
/// member list comes from the cache, or is read for the sender in the
/// background.
fn announce_group(shared: &Arc<Shared>, gid: u64, sender: u64, bytes: Bytes) {
    if let Some(g) = shared.social.cached_group(gid, social::ttl(shared)) {
        for h in shared.registry.of_users(&g.uids()) {
            h.push(bytes.clone());
        }
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        match social::group(&shared, gid, sender).await {
            Ok(g) => {
                for h in shared.registry.of_users(&g.uids()) {
                    h.push(bytes.clone());
                }
            }
            Err(error) => tracing::debug!(%error, gid, "members of a moved group not readable"),
        }
    });
}

fn resync_all(shared: &Shared) {
    let bytes = frame::push(Body::Resync(pb::ResyncNeeded {}));
    for (_, h) in shared.registry.all() {
        h.push(bytes.clone());
    }
}
