//! The chat run's users: registered through the client library, then
//! logged in on raw connections that the load tasks speak on.

use std::net::SocketAddr;

use anyhow::{Context, bail, ensure};
use confab_client::proto::frame::Body;
use confab_client::proto::{self as pb, ErrorCode};
use confab_client::{Client, ClientTls};
use futures::{StreamExt, TryStreamExt};
use tokio::task::JoinSet;

use crate::wire;

/// How often one register or login is asked again when the gateway is busy.
const MAX_RETRIES: u32 = 20;

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
                let mut tries = 0;
                let id = loop {
                    match c.register(&name, &pw).await {
                        Ok(ok) => break ok.user_id,
                        Err(e) if e.code() == Some(ErrorCode::NameTaken) => {
                            break c.lookup_user(&name).await?.user_id;
                        }
                        // A busy gateway says when to try again.
                        Err(e) if tries < MAX_RETRIES && e.retry_after().is_some() => {
                            tokio::time::sleep(e.retry_after().unwrap_or_default()).await;
                            tries += 1;
                        }
                        Err(e) => bail!("registering {name}: {e}"),
                    }
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
            async move { anyhow::Ok((i, login_one(addr, target, &name, pw, tls).await?)) }
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

/// Connects to gateway `addr` (resolved to `target`) and logs `name` in.
async fn login_one(
    addr: &str,
    target: SocketAddr,
    name: &str,
    pw: &str,
    tls: Option<&ClientTls>,
) -> anyhow::Result<wire::Stream> {
    let mut s = wire::connect_stream(addr, target, tls)
        .await
        .with_context(|| format!("connecting to {target}"))?;
    wire::hello(&mut s).await?;
    // A busy gateway (password checks at their bound) says when to try again.
    let mut tries = 0;
    while let Err(e) = wire::login(&mut s, name, pw, "bench").await {
        match wire::retry_after(&e) {
            Some(wait) if tries < MAX_RETRIES => tokio::time::sleep(wait).await,
            _ => return Err(e),
        }
        tries += 1;
    }
    Ok(s)
}

/// How a user whose connection dropped (its gateway closed it, or died)
/// comes back, as the client library does: a new connection, to its own
/// gateway or else the next one that answers, and a new login.
pub(super) struct Relogin {
    gateways: Vec<(String, SocketAddr)>,
    tls: Option<ClientTls>,
    password: String,
}

/// How long a user keeps trying to come back.
const RELOGIN_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

impl Relogin {
    pub(super) async fn new(
        gateways: &[String],
        tls: Option<ClientTls>,
        password: &str,
    ) -> anyhow::Result<Self> {
        let mut resolved = Vec::with_capacity(gateways.len());
        for g in gateways {
            let addr = tokio::net::lookup_host(g)
                .await
                .with_context(|| format!("resolving {g}"))?
                .next()
                .with_context(|| format!("{g} resolves to nothing"))?;
            resolved.push((g.clone(), addr));
        }
        Ok(Self {
            gateways: resolved,
            tls,
            password: password.to_owned(),
        })
    }

    /// `name` logged in again: at gateway `first` or, when it does not
    /// answer, the next ones in turn, for up to [`RELOGIN_WITHIN`].
    pub(super) async fn login(&self, name: &str, first: usize) -> anyhow::Result<wire::Stream> {
        let deadline = tokio::time::Instant::now() + RELOGIN_WITHIN;
        let mut last = None;
        for attempt in 0.. {
            let (addr, target) = &self.gateways[(first + attempt) % self.gateways.len()];
            match login_one(addr, *target, name, &self.password, self.tls.as_ref()).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        Err(last
            .unwrap_or_else(|| anyhow::anyhow!("no gateway"))
            .context(format!("logging {name} in again")))
    }
}

/// Makes each pair of `clients` (sender, receiver, in the order of `uids`)
/// friends: both ask, and the second ask makes them friends. A gateway
/// refuses 1:1 messages between strangers unless `allow_strangers` is set,
/// which it is not by default. Pairs already friends (names taken by an
/// earlier run) stay so.
pub(super) async fn befriend_pairs(clients: &mut [wire::Stream], uids: &[u64]) -> anyhow::Result<()> {
    let asks = clients.chunks_mut(2).enumerate().map(|(pair, c)| {
        let (from, to) = (uids[2 * pair], uids[2 * pair + 1]);
        async move {
            let [s, r] = c else {
                bail!("pair {pair} has no receiver");
            };
            ask_friend(s, to)
                .await
                .with_context(|| format!("pair {pair}: the sender asks"))?;
            let friends = ask_friend(r, from)
                .await
                .with_context(|| format!("pair {pair}: the receiver asks"))?;
            ensure!(friends, "pair {pair}: not friends after both asked");
            Ok(())
        }
    });
    futures::stream::iter(asks)
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Asks `user` to be a friend; true when they are friends now.
async fn ask_friend(s: &mut wire::Stream, user: u64) -> anyhow::Result<bool> {
    let ask = Body::AddFriend(pb::AddFriendRequest {
        user: Some(pb::UserRef {
            user_id: user,
            name: String::new(),
        }),
        note: String::new(),
    });
    match wire::request(s, 3, ask).await {
        Ok(Body::AddFriendOk(r)) => Ok(r.became_friends),
        Ok(other) => bail!("expected AddFriendOk, got {other:?}"),
        Err(e)
            if e.downcast_ref::<wire::ServerError>()
                .is_some_and(|s| s.code == ErrorCode::AlreadyExists) =>
        {
            Ok(true)
        }
        Err(e) => Err(e),
    }
}
