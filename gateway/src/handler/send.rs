//! A 1:1 message: who may message whom, validate, assign the id, enqueue
//! and wait for the queue's confirm while the two users' sessions are
//! looked up, deliver (recipient and the sender's other devices), then ack.
//! The enqueue, the lookup and the calls to other gateways are coalesced
//! with concurrent sends ([`crate::state::coalesce`]).
//!
//! A send runs in two parts so a connection may have many in flight while
//! its messages keep their order: [`begin`] (checks, id, the enqueue handed
//! to its batch) runs in the connection's order; [`Finish`] (the confirm,
//! the lookup, the deliveries) runs concurrently with the connection's
//! other requests.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};
use confab_queue::{ConversationId, QueuedMessage};
use tokio::sync::oneshot;

use super::conn::Conn;
use super::message::{
    check_message, check_resend, find_sent, may_message, prev_message, resolve, settle_resend, stored_ack,
    take_message_token,
};
use crate::error::Result;
use crate::metrics;
use crate::service::deliver;
use confab_common::ids::now_ms;

/// The rest of a send once its enqueue is handed over: its ack.
pub type Finish = Pin<Box<dyn Future<Output = Result<Body>> + Send + 'static>>;

/// A whole send (both parts, one after the other).
pub async fn send(conn: &mut Conn, r: pb::SendRequest) -> Result<Body> {
    begin(conn, r, &mut SendOrder::default()).await?.await
}

/// Keeps the pushes of one connection's sends in the order of the sends:
/// each send hands its pushes over only after the one before it did.
#[derive(Default)]
pub struct SendOrder(Option<oneshot::Receiver<()>>);

impl SendOrder {
    /// The previous send's turn to wait for, and this send's turn (dropped
    /// once its pushes are handed over, or when it fails).
    fn next(&mut self) -> (Option<oneshot::Receiver<()>>, oneshot::Sender<()>) {
        let (tx, rx) = oneshot::channel();
        (self.0.replace(rx), tx)
    }
}

/// The ordered part of a send: checks (who may message whom first),
/// resolves the recipient, assigns the
/// id and hands the message to the enqueue batch (whose order is the order
/// of the conversation). The returned future waits for the confirm,
/// delivers and answers.
pub async fn begin(conn: &Conn, r: pb::SendRequest, order: &mut SendOrder) -> Result<Finish> {
    take_message_token(&conn.shared, conn.logged_in()?.uid)?;
    check_may_message(conn, &r).await?;
    let started = Instant::now();
    let me = conn.logged_in()?;
    let (uid, session_id) = (me.uid, me.session_id);
    let shared = conn.shared.clone();
    check_message(&shared.config.limits, &r.body, &r.client_msg_id)?;
    check_resend(r.resend, &r.client_msg_id)?;
    let to = resolve(&shared, r.to_user, &r.to_name).await?;
    let resend = r.resend;
    if resend && let Some(m) = find_sent(&shared, uid, &r.client_msg_id, 0).await? {
        // The first attempt is stored: its ack, nothing new.
        metrics::RESENDS.with_label_values(&["stored"]).inc();
        return Ok(Box::pin(async move { Ok(Body::SendAck(stored_ack(m, to))) }));
    }
    let message_id = shared.ids.next()?;
    let conversation_id = ConversationId::direct(uid, to).to_string();
    let server_time_ms = now_ms() as i64;
    let message = pb::Message {
        message_id,
        conversation_id,
        seq: 0,
        sender: uid,
        body: r.body,
        client_msg_id: r.client_msg_id,
        server_time_ms,
        prev_message_id: prev_message(conn, r.prev_message_id),
        ..Default::default()
    };
    let queued = QueuedMessage {
        message_id,
        conversation_id: message.conversation_id.clone(),
        sender: uid,
        body: message.body.clone(),
        client_msg_id: message.client_msg_id.clone(),
        server_time_ms,
        traceparent: confab_common::trace::traceparent().unwrap_or_default(),
    };
    // Batched with the other sends of the moment, in this order; acked
    // only once confirmed.
    let confirmed = shared.coalesce.enqueue(queued);
    let (previous, turn) = order.next();
    Ok(Box::pin(async move {
        // The lookup runs while the queue confirms; nothing is pushed
        // before the confirm. (A session that logs in meanwhile syncs, and
        // the commit notice reaches it anyway.)
        let uids: Vec<u64> = if to == uid { vec![to] } else { vec![to, uid] };
        let handed_over = Instant::now();
        let phase = |name: &str, since: Instant| {
            metrics::SEND_PHASE
                .with_label_values(&[name])
                .observe(since.elapsed().as_secs_f64())
        };
        let (confirmed, online) = tokio::join!(
            async {
                let r = confirmed.await;
                phase("confirm", handed_over);
                r
            },
            async {
                let r = shared.coalesce.lookup(uids).await;
                phase("lookup", handed_over);
                r
            }
        );
        if let Some(previous) = previous {
            // Ok or dropped: either way the previous send is past its pushes.
            let waited = Instant::now();
            let _ = previous.await;
            phase("order", waited);
        }
        confirmed?;
        if resend {
            drop(turn);
            metrics::RESENDS.with_label_values(&["queued"]).inc();
            let ack = settle_resend(&shared, uid, &message.client_msg_id, message_id, to).await?;
            return Ok(Body::SendAck(ack));
        }
        // Durable from here on: delivery failures only delay the recipient
        // (it syncs), they never fail the send.
        let targets: Vec<_> = online
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.session_id != session_id)
            .collect();
        let delivering = Instant::now();
        let handed = deliver::message(&shared, &targets, &message);
        drop(turn);
        handed.await;
        phase("deliver", delivering);
        metrics::SEND_LATENCY.observe(started.elapsed().as_secs_f64());
        Ok(Body::SendAck(pb::SendAck {
            message_id,
            conversation_id: message.conversation_id,
            server_time_ms,
            client_msg_id: message.client_msg_id,
            to_user: to,
        }))
    }))
}

/// 1:1 messages need friendship unless `allow_strangers` (a message to
/// oneself is always fine). The recipient is resolved here as the send
/// itself resolves it (cached), so an unknown user is USER_NOT_FOUND.
async fn check_may_message(conn: &Conn, r: &pb::SendRequest) -> Result<()> {
    let me = conn.logged_in()?.uid;
    let shared = &conn.shared;
    if shared.config.allow_strangers {
        return Ok(());
    }
    if r.to_user == 0 && r.to_name.is_empty() {
        // Let the send handler explain what is missing.
        return Ok(());
    }
    let to = resolve(shared, r.to_user, &r.to_name).await?;
    may_message(shared, me, to).await
}
