//! The command line of confab-bench: one subcommand per scenario.

use clap::{Parser, Subcommand};

use crate::scenario::failover::FailoverArgs;
use crate::scenario::router::RouterArgs;

/// Load generator for Confab.
#[derive(Debug, Parser)]
#[command(name = "confab-bench", version, about)]
pub struct Cli {
    /// Print the summary as one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// The router's online-state table: logins/logouts and batch lookups.
    Router(RouterArgs),
    /// SIGKILL shard leaders one after another; time until writes to that
    /// shard succeed again.
    Failover(FailoverArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::router::Mix;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_router_flags() {
        let cli = Cli::try_parse_from([
            "confab-bench",
            "router",
            "--router",
            "a:1,b:2",
            "--router",
            "c:3",
            "--mix",
            "both",
            "--duration",
            "2",
            "--json",
        ])
        .expect("parse");
        assert!(cli.json);
        let Scenario::Router(args) = cli.scenario else {
            panic!("router scenario expected");
        };
        assert_eq!(args.router, vec!["a:1", "b:2", "c:3"]);
        assert_eq!(args.mix, Mix::Both);
        assert_eq!(
            (args.duration, args.concurrency, args.users, args.batch),
            (2.0, 64, 100_000, 100)
        );
    }
}
