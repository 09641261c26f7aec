//! One sender: closed-loop with its window of sends in flight, or at its
//! share of the rate; every answer timed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use confab_client::proto::{self as pb, frame::Body};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::body::body;
use super::plan::{Plan, SEND, error_kind};
use super::receiver::Who;
use crate::stats::Recorder;
use crate::wire;

/// A sender's account.
pub(super) struct Sent {
    pub(super) pair: usize,
    pub(super) sent: u64,
    pub(super) acked: Vec<u64>,
    pub(super) rec: Recorder,
    /// Times the connection dropped and the sender logged in again.
    pub(super) reconnects: u64,
}

/// One sender: keeps `in_flight` sends outstanding on its connection
/// (request id = the message's sequence), or sends at its share of the
/// rate, until the window closes and every send is answered. A connection
/// that drops is counted and replaced by a new login; the sends it left
/// unanswered stay unacknowledged (a message stored anyway shows as
/// delivered unacknowledged, never as lost).
pub(super) async fn send(
    s: wire::Stream,
    pair: usize,
    to: u64,
    who: Who,
    plan: Arc<Plan>,
) -> anyhow::Result<Sent> {
    let mut out = Sent {
        pair,
        sent: 0,
        acked: Vec::new(),
        rec: Recorder::new(&[(SEND, false)])?,
        reconnects: 0,
    };
    let mut seq = 0u64;
    // Senders of one rate start spread over one period.
    let mut next = plan
        .every
        .map(|e| Instant::now() + e.mul_f64(pair as f64 % 97.0 / 97.0));
    let mut conn = s;
    loop {
        let Some(why) = run(conn, to, &plan, &mut out, &mut seq, &mut next).await else {
            return Ok(out);
        };
        out.rec.failure(SEND, format!("sender_disconnected: {why}"));
        if !plan.window.open() {
            return Ok(out);
        }
        match who.relogin.login(&who.name, who.gateway).await {
            Ok(s) => {
                out.reconnects += 1;
                conn = s;
            }
            Err(e) => {
                out.rec.failure(SEND, format!("relogin: {e:#}"));
                return Ok(out);
            }
        }
    }
}

/// Sends on `s` until the window closes and every send is answered (None),
/// or until the connection drops (why).
async fn run(
    s: wire::Stream,
    to: u64,
    plan: &Plan,
    out: &mut Sent,
    seq: &mut u64,
    next: &mut Option<Instant>,
) -> Option<String> {
    let (mut read, mut write) = tokio::io::split(s);
    let mut frames = wire::Frames::default();
    let mut outstanding: HashMap<u64, Instant> = HashMap::new();
    let mut batch = Vec::new();
    loop {
        let open = plan.window.open();
        if !open && outstanding.is_empty() {
            return None;
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
            *seq += 1;
            let req = pb::SendRequest {
                to_user: to,
                to_name: String::new(),
                body: body(*seq, plan.now_us(), plan.body_bytes),
                client_msg_id: String::new(),
                ..Default::default()
            };
            wire::encode_into(&mut batch, *seq, Body::Send(req));
            outstanding.insert(*seq, Instant::now());
            out.sent += 1;
        }
        if !batch.is_empty() {
            // Over TLS, what the write left in the session goes with the flush.
            if let Err(e) = async {
                write.write_all(&batch).await?;
                write.flush().await
            }
            .await
            {
                return Some(format!("sending: {}", e.kind()));
            }
            batch.clear();
        }
        let due = next.filter(|_| open && outstanding.len() < plan.in_flight);
        let frame = tokio::select! {
            f = frames.next(&mut read) => f,
            _ = sleep_until_some(due) => continue,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => return Some("closed".into()),
            Err(e) => return Some(format!("{e:#}")),
        };
        let Some(started) = outstanding.remove(&frame.request_id) else {
            // A push (commit notices of our own messages): not measured.
            if let Some(Body::Error(e)) = &frame.body {
                return Some(error_kind(e));
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
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
