//! confab-router: the online-state table of Confab, sharded by uid and
//! replicated by Raft (openraft 0.10, multi-raft).
//!
//! Parts:
//! - [`types`], [`ids`]: the Raft type configuration, commands and replies,
//!   node and group ids (from `confab-router-state`, with the state
//!   machines' data and the codec of Raft messages and snapshots).
//! - [`sm`]: the state machines (shard sessions, meta cluster map).
//! - [`store`]: the node's RocksDB log storage, shared by all groups.
//! - [`network`]: the sending end of the Raft transport, one tonic channel
//!   per peer; [`remote`]: calls to other routers' replica plane.
//! - [`node`]: the groups a node hosts; bootstrap, join, propose, read.
//! - [`service`]: the gRPC services, one per caller role (data, admin,
//!   replica planes, Raft); [`error`]: the typed errors they convert.
//! - [`lease`]: gateway leases; [`purge`]: their expiry and the purge of a
//!   dead gateway's sessions.
//! - [`moves`], [`rebalance`]: replica moves, rebalance, drain, remove,
//!   leader balancing; [`tombstone`]: where given-away replicas went.
//! - [`http`], [`metrics`], [`status`]: observability.
//!
//! What does not belong here: the key space and the classification of
//! routing errors (`confab-route`, shared with every caller), the client
//! side (retries, the shard map cache: `confab-router-client`), channels and
//! backoff (`confab-net`).

pub mod config;
pub mod error;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod moves;
pub mod network;
pub mod node;
pub mod purge;
pub mod read_batch;
pub mod rebalance;
pub mod remote;
pub mod service;
pub mod sm;
pub mod status;
pub mod store;
pub mod targets;
pub mod tombstone;
pub mod wire;
pub mod write_batch;

pub use confab_router_state::{ids, types};

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use confab_proto::router as pb;
use confab_tls::{ClusterTls, Role};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::config::RouterConfig;
pub use crate::node::Node;
use crate::types::META_GROUP;

/// How long the servers may take to close their connections once told to
/// stop, before the node stops anyway.
const SERVER_STOP_GRACE: Duration = Duration::from_secs(2);

/// A started router: its node and the task serving it.
pub struct Running {
    pub node: Arc<Node>,
    pub grpc_addr: std::net::SocketAddr,
    pub http_addr: std::net::SocketAddr,
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Starts a router on already-bound listeners (tests bind port 0).
pub async fn start(
    config: RouterConfig,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    config.validate()?;
    metrics::init();
    let grpc_addr = grpc.local_addr()?;
    let http_addr = http.local_addr()?;
    let advertised = config
        .peers
        .get(&config.id)
        .cloned()
        .unwrap_or_else(|| grpc_addr.to_string());
    let tls = ClusterTls::load_optional(config.tls.as_ref(), Role::Router, Some(config.id))
        .context("loading the [tls] files")?;
    let node = Node::open(config.clone(), advertised, ClusterTls::client(tls.as_ref()))
        .await
        .context("opening the node")?;
    // Stop in two steps: on `shutdown`, hand the leaderships off while still
    // serving (the new leaders need this node's transport for a moment),
    // then stop the servers.
    let servers = CancellationToken::new();
    let servers_stopping = servers.clone();
    {
        let (node, servers, budget) = (node.clone(), servers.clone(), config.handoff_budget());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            node.hand_off_leaderships(budget).await;
            servers.cancel();
        });
    }

    // Accepted connections (TLS handshakes done, with the peer's identity)
    // get TCP_NODELAY from the incoming stream.
    let grpc_server = service::router(&node).serve_with_incoming_shutdown(
        confab_tls::incoming(grpc, ClusterTls::server(tls.as_ref()), "grpc"),
        servers.clone().cancelled_owned(),
    );
    let http_server = axum::serve(http, http::router(node.clone()))
        .with_graceful_shutdown(servers.clone().cancelled_owned());

    let grpc_task = tokio::spawn(grpc_server);
    let http_task = tokio::spawn(async move { http_server.await });

    if config.bootstrap {
        node.bootstrap(&config.peers).await.context("bootstrapping")?;
    } else if let Some(seed) = &config.join {
        node.start_group(META_GROUP).await?;
        let node = node.clone();
        let seed = seed.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move { join_cluster(node, seed, stop).await });
    }
    tokio::spawn(purge::run(node.clone(), shutdown.clone()));
    tokio::spawn(announce(
        node.clone(),
        confab_net::discovery::reachable(http_addr, &node.addr),
        shutdown.clone(),
    ));

    let task_node = node.clone();
    let task = tokio::spawn(async move {
        // A graceful server stop waits for every open connection to close;
        // a peer that keeps one open must not keep this node alive. Once the
        // servers were told to stop, they get a short grace, then the node
        // stops under them.
        let servers_done = async {
            let grpc_res = grpc_task.await;
            let http_res = http_task.await;
            (grpc_res, http_res)
        };
        tokio::pin!(servers_done);
        let results = tokio::select! {
            r = &mut servers_done => Some(r),
            _ = async {
                servers_stopping.cancelled().await;
                tokio::time::sleep(SERVER_STOP_GRACE).await;
            } => None,
        };
        task_node.shutdown().await;
        let Some((grpc_res, http_res)) = results else {
            tracing::warn!("open connections outlived the stop grace; stopped anyway");
            return Ok(());
        };
        grpc_res?.context("gRPC server")?;
        http_res?.context("HTTP server")?;
        Ok(())
    });
    tracing::info!(id = node.id, %grpc_addr, %http_addr, "router started");
    Ok(Running {
        node,
        grpc_addr,
        http_addr,
        task,
    })
}

/// Starts a router and serves until `shutdown` is cancelled.
pub async fn run(
    config: RouterConfig,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    start(config, grpc, http, shutdown).await?.task.await?
}

/// Tells this router and every other router of the map where this node's
/// metrics are, every round of discovery, until `shutdown`.
async fn announce(node: Arc<Node>, metrics_addr: String, shutdown: CancellationToken) {
    use confab_net::discovery::{EVERY, TTL};
    let target = pb::Target {
        role: "router".into(),
        id: node.id,
        metrics_addr,
        zone: String::new(),
    };
    loop {
        node.targets.announce(target.clone(), TTL);
        let peers: Vec<String> = service::discovery::routers(&node)
            .into_iter()
            .filter(|a| *a != node.addr)
            .collect();
        let calls = peers.into_iter().map(|addr| {
            let request = pb::AnnounceRequest {
                target: Some(target.clone()),
                ttl_ms: TTL.as_millis() as u64,
            };
            let node = node.clone();
            async move {
                let Ok(mut stub) = node.remotes.discovery(&addr) else {
                    return;
                };
                if let Err(status) = remote::within(EVERY, stub.announce(request)).await {
                    tracing::debug!(%addr, %status, "discovery: announce to a peer failed");
                }
            }
        });
        futures::future::join_all(calls).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// Asks the cluster behind `seed` to take this node in, until it does.
async fn join_cluster(node: Arc<Node>, seed: String, shutdown: CancellationToken) {
    let mut target = seed.clone();
    let mut delays = JOIN_BACKOFF.delays();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let attempt = async {
            let mut client = node.remotes.replica(&target)?;
            let req = pb::JoinRequest {
                node_id: node.id,
                addr: node.addr.clone(),
                fresh: node.fresh,
            };
            anyhow::Ok(client.join(req).await)
        };
        match attempt.await {
            Ok(Ok(resp)) => {
                let resp = resp.into_inner();
                if resp.cluster_id != 0
                    && let Err(error) = node.adopt_cluster_id(resp.cluster_id).await
                {
                    tracing::error!(%error, %seed, "not joining");
                    return;
                }
                if let Some(map) = resp.map {
                    for n in map.nodes {
                        node.peers.set_addr(n.id, &n.addr);
                    }
                }
                tracing::info!(%seed, "joined the cluster");
                return;
            }
            Ok(Err(status)) => match confab_route::not_leader_hint(&status) {
                Some(addr) => target = addr,
                None => {
                    tracing::warn!(%status, "join refused; retrying");
                    target = seed.clone();
                }
            },
            Err(error) => {
                tracing::warn!(%error, %target, "join: cannot reach");
                target = seed.clone();
            }
        }
        let delay = delays.next().unwrap_or(JOIN_BACKOFF_MAX);
        tokio::time::sleep(delay).await;
    }
}

/// The waits between join requests: 100 ms, doubling up to 2 s.
const JOIN_BACKOFF_MAX: Duration = Duration::from_secs(2);
const JOIN_BACKOFF: confab_net::Backoff =
    confab_net::Backoff::exponential(Duration::from_millis(100), JOIN_BACKOFF_MAX);
