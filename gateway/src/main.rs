//! `confab-gateway`: parse the command line, load the configuration, start
//! logging, run until SIGINT/SIGTERM.

use std::path::PathBuf;

use clap::Parser;
use confab_common::config::set_from_flag;
use confab_common::listener::bind;
use confab_common::telemetry::{LogFormat, Service};
use confab_gateway::config::{ClientTlsConfig, DEFAULT_HANDSHAKE_TIMEOUT_MS};
use confab_gateway::{GatewayConfig, Listeners};
use confab_tls::TlsArgs;

// The services' allocator: glibc malloc was a twentieth of the machine's
// CPU under chat load (the router has used mimalloc from the start). The
// `system-allocator` feature leaves it out, for heap profilers that hook
// malloc (heaptrack).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Confab gateway: client connections (TCP and WebSocket), login, 1:1 chat.
#[derive(Parser, Debug)]
#[command(name = "confab-gateway", version, about)]
struct Cli {
    /// TOML configuration file (see etc/gateway.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration and exit (non-zero when invalid).
    #[arg(long)]
    check_config: bool,
    /// Gateway id, 1..=1023.
    #[arg(long)]
    id: Option<u64>,
    /// Client TCP address.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Public HTTP address: /healthz, /readyz, /ws, /v1/gateway.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Internal HTTP address: /metrics, /healthz, /readyz.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// TLS on the client ports: certificate chain (PEM); with --client-tls-key.
    #[arg(long, value_name = "FILE", requires = "client_tls_key")]
    client_tls_cert: Option<PathBuf>,
    /// TLS on the client ports: private key (PEM); with --client-tls-cert.
    #[arg(long, value_name = "FILE", requires = "client_tls_cert")]
    client_tls_key: Option<PathBuf>,
    /// Internal gRPC address (Deliver from other gateways).
    #[arg(long, value_name = "ADDR")]
    grpc: Option<String>,
    /// Router seeds: ADDR[,ADDR...].
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    router: Vec<String>,
    /// Persist processes: ADDR[,ADDR...] (data access goes to the first that
    /// is up).
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    persist: Vec<String>,
    #[command(flatten)]
    tls: TlsArgs,
    /// Log lines as text or json (overrides log_format and CONFAB_LOG_FORMAT).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

impl Cli {
    fn into_config(self) -> anyhow::Result<(GatewayConfig, bool)> {
        let mut c = GatewayConfig::load(self.config.as_deref())?;
        set_from_flag(&mut c.id, self.id);
        set_from_flag(&mut c.listen, self.listen);
        set_from_flag(&mut c.http, self.http);
        set_from_flag(&mut c.metrics, self.metrics);
        if let (Some(cert), Some(key)) = (self.client_tls_cert, self.client_tls_key) {
            let handshake_timeout_ms = c
                .client_tls
                .as_ref()
                .map_or(DEFAULT_HANDSHAKE_TIMEOUT_MS, |t| t.handshake_timeout_ms);
            c.client_tls = Some(ClientTlsConfig {
                cert,
                key,
                handshake_timeout_ms,
            });
        }
        set_from_flag(&mut c.grpc, self.grpc);
        if !self.router.is_empty() {
            c.routers = self.router;
        }
        if !self.persist.is_empty() {
            c.persist = self.persist;
        }
        self.tls.apply(&mut c.tls)?;
        c.log_format = LogFormat::choose(self.log_format, c.log_format).map_err(anyhow::Error::msg)?;
        c.validate()?;
        Ok((c, self.check_config))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, check) = Cli::parse().into_config()?;
    if check {
        return Ok(confab_common::config::print(&config)?);
    }
    let service = Service {
        name: "gateway",
        id: Some(config.id),
    };
    let traces = confab_common::telemetry::init_service(service, config.log_format, "info", &config.tracing)
        .map_err(anyhow::Error::msg)?;
    let open_files = confab_gateway::server::raise_open_files();
    tracing::info!(open_files, "open-file limit");
    let listeners = Listeners {
        client: bind(&config.listen, "client TCP").await?,
        http: bind(&config.http, "HTTP").await?,
        metrics: bind(&config.metrics, "metrics HTTP").await?,
        grpc: bind(&config.grpc, "gRPC").await?,
    };
    let shutdown = confab_common::shutdown::on_signal();
    let ran = confab_gateway::run(config, listeners, shutdown).await;
    confab_common::telemetry::flush(traces).await;
    ran?;
    Ok(())
}
