//! One receiver: every message push counted by the sequence its body
//! carries and timed from its send, then the final check against what
//! persist stored.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use confab_client::proto::{self as pb, frame::Body};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::body::parse_body;
use super::plan::{E2E, Plan, error_kind};
use super::users::Relogin;
use crate::stats::Recorder;
use crate::wire;

/// How often an idle receiver pings (well under the gateway's idle timeout).
const KEEPALIVE: Duration = Duration::from_secs(20);

/// Messages per page of the final check.
const FETCH_PAGE: u32 = 500;

/// A receiver's account.
pub(super) struct Received {
    pub(super) pair: usize,
    /// Sequence -> times shown.
    pub(super) seen: HashMap<u64, u32>,
    /// Shown only by the final sync.
    pub(super) by_sync: u64,
    /// Messages that were not from this pair's sender.
    pub(super) stray: u64,
    /// The newest stored sequence of the conversation (its message count).
    pub(super) stored: u64,
    pub(super) rec: Recorder,
    /// Measured deliveries by the second (of the run) they were sent in.
    pub(super) timeline: BTreeMap<u64, Second>,
    /// Times the connection dropped (closed by the gateway, or the gateway
    /// gone) and the receiver logged in again.
    pub(super) reconnects: u64,
}

/// Who a connection belongs to, to log in again when it drops.
pub(super) struct Who {
    pub(super) name: String,
    pub(super) gateway: usize,
    pub(super) relogin: Arc<Relogin>,
}

/// One second of the measured run: a p99 over the run hides whether its
/// tail is one hiccup or spread evenly; the timeline tells.
#[derive(Default, Clone, Copy)]
pub(super) struct Second {
    pub(super) delivered: u64,
    /// Deliveries slower than [`SLOW`].
    pub(super) slow: u64,
    pub(super) max_us: u64,
}

/// What the timeline counts as slow (the chat target's p99 bound).
const SLOW: Duration = Duration::from_millis(50);

/// One receiver: records every message push from its sender until `stop`,
/// then hands its connection back for the final check. A connection that
/// drops (the gateway closed it, say for a full send queue, or died) is
/// counted and replaced by a new login, as the client library would: what
/// the gap missed is read back by the final check, like a sync.
pub(super) async fn receive(
    s: wire::Stream,
    pair: usize,
    from: u64,
    who: Who,
    plan: Arc<Plan>,
    stop: CancellationToken,
) -> anyhow::Result<(Received, Option<wire::Stream>)> {
    let mut out = Received {
        pair,
        seen: HashMap::new(),
        by_sync: 0,
        stray: 0,
        stored: 0,
        rec: Recorder::new(&[(E2E, false)])?,
        timeline: BTreeMap::new(),
        reconnects: 0,
    };
    let mut conn = s;
    loop {
        let (s, dropped) = listen(conn, &mut out, &plan, from, &stop).await;
        let Some(why) = dropped else {
            return Ok((out, Some(s)));
        };
        out.rec.failure(E2E, format!("receiver_disconnected: {why}"));
        if stop.is_cancelled() {
            return Ok((out, None));
        }
        match who.relogin.login(&who.name, who.gateway).await {
            Ok(s) => {
                out.reconnects += 1;
                conn = s;
            }
            Err(e) => {
                out.rec.failure(E2E, format!("relogin: {e:#}"));
                return Ok((out, None));
            }
        }
    }
}

/// Records pushes on `s` until `stop` (None) or until the connection drops
/// (why); hands the stream back.
async fn listen(
    s: wire::Stream,
    out: &mut Received,
    plan: &Plan,
    from: u64,
    stop: &CancellationToken,
) -> (wire::Stream, Option<String>) {
    let (mut read, mut write) = tokio::io::split(s);
    let mut frames = wire::Frames::default();
    let ping = wire::encode(u64::MAX, Body::Ping(pb::Ping {}));
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    let why = loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => break None,
            _ = keepalive.tick() => {
                if let Err(e) = async { write.write_all(&ping).await?; write.flush().await }.await {
                    break Some(format!("ping: {}", e.kind()));
                }
                continue;
            }
            f = frames.next(&mut read) => f,
        };
        match frame {
            Ok(Some(f)) => match f.body {
                Some(Body::MessagePush(p)) => {
                    if let Some(m) = p.message {
                        record(out, plan, from, &m, false);
                    }
                }
                Some(Body::Error(e)) if f.request_id == 0 => break Some(error_kind(&e)),
                // Commit notices, pongs: the final check reads what was stored.
                _ => {}
            },
            Ok(None) => break Some("closed".into()),
            Err(e) => break Some(format!("{e:#}")),
        }
    };
    // The two halves of the one stream split above.
    (read.unsplit(write), why)
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
pub(super) async fn check(
    s: Option<wire::Stream>,
    who: &Who,
    mut out: Received,
    (me, from): (u64, u64),
    acked: u64,
    plan: &Plan,
    deadline: Instant,
) -> Received {
    // A receiver whose connection dropped at the end logs in once more.
    let mut s = match s {
        Some(s) => s,
        None => match who.relogin.login(&who.name, who.gateway).await {
            Ok(s) => s,
            Err(e) => {
                out.rec.failure(E2E, format!("relogin: {e:#}"));
                return out;
            }
        },
    };
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
