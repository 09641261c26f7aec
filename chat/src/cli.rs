//! The command line.

use clap::{Parser, Subcommand};

/// Confab's console client.
#[derive(Debug, Clone, Parser)]
#[command(name = "confab-chat", version, about)]
pub struct Cli {
    /// Gateway client address (TCP).
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:7201",
        env = "CONFAB_CHAT_GATEWAY"
    )]
    pub gateway: String,
    /// Log in as this user.
    #[arg(long, global = true, env = "CONFAB_CHAT_USER")]
    pub user: Option<String>,
    /// Password of --user.
    #[arg(long, global = true, env = "CONFAB_CHAT_PASSWORD")]
    pub password: Option<String>,
    /// Device id of this client (a second login from it replaces the first).
    #[arg(long, global = true, default_value = "confab-chat")]
    pub device: String,
    /// Print results as JSON (one document per result line).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_positionals_do_not_shadow_globals() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["confab-chat", "--user", "a", "--password", "p", "send", "b", "hi"])
            .expect("parse");
        assert_eq!(cli.user.as_deref(), Some("a"));
        assert!(matches!(cli.command, Some(Command::Send { ref to, .. }) if to == "b"));
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Create an account NAME with --password PW.
    Register { name: String },
    /// Check the credentials of --user and print the session.
    Login,
    /// Send TEXT to USER; succeeds once the message is durable.
    Send {
        #[arg(value_name = "USER")]
        to: String,
        text: String,
    },
    /// Sync, then print incoming messages as they arrive.
    Listen {
        /// Stop after this many messages.
        #[arg(long)]
        count: Option<usize>,
        /// Stop after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// The last messages with USER, oldest first.
    History {
        #[arg(value_name = "USER")]
        with: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}
