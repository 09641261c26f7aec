//! Friend, group, read-receipt, typing and recall pushes to users wherever
//! they are: one batch router lookup for all of them (split per shard by
//! the router client), then the sessions here get the frame from their
//! queues and every other hosting gateway gets one `Deliver` call with all
//! of its sessions.

use bytes::Bytes;
use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};
use confab_proto::gateway::push;
use confab_router_client::Session;

use crate::metrics;
use crate::service::deliver;
use crate::state::Shared;
use crate::wire::frame;

/// A push about friends, groups or a conversation's reads, typing and
/// recalls.
#[derive(Clone, Debug)]
pub enum Notice {
    Friend(pb::FriendEvent),
    Group(pb::GroupEvent),
    Receipt(pb::ReadReceipt),
    Typing(pb::Typing),
    Recalled(pb::Recalled),
}

impl Notice {
    fn frame(&self) -> Bytes {
        match self {
            Notice::Friend(e) => frame::push(Body::FriendEvent(e.clone())),
            Notice::Group(e) => frame::push(Body::GroupEvent(e.clone())),
            Notice::Receipt(r) => frame::push(Body::ReadReceipt(r.clone())),
            Notice::Typing(t) => frame::push(Body::TypingPush(t.clone())),
            Notice::Recalled(r) => frame::push(Body::Recalled(r.clone())),
        }
    }

    fn body(&self) -> push::Body {
        match self {
            Notice::Friend(e) => push::Body::FriendEvent(e.clone()),
            Notice::Group(e) => push::Body::GroupEvent(e.clone()),
            Notice::Receipt(r) => push::Body::ReadReceipt(r.clone()),
            Notice::Typing(t) => push::Body::Typing(t.clone()),
            Notice::Recalled(r) => push::Body::Recalled(r.clone()),
        }
    }
}

/// Pushes `notice` to every session of `uids` but `skip_session` (the
/// session that caused it). Best effort: the state is in persist, a client
/// that misses the push sees it when it lists.
pub async fn users(shared: &Shared, uids: &[u64], notice: Notice, skip_session: u64) {
    if uids.is_empty() {
        return;
    }
    let online = match tokio::time::timeout(shared.rpc_timeout(), shared.router.lookup(uids)).await {
        Ok(Ok(online)) => online,
        Ok(Err(error)) => {
            tracing::warn!(%error, "lookup for a push failed; the users will see it when they list");
            return;
        }
        Err(_) => {
            tracing::warn!("lookup for a push timed out");
            return;
        }
    };
    let sessions: Vec<Session> = online
        .into_values()
        .flatten()
        .filter(|s| s.session_id != skip_session)
        .collect();
    sessions_of(shared, &sessions, &notice).await;
}

/// Pushes `notice` to every session of `uids` but those of `skip_user`
/// (the user who caused it: typing goes to no device of the typist).
pub async fn users_but(shared: &Shared, uids: &[u64], notice: Notice, skip_user: u64) {
    let others: Vec<u64> = uids.iter().copied().filter(|u| *u != skip_user).collect();
    users(shared, &others, notice, 0).await;
}

/// Pushes `notice` to `sessions`, wherever they are.
pub async fn sessions_of(shared: &Shared, sessions: &[Session], notice: &Notice) {
    deliver::fan_out(shared, sessions, notice.body(), |here| {
        local(shared, here, &notice.frame());
    })
    .await;
}

/// Queues `frame` on the sessions here; returns (delivered, missing).
pub fn local(shared: &Shared, session_ids: &[u64], frame: &Bytes) -> (u32, u32) {
    let (mut delivered, mut missing) = (0, 0);
    for sid in session_ids {
        if shared.registry.get(*sid).is_some_and(|h| h.push(frame.clone())) {
            delivered += 1;
        } else {
            missing += 1;
        }
    }
    metrics::SOCIAL_PUSHES
        .with_label_values(&["ok"])
        .inc_by(u64::from(delivered));
    metrics::SOCIAL_PUSHES
        .with_label_values(&["missing"])
        .inc_by(u64::from(missing));
    (delivered, missing)
}

/// Pushes `frame` to every session here of the users `uids`.
pub fn local_users(shared: &Shared, uids: &[u64], frame: &Bytes) {
    for uid in uids {
        for (_, h) in shared.registry.of_user(*uid) {
            h.push(frame.clone());
        }
    }
}
