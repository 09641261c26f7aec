//! confab-chat: the console client. With no subcommand an interactive
//! console ([`console`]); one-shot subcommands for scripts ([`oneshot`]).
//! Both run the same verbs ([`verbs`]: friends and groups in [`social`],
//! read marks, typing and recalls in [`reads`]), print text or, with
//! `--json`, one JSON document per result ([`output`]), show users and
//! groups by name ([`names`]), and log in through [`session`].
//!
//! What belongs here: presentation and the command line. Protocol, login
//! and sync logic live in confab-client.

pub mod cli;
pub mod console;
pub mod error;
pub mod names;
pub mod notices;
pub mod oneshot;
pub mod output;
pub mod reads;
pub mod session;
pub mod social;
pub mod verbs;

pub use cli::Cli;
pub use error::{Error, Result};

/// Runs what the command line asks for.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command.clone() {
        Some(cmd) => oneshot::run(&cli, cmd).await,
        None => console::run(&cli).await,
    }
}
