//! The chat run's summary: every sender's and receiver's account added up,
//! the headline (acknowledged sends per second, send -> delivery latency)
//! and the deliveries by second of the run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::plan::{ChatArgs, E2E, SEND};
use super::receiver::{Received, Second};
use super::sender::Sent;
use crate::report::Summary;
use crate::stats::Recorder;

/// How long the phases of the run took, and the CPU the `--cpu-pid`
/// processes used over the measured window.
pub(super) struct Times {
    pub(super) measured: Duration,
    pub(super) drained: Duration,
    pub(super) stored_wait: Duration,
    pub(super) cpu_s: Option<f64>,
}

pub(super) fn summarize(
    args: &ChatArgs,
    prefix: &str,
    mut sent: Vec<Sent>,
    mut received: Vec<Received>,
    times: Times,
) -> anyhow::Result<Summary> {
    let Times {
        measured,
        drained,
        stored_wait,
        cpu_s,
    } = times;
    sent.sort_by_key(|s| s.pair);
    received.sort_by_key(|r| r.pair);
    let mut rec = Recorder::new(&[(SEND, false), (E2E, false)])?;
    let (mut n_sent, mut acked, mut delivered, mut lost, mut dup) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut by_sync, mut stray, mut stored, mut unacked_delivered) = (0u64, 0u64, 0u64, 0u64);
    let (mut sender_reconnects, mut receiver_reconnects) = (0u64, 0u64);
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
        sender_reconnects += s.reconnects;
        receiver_reconnects += r.reconnects;
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
    r.insert("sender_reconnects".into(), json!(sender_reconnects));
    r.insert("receiver_reconnects".into(), json!(receiver_reconnects));
    r.insert("drain_s".into(), json!(drained.as_secs_f64()));
    r.insert("check_s".into(), json!(stored_wait.as_secs_f64()));
    if let Some(cpu) = cpu_s {
        // Read over the measured window: the sends started in it.
        let messages = summary.ops as f64;
        r.insert("cluster_cpu_s".into(), json!(cpu));
        r.insert("cpu_pids".into(), json!(args.cpu_pid));
        if messages > 0.0 {
            r.insert("cpu_us_per_msg".into(), json!(cpu / messages * 1e6));
        }
    }
    let by_second: Vec<_> = timeline
        .iter()
        .map(|(at, x)| json!({"s": at, "delivered": x.delivered, "over_50ms": x.slow, "max_ms": x.max_us as f64 / 1000.0}))
        .collect();
    r.insert("e2e_by_second".into(), json!(by_second));
    Ok(summary)
}
