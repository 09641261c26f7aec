//! The gateway's lease in the router's meta group: register (retrying until
//! the routers answer), renew every third of the lease, and when the routers
//! no longer know this incarnation (it was purged, e.g. after a long pause),
//! register again and close every connection: their sessions were purged,
//! the clients reconnect and log in again under the new incarnation.
//! Deregistering on clean shutdown purges this gateway's sessions at once.
//!
//! The renewals also keep the gateway's id reservation ahead of its clock
//! (see `confab_common::ids`): no id is made before the first one is
//! replicated, so ids stay unique across restarts and clock steps. A
//! registration the routers refuse because a live gateway at another
//! address holds this id is retried for a while (a crashed predecessor's
//! lease runs out), then ends the process.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::state::Shared;
use crate::wire::frame;

/// How far ahead of its clock a gateway has its ids reserved; it asks for
/// more once less than half is left (one replicated write per gateway every
/// ten seconds). A gateway cut from the routers this long makes no more
/// ids: its lease ran out long before. A restarted gateway's ids run up to
/// this far ahead of the clock until the clock catches up.
pub const ID_WINDOW: Duration = Duration::from_secs(20);

/// How long a refused id is retried before the gateway gives up: longer
/// than a lease, so a crashed predecessor's registration has run out.
const TAKEN_PATIENCE: Duration = Duration::from_secs(30);

/// Registers until it succeeds or shutdown, then has the first ids
/// reserved; returns the lease length. Fails when a live gateway at
/// another address keeps this id.
pub async fn register(shared: &Shared) -> Result<Duration> {
    let mut delay = Duration::from_millis(100);
    let mut taken_since = None;
    loop {
        match shared
            .router
            .register_gateway(shared.gateway_id(), &shared.grpc_addr)
            .await
        {
            Ok(r) => {
                shared.incarnation.store(r.incarnation, Ordering::SeqCst);
                shared.ids.reserve(r.ids_from_ms, 0);
                tracing::info!(
                    gateway_id = shared.gateway_id(),
                    incarnation = r.incarnation,
                    lease_ms = r.lease_ms,
                    ids_from_ms = r.ids_from_ms,
                    "registered with the routers"
                );
                let lease = Duration::from_millis(r.lease_ms.max(300));
                reserve_first_ids(shared).await?;
                return Ok(lease);
            }
            Err(error) if error.status_code() == Some(tonic::Code::AlreadyExists) => {
                let since = *taken_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > TAKEN_PATIENCE {
                    tracing::error!(%error, "this gateway's id is in use; stopping");
                    return Err(Error::Config(format!(
                        "gateway id {} is in use by another live gateway: {error}",
                        shared.gateway_id()
                    )));
                }
                tracing::warn!(%error, "this gateway's id is held by a live gateway; retrying until its lease runs out");
            }
            Err(error) => {
                tracing::warn!(%error, "registering with the routers failed; retrying");
            }
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return Err(Error::GoingAway("shutdown before registration")),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// The reservation to ask for with a renewal: a full window ahead of the
/// id clock once less than half a window is left, else 0 (no change).
fn reservation_wanted(shared: &Shared) -> u64 {
    let window = ID_WINDOW.as_millis() as u64;
    let clock = shared.ids.clock_ms();
    if shared.ids.reserved_until_ms() < clock + window / 2 {
        clock + window
    } else {
        0
    }
}

/// The first reservation of an incarnation, before any id is made:
/// retried until the routers answer (or shutdown).
async fn reserve_first_ids(shared: &Shared) -> Result<()> {
    let mut delay = Duration::from_millis(100);
    loop {
        let wanted = reservation_wanted(shared);
        match shared
            .router
            .renew_lease_reserving(shared.gateway_id(), shared.incarnation(), wanted)
            .await
        {
            Ok(r) => {
                shared.ids.reserve(0, r.ids_until_ms);
                return Ok(());
            }
            Err(error) => tracing::warn!(%error, "reserving ids failed; retrying"),
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return Err(Error::GoingAway("shutdown before registration")),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Renews until shutdown.
pub async fn keep(shared: Arc<Shared>, mut lease: Duration) {
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(lease / 3) => {}
        }
        let incarnation = shared.incarnation();
        let wanted = reservation_wanted(&shared);
        match shared
            .router
            .renew_lease_reserving(shared.gateway_id(), incarnation, wanted)
            .await
        {
            Ok(r) => {
                shared.ids.reserve(0, r.ids_until_ms);
                lease = Duration::from_millis(r.lease_ms.max(300));
            }
            Err(e) if e.status_code() == Some(tonic::Code::NotFound) => {
                tracing::error!(
                    incarnation,
                    "the routers purged this gateway's incarnation; re-registering"
                );
                shared.ready.store(false, Ordering::SeqCst);
                match register(&shared).await {
                    Ok(l) => lease = l,
                    Err(_) => return,
                }
                drop_all(&shared);
                shared.ready.store(true, Ordering::SeqCst);
            }
            Err(error) => tracing::warn!(%error, "lease renewal failed; retrying"),
        }
    }
}

/// Closes every connection: its session no longer exists in the routers.
fn drop_all(shared: &Shared) {
    let bye = frame::error(0, &Error::GoingAway("the gateway lost its lease; log in again"));
    for (id, _) in shared.registry.all() {
        if let Some(h) = shared.registry.remove(id) {
            h.push(bye.clone());
            h.kill.cancel();
        }
    }
}

/// Clean shutdown: the routers purge this incarnation's sessions now.
pub async fn deregister(shared: &Shared) {
    let incarnation = shared.incarnation();
    if incarnation == 0 {
        return;
    }
    match tokio::time::timeout(
        shared.rpc_timeout(),
        shared.router.deregister_gateway(shared.gateway_id(), incarnation),
    )
    .await
    {
        Ok(Ok(())) => tracing::info!(incarnation, "deregistered; sessions purged"),
        Ok(Err(error)) => tracing::warn!(%error, "deregistering failed; the lease will expire"),
        Err(_) => tracing::warn!("deregistering timed out; the lease will expire"),
    }
}
