//! The command line of confab-bench: one subcommand per scenario.

use clap::{Parser, Subcommand};

use crate::scenario::catchup::CatchupArgs;
use crate::scenario::chat::ChatArgs;
use crate::scenario::connections::ConnectionsArgs;
use crate::scenario::failover::FailoverArgs;
use crate::scenario::group::GroupArgs;
use crate::scenario::otlp_sink::OtlpSinkArgs;
use crate::scenario::presence::PresenceArgs;
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
    /// Fill one shard with N sessions, move a replica to another node, and
    /// time the new replica catching up (snapshot + log).
    Catchup(CatchupArgs),
    /// Idle connections held open on one gateway: its memory per connection.
    Connections(ConnectionsArgs),
    /// 1:1 chat through the gateways with persistence: throughput,
    /// send -> delivery latency, lost and duplicated messages.
    Chat(ChatArgs),
    /// Group fan-out: a group of M members all online over the gateways;
    /// deliveries/s and the time until the last member has each message.
    Group(GroupArgs),
    /// Friend lists with presence (one batch router lookup each): lists/s
    /// and latency for users with F friends.
    Presence(PresenceArgs),
    /// An OTLP trace receiver that counts spans (what tracing costs is
    /// measured with the services exporting to it).
    OtlpSink(OtlpSinkArgs),
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
        assert_eq!(args.routers.router, vec!["a:1", "b:2", "c:3"]);
        assert_eq!(args.mix, Mix::Both);
        // A realistic online table by default: a million sessions on a
        // million users.
        assert_eq!(
            (
                args.duration,
                args.concurrency,
                args.users,
                args.sessions,
                args.batch
            ),
            (2.0, 64, 1_000_000, 1_000_000, 100)
        );
    }

    #[test]
    fn parses_connections_and_chat_flags() {
        let cli = Cli::try_parse_from([
            "confab-bench",
            "connections",
            "--gateway-pid",
            "42",
            "--logins",
            "10",
        ])
        .expect("parse");
        let Scenario::Connections(args) = cli.scenario else {
            panic!("connections scenario expected");
        };
        assert_eq!(
            (args.gateway_pid, args.logins, args.connections),
            (vec![42], Some(10), 50_000)
        );
        let cli = Cli::try_parse_from(["confab-bench", "chat", "--gateway", "a:1,b:2", "--window", "4"])
            .expect("parse");
        let Scenario::Chat(args) = cli.scenario else {
            panic!("chat scenario expected");
        };
        assert_eq!(args.users.gateway, vec!["a:1", "b:2"]);
        assert_eq!((args.window, args.pairs), (4, 200));
    }
}
