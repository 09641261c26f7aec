//! Wiring: clients of the router, persist and the queue; registration and
//! the lease; the TCP client listener (TLS with `[client_tls]`), the public
//! HTTP/WebSocket server, the internal metrics server and the internal
//! gRPC server; the commit followers; and the one shutdown path.
//! `main` and the tests both go through [`start`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use confab_net::ChannelConfig;
use confab_proto::gateway::gateway_service_server::{self, GatewayServiceServer};
use confab_queue::AnyProducer;
use confab_queue::amqp::{AmqpProducer, AmqpSettings};
use confab_queue::remote::RemoteProducer;
use confab_router_client::{ClientConfig, RouterClient};
use confab_tls::{Authorize, ClusterTls, Role, ServerTls};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::service::interceptor::InterceptedService;

use crate::client_tls::{self, ClientPorts, TCP_LISTENER};
use crate::config::{GatewayConfig, QueueBackend};
use crate::error::{Error, Result};
use crate::internal::Internal;
use crate::service::{lease, moved, presence};
use crate::state::Shared;
use crate::state::coalesce::Coalescers;
use crate::state::peers::Peers;
use crate::state::persists::PersistData;
use crate::state::rates::UserRates;
use crate::state::registry::Registry;
use crate::state::users::UserCache;
use crate::wire::stream;
use crate::{connection, http, metrics};
use confab_common::ids::IdGen;

/// How long connections get to say goodbye on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The listeners of a gateway (bound by the caller: port 0 in tests).
pub struct Listeners {
    pub client: TcpListener,
    pub http: TcpListener,
    /// Internal HTTP: /metrics, /healthz, /readyz.
    pub metrics: TcpListener,
    pub grpc: TcpListener,
}

/// A started gateway.
pub struct Running {
    pub client_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub shared: Arc<Shared>,
    task: JoinHandle<Result<()>>,
}

impl Running {
    /// Waits until the gateway has shut down (after the token fired, or
    /// because it could not register).
    pub async fn wait(self) -> Result<()> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(Error::Internal(format!("the gateway's main task failed: {e}"))),
        }
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
/// The WebSocket URL handed out: `advertise_ws`, else the bound HTTP
/// address (wss with `[client_tls]`).
fn ws_url(config: &GatewayConfig, http: SocketAddr) -> String {
    if !config.advertise_ws.is_empty() {
        return config.advertise_ws.clone();
    }
    let scheme = if config.client_tls.is_some() { "wss" } else { "ws" };
    format!("{scheme}://{http}/ws")
}

pub async fn run(config: GatewayConfig, listeners: Listeners, shutdown: CancellationToken) -> Result<()> {
    start(config, listeners, shutdown).await?.wait().await
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
    let metrics_addr = listeners.metrics.local_addr()?;
    let grpc_addr = listeners.grpc.local_addr()?;
    let tls = ClusterTls::load_optional(config.tls.as_ref(), Role::Gateway, Some(config.id))
        .map_err(|e| Error::Config(e.to_string()))?;
    let cluster_tls = ClusterTls::client(tls.as_ref());
    let client_tls = match &config.client_tls {
        Some(c) => {
            let ports = Arc::new(ClientPorts::load(c)?);
            client_tls::reload_on_sighup(ports.clone(), shutdown.clone())?;
            Some(ports)
        }
        None => None,
    };
    let router = RouterClient::new(
        config.routers.clone(),
        ClientConfig {
            tls: cluster_tls.clone(),
            ..ClientConfig::default()
        },
    )?;
    let timeout = Duration::from_millis(config.limits.rpc_timeout_ms);
    let channel_config = ChannelConfig::connect_within(timeout).with_tls(cluster_tls.clone());
    let data_channels = config
        .persist
        .iter()
        .map(|addr| confab_net::channel(addr, &channel_config).map(|c| (addr.clone(), c)))
        .collect::<confab_net::Result<Vec<_>>>()
        .map_err(|e| Error::Config(e.to_string()))?;
    let producer = match config.queue.backend {
        QueueBackend::Remote => AnyProducer::Remote(
            RemoteProducer::new(&config.persist[0], &channel_config)
                .map_err(|e| Error::Config(e.to_string()))?,
        ),
        QueueBackend::Amqp => {
            let settings = AmqpSettings {
                url: config.queue.amqp_url.clone(),
                prefix: config.queue.prefix.clone(),
                partitions: config.queue.partitions,
                prefetch: 1,
                max_body_bytes: config.limits.max_body_bytes,
                max_backoff: Duration::from_secs(2),
                connection_name: format!("confab-gateway {}", config.id),
                ca_file: config.queue.amqp_ca.clone(),
            };
            // A broker whose certificate does not verify stops the gateway here.
            confab_queue::amqp::check_trust(&settings, timeout)
                .await
                .map_err(|e| Error::Config(e.to_string()))?;
            AnyProducer::Amqp(Box::new(AmqpProducer::new(settings)))
        }
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
        ids: IdGen::reserved(config.id),
        router,
        data: PersistData::new(data_channels),
        producer,
        registry: Registry::default(),
        incarnation: AtomicU64::new(0),
        ready: AtomicBool::new(false),
        peers: Peers::new(
            ChannelConfig::connect_within(rpc_timeout)
                .with_request_timeout(rpc_timeout)
                .with_tls(cluster_tls.clone()),
        ),
        users: UserCache::default(),
        social: Default::default(),
        presence: Default::default(),
        shutdown: shutdown.clone(),
        client_addr: advertise(&config.advertise_client, client_addr),
        ws_url: ws_url(&config, http_addr),
        grpc_addr: advertise(&config.advertise_grpc, grpc_addr),
        connections: Arc::new(Semaphore::new(config.limits.max_connections)),
        guard: crate::state::guard::Guard::new(&config.limits),
        coalesce: Coalescers::new(weak.clone(), rpc_timeout),
        cluster_tls,
        message_rates: UserRates::new(
            config.user_limits.messages_per_s,
            config.user_limits.message_burst,
        ),
        config,
    });
    let task = tokio::spawn(main_task(
        shared.clone(),
        listeners,
        metrics_addr,
        ClusterTls::server(tls.as_ref()),
        client_tls,
    ));
    Ok(Running {
        client_addr,
        http_addr,
        metrics_addr,
        grpc_addr,
        shared,
        task,
    })
}

async fn main_task(
    shared: Arc<Shared>,
    listeners: Listeners,
    metrics_addr: SocketAddr,
    grpc_tls: Option<Arc<ServerTls>>,
    client_tls: Option<Arc<ClientPorts>>,
) -> Result<()> {
    let shutdown = shared.shutdown.clone();
    let tracker = TaskTracker::new();
    tracker.spawn(http::serve_public(
        shared.clone(),
        listeners.http,
        client_tls.clone(),
        shutdown.clone(),
    ));
    let internal_http = http::internal(shared.clone());
    let s = shutdown.clone();
    tracker.spawn(async move {
        let r = axum::serve(listeners.metrics, internal_http)
            .with_graceful_shutdown(s.cancelled_owned())
            .await;
        if let Err(error) = r {
            tracing::error!(%error, "internal HTTP server failed");
        }
    });
    let s = shutdown.clone();
    // Only gateways call a gateway's internal service (Deliver, Load).
    let internal = InterceptedService::new(
        GatewayServiceServer::new(Internal {
            shared: shared.clone(),
        }),
        Authorize::new(gateway_service_server::SERVICE_NAME, &[Role::Gateway]),
    );
    tracker.spawn(async move {
        let r = tonic::transport::Server::builder()
            .add_service(internal)
            // TLS handshakes done (with the peer's identity), TCP_NODELAY on.
            .serve_with_incoming_shutdown(
                confab_tls::incoming(listeners.grpc, grpc_tls, "grpc"),
                s.cancelled_owned(),
            )
            .await;
        if let Err(error) = r {
            tracing::error!(%error, "internal gRPC server failed");
        }
    });
    for (i, addr) in shared.config.persist.clone().into_iter().enumerate() {
        tracker.spawn(moved::follow(shared.clone(), i, addr));
    }
    let lease_len = match lease::register(&shared).await {
        Ok(l) => l,
        Err(e) => {
            shared.shutdown.cancel();
            tracker.close();
            tracker.wait().await;
            return match e {
                Error::GoingAway(_) => Ok(()),
                other => Err(other),
            };
        }
    };
    shared.ready.store(true, Ordering::SeqCst);
    tracker.spawn(lease::keep(shared.clone(), lease_len));
    tracker.spawn(presence::watch(shared.clone()));
    tracker.spawn(confab_router_client::discovery::announce_forever(
        shared.config.routers.clone(),
        ChannelConfig::connect_within(shared.rpc_timeout()).with_tls(shared.cluster_tls.clone()),
        discovery_target(&shared, metrics_addr),
        shutdown.clone(),
    ));
    let connections = TaskTracker::new();
    accept_loop(&shared, listeners.client, client_tls, &connections).await;
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
    Ok(())
}

/// What this gateway announces to the routers for `/sd`: its internal
/// metrics port, and the zones that list it (comma-separated).
fn discovery_target(shared: &Shared, metrics_addr: SocketAddr) -> confab_proto::router::Target {
    let id = shared.gateway_id();
    let zones: Vec<&str> = shared
        .config
        .zones
        .iter()
        .filter(|z| z.gateways.contains(&id))
        .map(|z| z.name.as_str())
        .collect();
    confab_proto::router::Target {
        role: "gateway".into(),
        id,
        metrics_addr: confab_router_client::discovery::reachable(metrics_addr, &shared.grpc_addr),
        zone: zones.join(","),
    }
}

/// Accepts client connections; each one's TLS handshake (with
/// `[client_tls]`) runs in its own task under its deadline.
async fn accept_loop(
    shared: &Arc<Shared>,
    listener: TcpListener,
    tls: Option<Arc<ClientPorts>>,
    connections: &TaskTracker,
) {
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
        let admitted = connection::admit(shared, peer);
        let shared = shared.clone();
        let tls = tls.clone();
        // What a connection's task holds for its whole life is its serve
        // future: the handshake and the refusals are boxed, so that they
        // do not size the task of every connection.
        connections.spawn(async move {
            let _ = stream.set_nodelay(true);
            let Some(tls) = tls else {
                match admitted {
                    Ok(held) => {
                        serve_tcp(shared, stream, peer).await;
                        drop(held);
                    }
                    Err(e) => Box::pin(connection::refuse_tcp(stream, &e)).await,
                }
                return;
            };
            let handshake = tls.tcp.handshake(stream, TCP_LISTENER, tls.handshake_timeout);
            match Box::pin(handshake).await {
                Ok(s) => match admitted {
                    Ok(held) => {
                        serve_tls(shared, s, peer).await;
                        drop(held);
                    }
                    // A refused TLS client still got its handshake, so that
                    // it can read why it is refused.
                    Err(e) => Box::pin(connection::refuse_tcp(s, &e)).await,
                },
                Err(error) => tracing::debug!(%error, %peer, "client TLS handshake failed"),
            }
        });
    }
}

// The two below split their stream before the future is made, so that
// the future does not keep room for the stream it no longer has.

fn serve_tcp(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) -> impl Future<Output = ()> + Send {
    let limit = shared.config.limits.max_frame_bytes;
    let (read, write) = stream.into_split();
    serve_frames(
        shared,
        peer,
        stream::FrameReader::new(read, limit),
        stream::FrameWriter::new(write),
    )
}

fn serve_tls(
    shared: Arc<Shared>,
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    peer: SocketAddr,
) -> impl Future<Output = ()> + Send {
    let limit = shared.config.limits.max_frame_bytes;
    let (read, write) = tokio::io::split(stream);
    let reader = stream::FrameReader::new(read, limit);
    serve_frames(shared, peer, reader, stream::FrameWriter::new(write))
}

async fn serve_frames<R, W>(
    shared: Arc<Shared>,
    peer: SocketAddr,
    reader: stream::FrameReader<R>,
    writer: stream::FrameWriter<W>,
) where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let input = Box::pin(futures::stream::unfold(reader, |mut r| async move {
        r.next_frame().await.map(|item| (item, r))
    }));
    connection::serve(shared, "tcp", peer.ip(), input, writer).await;
}
