//! The interactive console: `@user text` (or `/send user text`) sends,
//! incoming messages are printed as they arrive, `/help` lists commands.
//! Line-based (stdin lines); line editing and history are not done yet.

use confab_client::Event;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::oneshot::{login, show};

const HELP: &str = "commands:\n  @USER TEXT          send TEXT to USER\n  /send USER TEXT     the same\n  /history USER [N]   the last N messages with USER\n  /help               this text\n  /quit               leave";

pub async fn run(cli: &Cli) -> Result<()> {
    let mut c = login(cli).await?;
    eprintln!(
        "connected to {} as {}; /help for commands",
        cli.gateway,
        cli.user.as_deref().unwrap_or("?")
    );
    for m in c.sync().await? {
        show(cli, &c, &m);
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { return Ok(()) };
                if !command(cli, &mut c, line.trim()).await? {
                    return Ok(());
                }
            }
            ev = c.next_event() => match ev {
                Some(Event::Message(m)) => show(cli, &c, &m),
                Some(Event::Kicked(k)) => return Err(Error::Closed(format!(": kicked ({})", k.message))),
                Some(Event::Closed(e)) => {
                    return Err(Error::Closed(e.map(|e| format!(": {}", e.message)).unwrap_or_default()));
                }
                None => return Err(Error::Closed(String::new())),
            },
        }
    }
}

/// Runs one console line; false to quit.
async fn command(cli: &Cli, c: &mut confab_client::Client, line: &str) -> Result<bool> {
    let (head, rest) = line.split_once(' ').unwrap_or((line, ""));
    let result = match head {
        "" => Ok(()),
        "/quit" | "/exit" => return Ok(false),
        "/help" => {
            eprintln!("{HELP}");
            Ok(())
        }
        "/send" => match rest.split_once(' ') {
            Some((to, text)) => c.send_to_name(to, text, "").await.map(drop),
            None => {
                eprintln!("usage: /send USER TEXT");
                Ok(())
            }
        },
        "/history" => {
            let mut it = rest.split_whitespace();
            match it.next() {
                Some(user) => {
                    history(cli, c, user, it.next().and_then(|n| n.parse().ok()).unwrap_or(20)).await
                }
                None => {
                    eprintln!("usage: /history USER [N]");
                    Ok(())
                }
            }
        }
        h if h.starts_with('@') && h.len() > 1 => c.send_to_name(&h[1..], rest, "").await.map(drop),
        _ => {
            eprintln!("unknown command; /help lists them");
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
    }
    Ok(true)
}

async fn history(cli: &Cli, c: &confab_client::Client, user: &str, n: u32) -> confab_client::Result<()> {
    let other = c.lookup_user(user).await?;
    let me = c.uid();
    let conv = format!("d:{}:{}", me.min(other.user_id), me.max(other.user_id));
    let mut page = c.history(&conv, 0, n).await?;
    page.reverse();
    for m in &page {
        show(cli, c, m);
    }
    Ok(())
}
