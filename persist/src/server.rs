//! Wiring: database, queue, writers, gRPC and HTTP servers, and the one
//! shutdown path. `main` and the tests both go through [`start`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use confab_proto::persist::data_service_server::{self, DataServiceServer};
use confab_proto::persist::queue_service_server::{self, QueueServiceServer};
use confab_queue::amqp::{AmqpConsumer, AmqpProducer, AmqpSettings, check_trust as amqp_check_trust};
use confab_queue::embedded::{EmbeddedQueue, OpenOptions};
use confab_queue::{AnyProducer, backoff};
use confab_tls::{Authorize, ClusterTls, Role};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::service::interceptor::InterceptedService;

use crate::config::{Config, QueueBackend};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::http::{HttpState, router};
use crate::metrics::Metrics;
use crate::notify::Hub;
use crate::service::PersistService;
use crate::writer::{WriterSettings, run_writer};

/// A started persist instance.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub db: Db,
    /// Set once the schema is migrated (and the writers started).
    pub ready: Arc<AtomicBool>,
    /// The embedded queue, when that is the backend.
    pub embedded: Option<EmbeddedQueue>,
    task: JoinHandle<()>,
}

impl Running {
    /// Waits until the instance has shut down (after `shutdown` fired).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Runs until `shutdown` fires.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    start(config, shutdown).await?.wait().await;
    Ok(())
}

/// Binds the listeners, starts everything and returns at once.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running> {
    config.validate()?;
    let tls = ClusterTls::load_optional(config.tls.as_ref(), Role::Persist, None)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::create_dir_all(&config.server.data_dir)
        .map_err(|e| Error::Invalid(format!("data dir {}: {e}", config.server.data_dir.display())))?;
    let metrics = Arc::new(Metrics::new());
    let db = Db::connect(&config.database_url(), &config.database, metrics.clone())?
        .with_limits(config.limits.clone());
    db.check_trust().await?;
    let hub = Hub::default();
    let q = &config.queue;
    let amqp = AmqpSettings {
        url: q.amqp_url.clone(),
        prefix: q.prefix.clone(),
        partitions: q.partitions,
        prefetch: q.prefetch,
        max_body_bytes: q.max_body_bytes,
        max_backoff: Duration::from_millis(config.writer.max_backoff_ms),
        connection_name: format!("confab-persist {}", std::process::id()),
        ca_file: q.amqp_ca.clone(),
    };
    if q.backend == QueueBackend::Amqp {
        // lapin verifies every amqps:// connection.
        let mode = if amqp.tls() { 2 } else { 0 };
        metrics.tls_mode.with_label_values(&["broker"]).set(mode);
        amqp_check_trust(&amqp, Duration::from_millis(config.database.acquire_timeout_ms)).await?;
    }
    let (producer, embedded) = match q.backend {
        QueueBackend::Embedded => {
            let options = OpenOptions {
                engine: q.embedded_engine.into(),
                ..OpenOptions::default()
            };
            let eq = EmbeddedQueue::open_with(&config.queue_dir(), q.partitions, q.max_body_bytes, &options)?;
            tracing::info!(engine = %eq.engine(), waiting = eq.len(), "embedded queue open");
            eq.observe_commits(metrics.queue_commit_seconds.clone());
            (AnyProducer::Embedded(eq.clone()), Some(eq))
        }
        QueueBackend::Amqp => (AnyProducer::Amqp(Box::new(AmqpProducer::new(amqp.clone()))), None),
    };
    let producer = Arc::new(producer);

    let grpc = TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| Error::Invalid(format!("bind {}: {e}", config.server.listen)))?;
    let http = TcpListener::bind(config.server.http)
        .await
        .map_err(|e| Error::Invalid(format!("bind {}: {e}", config.server.http)))?;
    let grpc_addr = grpc.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
    let http_addr = http.local_addr().map_err(|e| Error::Internal(e.to_string()))?;

    let ready = Arc::new(AtomicBool::new(false));
    let tracker = TaskTracker::new();
    let writers_stop = CancellationToken::new();

    // Schema first (retrying while the database is down), then the writers.
    {
        let (db, hub, ready, shutdown, stop) = (
            db.clone(),
            hub.clone(),
            ready.clone(),
            shutdown.clone(),
            writers_stop.clone(),
        );
        let (config, embedded, tracker2) = (config.clone(), embedded.clone(), tracker.clone());
        tracker.spawn(async move {
            let mut attempt = 0;
            loop {
                match db.migrate().await {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::warn!(%error, attempt, "schema migration failed, retrying");
                        attempt += 1;
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(backoff::retry(Duration::from_secs(5)).delay(attempt)) => {}
                        }
                    }
                }
            }
            tracing::info!("schema up to date");
            if config.writer.enabled {
                let settings = WriterSettings::from_config(&config.writer, &config.queue);
                let tasks = config.writer.tasks;
                for t in 0..tasks {
                    let parts: Vec<u32> = (0..config.queue.partitions).filter(|p| p % tasks == t).collect();
                    if parts.is_empty() {
                        continue;
                    }
                    let (db, hub, s, stop) = (db.clone(), hub.clone(), settings.clone(), stop.clone());
                    match &embedded {
                        Some(eq) => tracker2.spawn(run_writer(eq.consumer(parts), db, hub, s, stop)),
                        None => tracker2.spawn(run_writer(
                            AmqpConsumer::start(amqp.clone(), parts),
                            db,
                            hub,
                            s,
                            stop,
                        )),
                    };
                }
            }
            ready.store(true, Ordering::SeqCst);
        });
    }

    let service = PersistService::new(db.clone(), producer.clone(), hub, shutdown.clone())
        .with_read_wait(Duration::from_millis(config.server.read_wait_ms));
    let grpc_task = {
        let shutdown = shutdown.clone();
        tokio::spawn(
            // Only gateways call persist: data access and the queue speak for
            // the users logged in at the calling gateway.
            tonic::transport::Server::builder()
                .add_service(InterceptedService::new(
                    DataServiceServer::new(service.clone()),
                    Authorize::new(data_service_server::SERVICE_NAME, &[Role::Gateway]),
                ))
                .add_service(InterceptedService::new(
                    QueueServiceServer::new(service),
                    Authorize::new(queue_service_server::SERVICE_NAME, &[Role::Gateway]),
                ))
                // TLS handshakes done (with the peer's identity), TCP_NODELAY on.
                .serve_with_incoming_shutdown(
                    confab_tls::incoming(grpc, ClusterTls::server(tls.as_ref()), "grpc"),
                    shutdown.cancelled_owned(),
                ),
        )
    };
    let http_task = {
        let shutdown = shutdown.clone();
        let app = router(HttpState {
            db: db.clone(),
            ready: ready.clone(),
            queue: embedded.clone(),
        });
        tokio::spawn(async move {
            axum::serve(http, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        })
    };
    metrics.up.set(1.0);
    if !config.server.routers.is_empty() {
        let channels = confab_net::ChannelConfig::connect_within(Duration::from_secs(2))
            .with_tls(ClusterTls::client(tls.as_ref()));
        let target = confab_proto::router::Target {
            role: "persist".into(),
            id: config.server.id,
            metrics_addr: match config.server.advertise_host.as_str() {
                "" => confab_net::discovery::reachable(http_addr, &grpc_addr.to_string()),
                host => confab_net::discovery::reachable(http_addr, &format!("{host}:0")),
            },
            zone: config.server.zone.clone(),
        };
        tracker.spawn(confab_router_client::discovery::announce_forever(
            config.server.routers.clone(),
            channels,
            target,
            shutdown.clone(),
        ));
    }
    tracing::info!(%grpc_addr, %http_addr, backend = ?config.queue.backend, "persist started");

    let grace = Duration::from_millis(config.server.shutdown_grace_ms);
    let (db2, metrics2) = (db.clone(), metrics.clone());
    let task = tokio::spawn(async move {
        shutdown.cancelled().await;
        tracing::info!("shutting down");
        metrics2.up.set(0.0);
        // Writers finish the batch in hand (or give it back unacked).
        writers_stop.cancel();
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!("writers did not stop within the grace period");
        }
        if let Ok(Err(error)) = grpc_task.await {
            tracing::warn!(%error, "gRPC server ended with an error");
        }
        let _ = http_task.await;
        if let AnyProducer::Amqp(p) = &*producer {
            p.close().await;
        }
        db2.close().await;
        tracing::info!("stopped");
    });
    Ok(Running {
        grpc_addr,
        http_addr,
        db,
        ready,
        embedded,
        task,
    })
}
