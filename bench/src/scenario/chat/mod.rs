//! `confab-bench chat`: 1:1 chat through the gateways with persistence on.
//!
//! P pairs of fresh users (registered, then logged in over the gateways in
//! turn; half the pairs have both ends on one gateway, half across two).
//! Each sender sends to its receiver, closed-loop with `--window` sends in
//! flight (pipelined on its one connection), or at `--rate` messages/s over
//! all senders (still at most `--window` in flight each); each receiver
//! records every message push by the sequence number its body carries.
//! After the run and a drain period, each conversation's newest stored
//! sequence is read back (waiting up to the drain period again for persist
//! to catch up), and what real time missed is read from persist. Reported:
//! sent, acknowledged, delivered (in real time, or only by the final
//! check), lost (acknowledged, never delivered), duplicated (a send shown
//! twice), stored; send -> ack and send -> delivery latencies.
//!
//! A connection that drops (the gateway closed it, or died) is counted and
//! replaced by a new login to the same gateway or the next that answers,
//! as the client library does; the final check reads what a receiver
//! missed meanwhile, as a sync would, so lost and duplicated stay true
//! under faults.
//!
//! The load side speaks the protocol directly ([`crate::wire`]): one task
//! per connection and no client state, so the bench takes as little of the
//! machine's CPU as it can.

mod body;
mod cpu;
mod plan;
mod receiver;
mod sender;
mod summary;
pub mod sweep;
mod users;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::report::Summary;
use crate::wire;
use crate::workers::Window;
pub use plan::{ChatArgs, SweepArgs};
use plan::{Plan, Tally, secs};
use receiver::{Received, Who, check, receive};
use sender::{Sent, send};
use summary::summarize;
use users::{Relogin, befriend_pairs, login_all, register_all};

/// One run at `args.rate` (the sweep is [`sweep::run`]).
pub async fn run(args: &ChatArgs) -> anyhow::Result<Summary> {
    let duration = secs("duration", args.duration, false)?;
    let warmup = secs("warmup", args.warmup, true)?;
    let drain = secs("drain", args.drain, true)?;
    args.users.check()?;
    ensure!((1..=20_000).contains(&args.pairs), "--pairs must be in 1..=20000");
    ensure!((1..=1000).contains(&args.window), "--window must be in 1..=1000");
    ensure!(
        (24..=4096).contains(&args.body_bytes),
        "--body-bytes must be in 24..=4096"
    );
    ensure!(args.rate.is_finite() && args.rate >= 0.0, "--rate must be >= 0");
    let prefix = args.users.prefix("chat");
    let g = args.users.gateway.len();
    let sender_gw = |i: usize| i % g;
    let receiver_gw = |i: usize| (i + 1 + i / g) % g;

    // Users: sender i is PREFIX-s-i, receiver i is PREFIX-r-i.
    let names: Vec<(String, usize)> = (0..args.pairs)
        .flat_map(|i| {
            [
                (format!("{prefix}-s-{i}"), sender_gw(i)),
                (format!("{prefix}-r-{i}"), receiver_gw(i)),
            ]
        })
        .collect();
    let started = Instant::now();
    let tls = args.users.client_tls()?;
    let uids = register_all(&args.users.gateway, &names, &args.users.password, tls.as_ref()).await?;
    let mut clients = login_all(&args.users.gateway, &names, &args.users.password, tls.as_ref()).await?;
    let relogin = Arc::new(Relogin::new(&args.users.gateway, tls.clone(), &args.users.password).await?);
    let who = |i: usize| Who {
        name: names[i].0.clone(),
        gateway: names[i].1,
        relogin: relogin.clone(),
    };
    befriend_pairs(&mut clients, &uids).await?;
    eprintln!(
        "{} users registered, logged in and paired as friends over {g} gateway(s) in {:.1}s",
        names.len(),
        started.elapsed().as_secs_f64()
    );

    let every = (args.rate > 0.0).then(|| Duration::from_secs_f64(args.pairs as f64 / args.rate));
    let plan = Arc::new(Plan {
        window: Window::starting_now(warmup, duration),
        epoch: Instant::now(),
        every,
        in_flight: args.window,
        body_bytes: args.body_bytes,
        tally: Tally::default(),
    });
    let cpu = (!args.cpu_pid.is_empty()).then(|| {
        tokio::spawn(cpu::over_window(
            args.cpu_pid.clone(),
            plan.window.measure_from,
            plan.window.end,
        ))
    });
    let stop = CancellationToken::new();
    let mut receivers = JoinSet::new();
    let mut senders = JoinSet::new();
    let mut clients = clients.into_iter();
    for pair in 0..args.pairs {
        let (Some(s), Some(r)) = (clients.next(), clients.next()) else {
            bail!("fewer clients than users");
        };
        let (from, to) = (uids[2 * pair], uids[2 * pair + 1]);
        receivers.spawn(receive(
            r,
            pair,
            from,
            who(2 * pair + 1),
            plan.clone(),
            stop.clone(),
        ));
        senders.spawn(send(s, pair, to, who(2 * pair), plan.clone()));
    }
    let mut sent = Vec::with_capacity(args.pairs);
    while let Some(j) = senders.join_next().await {
        sent.push(j.context("a sender panicked")??);
    }
    sent.sort_by_key(|s: &Sent| s.pair);
    let send_end = Instant::now();
    let deadline = send_end + drain;
    while Instant::now() < deadline
        && plan.tally.delivered.load(Ordering::Relaxed) < plan.tally.acked.load(Ordering::Relaxed)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = send_end.elapsed();
    stop.cancel();
    let mut ended = Vec::with_capacity(args.pairs);
    while let Some(j) = receivers.join_next().await {
        ended.push(j.context("a receiver panicked")??);
    }
    ended.sort_by_key(|(r, _): &(Received, Option<wire::Stream>)| r.pair);
    // What real time missed, and what persist stored (it may still be
    // writing: wait for it as long as the drain period allows).
    let check_deadline = Instant::now() + drain;
    let checks = ended.into_iter().map(|(r, s)| {
        let pair = r.pair;
        let acked = sent[pair].acked.len() as u64;
        let (from, me) = (uids[2 * pair], uids[2 * pair + 1]);
        let plan = plan.clone();
        let who = who(2 * pair + 1);
        async move { check(s, &who, r, (me, from), acked, &plan, check_deadline).await }
    });
    let received: Vec<Received> = futures::stream::iter(checks).buffer_unordered(64).collect().await;
    let stored_wait = send_end.elapsed().saturating_sub(drained);
    let measured = send_end.saturating_duration_since(plan.window.measure_from);
    let cpu_s = match cpu {
        Some(h) => Some(h.await.context("the CPU sampler panicked")??),
        None => None,
    };
    let times = summary::Times {
        measured,
        drained,
        stored_wait,
        cpu_s,
    };
    summarize(args, &prefix, sent, received, times)
}
