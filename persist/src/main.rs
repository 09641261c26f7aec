//! `confab-persist`: parse the command line, load the configuration, start
//! logging, run until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use confab_common::config::set_from_flag;
use confab_common::telemetry::{LogFormat, Service};
use confab_persist::Config;
use confab_tls::TlsArgs;
use mimalloc::MiMalloc;

// The services' allocator: glibc malloc was a twentieth of the machine's
// CPU under chat load (the router has used mimalloc from the start).
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Confab's data-access service and asynchronous message writer.
#[derive(Parser, Debug)]
#[command(name = "confab-persist", version, about)]
struct Cli {
    /// TOML configuration file (see etc/persist.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate the configuration, print it, and exit.
    #[arg(long)]
    check_config: bool,
    /// gRPC listen address (overrides server.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// HTTP address for /metrics, /healthz, /readyz (overrides server.http).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Data directory: SQLite file and embedded queue (overrides server.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Routers to announce this process to for service discovery,
    /// comma-separated (overrides server.routers).
    #[arg(long, value_name = "ADDRS", value_delimiter = ',')]
    router: Vec<String>,
    #[command(flatten)]
    tls: TlsArgs,
    /// Log lines as text or json (overrides server.log_format and
    /// CONFAB_LOG_FORMAT).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    set_from_flag(&mut config.server.listen, cli.listen);
    set_from_flag(&mut config.server.http, cli.http);
    set_from_flag(&mut config.server.data_dir, cli.data_dir);
    if !cli.router.is_empty() {
        config.server.routers = cli.router;
    }
    cli.tls.apply(&mut config.tls)?;
    config.server.log_format =
        LogFormat::choose(cli.log_format, config.server.log_format).map_err(anyhow::Error::msg)?;
    config.validate().context("checking configuration")?;
    if cli.check_config {
        return Ok(confab_common::config::print(&config)?);
    }
    let service = Service {
        name: "persist",
        id: Some(config.server.id),
    };
    let traces = confab_common::telemetry::init_service(
        service,
        config.server.log_format,
        "info,sqlx=warn,lapin=warn",
        &config.tracing,
    )
    .map_err(anyhow::Error::msg)?;
    let shutdown = confab_common::shutdown::on_signal();
    let running = confab_persist::start(config, shutdown.clone()).await?;
    shutdown.cancelled().await;
    running.wait().await;
    confab_common::telemetry::flush(traces).await;
    Ok(())
}
