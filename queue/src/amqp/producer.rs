//! The RabbitMQ producer. Calls are queued to one publisher task, which
//! takes everything waiting (group commit), publishes one envelope per
//! partition in call order, waits for the confirms, and answers each call.
//! Under load, envelopes grow by themselves; one task keeps the order.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use super::topology::{AmqpSettings, connect, declare_topology};
use crate::backoff;
use crate::envelope::{QueuedBatch, QueuedMessage, partitions_of};
use crate::error::QueueError;
use crate::producer::Producer;

/// Most chat messages the publisher task puts in one round.
const MAX_ROUND: usize = 5000;

struct Call {
    msgs: Vec<QueuedMessage>,
    parts: Vec<u32>,
    reply: oneshot::Sender<Result<(), QueueError>>,
}

/// Publishes to the partition queues with publisher confirms. A gateway
/// uses this directly; share it (`Arc`), call it concurrently.
pub struct AmqpProducer {
    settings: AmqpSettings,
    tx: mpsc::UnboundedSender<Call>,
    close: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

impl AmqpProducer {
    /// Connects now (so a bad URL fails early) and declares the topology.
    pub async fn connect(settings: AmqpSettings) -> Result<Self, QueueError> {
        let p = Self::new(settings);
        p.enqueue(&[]).await?;
        Ok(p)
    }

    /// Connects on first use (and again whenever the connection is lost).
    /// Must be called inside a tokio runtime.
    pub fn new(settings: AmqpSettings) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (close, close_rx) = mpsc::unbounded_channel();
        tokio::spawn(publisher(settings.clone(), rx, close_rx));
        Self { settings, tx, close }
    }

    /// Closes the connection (a later call reconnects).
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.close.send(tx).is_ok() {
            let _ = rx.await;
        }
    }
}

impl Producer for AmqpProducer {
    async fn enqueue(&self, msgs: &[QueuedMessage]) -> Result<(), QueueError> {
        let parts = partitions_of(msgs, self.settings.partitions, self.settings.max_body_bytes)?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Call {
                msgs: msgs.to_vec(),
                parts,
                reply,
            })
            .map_err(|_| QueueError::Closed)?;
        rx.await.map_err(|_| QueueError::Closed)?
    }
}

struct Link {
    conn: Connection,
    channel: Channel,
}

async fn open(s: &AmqpSettings) -> Result<Link, QueueError> {
    let conn = connect(s, "producer").await?;
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    declare_topology(&channel, s).await?;
    Ok(Link { conn, channel })
}

async fn publisher(
    s: AmqpSettings,
    mut rx: mpsc::UnboundedReceiver<Call>,
    mut close: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
) {
    let mut link: Option<Link> = None;
    loop {
        let first = tokio::select! {
            c = rx.recv() => match c {
                Some(c) => c,
                None => break,
            },
            Some(done) = close.recv() => {
                if let Some(l) = link.take() {
                    let _ = l.conn.close(200, "closed".into()).await;
                }
                let _ = done.send(());
                continue;
            }
        };
        let mut calls = vec![first];
        let mut n = calls[0].msgs.len();
        while n < MAX_ROUND {
            match rx.try_recv() {
                Ok(c) => {
                    n += c.msgs.len();
                    calls.push(c);
                }
                Err(_) => break,
            }
        }
        let result = publish_round(&s, &mut link, &calls)
            .await
            .map_err(|e| e.to_string());
        for c in calls {
            let _ = c.reply.send(result.clone().map_err(QueueError::Publish));
        }
    }
    if let Some(l) = link.take() {
        let _ = l.conn.close(200, "dropped".into()).await;
    }
}

/// Publishes every call of the round, reconnecting up to three times.
/// Unconfirmed envelopes are published again: the writer deduplicates.
async fn publish_round(s: &AmqpSettings, link: &mut Option<Link>, calls: &[Call]) -> Result<(), QueueError> {
    let mut attempt = 0;
    loop {
        let healthy = link
            .as_ref()
            .is_some_and(|l| l.conn.status().connected() && l.channel.status().connected());
        if !healthy {
            *link = None;
        }
        let r = match link {
            Some(l) => publish_all(s, &l.channel, calls).await,
            None => match open(s).await {
                Ok(l) => {
                    let r = publish_all(s, &l.channel, calls).await;
                    *link = Some(l);
                    r
                }
                Err(e) => Err(e),
            },
        };
        match r {
            Ok(()) => return Ok(()),
            // A certificate that does not verify does not verify the next time.
            Err(e @ QueueError::Tls(_)) => return Err(e),
            Err(e) if attempt < 3 => {
                tracing::warn!(error = %e, attempt, "publish failed, reconnecting");
                if let Some(l) = link.take() {
                    let _ = l.conn.close(200, "reset".into()).await;
                }
                attempt += 1;
                tokio::time::sleep(backoff::retry(s.max_backoff).delay(attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One envelope per partition (messages in call order), then every confirm.
async fn publish_all(s: &AmqpSettings, ch: &Channel, calls: &[Call]) -> Result<(), QueueError> {
    let mut envelopes: Vec<(u32, QueuedBatch)> = Vec::new();
    for c in calls {
        for (m, p) in c.msgs.iter().zip(&c.parts) {
            match envelopes.iter_mut().find(|(q, _)| q == p) {
                Some((_, b)) => b.messages.push(m.clone()),
                None => envelopes.push((
                    *p,
                    QueuedBatch {
                        messages: vec![m.clone()],
                    },
                )),
            }
        }
    }
    let mut confirms = Vec::with_capacity(envelopes.len());
    for (p, batch) in &envelopes {
        let confirm = ch
            .basic_publish(
                "".into(),
                s.partition_queue(*p).as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &batch.encode_to_vec(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?;
        confirms.push((batch.messages[0].message_id, confirm));
    }
    for (message_id, confirm) in confirms {
        let c = confirm.await?;
        if !c.is_ack() || c.take_message().is_some() {
            return Err(QueueError::NotConfirmed { message_id });
        }
    }
    Ok(())
}
