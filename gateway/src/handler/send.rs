//! A 1:1 message: validate, assign the id, enqueue and wait for the
//! queue's confirm, look the two users' sessions up, deliver (recipient and
//! the sender's other devices), then ack.

use std::time::Instant;

use confab_persist::conversation::ConversationId;
use confab_persist::queue::{Producer, QueuedMessage};
use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};
use confab_proto::persist::{self as db, get_user_request};

use super::{Conn, timed};
use crate::deliver;
use crate::error::{Error, Result};
use crate::ids::now_ms;
use crate::metrics;
use crate::state::Shared;

const MAX_CLIENT_MSG_ID: usize = 64;

pub async fn send(conn: &mut Conn, r: pb::SendRequest) -> Result<Body> {
    let started = Instant::now();
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    if r.body.is_empty() {
        return Err(Error::Invalid("empty message body".into()));
    }
    let max = shared.config.limits.max_body_bytes;
    if r.body.len() > max {
        return Err(Error::Invalid(format!(
            "message body of {} bytes is over the limit of {max}",
            r.body.len()
        )));
    }
    if r.client_msg_id.len() > MAX_CLIENT_MSG_ID {
        return Err(Error::Invalid(format!(
            "client_msg_id longer than {MAX_CLIENT_MSG_ID} bytes"
        )));
    }
    let to = resolve(&shared, r.to_user, &r.to_name).await?;
    let message_id = shared.ids.next();
    let conversation_id = ConversationId::direct(me.uid, to).to_string();
    let server_time_ms = now_ms() as i64;
    let queued = QueuedMessage {
        message_id,
        conversation_id: conversation_id.clone(),
        sender: me.uid,
        body: r.body,
        client_msg_id: r.client_msg_id,
        server_time_ms,
    };
    timed(&shared, "queue", async {
        shared
            .producer
            .enqueue(std::slice::from_ref(&queued))
            .await
            .map_err(Error::from_queue)
    })
    .await?;
    // Durable from here on: delivery failures only delay the recipient
    // (it syncs), they never fail the send.
    let message = pb::Message {
        message_id,
        conversation_id: conversation_id.clone(),
        seq: 0,
        sender: me.uid,
        body: queued.body,
        client_msg_id: queued.client_msg_id.clone(),
        server_time_ms,
    };
    let uids: Vec<u64> = if to == me.uid { vec![to] } else { vec![to, me.uid] };
    match tokio::time::timeout(shared.rpc_timeout(), shared.router.lookup(&uids)).await {
        Ok(Ok(online)) => {
            let targets: Vec<_> = online
                .into_values()
                .flatten()
                .filter(|s| s.session_id != me.session_id)
                .collect();
            if !targets.is_empty() {
                deliver::message(&shared, &targets, &message).await;
            }
        }
        Ok(Err(error)) => tracing::warn!(%error, message_id, "lookup failed; recipients will sync"),
        Err(_) => tracing::warn!(message_id, "lookup timed out; recipients will sync"),
    }
    metrics::SEND_LATENCY.observe(started.elapsed().as_secs_f64());
    Ok(Body::SendAck(pb::SendAck {
        message_id,
        conversation_id,
        server_time_ms,
        client_msg_id: queued.client_msg_id,
        to_user: to,
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
    let user = timed(shared, "persist", async {
        shared
            .data()
            .get_user(db::GetUserRequest { key: Some(key) })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| Error::from_persist(s, || Error::UserNotFound(shown)))
    })
    .await?;
    shared.users.remember(user.id, &user.name);
    Ok(user)
}
