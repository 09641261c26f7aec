//! A session for a subcommand or the console: connect to --gateway and log
//! in with --user/--password.

use confab_client::{Client, DeviceKind};

use crate::cli::Cli;
use crate::error::{Error, Result};

/// Connects and logs in with --user/--password.
pub async fn login(cli: &Cli) -> Result<Client> {
    let (Some(user), Some(pw)) = (&cli.user, &cli.password) else {
        return Err(Error::Usage("this needs --user NAME --password PW".into()));
    };
    let mut c = cli.connect().await?;
    c.login(user, pw, &cli.device, DeviceKind::Desktop).await?;
    Ok(c)
}
