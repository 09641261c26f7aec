//! `confab-bench group`: fan-out of group messages.
//!
//! M members, all online, spread over the gateways in turn, in each of G
//! groups (`--groups`, default 1); each group's owner posts N messages, one
//! every `--interval-ms` after the previous one's ack (0: closed loop, as
//! fast as the acks come), the G owners at once. Every member records when
//! each message reached it (the real-time push). Reported: send -> ack
//! latency, the time until the LAST member has each message (p50/p99/max),
//! deliveries/s (first send to last delivery), and delivered / lost /
//! duplicated counts. With one group and a pause it measures the latency
//! of a lone message; with several groups and no pause, the deliveries/s
//! the cluster sustains and the last-member latency at that rate.
//!
//! Setup (fresh users, the group, join requests and the invitations that
//! approve them, logins) is not measured; it is reported as `setup_s`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use clap::Args;
use confab_client::proto::frame::Body;
use confab_client::proto::{self as pb, DeviceKind};
use confab_client::{Client, ClientTls, Push};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::UserArgs;
use crate::report::Summary;
use crate::stats::Recorder;

#[derive(Debug, Clone, Args)]
pub struct GroupArgs {
    #[command(flatten)]
    pub users: UserArgs,
    /// Members of the group besides the sender, all online.
    #[arg(long, default_value_t = 5000)]
    pub members: usize,
    /// Messages each group's sender posts.
    #[arg(long, default_value_t = 50)]
    pub messages: usize,
    /// Groups, each with every member and its own sender, sending at once.
    #[arg(long, default_value_t = 1)]
    pub groups: usize,
    /// Pause between one message's ack and the next send, milliseconds.
    #[arg(long, default_value_t = 100)]
    pub interval_ms: u64,
    /// Stop sending after this many seconds of sending (0: send every
    /// message): for a run of a set length, as in a soak. SIGTERM or
    /// Ctrl-C once sending started also stops it; either way the run
    /// waits for the deliveries and reports what was sent.
    #[arg(long, default_value_t = 0.0)]
    pub duration: f64,
    /// Longest wait for deliveries after the last send, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Connections registering and logging users in at once.
    #[arg(long, default_value_t = 32)]
    pub setup_concurrency: usize,
}

const SEND: &str = "send";
const LAST_MEMBER: &str = "last_member";
const DELIVERY: &str = "delivery";

/// One sender's run: when each message was sent, and its send's outcome
/// (the ack's latency, or the error's kind).
type SenderRun = (Vec<Instant>, Vec<Result<Duration, String>>);

/// One real-time delivery: member index, (group index, message index), when.
type Arrival = (usize, (usize, usize), Instant);

pub async fn run(args: &GroupArgs) -> anyhow::Result<Summary> {
    args.users.check()?;
    ensure!(
        (1..=100_000).contains(&args.members),
        "--members must be in 1..=100000"
    );
    ensure!(
        (1..=100_000).contains(&args.messages),
        "--messages must be in 1..=100000"
    );
    ensure!((1..=64).contains(&args.groups), "--groups must be in 1..=64");
    ensure!(
        args.duration.is_finite() && (0.0..=86_400.0).contains(&args.duration),
        "--duration must be seconds in 0..=86400"
    );
    ensure!(
        args.drain.is_finite() && (0.0..=3600.0).contains(&args.drain),
        "--drain must be seconds in 0..=3600"
    );
    ensure!(
        (1..=1024).contains(&args.setup_concurrency),
        "--setup-concurrency must be in 1..=1024"
    );
    raise_open_files(args.members as u64 * 2 + 1024);
    let setup_started = Instant::now();
    let prefix = args.users.prefix("gb");
    let owners: Vec<String> = (0..args.groups).map(|g| format!("{prefix}owner{g}")).collect();
    let names: Vec<String> = (0..args.members).map(|i| format!("{prefix}m{i}")).collect();
    let all: Vec<String> = owners.iter().chain(names.iter()).cloned().collect();
    register_all(args, &all).await?;
    let mut gids = Vec::with_capacity(args.groups);
    for owner in &owners {
        gids.push(make_group(args, owner, &names, &prefix).await?);
    }

    // Every member online, each reading its pushes in its own task.
    let (tx, mut rx) = mpsc::unbounded_channel::<Arrival>();
    let members = login_all(args, &names).await?;
    let mut readers = Vec::with_capacity(members.len());
    for (i, mut c) in members.into_iter().enumerate() {
        let tx = tx.clone();
        readers.push(tokio::spawn(async move {
            while let Some(p) = c.conn.next_push().await {
                if let Push::Frame(Body::MessagePush(pb::MessagePush { message: Some(m) })) = p
                    && let Some(key) = parse_body(&m.body)
                    && tx.send((i, key, Instant::now())).is_err()
                {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let mut senders = Vec::with_capacity(args.groups);
    for owner in &owners {
        senders.push(
            login(
                &args.users.gateway[0],
                args.users.client_tls()?.as_ref(),
                owner,
                &args.users.password,
                "sender",
                DeviceKind::Mobile,
            )
            .await?,
        );
    }
    // Let the logins' presence and sync traffic settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let setup_s = setup_started.elapsed().as_secs_f64();

    let mut rec = Recorder::new(&[(SEND, false), (LAST_MEMBER, false), (DELIVERY, true)])?;
    let stopped = stop_on_signal()?;
    let started = Instant::now();
    // The G senders at once; each one's messages in turn.
    let sends = senders
        .into_iter()
        .zip(&gids)
        .enumerate()
        .map(|(g, (mut sender, &gid))| {
            let interval = Duration::from_millis(args.interval_ms);
            let messages = args.messages;
            let stop = (args.duration > 0.0).then(|| started + Duration::from_secs_f64(args.duration));
            let stopped = stopped.clone();
            async move {
                let mut sent_at = Vec::with_capacity(messages);
                let mut outcomes = Vec::with_capacity(messages);
                for i in 0..messages {
                    if stopped.is_cancelled() || stop.is_some_and(|stop| Instant::now() >= stop) {
                        break;
                    }
                    let t = Instant::now();
                    sent_at.push(t);
                    let r = sender.group_send(gid, &format!("g{g}b{i}"), "").await;
                    outcomes.push(
                        r.map(|_| t.elapsed())
                            .map_err(|e| e.code().map_or_else(|| "client".to_owned(), |c| format!("{c:?}"))),
                    );
                    if !interval.is_zero() {
                        tokio::select! {
                            () = tokio::time::sleep(interval) => {}
                            () = stopped.cancelled() => {}
                        }
                    }
                }
                (sent_at, outcomes)
            }
        });
    let per_group: Vec<SenderRun> = futures::future::join_all(sends).await;
    let mut send_errors = 0u64;
    for (_, outcomes) in &per_group {
        for o in outcomes {
            match o {
                Ok(d) => rec.success(SEND, *d, 1),
                Err(kind) => {
                    send_errors += 1;
                    rec.failure(SEND, kind.clone());
                }
            }
        }
    }
    let sent_at: Vec<Vec<Instant>> = per_group.into_iter().map(|(s, _)| s).collect();
    let sent = sent_at.iter().map(Vec::len).sum::<usize>() as u64 - send_errors;

    // Collect until every member has every message, or the drain ends.
    let expected = sent * args.members as u64;
    let drain_end = Instant::now() + Duration::from_secs_f64(args.drain);
    let mut seen: HashSet<(usize, (usize, usize))> = HashSet::with_capacity(expected as usize);
    let mut last: HashMap<(usize, usize), Instant> = HashMap::new();
    let mut per_message: HashMap<(usize, usize), u64> = HashMap::new();
    let (mut delivered, mut duplicated) = (0u64, 0u64);
    let mut last_delivery = started;
    while delivered < expected {
        let next = tokio::time::timeout_at(drain_end, rx.recv()).await;
        let Ok(Some((member, idx, at))) = next else { break };
        let Some(&sent) = sent_at.get(idx.0).and_then(|g| g.get(idx.1)) else {
            continue;
        };
        if !seen.insert((member, idx)) {
            duplicated += 1;
            continue;
        }
        delivered += 1;
        *per_message.entry(idx).or_default() += 1;
        rec.success(DELIVERY, at.saturating_duration_since(sent), 1);
        let l = last.entry(idx).or_insert(at);
        if at > *l {
            *l = at;
        }
        last_delivery = last_delivery.max(at);
    }
    for (idx, at) in &last {
        if per_message.get(idx).copied() == Some(args.members as u64) {
            rec.success(
                LAST_MEMBER,
                at.saturating_duration_since(sent_at[idx.0][idx.1]),
                1,
            );
        }
    }
    let complete = rec.ops[LAST_MEMBER].latency.len();
    for r in readers {
        r.abort();
    }
    let elapsed = last_delivery.saturating_duration_since(started);
    let settings = BTreeMap::from([
        ("members".to_owned(), json!(args.members)),
        ("messages".to_owned(), json!(args.messages)),
        ("groups".to_owned(), json!(args.groups)),
        ("interval_ms".to_owned(), json!(args.interval_ms)),
        ("duration_s".to_owned(), json!(args.duration)),
        ("gateways".to_owned(), json!(args.users.gateway)),
    ]);
    let mut summary = Summary::build("group", settings, 1, &rec, elapsed)?;
    let fanout = &summary.operations[LAST_MEMBER];
    summary.p50_us = fanout.p50_us;
    summary.p99_us = fanout.p99_us;
    summary.max_us = fanout.max_us;
    let deliveries_per_s = summary.operations[DELIVERY].ops_per_s;
    summary.ops = delivered;
    summary.ops_per_s = deliveries_per_s;
    let r = &mut summary.results;
    r.insert("sent".into(), json!(sent));
    r.insert("expected_deliveries".into(), json!(expected));
    r.insert("delivered".into(), json!(delivered));
    r.insert("lost".into(), json!(expected - delivered));
    r.insert("duplicated".into(), json!(duplicated));
    r.insert("messages_complete".into(), json!(complete));
    r.insert("deliveries_per_s".into(), json!(deliveries_per_s));
    r.insert("setup_s".into(), json!(setup_s));
    Ok(summary)
}

/// Cancelled by SIGTERM or Ctrl-C: the senders stop, the run reports.
fn stop_on_signal() -> anyhow::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        cancel.cancel();
    });
    Ok(token)
}

/// (group index, message index) from a message body `g{G}b{I}`.
fn parse_body(body: &str) -> Option<(usize, usize)> {
    let (g, i) = body.strip_prefix('g')?.split_once('b')?;
    Some((g.parse().ok()?, i.parse().ok()?))
}

/// `owner` creates a group and every one of `names` joins it: each asks,
/// the owner's invitations (over a few sessions at once) approve.
async fn make_group(args: &GroupArgs, owner: &str, names: &[String], prefix: &str) -> anyhow::Result<u64> {
    let kinds = [
        DeviceKind::Desktop,
        DeviceKind::Web,
        DeviceKind::Tablet,
        DeviceKind::Bot,
    ];
    let mut inviters = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        inviters.push(
            login(
                &args.users.gateway[0],
                args.users.client_tls()?.as_ref(),
                owner,
                &args.users.password,
                &format!("inviter-{i}"),
                *kind,
            )
            .await?,
        );
    }
    let group = inviters[0]
        .create_group(&format!("{prefix} fan-out"))
        .await
        .context("creating the group")?;
    let gid = group.group_id;
    // Members join as an operator fills a large group: each asks to join,
    // then the owner's invitations approve the requests (an invitation of
    // someone who has not asked would wait for an answer).
    ask_to_join(args, names, gid).await?;
    let chunk = names.len().div_ceil(inviters.len());
    let invites = inviters
        .iter_mut()
        .zip(names.chunks(chunk.max(1)))
        .map(|(c, part)| async move {
            for n in part {
                // The owner's devices hear of every request and join: read
                // those notices, or the push buffer fills and the
                // connection stops reading, the invitations' answers too.
                while c.conn.try_next_push().is_some() {}
                c.invite(gid, n).await.with_context(|| format!("inviting {n}"))?;
            }
            anyhow::Ok(())
        });
    for r in futures::future::join_all(invites).await {
        r?;
    }
    Ok(gid)
}

fn raise_open_files(want: u64) {
    let _ = rlimit::increase_nofile_limit(want);
}

pub(crate) async fn login(
    addr: &str,
    tls: Option<&ClientTls>,
    name: &str,
    pw: &str,
    device: &str,
    kind: DeviceKind,
) -> anyhow::Result<Client> {
    let mut c = Client::connect_with(addr, tls)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    c.login(name, pw, device, kind)
        .await
        .with_context(|| format!("logging in {name}"))?;
    Ok(c)
}

/// Registers `names` over `--setup-concurrency` connections.
pub(crate) async fn register_names(
    gateways: &[String],
    tls: Option<&ClientTls>,
    names: &[String],
    pw: &str,
    concurrency: usize,
) -> anyhow::Result<()> {
    let chunk = names.len().div_ceil(concurrency).max(1);
    let mut tasks = FuturesUnordered::new();
    for (i, part) in names.chunks(chunk).enumerate() {
        let addr = gateways[i % gateways.len()].clone();
        let part = part.to_vec();
        let pw = pw.to_owned();
        let tls = tls.cloned();
        tasks.push(tokio::spawn(async move {
            let c = Client::connect_with(&addr, tls.as_ref())
                .await
                .with_context(|| format!("connecting to {addr}"))?;
            for n in part {
                c.register(&n, &pw)
                    .await
                    .with_context(|| format!("registering {n}"))?;
            }
            anyhow::Ok(())
        }));
    }
    while let Some(r) = tasks.next().await {
        r.context("a registering task panicked")??;
    }
    Ok(())
}

/// Every one of `names` asks to join group `gid`, over
/// `--setup-concurrency` connections (logged in for that alone).
async fn ask_to_join(args: &GroupArgs, names: &[String], gid: u64) -> anyhow::Result<()> {
    let chunk = names.len().div_ceil(args.setup_concurrency).max(1);
    let mut tasks = FuturesUnordered::new();
    for (i, part) in names.chunks(chunk).enumerate() {
        let addr = args.users.gateway[i % args.users.gateway.len()].clone();
        let part = part.to_vec();
        let pw = args.users.password.clone();
        let tls = args.users.client_tls()?;
        tasks.push(tokio::spawn(async move {
            for n in part {
                let c = login(&addr, tls.as_ref(), &n, &pw, "join", DeviceKind::Web).await?;
                c.join_group(gid, "")
                    .await
                    .with_context(|| format!("{n} asking to join"))?;
            }
            anyhow::Ok(())
        }));
    }
    while let Some(r) = tasks.next().await {
        r.context("a joining task panicked")??;
    }
    Ok(())
}

async fn register_all(args: &GroupArgs, names: &[String]) -> anyhow::Result<()> {
    register_names(
        &args.users.gateway,
        args.users.client_tls()?.as_ref(),
        names,
        &args.users.password,
        args.setup_concurrency,
    )
    .await
}

/// Logs `names` in, member i on gateway i mod G, keeping their order.
pub(crate) async fn login_names(
    gateways: &[String],
    tls: Option<&ClientTls>,
    names: &[String],
    pw: &str,
    concurrency: usize,
) -> anyhow::Result<Vec<Client>> {
    let names = Arc::new(names.to_vec());
    let mut out: Vec<Option<Client>> = (0..names.len()).map(|_| None).collect();
    let chunk = names.len().div_ceil(concurrency).max(1);
    let mut tasks = FuturesUnordered::new();
    for start in (0..names.len()).step_by(chunk) {
        let names = names.clone();
        let gateways = gateways.to_vec();
        let pw = pw.to_owned();
        let tls = tls.cloned();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in start..(start + chunk).min(names.len()) {
                let addr = &gateways[i % gateways.len()];
                got.push((
                    i,
                    login(addr, tls.as_ref(), &names[i], &pw, "bench", DeviceKind::Mobile).await?,
                ));
            }
            anyhow::Ok(got)
        }));
    }
    while let Some(r) = tasks.next().await {
        for (i, c) in r.context("a login task panicked")?? {
            out[i] = Some(c);
        }
    }
    out.into_iter()
        .map(|c| c.context("a member did not log in"))
        .collect()
}

async fn login_all(args: &GroupArgs, names: &[String]) -> anyhow::Result<Vec<Client>> {
    login_names(
        &args.users.gateway,
        args.users.client_tls()?.as_ref(),
        names,
        &args.users.password,
        args.setup_concurrency,
    )
    .await
}
