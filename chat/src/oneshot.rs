//! One-shot subcommands for scripts: exit status 0 only on success, errors
//! on stderr, results on stdout (JSON with --json). Register, login and
//! listen are here; every other verb runs through [`crate::verbs`], as in
//! the console.

use std::time::Duration;

use confab_client::Event;
use serde_json::json;

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::names::Names;
use crate::output::Output;
use crate::session::login;

pub async fn run(cli: &Cli, cmd: Command) -> Result<()> {
    let mut out = Output::stdout(cli.json);
    let mut names = Names::default();
    match cmd {
        Command::Register { name } => {
            let Some(new_password) = &cli.password else {
                return Err(Error::Usage("register needs --password PW".into()));
            };
            let c = cli.connect().await?;
            let ok = c.register(&name, new_password).await?;
            out.result(json!({"user_id": ok.user_id, "name": ok.name}), || {
                format!("registered {} (id {})", ok.name, ok.user_id)
            });
        }
        Command::Login => {
            let c = login(cli).await?;
            let me = c.me.clone().unwrap_or_default();
            out.result(
                json!({"user_id": me.user_id, "name": me.name, "token": me.token, "session_id": me.session_id}),
                || format!("logged in as {} (id {})", me.name, me.user_id),
            );
        }
        Command::Listen { count, timeout } => listen(cli, &mut out, &mut names, count, timeout).await?,
        cmd => {
            let mut c = login(cli).await?;
            crate::verbs::run(&mut c, &mut names, &mut out, cmd).await?;
        }
    }
    Ok(())
}

/// Syncs, then prints messages and recalls as they arrive; stops after
/// `count` of them (those found by the sync count too) or `timeout`
/// seconds.
async fn listen(
    cli: &Cli,
    out: &mut Output,
    names: &mut Names,
    count: Option<usize>,
    timeout: Option<u64>,
) -> Result<()> {
    let mut c = login(cli).await?;
    let more = |n: usize| count.is_none_or(|max| n < max);
    let mut n = 0usize;
    for m in c.sync().await? {
        if !more(n) {
            return Ok(());
        }
        out.message(&c, names, &m).await;
        n += 1;
    }
    let deadline = timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    while more(n) {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, c.next_event()).await {
                Ok(e) => e,
                Err(_) => break,
            },
            None => c.next_event().await,
        };
        match next {
            Some(Event::Message(m)) => {
                out.message(&c, names, &m).await;
                n += 1;
            }
            Some(Event::Recalled(r)) => {
                out.recall(&c, names, &r).await;
                n += 1;
            }
            // Already shown; only its id changed.
            Some(Event::Replaced { .. }) => {}
            Some(Event::Kicked(k)) => return Err(Error::Closed(format!(": kicked ({})", k.message))),
            Some(Event::Closed(e)) => {
                return Err(Error::Closed(
                    e.map(|e| format!(": {}", e.message)).unwrap_or_default(),
                ));
            }
            None => return Err(Error::Closed(String::new())),
        }
    }
    Ok(())
}
