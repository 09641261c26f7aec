//! What both engines of the embedded queue share: the delivery token, a
//! dead letter and its bytes, how an entry's payload is encoded and
//! counted, an enqueue call grouped into entries, and the durability
//! observer (the crash test's seam).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::sync::Notify;

use crate::consumer::Delivery;
use crate::envelope::{Encoding, QueuedBatch, QueuedMessage, encode, partitions_of};
use crate::error::QueueError;

/// Token of an embedded delivery: its partition and key.
#[derive(Debug, Clone)]
pub struct EmbeddedToken {
    pub(crate) partition: u32,
    pub(crate) key: u64,
}

/// A dead letter: the payload and why it was set aside.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub payload: Vec<u8>,
    pub reason: String,
}

/// An entry on its way in: partition, payload, messages in the payload.
pub(crate) type Pending = (u32, Vec<u8>, u32);

/// What became durable, told to the observer given at open right after the
/// sync that made it so, before anyone is answered. A test seam: the crash
/// test rebuilds from it what a crash at any instant would leave on disk.
pub enum Durable<'a> {
    /// The first `len` bytes of the file at `path` are on disk, and its
    /// length is `len`.
    File { path: &'a Path, len: u64 },
    /// The entries (names) of directory `path` are on disk as they are now.
    Dir { path: &'a Path },
    /// Everything the engine wrote under `dir` so far is on disk;
    /// `checkpoint` copies that state into a new directory.
    Everything {
        dir: &'a Path,
        checkpoint: &'a dyn Fn(&Path) -> Result<(), QueueError>,
    },
}

/// Called with each [`Durable`] event (see [`crate::embedded::OpenOptions`]).
pub type DurableObserver = Arc<dyn Fn(Durable<'_>) + Send + Sync>;

/// How an entry is encoded: an envelope starts with the tag of its field 1
/// (length-delimited, 0x0A), which a single message (field 1 a varint)
/// never does.
pub(crate) fn encoding_of(payload: &[u8]) -> Encoding {
    if payload.first() == Some(&0x0A) {
        Encoding::Batch
    } else {
        Encoding::Single
    }
}

/// Messages in a payload (an envelope holds several).
pub(crate) fn messages_in(payload: &[u8]) -> u32 {
    match encoding_of(payload) {
        Encoding::Batch => QueuedBatch::decode(payload).map_or(1, |b| b.messages.len() as u32),
        Encoding::Single => 1,
    }
}

/// The entries of one enqueue call: its messages validated and grouped per
/// partition, one entry per partition (an envelope when several), in
/// partition order.
pub(crate) fn entries_of(
    msgs: &[QueuedMessage],
    partitions: u32,
    max_body_bytes: usize,
) -> Result<Vec<Pending>, QueueError> {
    let parts = partitions_of(msgs, partitions, max_body_bytes)?;
    let mut by_part: Vec<Vec<QueuedMessage>> = vec![Vec::new(); partitions as usize];
    for (m, p) in msgs.iter().zip(parts) {
        by_part[p as usize].push(m.clone());
    }
    Ok(by_part
        .into_iter()
        .enumerate()
        .filter(|(_, m)| !m.is_empty())
        .map(|(p, mut messages)| {
            let n = messages.len() as u32;
            let payload = match messages.len() {
                1 => encode(&messages.remove(0)),
                _ => QueuedBatch { messages }.encode_to_vec(),
            };
            (p as u32, payload, n)
        })
        .collect())
}

/// Raw payloads for one partition as entries (tests inject malformed ones).
pub(crate) fn raw_entries(
    partition: u32,
    partitions: u32,
    payloads: &[Vec<u8>],
) -> Result<Vec<Pending>, QueueError> {
    if partition >= partitions {
        return Err(QueueError::Invalid(format!("no partition {partition}")));
    }
    Ok(payloads
        .iter()
        .map(|p| (partition, p.clone(), messages_in(p)))
        .collect())
}

/// A dead letter's bytes: reason length (u32 LE), reason (its first 4 KiB),
/// payload.
pub(crate) fn dead_letter_body(b: &mut Vec<u8>, payload: &[u8], reason: &str) {
    let reason = &reason.as_bytes()[..reason.len().min(4096)];
    b.extend_from_slice(&(reason.len() as u32).to_le_bytes());
    b.extend_from_slice(reason);
    b.extend_from_slice(payload);
}

/// Reads back what [`dead_letter_body`] wrote.
pub(crate) fn parse_dead_letter(body: &[u8]) -> Result<DeadLetter, QueueError> {
    let n = body
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| QueueError::Invalid("truncated dead letter".into()))?;
    let n = (n as usize).min(body.len() - 4);
    Ok(DeadLetter {
        reason: String::from_utf8_lossy(&body[4..4 + n]).into_owned(),
        payload: body[4 + n..].to_vec(),
    })
}

/// A consumer's next batch on either engine: `scan` (up to `max` into the
/// batch) until it finds something, waking when `arrived` is notified (or
/// every 200 ms), refused once `failed`; then, if the batch is short and
/// `linger` is set, waits `linger` and scans once more.
pub(crate) async fn next_batch_with(
    arrived: &Notify,
    failed: impl Fn() -> bool,
    max: usize,
    linger: Duration,
    mut scan: impl FnMut(usize, &mut Vec<Delivery<EmbeddedToken>>) -> Result<(), QueueError>,
) -> Result<Vec<Delivery<EmbeddedToken>>, QueueError> {
    let mut out = Vec::new();
    loop {
        let notified = arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        scan(max, &mut out)?;
        if !out.is_empty() {
            break;
        }
        if failed() {
            return Err(QueueError::Closed);
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
    }
    if out.len() < max && !linger.is_zero() {
        tokio::time::sleep(linger).await;
        scan(max, &mut out)?;
    }
    Ok(out)
}
