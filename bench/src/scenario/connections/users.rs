//! The users of the connections that log in, registered before any
//! connection is opened.

use anyhow::Context;
use confab_client::proto::ErrorCode;
use tokio::time::Instant;

use super::args::{Checked, ConnectionsArgs, REGISTER, Share};
use crate::stats::Recorder;

/// How often one registration told to come back later is tried again.
const MAX_RETRIES: u32 = 20;

/// Registers the users of `share` that log in (PREFIX-i for its global
/// indexes i, each through the gateway its connection will use); a name
/// already taken is reused.
pub(super) async fn register_share(
    args: &ConnectionsArgs,
    checked: &Checked,
    share: Share,
    rec: &mut Recorder,
) -> anyhow::Result<()> {
    let n = checked.logins.min(share.count);
    if n == 0 {
        return Ok(());
    }
    let workers = args.concurrency.min(64).min(n);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (gateway, prefix, password) = (
            args.gateway[w % args.gateway.len()].clone(),
            args.user_prefix.clone(),
            args.password.clone(),
        );
        let first = share.first;
        let tls = checked.tls.clone();
        let mut r = Recorder::new(&[(REGISTER, false)])?;
        set.spawn(async move {
            let client = confab_client::Client::connect_with(&gateway, tls.as_ref()).await?;
            for k in (w..n).step_by(workers) {
                let i = first + k;
                let t = Instant::now();
                let mut tries = 0;
                loop {
                    match client.register(&format!("{prefix}-{i}"), &password).await {
                        Ok(_) => r.success(REGISTER, t.elapsed(), 1),
                        Err(e) if e.code() == Some(ErrorCode::NameTaken) => {}
                        // At capacity (hashing, rate): told when to come back.
                        Err(e) if tries < MAX_RETRIES && e.retry_after().is_some() => {
                            tries += 1;
                            tokio::time::sleep(e.retry_after().unwrap_or_default()).await;
                            continue;
                        }
                        Err(e) => {
                            r.failure(REGISTER, e.code().map_or("io".into(), |c| format!("{c:?}")));
                            anyhow::bail!("registering {prefix}-{i}: {e}");
                        }
                    }
                    break;
                }
            }
            anyhow::Ok(r)
        });
    }
    while let Some(joined) = set.join_next().await {
        rec.merge(joined.context("a registering task panicked")??)?;
    }
    eprintln!("{n} users ready in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
