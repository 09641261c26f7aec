//! `confab-chat`: parse the command line and run; exit status 1 with the
//! error on stderr when anything fails.

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = confab_chat::Cli::parse();
    confab_chat::run(cli).await?;
    Ok(())
}
