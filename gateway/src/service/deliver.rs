//! Getting messages and kicks to sessions: to the ones connected here
//! through their queues, to those on other gateways with one `Deliver` call
//! per gateway (messages of concurrent sends to the same gateway share one
//! call, see [`crate::state::coalesce`]); and the message and kick pushes
//! another gateway's `Deliver` brings ([`local_pushes`]).

use std::collections::BTreeMap;
use std::future::Future;

use confab_proto::client::{self as pb, KickReason};
use confab_proto::gateway::{Kick, Push, push};
use confab_router_client::Session;
use futures::future::join_all;

use crate::metrics;
use crate::state::Shared;
use crate::wire::frame;

/// Pushes `message` to `sessions`, wherever they are: those here at once,
/// the others handed to their gateway's next `Deliver` call before this
/// returns (so pushes handed over one after another keep their order); the
/// future ends when those calls did.
pub fn message(
    shared: &Shared,
    sessions: &[Session],
    message: &pb::Message,
) -> impl Future<Output = ()> + Send + 'static {
    let mut by_gateway = by_gateway(sessions);
    let me = shared.gateway_id();
    if let Some(local) = by_gateway.remove(&me) {
        let push = Push {
            session_ids: local,
            body: Some(push::Body::Message(message.clone())),
        };
        local_pushes(shared, vec![push]);
    }
    let calls: Vec<_> = by_gateway
        .into_iter()
        .map(|(gw, session_ids)| {
            let push = Push {
                session_ids,
                body: Some(push::Body::Message(message.clone())),
            };
            shared.coalesce.deliver(gw, &message.conversation_id, vec![push])
        })
        .collect();
    async move {
        join_all(calls).await;
    }
}

/// Sends `body` to `sessions` wherever they are: the ones here through
/// `here` (given their ids), every other hosting gateway with one
/// `Deliver` call carrying all of its sessions; returns when those calls
/// ended.
pub async fn fan_out<'a>(
    shared: &Shared,
    sessions: impl IntoIterator<Item = &'a Session>,
    body: push::Body,
    here: impl FnOnce(&[u64]),
) {
    let mut by_gateway = by_gateway(sessions);
    if let Some(local) = by_gateway.remove(&shared.gateway_id()) {
        here(&local);
    }
    let calls = by_gateway.into_iter().map(|(gw, session_ids)| {
        let push = Push {
            session_ids,
            body: Some(body.clone()),
        };
        shared.to_gateway(gw, vec![push])
    });
    join_all(calls).await;
}

/// Session ids by hosting gateway.
fn by_gateway<'a>(sessions: impl IntoIterator<Item = &'a Session>) -> BTreeMap<u64, Vec<u64>> {
    let mut by_gateway: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for s in sessions {
        by_gateway.entry(s.gateway_id).or_default().push(s.session_id);
    }
    by_gateway
}

/// Delivers pushes to sessions of this gateway; returns (delivered, missing).
pub fn local_pushes(shared: &Shared, pushes: Vec<Push>) -> (u32, u32) {
    let (mut delivered, mut missing) = (0, 0);
    for p in pushes {
        match p.body {
            Some(push::Body::Message(m)) => {
                let (id, prev) = (m.message_id, m.prev_message_id);
                let bytes = frame::message_push(m);
                for sid in p.session_ids {
                    let ok = shared.registry.get(sid).is_some_and(|h| {
                        h.reads.known(id);
                        // A receiver that has not seen the sender's
                        // previous message reads it next, waiting for it.
                        if prev != 0 {
                            h.reads.known(prev);
                        }
                        h.push(bytes.clone())
                    });
                    let outcome = if ok { "ok" } else { "missing" };
                    metrics::DELIVERIES.with_label_values(&["local", outcome]).inc();
                    if ok {
                        delivered += 1;
                    } else {
                        missing += 1;
                    }
                }
            }
            Some(push::Body::Kick(k)) => {
                let reason = KickReason::try_from(k.reason).unwrap_or(KickReason::Unspecified);
                for sid in p.session_ids {
                    if shared.registry.kick(sid, frame::kicked(reason, &k.by_device_id)) {
                        delivered += 1;
                    } else {
                        missing += 1;
                    }
                }
            }
            // Friend, group and presence pushes go through `notify`.
            _ => {}
        }
    }
    (delivered, missing)
}

/// Tells session `s` it was replaced, then closes it: here, or through
/// the gateway that hosts it (a `Kick` push).
pub async fn kick(shared: &Shared, s: &Session, reason: KickReason, by_device: &str) {
    if s.gateway_id == shared.gateway_id() {
        shared
            .registry
            .kick(s.session_id, frame::kicked(reason, by_device));
        return;
    }
    let push = Push {
        session_ids: vec![s.session_id],
        body: Some(push::Body::Kick(Kick {
            reason: reason as i32,
            by_device_id: by_device.to_owned(),
        })),
    };
    shared.to_gateway(s.gateway_id, vec![push]).await;
}
