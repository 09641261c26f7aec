//! Every verb a logged-in user runs, in one place for the one-shot
//! subcommands and the console: 1:1 send and history here, friends and
//! groups in [`crate::social`], reads, typing and recalls in
//! [`crate::reads`]. The caller logs in (or is logged in) and says where
//! the results go.

use confab_client::Client;
use serde_json::json;

use crate::cli::Command;
use crate::error::{Error, Result};
use crate::names::Names;
use crate::output::Output;

/// Runs `cmd` as `c`'s user, printing its results to `out`.
pub async fn run(c: &mut Client, names: &mut Names, out: &mut Output, cmd: Command) -> Result<()> {
    match cmd {
        Command::Send { to, text } => {
            let ack = c.send_to_name(&to, &text, "").await?;
            names.note_user(ack.to_user, &to);
            out.result(
                json!({"message_id": ack.message_id, "conversation_id": ack.conversation_id, "to_user": ack.to_user}),
                || format!("sent to {to} (message {})", ack.message_id),
            );
        }
        Command::History { with, group, limit } => {
            let conv = match (with, group) {
                (_, Some(g)) => format!("g:{}", names.group_id(c, &g).await?),
                (Some(with), None) => {
                    let other = c.lookup_user(&with).await?;
                    names.note_user(other.user_id, &other.name);
                    let me = c.uid();
                    format!("d:{}:{}", me.min(other.user_id), me.max(other.user_id))
                }
                (None, None) => return Err(Error::Usage("history needs USER or --group GROUP".into())),
            };
            history(c, names, out, &conv, limit).await?;
        }
        Command::GroupHistory { group, limit } => {
            let gid = names.group_id(c, &group).await?;
            history(c, names, out, &format!("g:{gid}"), limit).await?;
        }
        cmd @ (Command::Read { .. } | Command::Recall { .. } | Command::Typing { .. } | Command::Sync) => {
            crate::reads::run(c, names, out, cmd).await?
        }
        cmd @ (Command::Register { .. } | Command::Login | Command::Listen { .. }) => {
            return Err(Error::Usage(format!(
                "{} is not a verb of a logged-in session",
                verb_name(&cmd)
            )));
        }
        other => crate::social::run(c, names, out, other).await?,
    }
    Ok(())
}

fn verb_name(cmd: &Command) -> &'static str {
    match cmd {
        Command::Register { .. } => "register",
        Command::Login => "login",
        Command::Listen { .. } => "listen",
        _ => "this",
    }
}

/// The last `limit` messages of `conv`, oldest first, with names.
async fn history(c: &Client, names: &mut Names, out: &mut Output, conv: &str, limit: u32) -> Result<()> {
    let mut page = c.history(conv, 0, limit).await?;
    page.reverse();
    for m in &page {
        out.message(c, names, m).await;
    }
    Ok(())
}
