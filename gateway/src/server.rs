//! Wiring: clients of the router, persist and the queue; registration and
//! the lease; the TCP client listener, the HTTP/WebSocket server and the
//! internal gRPC server; the commit followers; and the one shutdown path.
//! `main` and the tests both go through [`start`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use confab_net::ChannelConfig;
use confab_proto::gateway::gateway_service_server::GatewayServiceServer;
use confab_proto::persist::data_service_client::DataServiceClient;
use confab_queue::AnyProducer;
use confab_queue::amqp::{AmqpProducer, AmqpSettings};
use confab_queue::remote::RemoteProducer;
use confab_router_client::{ClientConfig, RouterClient};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::server::TcpIncoming;

use crate::config::{GatewayConfig, QueueBackend};
use crate::error::{Error, Result};
use crate::internal::Internal;
use crate::service::{lease, moved, presence};
use crate::state::Shared;
use crate::state::coalesce::Coalescers;
use crate::state::peers::Peers;
use crate::state::registry::Registry;
use crate::state::users::UserCache;
use crate::wire::stream;
use crate::{connection, http, metrics};
use confab_common::ids::IdGen;

/// How long connections get to say goodbye on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The three listeners of a gateway (bound by the caller: port 0 in tests).
pub struct Listeners {
    pub client: TcpListener,
    pub http: TcpListener,
    pub grpc: TcpListener,
}

/// A started gateway.
pub struct Running {
    pub client_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Running {
    /// Waits until the gateway has shut down (after the token fired).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::SeqCst)
    }
}

/// Raises the soft open-file limit to the hard one (each client connection
/// is a descriptor); returns the soft limit in force afterwards.
pub fn raise_open_files() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft)
        }
    }
}

/// Runs until `shutdown` fires.
pub async fn run(config: GatewayConfig, listeners: Listeners, shutdown: CancellationToken) -> Result<()> {
    start(config, listeners, shutdown).await?.wait().await;
    Ok(())
}

/// Starts everything and returns at once; client connections are accepted
/// once the gateway is registered with the routers.
pub async fn start(
    config: GatewayConfig,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<Running> {
    config.validate()?;
    metrics::init();
    let client_addr = listeners.client.local_addr()?;
    let http_addr = listeners.http.local_addr()?;
    let grpc_addr = listeners.grpc.local_addr()?;
    let router = RouterClient::new(config.routers.clone(), ClientConfig::default())?;
    let timeout = Duration::from_millis(config.limits.rpc_timeout_ms);
    let data_channel = confab_net::channel(&config.persist[0], &ChannelConfig::connect_within(timeout))
        .map_err(|e| Error::Config(e.to_string()))?;
    let producer = match config.queue.backend {
        QueueBackend::Remote => AnyProducer::Remote(
            RemoteProducer::new(&config.persist[0], &ChannelConfig::connect_within(timeout))
                .map_err(|e| Error::Config(e.to_string()))?,
        ),
        QueueBackend::Amqp => AnyProducer::Amqp(Box::new(AmqpProducer::new(AmqpSettings {
            url: config.queue.amqp_url.clone(),
            prefix: config.queue.prefix.clone(),
            partitions: config.queue.partitions,
            prefetch: 1,
            max_body_bytes: config.limits.max_body_bytes,
            max_backoff: Duration::from_secs(2),
            connection_name: format!("confab-gateway {}", config.id),
        }))),
    };
    let advertise = |set: &str, bound: SocketAddr| {
        if set.is_empty() {
            bound.to_string()
        } else {
            set.to_owned()
        }
    };
    let rpc_timeout = Duration::from_millis(config.limits.rpc_timeout_ms);
    let shared = Arc::new_cyclic(|weak| Shared {
        ids: IdGen::new(config.id),
        router,
        data: DataServiceClient::new(data_channel),
        producer,
        registry: Registry::default(),
        incarnation: AtomicU64::new(0),
        ready: AtomicBool::new(false),
        peers: Peers::new(ChannelConfig::connect_within(rpc_timeout).with_request_timeout(rpc_timeout)),
        users: UserCache::default(),
        social: Default::default(),
        presence: Default::default(),
        shutdown: shutdown.clone(),
        client_addr: advertise(&config.advertise_client, client_addr),
        grpc_addr: advertise(&config.advertise_grpc, grpc_addr),
        connections: Arc::new(Semaphore::new(config.limits.max_connections)),
        coalesce: Coalescers::new(weak.clone(), rpc_timeout),
        config,
    });
    let task = tokio::spawn(main_task(shared.clone(), listeners));
    Ok(Running {
        client_addr,
        http_addr,
        grpc_addr,
        shared,
        task,
    })
}

async fn main_task(shared: Arc<Shared>, listeners: Listeners) {
    let shutdown = shared.shutdown.clone();
    let tracker = TaskTracker::new();
    let app = http::router(shared.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let s = shutdown.clone();
    tracker.spawn(async move {
        let r = axum::serve(listeners.http, app)
            .with_graceful_shutdown(s.cancelled_owned())
            .await;
        if let Err(error) = r {
            tracing::error!(%error, "HTTP server failed");
        }
    });
    let s = shutdown.clone();
    let internal = GatewayServiceServer::new(Internal {
        shared: shared.clone(),
    });
    tracker.spawn(async move {
        let r = tonic::transport::Server::builder()
            .add_service(internal)
            // TCP_NODELAY on accepted connections: with Nagle on, a small
            // answer waits for the peer's delayed ACK (~40 ms).
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listeners.grpc).with_nodelay(Some(true)),
                s.cancelled_owned(),
            )
            .await;
        if let Err(error) = r {
            tracing::error!(%error, "internal gRPC server failed");
        }
    });
    for addr in shared.config.persist.clone() {
        tracker.spawn(moved::follow(shared.clone(), addr));
    }
    let lease_len = match lease::register(&shared).await {
        Ok(l) => l,
        Err(_) => {
            tracker.close();
            tracker.wait().await;
            return;
        }
    };
    shared.ready.store(true, Ordering::SeqCst);
    tracker.spawn(lease::keep(shared.clone(), lease_len));
    tracker.spawn(presence::watch(shared.clone()));
    let connections = TaskTracker::new();
    accept_loop(&shared, listeners.client, &connections).await;
    connections.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period");
    }
    lease::deregister(&shared).await;
    tracker.close();
    tracker.wait().await;
}

async fn accept_loop(shared: &Arc<Shared>, listener: TcpListener, connections: &TaskTracker) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; refusing");
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            serve_tcp(shared, stream).await;
            drop(permit);
        });
    }
}

async fn serve_tcp(shared: Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let limit = shared.config.limits.max_frame_bytes;
    let (read, write) = stream.into_split();
    let reader = stream::FrameReader::new(read, limit);
    let input = Box::pin(futures::stream::unfold(reader, |mut r| async move {
        r.next_frame().await.map(|item| (item, r))
    }));
    connection::serve(shared, "tcp", input, stream::FrameWriter::new(write)).await;
}
