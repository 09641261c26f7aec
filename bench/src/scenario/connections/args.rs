//! The run's parameters, checked, and what the processes holding
//! connections report to each other.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, ensure};
use clap::Args;
use confab_client::ClientTls;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Args)]
pub struct ConnectionsArgs {
    /// Gateway client addresses (TCP; repeatable or comma-separated):
    /// connection i goes to gateway i mod their number.
    #[arg(
        long,
        default_value = "127.0.0.1:7201",
        value_delimiter = ',',
        env = "CONFAB_GATEWAY"
    )]
    pub gateway: Vec<String>,
    /// Pids of the gateway processes, in the order of `--gateway`: their
    /// VmRSS is read before and after. Without them only the connections
    /// are reported.
    #[arg(long, value_delimiter = ',')]
    pub gateway_pid: Vec<u32>,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 50_000)]
    pub connections: usize,
    /// How many of them log in (users PREFIX-0.. are registered first,
    /// existing ones reused); the rest only shake hands. All by default.
    #[arg(long)]
    pub logins: Option<usize>,
    /// Name prefix of the users.
    #[arg(long, default_value = "idle")]
    pub user_prefix: String,
    #[arg(long, default_value = "pw")]
    pub password: String,
    /// Connections per source address (127.0.0.2, 127.0.0.3, ...).
    #[arg(long, default_value_t = 20_000)]
    pub per_source: usize,
    /// Most connections one bench process holds; more are spread over
    /// worker processes (one socket is one open file).
    #[arg(long, default_value_t = 19_000)]
    pub per_process: usize,
    /// Connections being opened (or users registered) at once, per process.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Seconds to hold every connection open before measuring.
    #[arg(long, default_value_t = 5.0)]
    pub hold: f64,
    /// Deadline of one connection's connect, handshake and login, seconds.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// TLS to the gateways, trusting only the CA certificate(s) in FILE.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// TLS to the gateways, trusting the system's CA store.
    #[arg(long)]
    pub tls: bool,
    /// Run as a worker of a parent bench: connections `--first` ..
    /// `--first + --connections` of the parent's run.
    #[arg(long, hide = true)]
    pub worker: bool,
    /// (Worker) the index of this worker's first connection.
    #[arg(long, hide = true, default_value_t = 0)]
    pub first: usize,
    /// (Worker) the last octet of this worker's first source address.
    #[arg(long, hide = true, default_value_t = 2)]
    pub source_first: u8,
}

pub(super) const OPEN: &str = "open";
pub(super) const REGISTER: &str = "register";

/// One process's share of the connections: global indexes
/// `first..first + count`, from source addresses 127.0.0.`source_first`...
#[derive(Debug, Clone, Copy)]
pub(super) struct Share {
    pub(super) first: usize,
    pub(super) count: usize,
    pub(super) source_first: u8,
}

/// What a process reports after opening its share.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Opened {
    pub(super) opened: u64,
    pub(super) failed: u64,
    pub(super) open_s: f64,
    /// Open latencies: (microseconds, count).
    pub(super) latency: Vec<(u64, u64)>,
    pub(super) errors: BTreeMap<String, u64>,
}

pub(super) struct Checked {
    pub(super) n: usize,
    pub(super) logins: usize,
    pub(super) targets: Vec<SocketAddr>,
    /// TLS to the gateways (`--tls-ca`, `--tls`), or plain TCP.
    pub(super) tls: Option<ClientTls>,
}

pub(super) async fn check_args(args: &ConnectionsArgs) -> anyhow::Result<Checked> {
    let n = args.connections;
    let logins = args.logins.unwrap_or(n).min(n);
    ensure!(n >= 1, "--connections must be at least 1");
    ensure!(!args.gateway.is_empty(), "--gateway: at least one address");
    ensure!(
        args.gateway_pid.is_empty() || args.gateway_pid.len() == args.gateway.len(),
        "--gateway-pid: one pid per --gateway address"
    );
    ensure!(args.per_source >= 1, "--per-source must be at least 1");
    ensure!(args.per_process >= 1, "--per-process must be at least 1");
    ensure!(
        (1..=10_000).contains(&args.concurrency),
        "--concurrency must be in 1..=10000"
    );
    ensure!(
        args.hold >= 0.0 && args.timeout > 0.0,
        "--hold and --timeout are seconds"
    );
    let mut targets = Vec::with_capacity(args.gateway.len());
    for g in &args.gateway {
        let addr = tokio::net::lookup_host(g)
            .await
            .with_context(|| format!("resolving {g}"))?
            .next()
            .with_context(|| format!("{g} resolves to nothing"))?;
        targets.push(addr);
    }
    let tls = ClientTls::from_flags(args.tls, args.tls_ca.as_deref())?;
    Ok(Checked {
        n,
        logins,
        targets,
        tls,
    })
}

pub(super) type Measured = (Vec<u64>, Vec<u64>, Vec<u64>, Vec<usize>, Opened);

/// How many of `share`'s connections log in.
pub(super) fn logins_in(checked: &Checked, share: Share) -> usize {
    checked.logins.saturating_sub(share.first).min(share.count)
}
