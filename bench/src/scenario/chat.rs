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
//! The load side speaks the protocol directly ([`crate::wire`]): one task
//! per connection and no client state, so the bench takes as little of the
//! machine's CPU as it can.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::net::SocketAddr;

use anyhow::{Context, bail, ensure};
use clap::Args;
use confab_client::Client;
use confab_client::proto::frame::Body;
use confab_client::proto::{self as pb, ErrorCode};
use futures::StreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::UserArgs;
use crate::report::Summary;
use crate::stats::Recorder;
use crate::wire;
use crate::workers::Window;

#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub users: UserArgs,
    /// Sender/receiver pairs.
    #[arg(long, default_value_t = 200)]
    pub pairs: usize,
    /// Measured seconds (after warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of unrecorded load before measuring (its messages are still
    /// checked for loss and duplicates).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Messages per second over all senders; 0 = closed loop.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Sends in flight per sender.
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Longest wait for deliveries after the last send, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 64)]
    pub body_bytes: usize,
}

const SEND: &str = "send";
const E2E: &str = "e2e";

/// Largest run length accepted, seconds.
const MAX_SECS: f64 = 3600.0;

/// How often an idle receiver pings (well under the gateway's idle timeout).
const KEEPALIVE: Duration = Duration::from_secs(20);

/// Messages per page of the final check.
const FETCH_PAGE: u32 = 500;

/// Progress every task reports, to end the drain early.
#[derive(Default)]
struct Tally {
    acked: AtomicU64,
    delivered: AtomicU64,
}

/// What every task shares.
struct Plan {
    window: Window,
    /// Time zero of the timestamps in message bodies.
    epoch: Instant,
    /// Pause between sends of one sender (rate mode).
    every: Option<Duration>,
    in_flight: usize,
    body_bytes: usize,
    tally: Tally,
}

impl Plan {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// A sender's account.
struct Sent {
    pair: usize,
    sent: u64,
    acked: Vec<u64>,
    rec: Recorder,
}

/// A receiver's account.
struct Received {
    pair: usize,
    /// Sequence -> times shown.
    seen: HashMap<u64, u32>,
    /// Shown only by the final sync.
    by_sync: u64,
    /// Messages that were not from this pair's sender.
    stray: u64,
    /// The newest stored sequence of the conversation (its message count).
    stored: u64,
    rec: Recorder,
    /// Measured deliveries by the second (of the run) they were sent in.
    timeline: BTreeMap<u64, Second>,
}

/// One second of the measured run: a p99 over the run hides whether its
/// tail is one hiccup or spread evenly; the timeline tells.
#[derive(Default, Clone, Copy)]
struct Second {
    delivered: u64,
    /// Deliveries slower than [`SLOW`].
    slow: u64,
    max_us: u64,
}

/// What the timeline counts as slow (the chat target's p99 bound).
const SLOW: Duration = Duration::from_millis(50);

fn secs(name: &str, v: f64, zero_ok: bool) -> anyhow::Result<Duration> {
    ensure!(
        v.is_finite() && (0.0..=MAX_SECS).contains(&v) && (zero_ok || v > 0.0),
        "--{name} must be seconds in {}..={MAX_SECS}",
        if zero_ok { "0" } else { "(0" }
    );
    Ok(Duration::from_secs_f64(v))
}

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
    let uids = register_all(&args.users.gateway, &names, &args.users.password).await?;
    let clients = login_all(&args.users.gateway, &names, &args.users.password).await?;
    eprintln!(
        "{} users registered and logged in over {g} gateway(s) in {:.1}s",
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
    let stop = CancellationToken::new();
    let mut receivers = JoinSet::new();
    let mut senders = JoinSet::new();
    let mut clients = clients.into_iter();
    for pair in 0..args.pairs {
        let (Some(s), Some(r)) = (clients.next(), clients.next()) else {
            bail!("fewer clients than users");
        };
        let (from, to) = (uids[2 * pair], uids[2 * pair + 1]);
        receivers.spawn(receive(r, pair, from, plan.clone(), stop.clone()));
        senders.spawn(send(s, pair, to, plan.clone()));
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
    ended.sort_by_key(|(r, _): &(Received, TcpStream)| r.pair);
    // What real time missed, and what persist stored (it may still be
    // writing: wait for it as long as the drain period allows).
    let check_deadline = Instant::now() + drain;
    let checks = ended.into_iter().map(|(r, s)| {
        let pair = r.pair;
        let acked = sent[pair].acked.len() as u64;
        let (from, me) = (uids[2 * pair], uids[2 * pair + 1]);
        let plan = plan.clone();
        async move { check(s, r, me, from, acked, &plan, check_deadline).await }
    });
    let received: Vec<Received> = futures::stream::iter(checks).buffer_unordered(64).collect().await;
    let stored_wait = send_end.elapsed().saturating_sub(drained);
    let measured = send_end.saturating_duration_since(plan.window.measure_from);
    summarize(args, &prefix, sent, received, measured, drained, stored_wait)
}

fn summarize(
    args: &ChatArgs,
    prefix: &str,
    mut sent: Vec<Sent>,
    mut received: Vec<Received>,
    measured: Duration,
    drained: Duration,
    stored_wait: Duration,
) -> anyhow::Result<Summary> {
    sent.sort_by_key(|s| s.pair);
    received.sort_by_key(|r| r.pair);
    let mut rec = Recorder::new(&[(SEND, false), (E2E, false)])?;
    let (mut n_sent, mut acked, mut delivered, mut lost, mut dup) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut by_sync, mut stray, mut stored, mut unacked_delivered) = (0u64, 0u64, 0u64, 0u64);
    let mut timeline: BTreeMap<u64, Second> = BTreeMap::new();
    for (s, r) in sent.into_iter().zip(received) {
        for (at, theirs) in &r.timeline {
            let ours = timeline.entry(*at).or_default();
            ours.delivered += theirs.delivered;
            ours.slow += theirs.slow;
            ours.max_us = ours.max_us.max(theirs.max_us);
        }
        n_sent += s.sent;
        acked += s.acked.len() as u64;
        delivered += r.seen.len() as u64;
        dup += r
            .seen
            .values()
            .map(|&n| u64::from(n.saturating_sub(1)))
            .sum::<u64>();
        lost += s.acked.iter().filter(|q| !r.seen.contains_key(q)).count() as u64;
        let acked_set: std::collections::HashSet<u64> = s.acked.iter().copied().collect();
        unacked_delivered += r.seen.keys().filter(|q| !acked_set.contains(q)).count() as u64;
        by_sync += r.by_sync;
        stray += r.stray;
        stored += r.stored;
        rec.merge(s.rec)?;
        rec.merge(r.rec)?;
    }
    let settings = BTreeMap::from([
        ("pairs".to_owned(), json!(args.pairs)),
        ("window".to_owned(), json!(args.window)),
        ("rate".to_owned(), json!(args.rate)),
        ("body_bytes".to_owned(), json!(args.body_bytes)),
        ("warmup_s".to_owned(), json!(args.warmup)),
        ("gateways".to_owned(), json!(args.users.gateway)),
        ("user_prefix".to_owned(), json!(prefix)),
    ]);
    let mut summary = Summary::build("chat", settings, args.pairs * args.window, &rec, measured)?;
    // The headline is the message: acknowledged sends per second and the
    // send -> delivery latency.
    let e2e = &summary.operations[E2E];
    let send = &summary.operations[SEND];
    summary.ops = send.ops;
    summary.ops_per_s = send.ops_per_s;
    summary.p50_us = e2e.p50_us;
    summary.p99_us = e2e.p99_us;
    summary.max_us = e2e.max_us;
    let r = &mut summary.results;
    r.insert("sent".into(), json!(n_sent));
    r.insert("acked".into(), json!(acked));
    r.insert("delivered".into(), json!(delivered));
    r.insert("delivered_by_sync".into(), json!(by_sync));
    r.insert("delivered_unacked".into(), json!(unacked_delivered));
    r.insert("lost".into(), json!(lost));
    r.insert("duplicated".into(), json!(dup));
    r.insert("stray".into(), json!(stray));
    r.insert("stored".into(), json!(stored));
    r.insert("drain_s".into(), json!(drained.as_secs_f64()));
    r.insert("check_s".into(), json!(stored_wait.as_secs_f64()));
    let by_second: Vec<_> = timeline
        .iter()
        .map(|(at, x)| json!({"s": at, "delivered": x.delivered, "over_50ms": x.slow, "max_ms": x.max_us as f64 / 1000.0}))
        .collect();
    r.insert("e2e_by_second".into(), json!(by_second));
    Ok(summary)
}

/// Registers every name through its gateway (32 at a time); returns the uids
/// in the order of `names`.
async fn register_all(gateways: &[String], names: &[(String, usize)], pw: &str) -> anyhow::Result<Vec<u64>> {
    let workers = 32.min(names.len());
    let mut set = JoinSet::new();
    for w in 0..workers {
        let gateway = gateways[w % gateways.len()].clone();
        let mine: Vec<(usize, String)> = (w..names.len())
            .step_by(workers)
            .map(|i| (i, names[i].0.clone()))
            .collect();
        let pw = pw.to_owned();
        set.spawn(async move {
            let c = Client::connect(&gateway)
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
async fn login_all(
    gateways: &[String],
    names: &[(String, usize)],
    pw: &str,
) -> anyhow::Result<Vec<TcpStream>> {
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
            async move {
                let mut s = wire::connect(None, target)
                    .await
                    .with_context(|| format!("connecting to {target}"))?;
                wire::hello(&mut s).await?;
                wire::login(&mut s, &name, pw, "bench").await?;
                anyhow::Ok((i, s))
            }
        })
        .buffer_unordered(64);
    let mut all: Vec<(usize, TcpStream)> = logins
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, c)| c).collect())
}

/// A message body: "SEQ SENT_US " padded to the body size.
fn body(seq: u64, sent_us: u64, size: usize) -> String {
    let mut b = format!("{seq} {sent_us} ");
    while b.len() < size {
        b.push('x');
    }
    b
}

fn parse_body(b: &str) -> Option<(u64, u64)> {
    let mut it = b.split(' ');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn error_kind(e: &pb::Error) -> String {
    format!(
        "{:?}",
        ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unspecified)
    )
}

/// One sender: keeps `in_flight` sends outstanding on its connection
/// (request id = the message's sequence), or sends at its share of the
/// rate, until the window closes and every send is answered.
async fn send(s: TcpStream, pair: usize, to: u64, plan: Arc<Plan>) -> anyhow::Result<Sent> {
    let mut out = Sent {
        pair,
        sent: 0,
        acked: Vec::new(),
        rec: Recorder::new(&[(SEND, false)])?,
    };
    let (mut read, mut write) = s.into_split();
    let mut frames = wire::Frames::default();
    let mut outstanding: HashMap<u64, Instant> = HashMap::new();
    let mut seq = 0u64;
    let mut batch = Vec::new();
    // Senders of one rate start spread over one period.
    let mut next = plan
        .every
        .map(|e| Instant::now() + e.mul_f64(pair as f64 % 97.0 / 97.0));
    loop {
        let open = plan.window.open();
        if !open && outstanding.is_empty() {
            break;
        }
        // Fill the window (closed loop) or send what is due (rate).
        let now = Instant::now();
        while open && outstanding.len() < plan.in_flight {
            if let (Some(at), Some(every)) = (next.as_mut(), plan.every) {
                if *at > now {
                    break;
                }
                // Behind schedule: catch up by at most one period, not a burst.
                *at = (*at + every).max(now - every);
            }
            seq += 1;
            let req = pb::SendRequest {
                to_user: to,
                to_name: String::new(),
                body: body(seq, plan.now_us(), plan.body_bytes),
                client_msg_id: String::new(),
            };
            wire::encode_into(&mut batch, seq, Body::Send(req));
            outstanding.insert(seq, Instant::now());
            out.sent += 1;
        }
        if !batch.is_empty() {
            write.write_all(&batch).await.context("sending")?;
            batch.clear();
        }
        let due = next.filter(|_| open && outstanding.len() < plan.in_flight);
        let frame = tokio::select! {
            f = frames.next(&mut read) => f,
            _ = sleep_until_some(due) => continue,
        };
        let Some(frame) = frame.context("reading answers")? else {
            out.rec.failure(SEND, "sender_closed".into());
            return Ok(out);
        };
        let Some(started) = outstanding.remove(&frame.request_id) else {
            // A push (commit notices of our own messages): not measured.
            if let Some(Body::Error(e)) = &frame.body {
                out.rec.failure(SEND, format!("closed: {}", error_kind(e)));
                return Ok(out);
            }
            continue;
        };
        match frame.body {
            Some(Body::SendAck(_)) => {
                out.acked.push(frame.request_id);
                plan.tally.acked.fetch_add(1, Ordering::Relaxed);
                if plan.window.measured(started) {
                    out.rec.success(SEND, started.elapsed(), 1);
                }
            }
            Some(Body::Error(e)) => out.rec.failure(SEND, error_kind(&e)),
            other => out.rec.failure(SEND, format!("unexpected {other:?}")),
        }
    }
    Ok(out)
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One receiver: records every message push from its sender until `stop`,
/// then hands its connection back for the final check.
async fn receive(
    s: TcpStream,
    pair: usize,
    from: u64,
    plan: Arc<Plan>,
    stop: CancellationToken,
) -> anyhow::Result<(Received, TcpStream)> {
    let mut out = Received {
        pair,
        seen: HashMap::new(),
        by_sync: 0,
        stray: 0,
        stored: 0,
        rec: Recorder::new(&[(E2E, false)])?,
        timeline: BTreeMap::new(),
    };
    let (mut read, mut write) = s.into_split();
    let mut frames = wire::Frames::default();
    let ping = wire::encode(u64::MAX, Body::Ping(pb::Ping {}));
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => break,
            _ = keepalive.tick() => {
                write.write_all(&ping).await.context("pinging")?;
                continue;
            }
            f = frames.next(&mut read) => f,
        };
        match frame {
            Ok(Some(f)) => match f.body {
                Some(Body::MessagePush(p)) => {
                    if let Some(m) = p.message {
                        record(&mut out, &plan, from, &m, false);
                    }
                }
                Some(Body::Error(e)) if f.request_id == 0 => {
                    out.rec
                        .failure(E2E, format!("receiver_closed: {}", error_kind(&e)));
                    break;
                }
                // Commit notices, pongs: the final check reads what was stored.
                _ => {}
            },
            Ok(None) | Err(_) => {
                out.rec.failure(E2E, "receiver_closed".into());
                break;
            }
        }
    }
    let s = read
        .reunite(write)
        .map_err(|_| anyhow::anyhow!("the two halves of one stream"))?;
    Ok((out, s))
}

/// Counts message `m` for its receiver (`late`: found only by the final
/// check).
fn record(out: &mut Received, plan: &Plan, from: u64, m: &pb::Message, late: bool) {
    let parsed = (m.sender == from).then(|| parse_body(&m.body)).flatten();
    let Some((seq, sent_us)) = parsed else {
        out.stray += 1;
        return;
    };
    let n = out.seen.entry(seq).or_insert(0);
    *n += 1;
    if *n == 1 {
        plan.tally.delivered.fetch_add(1, Ordering::Relaxed);
    }
    if late {
        out.by_sync += 1;
    } else if plan.window.measure_from <= plan.epoch + Duration::from_micros(sent_us) {
        let e2e = Duration::from_micros(plan.now_us().saturating_sub(sent_us));
        out.rec.success(E2E, e2e, 1);
        let from_start = plan.epoch + Duration::from_micros(sent_us) - plan.window.measure_from;
        let second = out.timeline.entry(from_start.as_secs()).or_default();
        second.delivered += 1;
        second.slow += u64::from(e2e > SLOW);
        second.max_us = second.max_us.max(e2e.as_micros() as u64);
    }
}

/// After the run: waits (until `deadline`) for persist to have stored every
/// acknowledged message of the pair, reads what real time missed from it,
/// and notes the newest stored sequence.
async fn check(
    mut s: TcpStream,
    mut out: Received,
    me: u64,
    from: u64,
    acked: u64,
    plan: &Plan,
    deadline: Instant,
) -> Received {
    let conversation = format!("d:{}:{}", me.min(from), me.max(from));
    let mut id = 1u64 << 32;
    loop {
        id += 1;
        let page = Body::History(pb::HistoryRequest {
            conversation_id: conversation.clone(),
            before_seq: 0,
            limit: 1,
            min_message_id: 0,
        });
        match wire::request(&mut s, id, page).await {
            Ok(Body::Messages(m)) => out.stored = m.messages.first().map_or(0, |m| m.seq),
            Ok(other) => {
                out.rec.failure(E2E, format!("history: unexpected {other:?}"));
                return out;
            }
            Err(e) => {
                out.rec.failure(E2E, format!("history: {e}"));
                return out;
            }
        }
        if out.stored >= acked || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if (out.seen.len() as u64) >= acked {
        return out;
    }
    // Some were not pushed: read the whole conversation from persist.
    let mut after = 0;
    loop {
        id += 1;
        let fetch = Body::Fetch(pb::FetchRequest {
            conversation_id: conversation.clone(),
            after_seq: after,
            limit: FETCH_PAGE,
            min_message_id: 0,
        });
        let msgs = match wire::request(&mut s, id, fetch).await {
            Ok(Body::Messages(m)) => m.messages,
            Ok(other) => {
                out.rec.failure(E2E, format!("fetch: unexpected {other:?}"));
                return out;
            }
            Err(e) => {
                out.rec.failure(E2E, format!("fetch: {e}"));
                return out;
            }
        };
        let n = msgs.len();
        for m in &msgs {
            after = after.max(m.seq);
            let seq = (m.sender == from).then(|| parse_body(&m.body)).flatten();
            if seq.is_some_and(|(q, _)| !out.seen.contains_key(&q)) {
                record(&mut out, plan, from, m, true);
            }
        }
        if n < FETCH_PAGE as usize {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_sequence_and_time() {
        let b = body(42, 1_234_567, 64);
        assert_eq!(b.len(), 64);
        assert_eq!(parse_body(&b), Some((42, 1_234_567)));
        assert_eq!(parse_body("x y"), None);
    }
}
