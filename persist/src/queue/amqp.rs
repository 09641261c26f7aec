//! RabbitMQ backend (lapin).
//!
//! Topology, declared by producers and consumers alike (idempotent):
//! - `{prefix}.p{n}` for each partition: durable, single active consumer
//!   (`x-single-active-consumer`), dead letters routed to `{prefix}.dlq`;
//! - `{prefix}.dlq`: durable, where rejected (poison) messages go.
//!
//! The producer publishes persistent, mandatory messages on a confirm
//! channel and returns only when every one is confirmed. The consumer runs a
//! background task that (re)connects with backoff, consumes its partitions
//! with a prefetch and hands deliveries to the writer; acks are manual and
//! happen after the SQL commit. Deliveries of a connection that died are
//! dropped (the broker redelivers them; the writer deduplicates).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use super::{Consumer, Delivery, Producer, QueuedMessage, backoff, encode, partitions_of};
use crate::error::QueueError;

/// Where the queues are and how they are named.
#[derive(Clone, Debug)]
pub struct AmqpSettings {
    pub url: String,
    pub prefix: String,
    pub partitions: u32,
    pub prefetch: u16,
    pub max_body_bytes: usize,
    pub max_backoff: Duration,
    /// Shown by the broker (`rabbitmqctl list_connections client_properties`).
    pub connection_name: String,
}

impl AmqpSettings {
    pub fn partition_queue(&self, p: u32) -> String {
        format!("{}.p{p}", self.prefix)
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.prefix)
    }
}

async fn connect(s: &AmqpSettings, role: &str) -> Result<Connection, QueueError> {
    let name = format!("{} {role}", s.connection_name);
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Ok(Connection::connect(&s.url, props).await?)
}

/// Declares the dead-letter queue and every partition queue.
pub async fn declare_topology(ch: &Channel, s: &AmqpSettings) -> Result<(), QueueError> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare(
        s.dead_letter_queue().as_str().into(),
        durable,
        FieldTable::default(),
    )
    .await?;
    for p in 0..s.partitions {
        let mut args = FieldTable::default();
        args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(s.dead_letter_queue().as_str().into()),
        );
        ch.queue_declare(s.partition_queue(p).as_str().into(), durable, args)
            .await?;
    }
    Ok(())
}

/// Deletes the partition queues and the dead-letter queue (tests, bench).
pub async fn delete_queues(s: &AmqpSettings) {
    let Ok(conn) = connect(s, "cleanup").await else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        let mut names: Vec<String> = (0..s.partitions).map(|p| s.partition_queue(p)).collect();
        names.push(s.dead_letter_queue());
        for n in names {
            let _ = ch
                .queue_delete(n.as_str().into(), lapin::options::QueueDeleteOptions::default())
                .await;
        }
    }
    let _ = conn.close(200, "cleanup".into()).await;
}

/// Publishes to the partition queues with publisher confirms. A gateway
/// uses this directly; cheap to share (`Arc`), safe to call concurrently.
pub struct AmqpProducer {
    settings: AmqpSettings,
    conn: Mutex<Option<(Connection, Channel)>>,
}

impl AmqpProducer {
    /// Connects now (so a bad URL fails early) and declares the topology.
    pub async fn connect(settings: AmqpSettings) -> Result<Self, QueueError> {
        let p = Self::new(settings);
        p.channel().await?;
        Ok(p)
    }

    /// Connects on first use (and again whenever the connection is lost).
    pub fn new(settings: AmqpSettings) -> Self {
        Self {
            settings,
            conn: Mutex::new(None),
        }
    }

    async fn channel(&self) -> Result<Channel, QueueError> {
        let mut guard = self.conn.lock().await;
        if let Some((c, ch)) = guard.as_ref()
            && c.status().connected()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        let conn = connect(&self.settings, "producer").await?;
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        declare_topology(&ch, &self.settings).await?;
        *guard = Some((conn, ch.clone()));
        Ok(ch)
    }

    async fn reset(&self) {
        if let Some((c, _)) = self.conn.lock().await.take() {
            let _ = c.close(200, "reset".into()).await;
        }
    }

    async fn publish_all(
        &self,
        ch: &Channel,
        msgs: &[QueuedMessage],
        parts: &[u32],
    ) -> Result<(), QueueError> {
        let mut confirms = Vec::with_capacity(msgs.len());
        for (m, p) in msgs.iter().zip(parts) {
            let confirm = ch
                .basic_publish(
                    "".into(),
                    self.settings.partition_queue(*p).as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &encode(m),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?;
            confirms.push((m.message_id, confirm));
        }
        for (message_id, confirm) in confirms {
            let c = confirm.await?;
            if !c.is_ack() || c.take_message().is_some() {
                return Err(QueueError::NotConfirmed { message_id });
            }
        }
        Ok(())
    }

    /// Closes the connection.
    pub async fn close(&self) {
        self.reset().await;
    }
}

impl Producer for AmqpProducer {
    async fn enqueue(&self, msgs: &[QueuedMessage]) -> Result<(), QueueError> {
        let parts = partitions_of(msgs, self.settings.partitions, self.settings.max_body_bytes)?;
        let mut attempt = 0;
        loop {
            let r = match self.channel().await {
                Ok(ch) => self.publish_all(&ch, msgs, &parts).await,
                Err(e) => Err(e),
            };
            match r {
                Ok(()) => return Ok(()),
                // Unconfirmed messages are published again: the writer
                // deduplicates by message id.
                Err(e) if attempt < 3 => {
                    tracing::warn!(error = %e, attempt, "publish failed, reconnecting");
                    self.reset().await;
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt, self.settings.max_backoff)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Token of a RabbitMQ delivery.
#[derive(Debug)]
pub struct AmqpToken {
    acker: lapin::Acker,
    epoch: u64,
}

/// Consumes some partitions through a self-healing connection.
pub struct AmqpConsumer {
    rx: mpsc::Receiver<Delivery<AmqpToken>>,
    epoch: Arc<AtomicU64>,
    cancel: CancellationToken,
}

impl AmqpConsumer {
    /// Starts consuming `partitions` in the background.
    pub fn start(settings: AmqpSettings, partitions: Vec<u32>) -> Self {
        let (tx, rx) = mpsc::channel(usize::from(settings.prefetch).max(16));
        let epoch = Arc::new(AtomicU64::new(0));
        let cancel = CancellationToken::new();
        tokio::spawn(consume_loop(
            settings,
            partitions,
            tx,
            epoch.clone(),
            cancel.clone(),
        ));
        Self { rx, epoch, cancel }
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
            _ = tokio::time::sleep(backoff(attempt, s.max_backoff)) => {}
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
                    partition: p,
                    token: AmqpToken {
                        acker: d.acker,
                        epoch: my_epoch,
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

    fn backend(&self) -> &'static str {
        "amqp"
    }
}
