//! `confab-chat`: parse the command line and run; exit status 1 with the
//! error on stderr, one line, when anything fails.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = confab_chat::Cli::parse();
    match confab_chat::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", confab_chat::error::report(&e));
            ExitCode::FAILURE
        }
    }
}
