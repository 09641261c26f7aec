//! The `confabctl` binary: parses the command line and prints the result.

use std::process::ExitCode;

use clap::Parser;
use confabctl::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    confab_common::tool::run_to_stdout(tokio::runtime::Builder::new_current_thread(), confabctl::run(cli))
}
