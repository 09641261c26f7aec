//! Benchmark scenarios, one file each.
//!
//! A scenario is a clap `Args` struct (its flags) and an
//! `async fn run(&Args) -> anyhow::Result<Summary>` that drives load through
//! `crate::workers::run_workers` and summarizes it with `crate::report`.
//! To add one (persist, chat, group...): add `scenario/<name>.rs`, a variant
//! of `cli::Scenario`, and its arm in `crate::run`.

pub mod catchup;
pub mod chat;
pub mod connections;
pub mod failover;
pub mod group;
pub mod otlp_sink;
pub mod presence;
pub mod router;

use anyhow::Context;
use clap::Args;
use confab_router_client::{ClientConfig, RouterClient};

/// The flag of the scenarios that talk to the routers themselves (router,
/// failover, catchup): where the routers are.
#[derive(Debug, Clone, Args)]
pub struct RouterSeeds {
    /// Router gRPC address(es) (repeatable or comma-separated).
    #[arg(
        long,
        default_value = "127.0.0.1:7101",
        value_delimiter = ',',
        env = "CONFAB_ROUTER"
    )]
    pub router: Vec<String>,
    /// Mutual TLS to the routers: the cluster CA and an admin certificate
    /// from DIR (`ca.pem`, `admin.pem`, `admin.key`, as `make cluster-up`
    /// keeps them); plain gRPC when DIR does not hold them.
    #[arg(
        long,
        env = "CONFAB_TLS_DIR",
        default_value = ".cluster/tls",
        value_name = "DIR"
    )]
    pub tls_dir: std::path::PathBuf,
    /// Plain gRPC to the routers even if --tls-dir holds certificates.
    #[arg(long)]
    pub no_tls: bool,
}

impl RouterSeeds {
    /// A router client with `config` (and the admin certificate of
    /// --tls-dir, if any), started from these addresses.
    pub async fn connect(&self, mut config: ClientConfig) -> anyhow::Result<RouterClient> {
        if !self.no_tls {
            config.tls = confab_tls::ClientTls::admin_from_dir(&self.tls_dir)
                .with_context(|| format!("loading the admin certificate in {}", self.tls_dir.display()))?;
        }
        RouterClient::connect(self.router.clone(), config)
            .await
            .context("connecting to the routers")
    }
}

/// The flags of the scenarios whose users connect through gateways (chat,
/// group, presence): where they connect and who they are.
#[derive(Debug, Clone, Args)]
pub struct UserArgs {
    /// Gateway client addresses (repeatable or comma-separated); users are
    /// spread over them in turn.
    #[arg(
        long,
        default_value = "127.0.0.1:7201,127.0.0.1:7202",
        value_delimiter = ',',
        env = "CONFAB_GATEWAY"
    )]
    pub gateway: Vec<String>,
    /// Name prefix of the users (default: a fresh one per run).
    #[arg(long)]
    pub user_prefix: Option<String>,
    #[arg(long, default_value = "pw")]
    pub password: String,
    /// TLS to the gateways, trusting only the CA certificate(s) in FILE.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// TLS to the gateways, trusting the system's CA store.
    #[arg(long)]
    pub tls: bool,
}

impl UserArgs {
    /// TLS to the gateways (`--tls-ca`, `--tls`), or plain TCP (None).
    pub fn client_tls(&self) -> anyhow::Result<Option<confab_client::ClientTls>> {
        Ok(confab_client::ClientTls::from_flags(
            self.tls,
            self.tls_ca.as_deref(),
        )?)
    }

    /// At least one gateway.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.gateway.is_empty(), "--gateway: at least one address");
        Ok(())
    }

    /// `--user-prefix`, or `scenario` and a random suffix, so that runs
    /// against the same cluster never meet each other's users.
    pub fn prefix(&self, scenario: &str) -> String {
        self.user_prefix
            .clone()
            .unwrap_or_else(|| format!("{scenario}{:x}", rand::random::<u32>()))
    }
}
