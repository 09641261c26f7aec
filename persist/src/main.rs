//! `confab-persist`: parse the command line, load the configuration, start
//! logging, run until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use confab_persist::Config;
use mimalloc::MiMalloc;
use tokio_util::sync::CancellationToken;

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    if let Some(a) = cli.listen {
        config.server.listen = a;
    }
    if let Some(a) = cli.http {
        config.server.http = a;
    }
    if let Some(d) = cli.data_dir {
        config.server.data_dir = d;
    }
    config.validate().context("checking configuration")?;
    if cli.check_config {
        println!(
            "{}",
            toml::to_string_pretty(&config).context("printing configuration")?
        );
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,lapin=warn".into()),
        )
        .init();
    let shutdown = CancellationToken::new();
    let running = confab_persist::start(config, shutdown.clone()).await?;
    wait_for_signal().await;
    shutdown.cancel();
    running.wait().await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
