//! A message to a group: check membership (cached member list), assign the
//! id, enqueue once for the group's conversation and wait for the confirm
//! while every member is looked up in one batch (split per shard by the
//! router client), deliver with one call per hosting gateway carrying all
//! of its sessions, then ack. Offline members sync it like a 1:1 message.

use std::time::Instant;

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};
use confab_queue::{ConversationId, Producer, QueuedMessage};

use super::conn::Conn;
use super::message::{
    check_group_id, check_message, check_resend, find_sent, prev_message, settle_resend, stored_ack,
    take_message_token,
};
use crate::error::{Error, Result};
use crate::metrics;
use crate::service::calls::timed;
use crate::service::{deliver, social};
use confab_common::ids::now_ms;

pub async fn group_send(conn: &mut Conn, r: pb::GroupSendRequest) -> Result<Body> {
    let started = Instant::now();
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    take_message_token(&shared, me.uid)?;
    check_message(&shared.config.limits, &r.body, &r.client_msg_id)?;
    check_resend(r.resend, &r.client_msg_id)?;
    check_group_id(r.group_id)?;
    // Members only; a group that does not exist answers the same.
    let group = social::group(&shared, r.group_id, me.uid).await?;
    if r.resend
        && let Some(m) = find_sent(&shared, me.uid, &r.client_msg_id, 0).await?
    {
        metrics::RESENDS.with_label_values(&["stored"]).inc();
        return Ok(Body::SendAck(stored_ack(m, 0)));
    }
    let prev = prev_message(conn, r.prev_message_id);
    let message_id = shared.ids.next()?;
    let conversation_id = ConversationId::group(group.id).to_string();
    let server_time_ms = now_ms() as i64;
    let queued = QueuedMessage {
        message_id,
        conversation_id: conversation_id.clone(),
        sender: me.uid,
        body: r.body,
        client_msg_id: r.client_msg_id,
        server_time_ms,
        traceparent: confab_common::trace::traceparent().unwrap_or_default(),
    };
    // The members' sessions are looked up while the enqueue waits for its
    // confirm; nothing is pushed before the message is durable.
    let uids = group.uids();
    let enqueue = timed(&shared, "queue", async {
        shared
            .producer
            .enqueue(std::slice::from_ref(&queued))
            .await
            .map_err(Error::from_queue)
    });
    let lookup = async {
        let r = tokio::time::timeout(shared.rpc_timeout(), shared.router.lookup(&uids)).await;
        (r, started.elapsed())
    };
    let (enqueued, (online, looked_up)) = tokio::join!(enqueue, lookup);
    enqueued?;
    if r.resend {
        metrics::RESENDS.with_label_values(&["queued"]).inc();
        let ack = settle_resend(&shared, me.uid, &queued.client_msg_id, message_id, 0).await?;
        return Ok(Body::SendAck(ack));
    }
    let durable = started.elapsed();
    // Durable from here on: a failed lookup or delivery only delays the
    // members (they sync).
    let message = pb::Message {
        message_id,
        conversation_id: conversation_id.clone(),
        seq: 0,
        sender: me.uid,
        body: queued.body,
        client_msg_id: queued.client_msg_id.clone(),
        server_time_ms,
        prev_message_id: prev,
        ..Default::default()
    };
    match online {
        Ok(Ok(online)) => {
            let targets: Vec<_> = online
                .into_values()
                .flatten()
                .filter(|s| s.session_id != me.session_id)
                .collect();
            metrics::GROUP_FANOUT.inc_by(targets.len() as u64);
            // The other gateways' calls go out first, so that they push to
            // their sessions while this one pushes to its own.
            let here = shared.gateway_id();
            let (local, remote): (Vec<_>, Vec<_>) = targets.into_iter().partition(|s| s.gateway_id == here);
            let remote = deliver::message(&shared, &remote, &message);
            deliver::message(&shared, &local, &message).await;
            remote.await;
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, message_id, group = group.id, "lookup failed; members will sync")
        }
        Err(_) => tracing::warn!(
            message_id,
            group = group.id,
            "lookup timed out; members will sync"
        ),
    }
    tracing::debug!(
        message_id,
        group = group.id,
        members = uids.len(),
        durable_us = durable.as_micros() as u64,
        looked_up_us = looked_up.as_micros() as u64,
        total_us = started.elapsed().as_micros() as u64,
        "group message delivered"
    );
    metrics::GROUP_SEND_LATENCY.observe(started.elapsed().as_secs_f64());
    Ok(Body::SendAck(pb::SendAck {
        message_id,
        conversation_id,
        server_time_ms,
        client_msg_id: queued.client_msg_id,
        to_user: 0,
    }))
}
