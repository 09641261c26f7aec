//! The writer: takes batches from a queue [`Consumer`], sets poison messages
//! aside (dead-letter queue), writes the rest in one transaction (idempotent,
//! sequences in send order), acks only after the commit, then announces the
//! commit on the [`Hub`]. While the database is unreachable it retries with
//! backoff and acks nothing: the messages wait in the queue.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use confab_common::trace::TARGET;
use confab_queue::{
    Consumer, ConversationId, Delivery, QueuedBatch, QueuedMessage, backoff, decode_payload, encode_batch,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{QueueConfig, WriterConfig};
use crate::db::{BatchOutcome, Db, NewMessage};
use crate::error::Error;
use crate::notify::Hub;

/// What a writer task needs to know.
#[derive(Clone, Debug)]
pub struct WriterSettings {
    pub batch_max: usize,
    pub linger: Duration,
    pub max_backoff: Duration,
    pub max_body_bytes: usize,
}

impl WriterSettings {
    pub fn from_config(w: &WriterConfig, q: &QueueConfig) -> Self {
        Self {
            batch_max: w.batch_max,
            linger: Duration::from_millis(w.linger_ms),
            max_backoff: Duration::from_millis(w.max_backoff_ms),
            max_body_bytes: q.max_body_bytes,
        }
    }
}

/// One writer task; returns when `cancel` fires (without acking anything it
/// has not committed).
pub async fn run_writer<C: Consumer>(
    mut consumer: C,
    db: Db,
    hub: Hub,
    settings: WriterSettings,
    cancel: CancellationToken,
) {
    let backend = consumer.backend();
    let mut failures = 0;
    loop {
        let batch = tokio::select! {
            _ = cancel.cancelled() => return,
            b = consumer.next_batch(settings.batch_max, settings.linger) => b,
        };
        let batch = match batch {
            Ok(b) => {
                failures = 0;
                b
            }
            Err(error) => {
                tracing::warn!(%error, backend, "queue receive failed");
                failures += 1;
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff::retry(settings.max_backoff).delay(failures)) => continue,
                }
            }
        };
        if batch.is_empty() {
            continue;
        }
        if !process(&mut consumer, &db, &hub, &settings, &cancel, batch).await {
            return;
        }
    }
}

/// Handles one batch; false when cancelled before it was committed.
async fn process<C: Consumer>(
    consumer: &mut C,
    db: &Db,
    hub: &Hub,
    settings: &WriterSettings,
    cancel: &CancellationToken,
    batch: Vec<Delivery<C::Token>>,
) -> bool {
    let started = Instant::now();
    let metrics = db.metrics().clone();
    let mut items: Vec<(Vec<NewMessage>, Delivery<C::Token>)> = Vec::with_capacity(batch.len());
    for d in batch {
        match decode_payload(&d.payload, d.encoding, settings.max_body_bytes) {
            Ok(m) => items.push((m, d)),
            Err(error) => {
                tracing::warn!(%error, partition = d.partition, "poison message to the dead-letter queue");
                if !dead_letter(consumer, d, &error.to_string(), settings, cancel).await {
                    return false;
                }
                metrics.writer_dead_letters.inc();
            }
        }
    }
    if items.is_empty() {
        return true;
    }
    if !reject_outsiders(db, &mut items, settings, cancel).await {
        return false;
    }
    let msgs: Vec<NewMessage> = items.iter().flat_map(|(m, _)| m.iter().cloned()).collect();
    let oldest = Oldest::of(&msgs);
    oldest.observe(db);
    // A traced send's commit joins its trace (one span for the batch).
    let traced = msgs
        .iter()
        .map(|m| m.traceparent.as_str())
        .find(|t| !t.is_empty());
    let span = confab_common::trace::continued(
        traced,
        || tracing::info_span!(target: TARGET, "persist.commit", messages = msgs.len(), trace_id = tracing::field::Empty),
    );
    let outcome = match write_retrying(db, &msgs, settings, cancel).instrument(span).await {
        Some(Ok(o)) => o,
        None => return false,
        Some(Err(error)) => {
            // Something in the batch is refused by the database for good:
            // write message by message, set aside only what fails alone.
            tracing::warn!(%error, n = msgs.len(), "batch refused, writing one by one");
            let mut total = BatchOutcome::default();
            let mut keep = Vec::with_capacity(items.len());
            for (m, d) in items {
                let mut refused = Vec::new();
                for one in &m {
                    match write_retrying(db, std::slice::from_ref(one), settings, cancel).await {
                        None => return false,
                        Some(Ok(o)) => {
                            total.written.extend(o.written);
                            total.duplicates += o.duplicates;
                            total.change = total.change.max(o.change);
                        }
                        Some(Err(error)) => {
                            tracing::warn!(%error, message_id = one.message_id, "message refused, to the dead-letter queue");
                            refused.push((one, error.to_string()));
                        }
                    }
                }
                if refused.is_empty() {
                    keep.push((m, d));
                    continue;
                }
                let reason = refused
                    .iter()
                    .map(|(one, why)| format!("message {}: {why}", one.message_id))
                    .collect::<Vec<_>>()
                    .join("; ");
                let n = refused.len() as u64;
                let set_aside = if refused.len() == m.len() {
                    dead_letter(consumer, d, &reason, settings, cancel).await
                } else {
                    // Only the refused messages go aside; the delivery's
                    // others are committed, so it is acknowledged with them.
                    let part = QueuedBatch {
                        messages: refused.iter().map(|(one, _)| queued(one)).collect(),
                    };
                    dead_letter_part(consumer, d, part, &reason, settings, cancel).await
                };
                if !set_aside {
                    return false;
                }
                metrics.writer_dead_letters.inc_by(n);
            }
            items = keep;
            total
        }
    };
    let tokens = items.into_iter().map(|(_, d)| d.token).collect();
    if let Err(error) = consumer.ack(tokens).await {
        // The broker will deliver them again; the insert is idempotent.
        tracing::warn!(%error, "ack after commit failed; redelivery will be deduplicated");
    }
    metrics.writer_batches.inc();
    metrics.writer_messages.inc_by(outcome.written.len() as u64);
    metrics.writer_duplicates.inc_by(outcome.duplicates as u64);
    metrics
        .writer_batch_seconds
        .with_label_values(&[consumer.backend()])
        .observe(started.elapsed().as_secs_f64());
    hub.publish(&outcome.written);
    metrics.queue_oldest_age.set(0.0);
    true
}

/// When the oldest message of a batch was accepted (Unix ms): its gateway's
/// stamp, or the time inside its id.
#[derive(Clone, Copy)]
struct Oldest(u64);

impl Oldest {
    fn of(msgs: &[NewMessage]) -> Self {
        let accepted = |m: &NewMessage| match m.server_time_ms {
            t if t > 0 => t as u64,
            _ => confab_common::ids::time_ms(m.message_id),
        };
        Oldest(msgs.iter().map(accepted).min().unwrap_or(0))
    }

    /// Sets the age gauge to now minus this time.
    fn observe(self, db: &Db) {
        if self.0 > 0 {
            let age = confab_common::ids::now_ms().saturating_sub(self.0);
            db.metrics().queue_oldest_age.set(age as f64 / 1000.0);
        }
    }
}

/// The second line of the participant rule (the gateway checks first):
/// drops messages whose sender is not one of the two users of a direct
/// conversation, or not a member of the group (removed meanwhile, or a
/// forged conversation id), with a warning and a metric; their deliveries
/// are still acked with the batch. False when cancelled.
async fn reject_outsiders<T>(
    db: &Db,
    items: &mut [(Vec<NewMessage>, T)],
    settings: &WriterSettings,
    cancel: &CancellationToken,
) -> bool {
    let pairs: Vec<(u64, u64)> = items
        .iter()
        .flat_map(|(m, _)| m.iter())
        .filter_map(|m| match m.conversation {
            ConversationId::Group(g) => Some((g, m.sender)),
            ConversationId::Direct { .. } => None,
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let members = if pairs.is_empty() {
        HashSet::new()
    } else {
        let mut attempt = 0;
        loop {
            match db.memberships(&pairs).await {
                Ok(m) => break m,
                Err(error) if error.is_transient() => {
                    attempt += 1;
                    tokio::select! {
                        _ = cancel.cancelled() => return false,
                        _ = tokio::time::sleep(backoff::retry(settings.max_backoff).delay(attempt)) => {}
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "membership check failed; writing unchecked");
                    break pairs.iter().copied().collect();
                }
            }
        }
    };
    for (msgs, _) in items.iter_mut() {
        msgs.retain(|m| {
            let ok = match m.conversation {
                ConversationId::Direct { lo, hi } => m.sender == lo || m.sender == hi,
                ConversationId::Group(g) => members.contains(&(g, m.sender)),
            };
            if !ok {
                tracing::warn!(
                    message_id = m.message_id,
                    sender = m.sender,
                    conversation = %m.conversation,
                    "sender is no participant; message not written"
                );
                db.metrics().writer_rejected.inc();
            }
            ok
        });
    }
    true
}

/// Writes, retrying transient failures until `cancel`. None when cancelled.
async fn write_retrying(
    db: &Db,
    msgs: &[NewMessage],
    settings: &WriterSettings,
    cancel: &CancellationToken,
) -> Option<Result<BatchOutcome, Error>> {
    let mut attempt = 0;
    loop {
        match db.write_batch(msgs).await {
            Err(error) if error.is_transient() => {
                db.metrics().writer_retries.inc();
                Oldest::of(msgs).observe(db);
                if attempt % 10 == 0 {
                    tracing::warn!(%error, attempt, "database unavailable, batch waits");
                }
                attempt += 1;
                tokio::select! {
                    _ = cancel.cancelled() => return None,
                    _ = tokio::time::sleep(backoff::retry(settings.max_backoff).delay(attempt)) => {}
                }
            }
            r => return Some(r),
        }
    }
}

/// The queued form of a message (to set it aside on its own).
fn queued(m: &NewMessage) -> QueuedMessage {
    QueuedMessage {
        message_id: m.message_id,
        conversation_id: m.conversation.to_string(),
        sender: m.sender,
        body: m.body.clone(),
        client_msg_id: m.client_msg_id.clone(),
        server_time_ms: m.server_time_ms,
        traceparent: m.traceparent.clone(),
    }
}

async fn dead_letter_part<C: Consumer>(
    consumer: &mut C,
    d: Delivery<C::Token>,
    part: QueuedBatch,
    reason: &str,
    settings: &WriterSettings,
    cancel: &CancellationToken,
) -> bool {
    match consumer.dead_letter_part(d, encode_batch(&part), reason).await {
        Ok(()) => true,
        Err(error) => {
            // Not acked: the delivery comes back, its committed messages are
            // duplicates then and the refused one is tried again.
            tracing::warn!(%error, "setting a part aside failed; the delivery will be redelivered");
            tokio::select! {
                _ = cancel.cancelled() => false,
                _ = tokio::time::sleep(settings.max_backoff.min(Duration::from_millis(200))) => true,
            }
        }
    }
}

async fn dead_letter<C: Consumer>(
    consumer: &mut C,
    d: Delivery<C::Token>,
    reason: &str,
    settings: &WriterSettings,
    cancel: &CancellationToken,
) -> bool {
    match consumer.dead_letter(d, reason).await {
        Ok(()) => true,
        Err(error) => {
            // Not acked, so it comes back and is tried again: never lost.
            tracing::warn!(%error, "dead-lettering failed; the message will be redelivered");
            tokio::select! {
                _ = cancel.cancelled() => false,
                _ = tokio::time::sleep(settings.max_backoff.min(Duration::from_millis(200))) => true,
            }
        }
    }
}
