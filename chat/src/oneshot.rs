//! One-shot subcommands for scripts: exit status 0 only on success, errors
//! on stderr, results on stdout (JSON with --json).

use std::time::Duration;

use confab_client::{Client, Event};
use serde_json::json;

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::output::{print, show, show_recall};
use crate::session::login;

pub async fn run(cli: &Cli, cmd: Command) -> Result<()> {
    match cmd {
        Command::Register { name } => {
            let Some(new_password) = &cli.password else {
                return Err(Error::Usage("register needs --password PW".into()));
            };
            let c = cli.connect().await?;
            let ok = c.register(&name, new_password).await?;
            print(cli, json!({"user_id": ok.user_id, "name": ok.name}), || {
                format!("registered {} (id {})", ok.name, ok.user_id)
            });
        }
        Command::Login => {
            let c = login(cli).await?;
            let me = c.me.clone().unwrap_or_default();
            print(
                cli,
                json!({"user_id": me.user_id, "name": me.name, "token": me.token, "session_id": me.session_id}),
                || format!("logged in as {} (id {})", me.name, me.user_id),
            );
        }
        Command::Send { to, text } => {
            let mut c = login(cli).await?;
            let ack = c.send_to_name(&to, &text, "").await?;
            print(
                cli,
                json!({"message_id": ack.message_id, "conversation_id": ack.conversation_id, "to_user": ack.to_user}),
                || format!("sent (message {})", ack.message_id),
            );
        }
        Command::Listen { count, timeout } => {
            let mut c = login(cli).await?;
            let mut n = 0usize;
            for m in c.sync().await? {
                show(cli, &c, &m);
                n += 1;
            }
            let deadline = timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
            while count.is_none_or(|max| n < max) {
                let next = match deadline {
                    Some(d) => match tokio::time::timeout_at(d, c.next_event()).await {
                        Ok(e) => e,
                        Err(_) => break,
                    },
                    None => c.next_event().await,
                };
                match next {
                    Some(Event::Message(m)) => {
                        show(cli, &c, &m);
                        n += 1;
                    }
                    Some(Event::Recalled(r)) => {
                        show_recall(cli, &r);
                        n += 1;
                    }
                    Some(Event::Kicked(k)) => return Err(Error::Closed(format!(": kicked ({})", k.message))),
                    Some(Event::Closed(e)) => {
                        return Err(Error::Closed(
                            e.map(|e| format!(": {}", e.message)).unwrap_or_default(),
                        ));
                    }
                    None => return Err(Error::Closed(String::new())),
                }
            }
        }
        Command::History { with, group, limit } => {
            let c = login(cli).await?;
            let conv = match (with, group) {
                (_, Some(g)) => format!("g:{g}"),
                (Some(with), None) => {
                    let other = c.lookup_user(&with).await?;
                    let me = c.uid();
                    format!("d:{}:{}", me.min(other.user_id), me.max(other.user_id))
                }
                (None, None) => return Err(Error::Usage("history needs USER or --group GROUP".into())),
            };
            history(cli, &c, &conv, limit).await?;
        }
        Command::GroupHistory { group, limit } => {
            let c = login(cli).await?;
            history(cli, &c, &format!("g:{group}"), limit).await?;
        }
        cmd @ (Command::Read { .. } | Command::Recall { .. } | Command::Typing { .. } | Command::Sync) => {
            crate::reads::run(cli, cmd).await?
        }
        other => crate::social::run(cli, other).await?,
    }
    Ok(())
}

async fn history(cli: &Cli, c: &Client, conv: &str, limit: u32) -> Result<()> {
    let mut page = c.history(conv, 0, limit).await?;
    page.reverse();
    for m in &page {
        show(cli, c, m);
    }
    Ok(())
}
