//! The one-shot subcommands of reads, typing and recalls: `read`,
//! `recall`, `typing`, and `sync` (the conversations with their read
//! marks and unread counts).

use confab_client::{Client, Peer};
use serde_json::json;

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::output::print;
use crate::session::login;

/// USER or --group GROUP as a [`Peer`].
fn peer(with: Option<String>, group: Option<u64>) -> Result<Peer> {
    match (with, group) {
        (None, Some(g)) => Ok(Peer::Group(g)),
        (Some(name), None) => Ok(Peer::Name(name)),
        _ => Err(Error::Usage("name USER or --group GROUP".into())),
    }
}

fn shown(p: &Peer) -> String {
    match p {
        Peer::Name(n) => n.clone(),
        Peer::Id(id) => format!("user {id}"),
        Peer::Group(g) => format!("group {g}"),
    }
}

pub async fn run(cli: &Cli, cmd: Command) -> Result<()> {
    let mut c = login(cli).await?;
    match cmd {
        Command::Read { with, group, seq } => {
            let p = peer(with, group)?;
            let r = c.mark_read(&p, seq).await?;
            print(
                cli,
                json!({"conversation_id": r.conversation_id, "reader": r.reader, "read_seq": r.read_seq}),
                || format!("read {} up to {}", shown(&p), r.read_seq),
            );
        }
        Command::Recall { message_id } => {
            let r = c.recall(message_id).await?;
            print(
                cli,
                json!({
                    "conversation_id": r.conversation_id, "message_id": r.message_id, "by": r.by,
                    "seq": r.seq, "entry_id": r.entry_id, "recalled_at_ms": r.recalled_at_ms,
                }),
                || format!("recalled message {} of {}", r.message_id, r.conversation_id),
            );
        }
        Command::Typing { with, group } => {
            let p = peer(with, group)?;
            c.typing(&p).await?;
            print(cli, json!({"typing": true, "to": shown(&p)}), || {
                format!("told {} I am typing", shown(&p))
            });
        }
        Command::Sync => sync(cli, &c).await?,
        other => return Err(Error::Usage(format!("not a read command: {other:?}"))),
    }
    Ok(())
}

async fn sync(cli: &Cli, c: &Client) -> Result<()> {
    let mut list = c.conversations().await?;
    list.sort_by(|a, b| a.conversation_id.cmp(&b.conversation_id));
    for s in &list {
        print(
            cli,
            json!({
                "conversation_id": s.conversation_id, "seq": s.seq, "last_message_id": s.last_message_id,
                "read_seq": s.read_seq, "unread_count": s.unread_count, "peer_read_seq": s.peer_read_seq,
            }),
            || {
                let peer = if s.conversation_id.starts_with("d:") {
                    format!(", read by the other up to {}", s.peer_read_seq)
                } else {
                    String::new()
                };
                format!(
                    "[{}] {} messages, {} unread (read up to {}{peer})",
                    s.conversation_id, s.seq, s.unread_count, s.read_seq
                )
            },
        );
    }
    Ok(())
}
