//! One sender: closed-loop with its window of sends in flight, or at its
//! share of the rate; every answer timed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use confab_client::proto::{self as pb, frame::Body};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::body::body;
use super::plan::{Plan, SEND, error_kind};
use crate::stats::Recorder;
use crate::wire;

/// A sender's account.
pub(super) struct Sent {
    pub(super) pair: usize,
    pub(super) sent: u64,
    pub(super) acked: Vec<u64>,
    pub(super) rec: Recorder,
}

/// One sender: keeps `in_flight` sends outstanding on its connection
/// (request id = the message's sequence), or sends at its share of the
/// rate, until the window closes and every send is answered.
pub(super) async fn send(s: wire::Stream, pair: usize, to: u64, plan: Arc<Plan>) -> anyhow::Result<Sent> {
    let mut out = Sent {
        pair,
        sent: 0,
        acked: Vec::new(),
        rec: Recorder::new(&[(SEND, false)])?,
    };
    let (mut read, mut write) = tokio::io::split(s);
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
                ..Default::default()
            };
            wire::encode_into(&mut batch, seq, Body::Send(req));
            outstanding.insert(seq, Instant::now());
            out.sent += 1;
        }
        if !batch.is_empty() {
            write.write_all(&batch).await.context("sending")?;
            // Over TLS, what the write left in the session goes now.
            write.flush().await.context("sending")?;
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
