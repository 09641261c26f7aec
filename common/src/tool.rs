//! What a command-line tool's `main` shares (confabctl, confab-bench): run
//! the async work on a runtime, print its text, turn the outcome into the
//! exit status.

use std::fmt::Display;
use std::future::Future;
use std::io::Write;
use std::process::ExitCode;

/// Runs `work` on the runtime `builder` makes and writes its text to stdout;
/// an error (with its causes, `{:#}`) goes to stderr. Success only when the
/// work succeeded and its text was written.
pub fn run_to_stdout<F, E>(mut builder: tokio::runtime::Builder, work: F) -> ExitCode
where
    F: Future<Output = Result<String, E>>,
    E: Display,
{
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
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
