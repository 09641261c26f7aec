//! `confab-bench router`: load on the online-state table through
//! `RouterClient`: login+logout pairs of fresh sessions, batch lookups, or both.
//!
//! The table is populated first, as a real online table is: `--sessions`
//! sessions (default 1,000,000) on uids 1..=sessions, kept alive by the
//! bench gateway's lease for the whole run. Lookups ask random uids of
//! 1..=`--users` and the summary reports the hit ratio (sessions found /
//! uids asked); login+logout pairs keep the table at its size.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use clap::{Args, ValueEnum};
use confab_router_client::{ClientConfig, DeviceKind, MultiDevicePolicy, RouterClient, Session};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::time::Instant;

use super::RouterSeeds;
use crate::report::Summary;
use crate::stats::{Recorder, router_error_kind};
use crate::workers::{Window, run_workers};

/// What the workers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mix {
    /// Login a fresh session for a random uid, then log it out.
    Writes,
    /// Batch lookups of random uids.
    Lookups,
    /// Alternate a login/logout pair and a lookup.
    Both,
}

#[derive(Debug, Clone, Args)]
pub struct RouterArgs {
    #[command(flatten)]
    pub routers: RouterSeeds,
    /// Measured seconds (after warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Concurrent workers, each with one operation in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Size of the uid space lookups and logins draw from (uids 1..=N).
    #[arg(long, default_value_t = 1_000_000)]
    pub users: u64,
    /// Sessions logged in before the run (one on each of uids
    /// 1..=N) and kept for its length: the table lookups read. 0: none.
    #[arg(long, default_value_t = 1_000_000)]
    pub sessions: u64,
    #[arg(long, value_enum, default_value_t = Mix::Both)]
    pub mix: Mix,
    /// Uids per lookup.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Seconds of unrecorded load before measuring.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Gateway id the bench registers its sessions under (deregistered at the
    /// end, which purges them).
    #[arg(long, default_value_t = 60_000)]
    pub gateway_id: u64,
    /// Seed of the uid generator (random when absent).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Deadline of one router operation, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    /// Batch RPCs the client keeps outstanding per router node (operations
    /// started while all are busy travel together in the next one).
    #[arg(long)]
    pub batch_in_flight: Option<usize>,
}

const LOGIN: &str = "login";
const LOGOUT: &str = "logout";
const LOOKUP: &str = "lookup";

/// The largest run length accepted, in seconds.
const MAX_SECS: f64 = 24.0 * 3600.0;

fn secs(name: &str, value: f64, allow_zero: bool) -> anyhow::Result<Duration> {
    let lowest = if allow_zero { ">= 0" } else { "> 0" };
    ensure!(
        (0.0..=MAX_SECS).contains(&value) && (allow_zero || value > 0.0),
        "--{name} must be a number of seconds {lowest} and <= {MAX_SECS}"
    );
    Ok(Duration::from_secs_f64(value))
}

/// What every worker needs; cheap to clone.
#[derive(Debug, Clone)]
struct Plan {
    client: RouterClient,
    mix: Mix,
    users: u64,
    batch: usize,
    seed: Option<u64>,
    gateway: Option<(u64, u64)>,
    window: Window,
    /// Measured lookups: uids asked and uids found with a session.
    hits: Arc<(AtomicU64, AtomicU64)>,
}

pub async fn run(args: &RouterArgs) -> anyhow::Result<Summary> {
    let duration = secs("duration", args.duration, false)?;
    let warmup = secs("warmup", args.warmup, true)?;
    let deadline = secs("timeout", args.timeout, false)?;
    ensure!(
        (1..=100_000).contains(&args.concurrency),
        "--concurrency must be in 1..=100000"
    );
    ensure!(args.users >= 1, "--users must be at least 1");
    ensure!(
        args.sessions <= args.users && args.sessions <= 10_000_000,
        "--sessions must be at most --users and 10,000,000"
    );
    ensure!(
        (1..=100_000).contains(&args.batch),
        "--batch must be in 1..=100000"
    );
    let mut config = ClientConfig {
        deadline,
        ..ClientConfig::default()
    };
    if let Some(n) = args.batch_in_flight {
        ensure!(
            (1..=10_000).contains(&n),
            "--batch-in-flight must be in 1..=10000"
        );
        config.batch_in_flight = n;
    }
    let client = args.routers.connect(config).await?;
    // The bench gateway: its lease keeps the sessions (the populated ones
    // and those of the writes) in the table.
    let gateway = if args.mix == Mix::Lookups && args.sessions == 0 {
        None
    } else {
        let registered = client
            .register_gateway(args.gateway_id, "confab-bench")
            .await
            .context("registering the bench gateway")?;
        Some((args.gateway_id, registered.incarnation, registered.lease_ms))
    };
    let renew = gateway.map(|(id, incarnation, lease_ms)| {
        tokio::spawn(keep_lease(client.clone(), id, incarnation, lease_ms))
    });
    if let Some((id, incarnation, _)) = gateway
        && args.sessions > 0
    {
        populate(&client, (id, incarnation), args.sessions, args.concurrency).await?;
    }
    let plan = Plan {
        client: client.clone(),
        mix: args.mix,
        users: args.users,
        batch: args.batch,
        seed: args.seed,
        gateway: gateway.map(|(id, incarnation, _)| (id, incarnation)),
        window: Window::starting_now(warmup, duration),
        hits: Arc::default(),
    };
    let ops: &[(&'static str, bool)] = match args.mix {
        Mix::Writes => &[(LOGIN, false), (LOGOUT, false)],
        Mix::Lookups => &[(LOOKUP, true)],
        Mix::Both => &[(LOGIN, false), (LOGOUT, false), (LOOKUP, true)],
    };
    let grace = deadline * 2 + Duration::from_secs(1);
    let outcome = run_workers(
        args.concurrency,
        plan.window,
        grace,
        Recorder::new(ops)?,
        |i, rec| worker(plan.clone(), i, rec),
    )
    .await;
    if let Some(renew) = renew {
        renew.abort();
    }
    if let Some((id, incarnation, _)) = gateway
        && let Err(error) = client.deregister_gateway(id, incarnation).await
    {
        eprintln!("warning: deregistering bench gateway {id}: {error}");
    }
    let (recorder, elapsed) = outcome?;
    let settings = BTreeMap::from([
        ("mix".to_owned(), json!(format!("{:?}", args.mix).to_lowercase())),
        ("users".to_owned(), json!(args.users)),
        ("sessions".to_owned(), json!(args.sessions)),
        ("batch".to_owned(), json!(args.batch)),
        ("warmup_s".to_owned(), json!(args.warmup)),
        ("routers".to_owned(), json!(args.routers.router)),
    ]);
    let mut summary = Summary::build("router", settings, args.concurrency, &recorder, elapsed)?;
    let (asked, found) = (plan.hits.0.load(Relaxed), plan.hits.1.load(Relaxed));
    if asked > 0 {
        let ratio = found as f64 / asked as f64;
        summary.results.insert("hit_ratio".into(), json!(ratio));
        summary.results.insert("uids_asked".into(), json!(asked));
        summary.results.insert("uids_found".into(), json!(found));
    }
    Ok(summary)
}

/// Logs in one session on each of uids 1..=`n` (`concurrency` at a time),
/// under the bench gateway; fails when a login fails for good.
async fn populate(
    client: &RouterClient,
    (gateway_id, gateway_incarnation): (u64, u64),
    n: u64,
    concurrency: usize,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let started = Instant::now();
    let logins = futures::stream::iter(1..=n).map(|uid| {
        let session = Session {
            session_id: uid,
            gateway_id,
            gateway_incarnation,
            device_kind: DeviceKind::Bot as i32,
            device_id: "bench-table".into(),
            login_at_ms: 1,
        };
        async move {
            client
                .login(uid, session, MultiDevicePolicy::AllowAll)
                .await
                .with_context(|| format!("populating the table: login of uid {uid}"))
        }
    });
    let mut done = logins.buffer_unordered(concurrency.clamp(64, 4096));
    let mut count = 0u64;
    while let Some(r) = done.next().await {
        r?;
        count += 1;
        if count.is_multiple_of(200_000) {
            eprintln!("table: {count} of {n} sessions logged in");
        }
    }
    eprintln!(
        "table: {n} sessions logged in in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Renews the bench gateway's lease until aborted.
async fn keep_lease(client: RouterClient, id: u64, incarnation: u64, mut lease_ms: u64) {
    loop {
        let every =
            Duration::from_millis(lease_ms / 3).clamp(Duration::from_millis(100), Duration::from_secs(10));
        tokio::time::sleep(every).await;
        match client.renew_lease(id, incarnation).await {
            Ok(lease) => lease_ms = lease,
            Err(error) => eprintln!("warning: renewing bench gateway lease: {error}"),
        }
    }
}

async fn worker(plan: Plan, index: usize, mut rec: Recorder) -> Recorder {
    let mut rng = match plan.seed {
        Some(seed) => StdRng::seed_from_u64(seed.wrapping_add(index as u64)),
        None => StdRng::from_os_rng(),
    };
    let mut iteration = 0u64;
    while plan.window.open() {
        let write = match plan.mix {
            Mix::Writes => true,
            Mix::Lookups => false,
            Mix::Both => iteration.is_multiple_of(2),
        };
        iteration += 1;
        match plan.gateway {
            Some(gateway) if write => login_logout(&plan, gateway, index, &mut rng, &mut rec).await,
            _ => lookup(&plan, &mut rng, &mut rec).await,
        }
    }
    rec
}

async fn login_logout(
    plan: &Plan,
    (gateway_id, gateway_incarnation): (u64, u64),
    index: usize,
    rng: &mut StdRng,
    rec: &mut Recorder,
) {
    let uid = rng.random_range(1..=plan.users);
    let login_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let session = Session {
        session_id: rng.random::<u64>().max(1),
        gateway_id,
        gateway_incarnation,
        device_kind: DeviceKind::Bot as i32,
        device_id: format!("bench-{index}"),
        login_at_ms,
    };
    let session_id = session.session_id;
    let started = Instant::now();
    let login = plan.client.login(uid, session, MultiDevicePolicy::AllowAll).await;
    let measured = plan.window.measured(started);
    match login {
        Ok(_) if measured => rec.success(LOGIN, started.elapsed(), 1),
        Ok(_) => {}
        Err(error) => {
            if measured {
                rec.failure(LOGIN, router_error_kind(&error));
            }
            return;
        }
    }
    let started = Instant::now();
    let logout = plan.client.logout(uid, session_id).await;
    if plan.window.measured(started) {
        match logout {
            Ok(_) => rec.success(LOGOUT, started.elapsed(), 1),
            Err(error) => rec.failure(LOGOUT, router_error_kind(&error)),
        }
    }
}

async fn lookup(plan: &Plan, rng: &mut StdRng, rec: &mut Recorder) {
    let uids: Vec<u64> = (0..plan.batch)
        .map(|_| rng.random_range(1..=plan.users))
        .collect();
    let started = Instant::now();
    let result = plan.client.lookup(&uids).await;
    if plan.window.measured(started) {
        match result {
            Ok(found) => {
                rec.success(LOOKUP, started.elapsed(), uids.len() as u64);
                let hits = uids
                    .iter()
                    .filter(|u| found.get(u).is_some_and(|s| !s.is_empty()))
                    .count() as u64;
                plan.hits.0.fetch_add(uids.len() as u64, Relaxed);
                plan.hits.1.fetch_add(hits, Relaxed);
            }
            Err(error) => rec.failure(LOOKUP, router_error_kind(&error)),
        }
    }
}
