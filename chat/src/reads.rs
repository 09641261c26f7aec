//! The verbs of reads, typing and recalls, for the one-shot subcommands
//! and the console alike: `read`, `recall`, `typing`, and `sync` (the
//! conversations with their read marks and unread counts).

use confab_client::{Client, Peer};
use serde_json::json;

use crate::cli::{Command, GroupRef};
use crate::error::{Error, Result};
use crate::names::Names;
use crate::output::Output;

/// USER or --group GROUP as a [`Peer`], and how to show it.
async fn peer(
    c: &Client,
    names: &mut Names,
    with: Option<String>,
    group: Option<GroupRef>,
) -> Result<(Peer, String)> {
    match (with, group) {
        (None, Some(g)) => {
            let gid = names.group_id(c, &g).await?;
            Ok((Peer::Group(gid), format!("#{}", names.group(c, gid).await)))
        }
        (Some(name), None) => Ok((Peer::Name(name.clone()), name)),
        _ => Err(Error::Usage("name USER or --group GROUP".into())),
    }
}

/// Runs a read, typing, recall or sync verb as `c`'s user.
pub async fn run(c: &mut Client, names: &mut Names, out: &mut Output, cmd: Command) -> Result<()> {
    match cmd {
        Command::Read { with, group, seq } => {
            let (p, shown) = peer(c, names, with, group).await?;
            let r = c.mark_read(&p, seq).await?;
            out.result(
                json!({"conversation_id": r.conversation_id, "reader": r.reader, "read_seq": r.read_seq}),
                || format!("read {shown} up to {}", r.read_seq),
            );
        }
        Command::Recall { message_id } => {
            let r = c.recall(message_id).await?;
            let place = names.conversation(c, &r.conversation_id).await;
            out.result(
                json!({
                    "conversation_id": r.conversation_id, "message_id": r.message_id, "by": r.by,
                    "seq": r.seq, "entry_id": r.entry_id, "recalled_at_ms": r.recalled_at_ms,
                    "conversation": place,
                }),
                || format!("recalled message {} (to {place})", r.message_id),
            );
        }
        Command::Typing { with, group } => {
            let (p, shown) = peer(c, names, with, group).await?;
            c.typing(&p).await?;
            out.result(json!({"typing": true, "to": shown}), || {
                format!("told {shown} I am typing")
            });
        }
        Command::Sync => sync(c, names, out).await?,
        other => return Err(Error::Usage(format!("not a read command: {other:?}"))),
    }
    Ok(())
}

async fn sync(c: &Client, names: &mut Names, out: &mut Output) -> Result<()> {
    let mut list = c.conversations().await?;
    list.sort_by(|a, b| a.conversation_id.cmp(&b.conversation_id));
    for s in &list {
        let with = names.conversation(c, &s.conversation_id).await;
        out.result(
            json!({
                "conversation_id": s.conversation_id, "seq": s.seq, "last_message_id": s.last_message_id,
                "read_seq": s.read_seq, "unread_count": s.unread_count, "peer_read_seq": s.peer_read_seq,
                "conversation": with,
            }),
            || {
                let peer = if s.conversation_id.starts_with("d:") {
                    format!(", read by {with} up to {}", s.peer_read_seq)
                } else {
                    String::new()
                };
                format!(
                    "[{with}] {} messages, {} unread (read up to {}{peer})",
                    s.seq, s.unread_count, s.read_seq
                )
            },
        );
    }
    Ok(())
}
