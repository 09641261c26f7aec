//! The `confab-bench` binary: parses the command line, runs the scenario on a
//! multi-thread runtime and prints the summary.

use std::io::Write;
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
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(confab_bench::run(cli)) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
