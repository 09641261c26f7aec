//! A 1:1 message: validate, assign the id, enqueue and wait for the
//! queue's confirm while the two users' sessions are looked up, deliver
//! (recipient and the sender's other devices), then ack. The enqueue, the lookup and the
//! calls to other gateways are coalesced with concurrent sends
//! ([`crate::batch`]).
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
use confab_proto::persist::{self as db, get_user_request};
use confab_queue::{ConversationId, QueuedMessage};
use tokio::sync::oneshot;

use super::{Conn, persist};
use crate::deliver;
use crate::error::{Error, Result};
use crate::metrics;
use crate::state::Shared;
use confab_common::ids::now_ms;

const MAX_CLIENT_MSG_ID: usize = 64;

/// What every message (1:1 or group) must be: a body, not over the
/// configured limit, and a client id of bounded length.
pub fn check_message(shared: &Shared, body: &str, client_msg_id: &str) -> Result<()> {
    if body.is_empty() {
        return Err(Error::Invalid("empty message body".into()));
    }
    let max = shared.config.limits.max_body_bytes;
    if body.len() > max {
        return Err(Error::Invalid(format!(
            "message body of {} bytes is over the limit of {max}",
            body.len()
        )));
    }
    if client_msg_id.len() > MAX_CLIENT_MSG_ID {
        return Err(Error::Invalid(format!(
            "client_msg_id longer than {MAX_CLIENT_MSG_ID} bytes"
        )));
    }
    Ok(())
}

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

/// The ordered part of a send: checks, resolves the recipient, assigns the
/// id and hands the message to the enqueue batch (whose order is the order
/// of the conversation). The returned future waits for the confirm,
/// delivers and answers.
pub async fn begin(conn: &Conn, r: pb::SendRequest, order: &mut SendOrder) -> Result<Finish> {
    let started = Instant::now();
    let me = conn.logged_in()?;
    let (uid, session_id) = (me.uid, me.session_id);
    let shared = conn.shared.clone();
    check_message(&shared, &r.body, &r.client_msg_id)?;
    let to = resolve(&shared, r.to_user, &r.to_name).await?;
    let message_id = shared.ids.next();
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
    };
    let queued = QueuedMessage {
        message_id,
        conversation_id: message.conversation_id.clone(),
        sender: uid,
        body: message.body.clone(),
        client_msg_id: message.client_msg_id.clone(),
        server_time_ms,
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

/// The recipient's id, checked to exist (cached).
async fn resolve(shared: &Shared, to_user: u64, to_name: &str) -> Result<u64> {
    let key = if to_user != 0 {
        if shared.users.has_id(to_user) {
            return Ok(to_user);
        }
        get_user_request::Key::Id(to_user)
    } else if !to_name.is_empty() {
        if let Some(id) = shared.users.id_of(to_name) {
            return Ok(id);
        }
        get_user_request::Key::Name(to_name.to_owned())
    } else {
        return Err(Error::Invalid(
            "a recipient (to_user or to_name) is required".into(),
        ));
    };
    let shown = if to_user != 0 {
        to_user.to_string()
    } else {
        to_name.to_owned()
    };
    let user = get_user(shared, key, shown).await?;
    Ok(user.id)
}

pub async fn get_user(shared: &Shared, key: get_user_request::Key, shown: String) -> Result<db::User> {
    let request = db::GetUserRequest { key: Some(key) };
    let user = persist(
        shared,
        |mut d| async move { d.get_user(request).await },
        |s| Error::from_persist(s, || Error::UserNotFound(shown)),
    )
    .await?;
    shared.users.remember(user.id, &user.name);
    Ok(user)
}
