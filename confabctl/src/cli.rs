//! The command line of confabctl.

use clap::{Args, Parser, Subcommand};

/// Administer a Confab router cluster.
#[derive(Debug, Parser)]
#[command(name = "confabctl", version, about)]
pub struct Cli {
    /// Router gRPC address(es) to start from (host:port, comma-separated).
    #[arg(
        long,
        global = true,
        env = "CONFAB_ROUTER",
        default_value = "127.0.0.1:7101",
        value_delimiter = ','
    )]
    pub router: Vec<String>,
    /// Print one JSON document on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Overall deadline of each router operation (with `top`: of each HTTP
    /// request), in seconds.
    #[arg(long, global = true, default_value_t = 5.0)]
    pub timeout: f64,
    #[command(flatten)]
    pub tls: AdminTlsArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The admin certificate confabctl calls the routers with. Without flags,
/// `--tls-dir` (default `.cluster/tls`, the local cluster's) is used when it
/// holds `ca.pem`, `admin.pem` and `admin.key`; otherwise calls are plain.
#[derive(Debug, Clone, Args)]
pub struct AdminTlsArgs {
    /// Cluster CA certificate (PEM).
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Admin certificate (PEM, naming confab://admin).
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Admin private key (PEM).
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Where to find ca.pem, admin.pem and admin.key when no file flag is given.
    #[arg(
        long,
        global = true,
        env = "CONFAB_TLS_DIR",
        default_value = ".cluster/tls",
        value_name = "DIR"
    )]
    pub tls_dir: std::path::PathBuf,
    /// Call the routers in plain gRPC even if --tls-dir holds certificates
    /// (a cluster that runs without TLS).
    #[arg(long, global = true, conflicts_with_all = ["tls_ca", "tls_cert", "tls_key"])]
    pub no_tls: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Nodes, Raft groups (leader, term, indexes, replication lag) and shards.
    Status,
    /// Where a user lives: slot, shard, replicas, leader, epoch.
    Whereis {
        /// The user id.
        uid: u64,
    },
    /// Raft leadership.
    Leader {
        #[command(subcommand)]
        command: LeaderCommand,
    },
    /// Registered gateways and their leases.
    Gateways,
    /// Cluster membership: add, drain, remove router nodes.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
        /// How long a step may take (replicas catching up), in seconds.
        #[arg(long, default_value_t = 600.0)]
        move_timeout: f64,
    },
    /// Balance replicas across the nodes that are up (and leaderships).
    Rebalance {
        /// Print the plan without running it.
        #[arg(long)]
        dry_run: bool,
        /// How long the whole rebalance may take, in seconds.
        #[arg(long, default_value_t = 600.0)]
        move_timeout: f64,
    },
    /// Shard replicas.
    Shard {
        #[command(subcommand)]
        command: ShardCommand,
    },
    /// A live view of every process the routers know: leaderships,
    /// request rates and latencies, connections, the write queue. Read from
    /// a router's /sd and each process's /metrics (plain HTTP).
    Top(TopArgs),
    /// The cluster CA and the certificates of its processes.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// A router's HTTP address (host:port): its /sd lists every process
    /// and where its metrics are.
    #[arg(long, default_value = "127.0.0.1:9101", value_name = "ADDR")]
    pub http: String,
    /// Seconds between two samples; rates are over this interval. With
    /// --json, one sample is taken (two scrapes this far apart).
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    pub interval: f64,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a cluster CA: DIR/ca.pem and DIR/ca.key (kept if present).
    Init {
        /// Where the CA and the certificates live.
        #[arg(long, default_value = ".cluster/tls")]
        dir: std::path::PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: i64,
        /// Replace an existing CA (every certificate it issued stops
        /// being trusted by processes that load the new one).
        #[arg(long)]
        force: bool,
    },
    /// Issue a certificate from DIR's CA: DIR/NAME.pem and DIR/NAME.key.
    Issue {
        /// router, gateway, persist, admin; or `client-port` for a gateway's
        /// public client listener (no cluster identity).
        #[arg(long)]
        role: String,
        /// The router node id or the gateway id.
        #[arg(long)]
        id: Option<u64>,
        /// A DNS name or IP address the process is reached at (repeat).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// File name stem (default: ROLE or ROLE-ID).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = ".cluster/tls")]
        dir: std::path::PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Take a new node into the cluster (it runs with `--join`, or this
    /// adds it), then rebalance replicas and leaderships onto it.
    Add(NodeAddArgs),
    /// Move every replica and leadership off a node; it can then be removed.
    Drain {
        /// The node id.
        id: u64,
    },
    /// Take a drained node out of the cluster; its process can then stop.
    Remove {
        /// The node id.
        id: u64,
    },
}

#[derive(Debug, Args)]
pub struct NodeAddArgs {
    /// The new node's Raft id (never reuse the id of a node that lost its disk).
    #[arg(long)]
    pub id: u64,
    /// The new node's gRPC address.
    #[arg(long)]
    pub addr: String,
    /// Only join; do not rebalance.
    #[arg(long)]
    pub no_rebalance: bool,
}

#[derive(Debug, Subcommand)]
pub enum ShardCommand {
    /// Move a shard's replica to another node: the new replica catches up
    /// as a learner, becomes a voter, then the old one is removed. Safe to
    /// repeat; an interrupted move is finished by running it again.
    Move(MoveArgs),
}

#[derive(Debug, Args)]
pub struct MoveArgs {
    /// The shard whose replica moves.
    #[arg(long)]
    pub shard: u32,
    /// The node that gives its replica away.
    #[arg(long)]
    pub from: u64,
    /// The node that receives it.
    #[arg(long)]
    pub to: u64,
    /// How long the move may take (the new replica catching up), in seconds.
    #[arg(long, default_value_t = 300.0)]
    pub move_timeout: f64,
}

#[derive(Debug, Subcommand)]
pub enum LeaderCommand {
    /// Hand the leadership of a shard (or of the meta group) to another node.
    Transfer(TransferArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("group").required(true).args(["shard", "meta"])))]
pub struct TransferArgs {
    /// The shard (Raft group id) whose leadership moves.
    #[arg(long)]
    pub shard: Option<u32>,
    /// Move the leadership of the meta group (group 0) instead.
    #[arg(long)]
    pub meta: bool,
    /// The node id that should lead.
    #[arg(long)]
    pub to: u64,
    /// Return once requested, without waiting for the new leader to show.
    #[arg(long)]
    pub no_wait: bool,
}

impl TransferArgs {
    /// The Raft group id: 0 for the meta group.
    pub fn group_id(&self) -> u32 {
        if self.meta { 0 } else { self.shard.unwrap_or(0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_shard_move() {
        let cli = Cli::try_parse_from([
            "confabctl",
            "shard",
            "move",
            "--shard",
            "3",
            "--from",
            "1",
            "--to",
            "4",
        ])
        .expect("parse");
        let Command::Shard {
            command: ShardCommand::Move(args),
        } = cli.command
        else {
            panic!("not a move");
        };
        assert_eq!((args.shard, args.from, args.to), (3, 1, 4));
        assert!(Cli::try_parse_from(["confabctl", "shard", "move", "--shard", "3", "--to", "4"]).is_err());
    }

    #[test]
    fn parses_top() {
        let cli = Cli::try_parse_from(["confabctl", "top", "--json", "--interval", "0.5"]).expect("parse");
        assert!(cli.json);
        let Command::Top(args) = cli.command else {
            panic!("not top");
        };
        assert_eq!((args.http.as_str(), args.interval), ("127.0.0.1:9101", 0.5));
        let cli = Cli::try_parse_from(["confabctl", "top", "--http", "10.0.0.5:9101"]).expect("parse");
        assert!(
            matches!(cli.command, Command::Top(TopArgs { http, interval }) if http == "10.0.0.5:9101" && interval == 2.0)
        );
    }

    #[test]
    fn parses_transfer() {
        let cli = Cli::try_parse_from([
            "confabctl",
            "--router",
            "a:1,b:2",
            "leader",
            "transfer",
            "--shard",
            "3",
            "--to",
            "2",
            "--json",
        ])
        .expect("parse");
        assert_eq!(cli.router, vec!["a:1", "b:2"]);
        assert!(cli.json);
        let Command::Leader {
            command: LeaderCommand::Transfer(args),
        } = cli.command
        else {
            panic!("not a transfer");
        };
        assert_eq!((args.group_id(), args.to), (3, 2));
        let meta =
            Cli::try_parse_from(["confabctl", "leader", "transfer", "--meta", "--to", "1"]).expect("parse");
        assert!(matches!(
            meta.command,
            Command::Leader {
                command: LeaderCommand::Transfer(TransferArgs { meta: true, .. })
            }
        ));
        assert!(Cli::try_parse_from(["confabctl", "leader", "transfer", "--to", "1"]).is_err());
        assert!(
            Cli::try_parse_from([
                "confabctl",
                "leader",
                "transfer",
                "--meta",
                "--shard",
                "1",
                "--to",
                "1"
            ])
            .is_err()
        );
    }
}
