//! `confab-router`: one router node (the meta group and its shard replicas).

use std::path::PathBuf;

use clap::Parser;
use confab_common::config::set_from_flag;
use confab_common::listener::bind;
use confab_common::telemetry::{LogFormat, Service};
use confab_router::RouterConfig;
use confab_router::config::parse_peers;
use confab_tls::TlsArgs;
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// A Confab router node: the online-state table, sharded and replicated by Raft.
#[derive(Parser, Debug)]
#[command(name = "confab-router", version)]
struct Cli {
    /// TOML config file (env CONFAB_<SECTION>__<KEY> and flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Raft node id of this router.
    #[arg(long)]
    id: Option<u64>,
    /// gRPC listen address.
    #[arg(long)]
    listen: Option<String>,
    /// HTTP address for /metrics, /healthz, /readyz.
    #[arg(long)]
    http: Option<String>,
    /// Directory for the node's RocksDB.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Create a new cluster from --peers (a no-op when the data dir has one).
    #[arg(long)]
    bootstrap: bool,
    /// Initial members: 1=ADDR,2=ADDR,3=ADDR.
    #[arg(long)]
    peers: Option<String>,
    /// Join the cluster a member of which listens at ADDR.
    #[arg(long)]
    join: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
    /// Log lines as text or json (overrides log_format and CONFAB_LOG_FORMAT).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Print the effective configuration and exit (non-zero when invalid).
    #[arg(long)]
    check_config: bool,
}

impl Cli {
    fn into_config(self) -> anyhow::Result<(RouterConfig, bool)> {
        let mut c = RouterConfig::load(self.config.as_deref())?;
        set_from_flag(&mut c.id, self.id);
        set_from_flag(&mut c.listen, self.listen);
        set_from_flag(&mut c.http, self.http);
        set_from_flag(&mut c.data_dir, self.data_dir);
        if self.bootstrap {
            c.bootstrap = true;
        }
        if let Some(p) = self.peers {
            c.peers = parse_peers(&p)?;
        }
        if self.join.is_some() {
            c.join = self.join;
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
        name: "router",
        id: Some(config.id),
    };
    let traces = confab_common::telemetry::init_service(service, config.log_format, "info", &config.tracing)
        .map_err(anyhow::Error::msg)?;
    let grpc = bind(&config.listen, "gRPC").await?;
    let http = bind(&config.http, "HTTP").await?;
    let shutdown = confab_common::shutdown::on_signal();
    let ran = confab_router::run(config, grpc, http, shutdown).await;
    confab_common::telemetry::flush(traces).await;
    ran
}
