//! confab-bench: load generators for Confab's services, one scenario per
//! subcommand, each printing a summary (throughput, p50/p99/max latency,
//! errors by kind) for humans or as one JSON document.
//!
//! Parts: `cli` (flags), `scenario/` (one file per scenario: its flags and its
//! load), `workers` (the bounded worker loop shared by scenarios), `stats`
//! (per-worker latency histograms and error tallies), `report` (the summary).
//! What does not belong here: client logic of the services (use their client
//! crates, e.g. confab-router-client) and anything that needs a mock server.

pub mod cli;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod workers;

use crate::cli::{Cli, Scenario};

/// Runs the chosen scenario and returns what to print on stdout.
pub async fn run(cli: Cli) -> anyhow::Result<String> {
    let summary = match &cli.scenario {
        Scenario::Router(args) => scenario::router::run(args).await?,
        Scenario::Failover(args) => scenario::failover::run(args).await?,
    };
    if cli.json {
        let mut doc = serde_json::to_string_pretty(&summary)?;
        doc.push('\n');
        Ok(doc)
    } else {
        Ok(summary.render_text())
    }
}
