//! confabctl: the admin command line of a Confab router cluster.
//!
//! Each subcommand is one module (`status`, `whereis`, `leader`, `gateways`,
//! `shard`, `certs`, `top`) with three parts: `run` talks to the cluster through
//! `confab_router_client::RouterClient`, `build` turns the answers into a
//! serde report struct (JSON output), `render_text` turns the report into
//! tables for humans. `build` and `render_text` are pure and unit-tested on
//! sample data. `top` is the exception in what it talks to: its `sample`
//! (`--json`) and `watch` read the processes' HTTP ports (a router's `/sd`,
//! every process's `/metrics`), not the gRPC API. What does not belong
//! here: routing logic (router-client) and serde derives on wire types
//! (reports are our own structs).

pub mod certs;
pub mod cli;
pub mod gateways;
pub mod leader;
pub mod report;
pub mod shard;
pub mod status;
pub mod table;
pub mod top;
pub mod whereis;

use std::time::Duration;

use anyhow::Context;
use confab_router_client::{ClientConfig, RouterClient};
use serde::Serialize;

use crate::cli::{Cli, Command, LeaderCommand, NodeCommand, ShardCommand};

/// Runs the command and returns what to print on stdout.
pub async fn run(cli: Cli) -> anyhow::Result<String> {
    if let Command::Certs { command } = &cli.command {
        return output(cli.json, &certs::run(command)?, certs::render);
    }
    let timeout = Duration::try_from_secs_f64(cli.timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--timeout must be a positive number of seconds")?;
    if let Command::Top(args) = &cli.command {
        return if cli.json {
            output(true, &top::sample(args, timeout).await?, top::render_text)
        } else {
            top::watch(args, timeout).await
        };
    }
    let tls = certs::admin_tls(&cli.tls)?;
    let config = ClientConfig {
        deadline: timeout,
        tls: tls.clone(),
        ..ClientConfig::default()
    };
    let client = RouterClient::new(cli.router.clone(), config)?;
    let json = cli.json;
    match &cli.command {
        Command::Status => output(json, &status::run(&client).await?, status::render_text),
        Command::Whereis { uid } => output(json, &whereis::run(&client, *uid).await?, whereis::render_text),
        Command::Leader {
            command: LeaderCommand::Transfer(args),
        } => output(json, &leader::run(&client, args).await?, leader::render_text),
        Command::Gateways => output(json, &gateways::run(&client).await?, gateways::render_text),
        Command::Shard {
            command: ShardCommand::Move(args),
        } => output(
            json,
            &shard::run_move(&cli.router, args, tls).await?,
            shard::render_move,
        ),
        Command::Rebalance {
            dry_run,
            move_timeout,
        } => {
            let client = shard::long_client(&cli.router, *move_timeout, tls)?;
            let report = shard::rebalance(&client, *dry_run).await?;
            output(json, &report, shard::render_plan)
        }
        Command::Node {
            command,
            move_timeout,
        } => {
            let client = shard::long_client(&cli.router, *move_timeout, tls)?;
            let report = match command {
                NodeCommand::Add(args) => shard::node_add(&client, args).await?,
                NodeCommand::Drain { id } => shard::node_drain(&client, *id).await?,
                NodeCommand::Remove { id } => shard::node_remove(&client, *id).await?,
            };
            output(json, &report, shard::render_plan)
        }
        Command::Certs { .. } | Command::Top(_) => unreachable!("answered above"),
    }
}

/// One JSON document (with a trailing newline) or the text rendering.
fn output<T: Serialize>(json: bool, report: &T, text: impl Fn(&T) -> String) -> anyhow::Result<String> {
    if json {
        let mut doc = serde_json::to_string_pretty(report)?;
        doc.push('\n');
        Ok(doc)
    } else {
        Ok(text(report))
    }
}
