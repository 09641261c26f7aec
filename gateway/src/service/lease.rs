//! The gateway's lease in the router's meta group: register (retrying until
//! the routers answer), renew every third of the lease, and when the routers
//! no longer know this incarnation (it was purged, e.g. after a long pause),
//! register again and close every connection: their sessions were purged,
//! the clients reconnect and log in again under the new incarnation.
//! Deregistering on clean shutdown purges this gateway's sessions at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::state::Shared;
use crate::wire::frame;

/// Registers until it succeeds or shutdown; returns the lease length.
pub async fn register(shared: &Shared) -> Result<Duration> {
    let mut delay = Duration::from_millis(100);
    loop {
        match shared
            .router
            .register_gateway(shared.gateway_id(), &shared.grpc_addr)
            .await
        {
            Ok(r) => {
                shared.incarnation.store(r.incarnation, Ordering::SeqCst);
                tracing::info!(
                    gateway_id = shared.gateway_id(),
                    incarnation = r.incarnation,
                    lease_ms = r.lease_ms,
                    "registered with the routers"
                );
                return Ok(Duration::from_millis(r.lease_ms.max(300)));
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

/// Renews until shutdown.
pub async fn keep(shared: Arc<Shared>, mut lease: Duration) {
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(lease / 3) => {}
        }
        let incarnation = shared.incarnation();
        match shared.router.renew_lease(shared.gateway_id(), incarnation).await {
            Ok(ms) => lease = Duration::from_millis(ms.max(300)),
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
