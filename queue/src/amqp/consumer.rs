//! The RabbitMQ consumer: a self-healing connection feeding the writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::topology::{AmqpSettings, connect, declare_topology};
use crate::backoff;
use crate::consumer::{Consumer, Delivery};
use crate::envelope::Encoding;
use crate::error::QueueError;

/// Token of a RabbitMQ delivery.
#[derive(Debug)]
pub struct AmqpToken {
    acker: lapin::Acker,
    epoch: u64,
    /// The delivery's channel (in confirm mode): a part set aside is
    /// published on it before the delivery is acknowledged.
    channel: Channel,
}

/// Consumes some partitions through a self-healing connection.
pub struct AmqpConsumer {
    rx: mpsc::Receiver<Delivery<AmqpToken>>,
    dead_letters: String,
    epoch: Arc<AtomicU64>,
    cancel: CancellationToken,
}

impl AmqpConsumer {
    /// Starts consuming `partitions` in the background.
    pub fn start(settings: AmqpSettings, partitions: Vec<u32>) -> Self {
        let (tx, rx) = mpsc::channel(usize::from(settings.prefetch).max(16));
        let dead_letters = settings.dead_letter_queue();
        let epoch = Arc::new(AtomicU64::new(0));
        let cancel = CancellationToken::new();
        tokio::spawn(consume_loop(
            settings,
            partitions,
            tx,
            epoch.clone(),
            cancel.clone(),
        ));
        Self {
            rx,
            dead_letters,
            epoch,
            cancel,
        }
    }

    /// How many times the connection was (re)established.
    pub fn connections(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }
}

impl Drop for AmqpConsumer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn consume_loop(
    s: AmqpSettings,
    partitions: Vec<u32>,
    tx: mpsc::Sender<Delivery<AmqpToken>>,
    epoch: Arc<AtomicU64>,
    cancel: CancellationToken,
) {
    let mut attempt = 0;
    loop {
        let r = tokio::select! {
            _ = cancel.cancelled() => return,
            r = consume_once(&s, &partitions, &tx, &epoch, &cancel) => r,
        };
        if tx.is_closed() || cancel.is_cancelled() {
            return;
        }
        match r {
            Ok(true) => attempt = 0,
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, attempt, "broker connection failed"),
        }
        attempt += 1;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff::retry(s.max_backoff).delay(attempt)) => {}
        }
    }
}

/// One connection's life; Ok(true) when it delivered something before it
/// ended (so the backoff restarts from the bottom).
async fn consume_once(
    s: &AmqpSettings,
    partitions: &[u32],
    tx: &mpsc::Sender<Delivery<AmqpToken>>,
    epoch: &AtomicU64,
    cancel: &CancellationToken,
) -> Result<bool, QueueError> {
    let conn = connect(s, "writer").await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    declare_topology(&ch, s).await?;
    ch.basic_qos(s.prefetch, BasicQosOptions::default()).await?;
    let mut streams = Vec::new();
    for p in partitions {
        let consumer = ch
            .basic_consume(
                s.partition_queue(*p).as_str().into(),
                format!("writer-{}-p{p}", std::process::id()).as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let p = *p;
        streams.push(consumer.map(move |d| (p, d)).boxed());
    }
    let my_epoch = epoch.fetch_add(1, Ordering::SeqCst) + 1;
    tracing::info!(
        epoch = my_epoch,
        partitions = partitions.len(),
        "consuming from the broker"
    );
    let mut all = futures::stream::select_all(streams);
    let mut delivered = false;
    let end = loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => break Ok(delivered),
            n = all.next() => n,
        };
        match next {
            Some((p, Ok(d))) => {
                delivered = true;
                let item = Delivery {
                    payload: d.data,
                    encoding: Encoding::Batch,
                    partition: p,
                    token: AmqpToken {
                        acker: d.acker,
                        epoch: my_epoch,
                        channel: ch.clone(),
                    },
                };
                if tx.send(item).await.is_err() {
                    break Ok(delivered);
                }
            }
            Some((_, Err(e))) => break Err(QueueError::Broker(e)),
            None => break Ok(delivered),
        }
    };
    let _ = conn.close(200, "bye".into()).await;
    end
}

impl Consumer for AmqpConsumer {
    type Token = AmqpToken;

    async fn next_batch(
        &mut self,
        max: usize,
        linger: Duration,
    ) -> Result<Vec<Delivery<AmqpToken>>, QueueError> {
        let mut out = Vec::new();
        while out.is_empty() {
            let first = self.rx.recv().await.ok_or(QueueError::Closed)?;
            out.push(first);
            let deadline = tokio::time::Instant::now() + linger;
            while out.len() < max {
                match self.rx.try_recv() {
                    Ok(d) => out.push(d),
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                            Ok(Some(d)) => out.push(d),
                            Ok(None) | Err(_) => break,
                        }
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            }
            // Deliveries of a connection that died come again on the new one.
            let current = self.epoch.load(Ordering::SeqCst);
            out.retain(|d| d.token.epoch == current);
        }
        Ok(out)
    }

    async fn ack(&mut self, tokens: Vec<AmqpToken>) -> Result<(), QueueError> {
        let acks = tokens.iter().map(|t| t.acker.ack(BasicAckOptions::default()));
        for r in futures::future::join_all(acks).await {
            r?;
        }
        Ok(())
    }

    async fn dead_letter(&mut self, d: Delivery<AmqpToken>, reason: &str) -> Result<(), QueueError> {
        tracing::warn!(
            reason,
            partition = d.partition,
            "rejecting to the dead-letter queue"
        );
        d.token
            .acker
            .reject(BasicRejectOptions { requeue: false })
            .await?;
        Ok(())
    }

    async fn dead_letter_part(
        &mut self,
        d: Delivery<AmqpToken>,
        part: Vec<u8>,
        reason: &str,
    ) -> Result<(), QueueError> {
        tracing::warn!(
            reason,
            partition = d.partition,
            "part of a delivery to the dead-letter queue"
        );
        let mut headers = FieldTable::default();
        let reason = &reason[..reason.floor_char_boundary(4096)];
        headers.insert("x-confab-reason".into(), AMQPValue::LongString(reason.into()));
        let confirm = d
            .token
            .channel
            .basic_publish(
                "".into(),
                self.dead_letters.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &part,
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_headers(headers),
            )
            .await?
            .await?;
        if !confirm.is_ack() || confirm.take_message().is_some() {
            return Err(QueueError::Invalid(
                "the dead-letter queue did not take the part set aside".into(),
            ));
        }
        d.token.acker.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "amqp"
    }
}
