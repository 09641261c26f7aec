//! A session for a subcommand or the console: connect to --gateway (or the
//! gateway --directory names) and log in with --user/--password.

use std::time::Duration;

use confab_client::proto::Message;
use confab_client::{Client, ClientTls, DeviceKind, Directory};

use crate::cli::Cli;
use crate::error::{Error, Result};

/// Connects and logs in with --user/--password.
pub async fn login(cli: &Cli) -> Result<Client> {
    Ok(login_at(cli).await?.0)
}

/// [`login`], and the address of the gateway it logged in at.
pub async fn login_at(cli: &Cli) -> Result<(Client, String)> {
    let (Some(user), Some(pw)) = (&cli.user, &cli.password) else {
        return Err(Error::Usage("this needs --user NAME --password PW".into()));
    };
    let (mut c, at) = cli.connect_at().await?;
    c.login(user, pw, &cli.device, DeviceKind::Desktop).await?;
    Ok((c, at))
}

/// After the gateway was lost: asks `directory` again, with growing pauses,
/// until a gateway takes the session back (`say` hears each failure).
/// Returns the new gateway's address, how many waiting sends went out, and
/// the messages missed meanwhile.
pub async fn rejoin(
    client: &mut Client,
    directory: &Directory,
    tls: Option<&ClientTls>,
    mut say: impl FnMut(String),
) -> (String, usize, Vec<Message>) {
    let mut pause = Duration::from_millis(250);
    loop {
        match client.reconnect_via(directory, tls).await {
            Ok((caught_up, pick)) => return (pick.addr, caught_up.acks.len(), caught_up.messages),
            Err(e) => say(format!("reconnecting failed ({e}); again in {pause:?}")),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(8));
    }
}
