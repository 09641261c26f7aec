//! Service discovery: a process tells every router where its metrics are
//! ([`announce_forever`]), so that `GET /sd` on any router lists every live
//! Confab process for Prometheus. Soft state on each router: an entry lives
//! for [`TTL`] after its last announcement. Each answer names the cluster's
//! routers, so a seed is enough and routers added later are found.

use std::collections::BTreeSet;

use confab_net::{ChannelConfig, ChannelPool};
use confab_proto::router::router_discovery_client::RouterDiscoveryClient;
use confab_proto::router::{AnnounceRequest, Target};
use tokio_util::sync::CancellationToken;

pub use confab_net::discovery::{EVERY, TTL, reachable};

/// Announces `target` every [`EVERY`] until `cancel` to every router it
/// knows: the seeds, then those the answers name. A router that cannot be
/// reached is tried again next round.
pub async fn announce_forever(
    seeds: Vec<String>,
    channels: ChannelConfig,
    target: Target,
    cancel: CancellationToken,
) {
    let pool = ChannelPool::new(channels);
    let mut known: BTreeSet<String> = seeds.iter().cloned().collect();
    loop {
        let named = announce_once(&pool, &known, &target).await;
        // The cluster's own list when it gave one; the seeds otherwise.
        known = if named.is_empty() {
            seeds.iter().cloned().collect()
        } else {
            named
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// One round: announces to each of `routers`; returns the routers the
/// answers named.
pub async fn announce_once(
    pool: &ChannelPool,
    routers: &BTreeSet<String>,
    target: &Target,
) -> BTreeSet<String> {
    let request = AnnounceRequest {
        target: Some(target.clone()),
        ttl_ms: TTL.as_millis() as u64,
    };
    let calls = routers.iter().map(|addr| {
        let request = request.clone();
        async move {
            let channel = pool.get(addr).ok()?;
            let mut stub = RouterDiscoveryClient::new(channel);
            match tokio::time::timeout(EVERY, stub.announce(request)).await {
                Ok(Ok(answer)) => Some(answer.into_inner().routers),
                Ok(Err(status)) => {
                    tracing::debug!(%addr, %status, "discovery: announce refused");
                    None
                }
                Err(_) => {
                    tracing::debug!(%addr, "discovery: announce timed out");
                    None
                }
            }
        }
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect()
}
