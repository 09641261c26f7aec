//! confab-bench: load generators for Confab's services, one scenario per
//! subcommand, each printing a summary (throughput, p50/p99/max latency,
//! errors by kind) for humans or as one JSON document.
//!
//! Parts: `cli` (flags), `scenario/` (one file per scenario: its flags and its
//! load), `workers` (the bounded worker loop shared by scenarios), `stats`
//! (per-worker latency histograms and error tallies), `report` (the summary),
//! `wire` (the gateway's client protocol spoken directly, where the bench's
//! own cost must stay small).
//! What does not belong here: client logic of the services (use their client
//! crates, e.g. confab-router-client, confab-client) and anything that needs
//! a mock server.

pub mod cli;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod wire;
pub mod workers;

use crate::cli::{Cli, Scenario};

/// Runs the chosen scenario and returns what to print on stdout.
pub async fn run(cli: Cli) -> anyhow::Result<String> {
    let summary = match &cli.scenario {
        Scenario::Router(args) => scenario::router::run(args).await?,
        Scenario::Failover(args) => scenario::failover::run(args).await?,
        Scenario::Catchup(args) => scenario::catchup::run(args).await?,
        Scenario::Connections(args) if args.worker => {
            // A worker of another confab-bench: it speaks on stdout itself.
            scenario::connections::worker(args).await?;
            return Ok(String::new());
        }
        Scenario::Connections(args) => scenario::connections::run(args).await?,
        Scenario::Chat(args) if args.sweep.sweep => scenario::chat::sweep::run(args).await?,
        Scenario::Chat(args) => scenario::chat::run(args).await?,
        Scenario::Group(args) => scenario::group::run(args).await?,
        Scenario::Presence(args) => scenario::presence::run(args).await?,
        // A receiver, not a load: it prints its own counts.
        Scenario::OtlpSink(args) => return scenario::otlp_sink::run(args).await,
    };
    let out = if cli.json {
        let mut doc = serde_json::to_string_pretty(&summary)?;
        doc.push('\n');
        doc
    } else {
        summary.render_text()
    };
    if let Some(failed) = summary.mostly_failed() {
        // The summary still shows what failed and how.
        print!("{out}");
        let kinds: Vec<String> = summary.errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
        anyhow::bail!(
            "most operations failed: {failed} failed, {} succeeded ({})",
            summary.ops,
            kinds.join(" ")
        );
    }
    Ok(out)
}
