//! `confab-bench presence`: friend lists with presence.
//!
//! L listers, each with F friends out of a pool of P users of whom a share
//! is online (spread over the gateways). Every lister, logged in on the
//! gateways in turn, asks for its friend list with presence in a closed
//! loop; each answer is one cached friend list plus one batch router
//! lookup of the F friends. Reported: lists/s, friends/s, p50/p99/max of one
//! list, and whether every answer had F friends and the expected online
//! count.
//!
//! Setup (users, friendships, logins) is not measured; it is reported as
//! `setup_s`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, ensure};
use clap::Args;
use confab_client::Client;
use confab_client::proto::DeviceKind;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::json;
use tokio::time::Instant;

use super::UserArgs;
use super::group::{login, login_names, register_names};
use crate::report::Summary;
use crate::stats::Recorder;
use crate::workers::{Window, run_workers};

#[derive(Debug, Clone, Args)]
pub struct PresenceArgs {
    #[command(flatten)]
    pub users: UserArgs,
    /// Listers, each with one connection and one list in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Friends of each lister.
    #[arg(long, default_value_t = 100)]
    pub friends: usize,
    /// Users the friends are taken from.
    #[arg(long, default_value_t = 500)]
    pub pool: usize,
    /// Share of the pool that is online during the run.
    #[arg(long, default_value_t = 0.5)]
    pub online: f64,
    /// Measured seconds (after warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of unrecorded load before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Connections doing the setup at once.
    #[arg(long, default_value_t = 32)]
    pub setup_concurrency: usize,
}

const LIST: &str = "list";

/// Friends of lister `i`: F consecutive pool users from `i * F`, wrapping.
fn friends_of(i: usize, friends: usize, pool: usize) -> Vec<usize> {
    (0..friends).map(|j| (i * friends + j) % pool).collect()
}

pub async fn run(args: &PresenceArgs) -> anyhow::Result<Summary> {
    args.users.check()?;
    ensure!(
        (1..=10_000).contains(&args.concurrency),
        "--concurrency must be in 1..=10000"
    );
    ensure!(
        (1..=1000).contains(&args.friends),
        "--friends must be in 1..=1000"
    );
    ensure!(
        args.pool >= args.friends && args.pool <= 100_000,
        "--pool must be in friends..=100000"
    );
    ensure!((0.0..=1.0).contains(&args.online), "--online must be in 0..=1");
    ensure!(
        args.duration.is_finite() && args.duration > 0.0 && args.duration <= 3600.0,
        "--duration must be seconds in (0, 3600]"
    );
    ensure!(
        args.warmup.is_finite() && (0.0..=3600.0).contains(&args.warmup),
        "--warmup must be seconds in 0..=3600"
    );
    ensure!(
        (1..=1024).contains(&args.setup_concurrency),
        "--setup-concurrency must be in 1..=1024"
    );
    let _ = rlimit::increase_nofile_limit((args.concurrency + args.pool) as u64 * 2 + 1024);
    let setup_started = Instant::now();
    let prefix = args.users.prefix("pb");
    let listers: Vec<String> = (0..args.concurrency).map(|i| format!("{prefix}l{i}")).collect();
    let pool: Vec<String> = (0..args.pool).map(|i| format!("{prefix}f{i}")).collect();
    let all: Vec<String> = listers.iter().chain(pool.iter()).cloned().collect();
    let tls = args.users.client_tls()?;
    register_names(
        &args.users.gateway,
        tls.as_ref(),
        &all,
        &args.users.password,
        args.setup_concurrency,
    )
    .await?;

    // Listers log in (on the gateways in turn) and ask their friends.
    let clients = login_names(
        &args.users.gateway,
        tls.as_ref(),
        &listers,
        &args.users.password,
        args.setup_concurrency,
    )
    .await?;
    let asks = clients.iter().enumerate().map(|(i, c)| {
        let pool = &pool;
        async move {
            for f in friends_of(i, args.friends, args.pool) {
                c.add_friend(&pool[f], "")
                    .await
                    .with_context(|| format!("asking {}", pool[f]))?;
            }
            anyhow::Ok(())
        }
    });
    for r in futures::future::join_all(asks).await {
        r?;
    }
    // Pool users accept; the online share stays logged in.
    let online_count = (args.pool as f64 * args.online).round() as usize;
    let pool = Arc::new(pool);
    let chunk = args.pool.div_ceil(args.setup_concurrency).max(1);
    let mut tasks = FuturesUnordered::new();
    for start in (0..args.pool).step_by(chunk) {
        let pool = pool.clone();
        let gateways = args.users.gateway.clone();
        let pw = args.users.password.clone();
        let tls = tls.clone();
        tasks.push(tokio::spawn(async move {
            let mut kept = Vec::new();
            for i in start..(start + chunk).min(pool.len()) {
                let addr = &gateways[i % gateways.len()];
                let c = login(addr, tls.as_ref(), &pool[i], &pw, "bench", DeviceKind::Mobile).await?;
                let pending = c.friend_requests().await.context("listing requests")?;
                for r in pending.incoming {
                    let from = r.from.map(|u| u.name).unwrap_or_default();
                    c.accept_friend(&from)
                        .await
                        .with_context(|| format!("accepting {from}"))?;
                }
                if i < online_count {
                    kept.push(c);
                }
            }
            anyhow::Ok(kept)
        }));
    }
    let mut online_clients = Vec::new();
    while let Some(r) = tasks.next().await {
        online_clients.extend(r.context("a setup task panicked")??);
    }
    // Let the presence traffic of the logins settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let setup_s = setup_started.elapsed().as_secs_f64();

    let expected_online: Vec<usize> = (0..args.concurrency)
        .map(|i| {
            friends_of(i, args.friends, args.pool)
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|f| *f < online_count)
                .count()
        })
        .collect();
    let slots: Arc<Mutex<Vec<Option<Client>>>> =
        Arc::new(Mutex::new(clients.into_iter().map(Some).collect()));
    let window = Window::starting_now(
        Duration::from_secs_f64(args.warmup),
        Duration::from_secs_f64(args.duration),
    );
    let friends = args.friends;
    let expected_online = Arc::new(expected_online);
    let (rec, elapsed) = run_workers(
        args.concurrency,
        window,
        Duration::from_secs(10),
        Recorder::new(&[(LIST, true)])?,
        |i, mut rec| {
            let client = slots.lock().unwrap_or_else(|p| p.into_inner())[i].take();
            let expected_online = expected_online.clone();
            async move {
                let Some(c) = client else { return rec };
                while window.open() {
                    let started = Instant::now();
                    let r = c.friends().await;
                    if !window.measured(started) {
                        continue;
                    }
                    match r {
                        Ok(list) => {
                            let online = list.iter().filter(|f| f.online).count();
                            if list.len() != friends {
                                rec.failure(LIST, "wrong_friend_count".into());
                            } else if online != expected_online[i] {
                                rec.failure(LIST, "wrong_online_count".into());
                            } else {
                                rec.success(LIST, started.elapsed(), list.len() as u64);
                            }
                        }
                        Err(error) => rec.failure(
                            LIST,
                            error
                                .code()
                                .map_or_else(|| "client".to_owned(), |c| format!("{c:?}")),
                        ),
                    }
                }
                rec
            }
        },
    )
    .await?;
    drop(online_clients);
    let settings = BTreeMap::from([
        ("friends".to_owned(), json!(args.friends)),
        ("pool".to_owned(), json!(args.pool)),
        ("online".to_owned(), json!(args.online)),
        ("gateways".to_owned(), json!(args.users.gateway)),
    ]);
    let mut summary = Summary::build("presence", settings, args.concurrency, &rec, elapsed)?;
    let lists_per_s = summary.operations[LIST].ops_per_s;
    summary.results.insert("lists_per_s".into(), json!(lists_per_s));
    summary.results.insert("setup_s".into(), json!(setup_s));
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lister_gets_distinct_friends() {
        for i in 0..10 {
            let f: BTreeSet<usize> = friends_of(i, 100, 500).into_iter().collect();
            assert_eq!(f.len(), 100);
            assert!(f.iter().all(|x| *x < 500));
        }
    }
}
