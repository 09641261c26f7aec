//! [`RouterClient`]: construction, the cached cluster map and its refresh.
//!
//! The operations live beside it: `sessions` (login, logout, lookup) and
//! `admin` (gateways, node status, leader transfer, whereis); `driver` is the
//! retry loop they share.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use confab_proto::router::{ClusterMap, GetClusterMapRequest};
use tokio::time::Instant;
use tracing::debug;

use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::pool::{Pool, Stub};
use crate::routing::Routing;

/// A client of the router cluster. Cheap to clone: clones share the map
/// cache, the leader cache and the per-node channels.
#[derive(Debug, Clone)]
pub struct RouterClient {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) seeds: Vec<String>,
    pub(crate) config: ClientConfig,
    pub(crate) pool: Pool,
    pub(crate) routing: RwLock<Routing>,
    /// Serializes map refreshes so a burst of routing errors fetches once.
    refresh: tokio::sync::Mutex<()>,
}

impl RouterClient {
    /// A client that will reach the cluster through `seeds` (`host:port`,
    /// `http://` added when missing). Nothing is contacted until first use.
    pub fn new(seeds: Vec<String>, config: ClientConfig) -> Result<Self> {
        let seeds: Vec<String> = seeds
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if seeds.is_empty() {
            return Err(Error::InvalidArgument("no router seed address".into()));
        }
        for seed in &seeds {
            Pool::validate(seed)?;
        }
        Ok(RouterClient {
            inner: Arc::new(Inner {
                seeds,
                pool: Pool::new(config.clone()),
                config,
                routing: RwLock::new(Routing::default()),
                refresh: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// [`RouterClient::new`], then fetches the cluster map.
    pub async fn connect(seeds: Vec<String>, config: ClientConfig) -> Result<Self> {
        let client = Self::new(seeds, config)?;
        client.refresh_map().await?;
        Ok(client)
    }

    /// The client's configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The cached cluster map (with the freshest descriptors and leaders the
    /// client learned), fetching it first if none is cached yet.
    pub async fn cluster_map(&self) -> Result<ClusterMap> {
        if !self.read().loaded() {
            self.refresh_map().await?;
        }
        Ok(self.read().cluster_map())
    }

    /// The cached cluster map, if one was fetched.
    pub fn cached_map(&self) -> Option<ClusterMap> {
        let routing = self.read();
        routing.loaded().then(|| routing.cluster_map())
    }

    /// Fetches the cluster map from any reachable node and installs it.
    pub async fn refresh_map(&self) -> Result<ClusterMap> {
        let deadline = Instant::now() + self.inner.config.deadline;
        self.refresh_before(deadline, None).await?;
        Ok(self.read().cluster_map())
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Routing> {
        self.inner.routing.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Routing> {
        self.inner.routing.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn stub(&self, addr: &str) -> Result<Stub> {
        self.inner.pool.stub(addr)
    }

    /// The per-attempt timeout: the configured cap, bounded by `deadline`.
    pub(crate) fn attempt_timeout(&self, deadline: Instant) -> Duration {
        self.inner
            .config
            .attempt_timeout
            .min(deadline.saturating_duration_since(Instant::now()))
    }

    /// Fetches and installs a map unless another task installed one since
    /// generation `seen` (then there is nothing to do). Asks the known live
    /// nodes, then the seeds; never installs a map older than the cached one.
    pub(crate) async fn refresh_before(&self, deadline: Instant, seen: Option<u64>) -> Result<()> {
        let _single_flight = self.inner.refresh.lock().await;
        let (candidates, generation) = {
            let routing = self.read();
            let mut candidates: Vec<String> = routing.live_nodes().into_iter().map(|(_, a)| a).collect();
            for seed in &self.inner.seeds {
                if !candidates.contains(seed) {
                    candidates.push(seed.clone());
                }
            }
            (candidates, routing.generation)
        };
        if seen.is_some_and(|seen| seen != generation) {
            return Ok(());
        }
        let mut tried = Vec::new();
        let mut answered = false;
        for addr in candidates {
            let timeout = self.attempt_timeout(deadline);
            if timeout.is_zero() {
                break;
            }
            tried.push(addr.clone());
            let Ok(mut stub) = self.stub(&addr).map(|s| s.data()) else {
                debug!(%addr, "skipping a node with an invalid address");
                continue;
            };
            let fetched = tokio::time::timeout(timeout, stub.get_cluster_map(GetClusterMapRequest {}));
            let map = match fetched.await {
                Ok(Ok(response)) => response.into_inner(),
                Ok(Err(status)) => {
                    debug!(%addr, %status, "cluster map fetch failed");
                    continue;
                }
                Err(_) => {
                    debug!(%addr, "cluster map fetch timed out");
                    continue;
                }
            };
            let mut routing = self.write();
            if routing.loaded() && map.version < routing.version() {
                debug!(%addr, version = map.version, "ignoring older cluster map");
                answered = true;
                continue;
            }
            return routing.install(map);
        }
        if answered || self.read().generation != generation {
            return Ok(());
        }
        Err(Error::NoReachableNode { tried })
    }
}
