//! Stale friend and member lists, both ways: after a change made here,
//! drop the entries here and on every other live gateway (an `Invalidate`
//! push each); when another gateway's `Invalidate` arrives, drop them here.
//! Either way the users here whose friend lists changed get their friends'
//! presence read again.

use std::sync::Arc;

use confab_proto::gateway::{Invalidate, Push, push};
use futures::future::join_all;

use crate::service::presence;
use crate::state::Shared;

/// After a change: drops the entries here and tells every other live
/// gateway to drop them too (one `Deliver` each, in parallel). Returns when
/// all answered or failed: a caller that answers its client afterwards
/// leaves no gateway with a stale list (short of a failed call, which the
/// cache age bounds).
pub async fn everywhere(shared: &Arc<Shared>, friends_of: &[u64], groups: &[u64]) {
    shared.social.invalidate(friends_of, groups);
    presence::refresh_local(shared, friends_of);
    elsewhere(shared, friends_of, groups).await;
}

/// Tells every other live gateway to drop these entries (one `Deliver`
/// each, in parallel). The list comes from the routers at the time of the
/// change, not from the last poll: a gateway that registered since then
/// may already cache the entry. Every gateway in the polled list is told
/// too (one the routers could not be asked about is not skipped).
pub async fn elsewhere(shared: &Shared, friends_of: &[u64], groups: &[u64]) {
    let me = shared.gateway_id();
    let mut live = shared.presence.live_gateways();
    if let Some(now) = presence::live_from_router(shared).await {
        live.extend(now.into_keys());
    }
    live.sort_unstable();
    live.dedup();
    let others: Vec<u64> = live.into_iter().filter(|g| *g != me).collect();
    let push = Push {
        session_ids: Vec::new(),
        body: Some(push::Body::Invalidate(Invalidate {
            friends_of: friends_of.to_vec(),
            groups: groups.to_vec(),
        })),
    };
    let calls = others
        .into_iter()
        .map(|gw| shared.to_gateway(gw, vec![push.clone()]));
    join_all(calls).await;
}

/// Another gateway's `Invalidate`: drop the entries here.
pub fn receive(shared: &Arc<Shared>, i: &Invalidate) {
    shared.social.invalidate(&i.friends_of, &i.groups);
    presence::refresh_local(shared, &i.friends_of);
}
