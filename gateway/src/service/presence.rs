//! Friends' presence.
//!
//! - On a login, logout or disconnect here, [`announce`] reads the user's
//!   friends (cached, [`crate::service::social`]), looks the user and its
//!   friends up in one batch, and sends the user's sessions to every online
//!   friend's session: here from their queues, elsewhere with one `Deliver`
//!   per hosting gateway (a `Presence` push).
//! - For the users logged in here, the tracker
//!   ([`crate::state::presence::PresenceTracker`]) remembers where each of
//!   their friends is online (from the login's lookup, from later
//!   `Presence` pushes, and re-read when their friend lists change,
//!   [`refresh_local`]).
//! - [`watch`] reads the live gateway list from the routers every
//!   `social.gateway_poll_ms`. When a gateway leaves it (killed: its lease
//!   expired and its sessions were purged) or comes back as a new
//!   incarnation, the friends whose sessions were there lose them, and the
//!   users here who watch them get a `PresenceChanged` push: offline once no
//!   device is left.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};
use confab_proto::gateway::{Presence, SessionRef, push};
use confab_router_client::Session;

use crate::error::Result;
use crate::metrics;
use crate::service::{deliver, notify, social};
use crate::state::Shared;
use crate::wire::frame;

pub fn session_ref(s: &Session) -> SessionRef {
    SessionRef {
        session_id: s.session_id,
        gateway_id: s.gateway_id,
        gateway_incarnation: s.gateway_incarnation,
        device_kind: s.device_kind,
        device_id: s.device_id.clone(),
        login_at_ms: s.login_at_ms,
    }
}

pub fn device(s: &SessionRef) -> pb::Device {
    pb::Device {
        device_id: s.device_id.clone(),
        device_kind: s.device_kind,
        login_at_ms: s.login_at_ms,
    }
}

/// The client push for `uid` having `sessions`.
pub fn presence_frame(uid: u64, sessions: &[SessionRef]) -> Bytes {
    frame::push(Body::Presence(pb::PresenceChanged {
        user_id: uid,
        online: !sessions.is_empty(),
        devices: sessions.iter().map(device).collect(),
    }))
}

/// A `Presence` push for sessions here: remember it, pass it on.
pub fn receive(shared: &Shared, session_ids: &[u64], p: &Presence) -> (u32, u32) {
    shared.presence.update(p.user_id, &p.sessions);
    notify::local(shared, session_ids, &presence_frame(p.user_id, &p.sessions))
}

/// `uid` logged in (`login`) or out here: tell its online friends, and on a
/// login remember where they are. Errors are logged: presence is best effort.
pub async fn announce(shared: Arc<Shared>, uid: u64, login: bool) {
    if let Err(error) = try_announce(&shared, uid, login).await {
        tracing::warn!(%error, uid, login, "presence announcement failed");
    }
}

async fn try_announce(shared: &Shared, uid: u64, login: bool) -> Result<()> {
    let friends = social::friends(shared, uid).await?;
    if friends.is_empty() {
        if login && !shared.registry.of_user(uid).is_empty() {
            shared.presence.track(uid, Vec::new());
        }
        return Ok(());
    }
    let mut uids: Vec<u64> = friends.iter().map(|f| f.id).collect();
    uids.push(uid);
    let online = tokio::time::timeout(shared.rpc_timeout(), shared.router.lookup(&uids))
        .await
        .map_err(|_| crate::error::Error::Unavailable {
            what: "router",
            detail: "presence lookup timed out".into(),
        })??;
    let refs = |u: u64| -> Vec<SessionRef> {
        online
            .get(&u)
            .map(|s| s.iter().map(session_ref).collect())
            .unwrap_or_default()
    };
    // Still logged in here (a login followed at once by a logout must not
    // leave the user tracked).
    if !shared.registry.of_user(uid).is_empty() {
        shared
            .presence
            .track(uid, friends.iter().map(|f| (f.id, refs(f.id))).collect());
    }
    let targets: Vec<&Session> = friends
        .iter()
        .filter_map(|f| online.get(&f.id))
        .flatten()
        .collect();
    send(shared, uid, &refs(uid), &targets).await;
    metrics::PRESENCE_EVENTS
        .with_label_values(&[if login { "login" } else { "logout" }])
        .inc();
    Ok(())
}

/// Sends `uid`'s `sessions` to `targets`: here directly, elsewhere with one
/// `Deliver` per gateway.
async fn send(shared: &Shared, uid: u64, sessions: &[SessionRef], targets: &[&Session]) {
    let p = Presence {
        user_id: uid,
        sessions: sessions.to_vec(),
    };
    let body = push::Body::Presence(p.clone());
    deliver::fan_out(shared, targets.iter().copied(), body, |here| {
        receive(shared, here, &p);
    })
    .await;
}

/// Friend lists of `uids` changed: re-read where the friends of those of
/// them logged in here are (in the background).
pub fn refresh_local(shared: &Arc<Shared>, uids: &[u64]) {
    for uid in uids {
        if shared.registry.of_user(*uid).is_empty() {
            continue;
        }
        let shared = shared.clone();
        let uid = *uid;
        tokio::spawn(async move {
            if let Err(error) = retrack(&shared, uid).await {
                tracing::warn!(%error, uid, "re-reading friends' presence failed");
            }
        });
    }
}

async fn retrack(shared: &Shared, uid: u64) -> Result<()> {
    let friends = social::friends(shared, uid).await?;
    let uids: Vec<u64> = friends.iter().map(|f| f.id).collect();
    let online = shared.router.lookup(&uids).await?;
    let list = friends
        .iter()
        .map(|f| {
            let s = online
                .get(&f.id)
                .map(|s| s.iter().map(session_ref).collect())
                .unwrap_or_default();
            (f.id, s)
        })
        .collect();
    if !shared.registry.of_user(uid).is_empty() {
        shared.presence.track(uid, list);
    }
    Ok(())
}

/// The live gateways (id -> incarnation) as the routers list them now.
pub async fn live_from_router(shared: &Shared) -> Option<HashMap<u64, u64>> {
    match tokio::time::timeout(shared.rpc_timeout(), shared.router.list_gateways()).await {
        Ok(Ok(list)) => Some(
            list.into_iter()
                .filter(|g| !g.expired)
                .map(|g| (g.gateway_id, g.incarnation))
                .collect(),
        ),
        Ok(Err(error)) => {
            tracing::debug!(%error, "reading the live gateways failed");
            None
        }
        Err(_) => None,
    }
}

/// Follows the live gateway list until shutdown.
pub async fn watch(shared: Arc<Shared>) {
    let every = Duration::from_millis(shared.config.social.gateway_poll_ms);
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
        first = false;
        let Some(live) = live_from_router(&shared).await else {
            continue;
        };
        let (gone, changes) = shared.presence.set_live(live);
        for gw in gone {
            tracing::info!(gateway = gw, "gateway left the live list");
            shared.peers.forget(gw);
        }
        for c in changes {
            let bytes = presence_frame(c.uid, &c.sessions);
            notify::local_users(&shared, &c.watchers, &bytes);
            metrics::PRESENCE_EVENTS
                .with_label_values(&["gateway_gone"])
                .inc();
        }
    }
}
