//! The `confab-bench` binary: parses the command line, runs the scenario on a
//! multi-thread runtime and prints the summary.

use std::process::ExitCode;

use clap::Parser;
use confab_bench::cli::Cli;
use mimalloc::MiMalloc;

// The services' allocator, so the load generator takes as little of the
// machine's CPU as it can.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    confab_common::tool::run_to_stdout(
        tokio::runtime::Builder::new_multi_thread(),
        confab_bench::run(cli),
    )
}
