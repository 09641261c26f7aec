//! The chat run's users: registered through the client library, then
//! logged in on raw connections that the load tasks speak on.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use confab_client::proto::ErrorCode;
use confab_client::{Client, ClientTls};
use futures::StreamExt;
use tokio::task::JoinSet;

use crate::wire;

/// Registers every name through its gateway (32 at a time); returns the uids
/// in the order of `names`.
pub(super) async fn register_all(
    gateways: &[String],
    names: &[(String, usize)],
    pw: &str,
    tls: Option<&ClientTls>,
) -> anyhow::Result<Vec<u64>> {
    let workers = 32.min(names.len());
    let mut set = JoinSet::new();
    for w in 0..workers {
        let gateway = gateways[w % gateways.len()].clone();
        let mine: Vec<(usize, String)> = (w..names.len())
            .step_by(workers)
            .map(|i| (i, names[i].0.clone()))
            .collect();
        let pw = pw.to_owned();
        let tls = tls.cloned();
        set.spawn(async move {
            let c = Client::connect_with(&gateway, tls.as_ref())
                .await
                .with_context(|| format!("connecting to {gateway}"))?;
            let mut out = Vec::with_capacity(mine.len());
            for (i, name) in mine {
                let id = match c.register(&name, &pw).await {
                    Ok(ok) => ok.user_id,
                    Err(e) if e.code() == Some(ErrorCode::NameTaken) => c.lookup_user(&name).await?.user_id,
                    Err(e) => bail!("registering {name}: {e}"),
                };
                out.push((i, id));
            }
            anyhow::Ok(out)
        });
    }
    let mut uids = vec![0; names.len()];
    while let Some(j) = set.join_next().await {
        for (i, id) in j.context("a registering task panicked")?? {
            uids[i] = id;
        }
    }
    Ok(uids)
}

/// Logs every user in on its gateway (64 at a time), in the order of
/// `names`; the connections then speak the protocol directly ([`wire`]).
pub(super) async fn login_all(
    gateways: &[String],
    names: &[(String, usize)],
    pw: &str,
    tls: Option<&ClientTls>,
) -> anyhow::Result<Vec<wire::Stream>> {
    let mut targets = Vec::with_capacity(gateways.len());
    for g in gateways {
        let addr: SocketAddr = tokio::net::lookup_host(g)
            .await
            .with_context(|| format!("resolving {g}"))?
            .next()
            .with_context(|| format!("{g} resolves to nothing"))?;
        targets.push(addr);
    }
    let logins = futures::stream::iter(names.iter().cloned().enumerate())
        .map(|(i, (name, gw))| {
            let target = targets[gw];
            let addr = &gateways[gw];
            async move {
                let mut s = wire::connect_stream(addr, target, tls)
                    .await
                    .with_context(|| format!("connecting to {target}"))?;
                wire::hello(&mut s).await?;
                wire::login(&mut s, &name, pw, "bench").await?;
                anyhow::Ok((i, s))
            }
        })
        .buffer_unordered(64);
    let mut all: Vec<(usize, wire::Stream)> = logins
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, c)| c).collect())
}
