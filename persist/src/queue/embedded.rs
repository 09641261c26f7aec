//! The embedded queue: sled trees inside the persist process, one per
//! partition (`p{n}`, keys big-endian u64 in enqueue order) and one for dead
//! letters (`dlq`). An enqueue call stores its messages of one partition as
//! one entry (a `QueuedBatch` envelope when there are several, as RabbitMQ
//! does), so a busy queue does one sled insert per call and partition, not
//! one per message. Enqueue returns after a (group-committed) flush; ack
//! removes the keys; what was delivered but not acked is delivered again
//! after a restart. Gateways reach it through the gRPC `QueueService`.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use confab_proto::persist::QueuedBatch;
use prost::Message;

use super::{Consumer, Delivery, Encoding, Producer, QueuedMessage, encode, partitions_of};
use crate::error::QueueError;

/// Handle on an open embedded queue; cheap to clone.
#[derive(Clone)]
pub struct EmbeddedQueue {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    parts: Vec<Part>,
    dlq: sled::Tree,
    arrived: Notify,
    flush: Arc<FlushState>,
    max_body_bytes: usize,
}

struct Part {
    tree: sled::Tree,
    /// The next key; the lock also keeps keys in insertion order.
    next: Mutex<u64>,
}

struct FlushState {
    /// Flush requests so far.
    requested: AtomicU64,
    kick: Notify,
    /// The request count the last finished flush covered.
    done: watch::Sender<u64>,
    failed: AtomicBool,
}

/// A dead letter: the payload and why it was set aside.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub payload: Vec<u8>,
    pub reason: String,
}

fn last_key(tree: &sled::Tree) -> Result<u64, QueueError> {
    Ok(match tree.last()? {
        Some((k, _)) => key_u64(&k) + 1,
        None => 1,
    })
}

/// How an entry is encoded: an envelope starts with the tag of its field 1
/// (length-delimited, 0x0A), which a single message (field 1 a varint)
/// never does.
fn encoding_of(payload: &[u8]) -> Encoding {
    if payload.first() == Some(&0x0A) {
        Encoding::Batch
    } else {
        Encoding::Single
    }
}

fn key_u64(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = k.len().min(8);
    b[..n].copy_from_slice(&k[..n]);
    u64::from_be_bytes(b)
}

impl EmbeddedQueue {
    /// Opens (or creates) the queue in `dir`. The partition count is fixed
    /// at creation: reopening with another count fails.
    pub fn open(dir: &Path, partitions: u32, max_body_bytes: usize) -> Result<Self, QueueError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let stored = db.get("partitions")?;
        match stored {
            Some(v) if key_u64(&v) != u64::from(partitions) => {
                return Err(QueueError::Invalid(format!(
                    "embedded queue in {} has {} partitions, config says {partitions}",
                    dir.display(),
                    key_u64(&v)
                )));
            }
            Some(_) => {}
            None => {
                db.insert("partitions", &u64::from(partitions).to_be_bytes())?;
            }
        }
        let parts = (0..partitions)
            .map(|p| {
                let tree = db.open_tree(format!("p{p}"))?;
                let next = last_key(&tree)?;
                Ok(Part {
                    tree,
                    next: Mutex::new(next),
                })
            })
            .collect::<Result<Vec<_>, QueueError>>()?;
        let dlq = db.open_tree("dlq")?;
        let flush = Arc::new(FlushState {
            requested: AtomicU64::new(0),
            kick: Notify::new(),
            done: watch::channel(0).0,
            failed: AtomicBool::new(false),
        });
        let inner = Arc::new(Inner {
            db,
            parts,
            dlq,
            arrived: Notify::new(),
            flush: flush.clone(),
            max_body_bytes,
        });
        tokio::spawn(flusher(Arc::downgrade(&inner), flush));
        Ok(Self { inner })
    }

    pub fn partitions(&self) -> u32 {
        self.inner.parts.len() as u32
    }

    /// A consumer of the given partitions.
    pub fn consumer(&self, partitions: Vec<u32>) -> EmbeddedConsumer {
        EmbeddedConsumer {
            queue: self.clone(),
            cursors: partitions.into_iter().map(|p| (p, None)).collect(),
            start: 0,
        }
    }

    /// Messages waiting (delivered or not, not acked) in all partitions.
    pub fn len(&self) -> usize {
        self.inner
            .parts
            .iter()
            .flat_map(|p| p.tree.iter().values())
            .map(|v| match v {
                Ok(v) if encoding_of(&v) == Encoding::Batch => {
                    QueuedBatch::decode(v.as_ref()).map_or(1, |b| b.messages.len())
                }
                _ => 1,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        self.inner
            .dlq
            .iter()
            .map(|r| {
                let (_, v) = r?;
                if v.len() < 4 {
                    return Err(QueueError::Invalid("truncated dead letter".into()));
                }
                let n = u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as usize;
                let n = n.min(v.len() - 4);
                Ok(DeadLetter {
                    reason: String::from_utf8_lossy(&v[4..4 + n]).into_owned(),
                    payload: v[4 + n..].to_vec(),
                })
            })
            .collect()
    }

    /// Enqueues raw payloads into one partition (tests use this to inject
    /// malformed payloads; production code goes through [`Producer`]).
    pub async fn enqueue_raw(&self, partition: u32, payloads: &[Vec<u8>]) -> Result<(), QueueError> {
        let part = self
            .inner
            .parts
            .get(partition as usize)
            .ok_or_else(|| QueueError::Invalid(format!("no partition {partition}")))?;
        {
            let mut next = part.next.lock().unwrap_or_else(|e| e.into_inner());
            let mut batch = sled::Batch::default();
            for p in payloads {
                batch.insert(&next.to_be_bytes(), p.as_slice());
                *next += 1;
            }
            part.tree.apply_batch(batch)?;
        }
        self.inner.arrived.notify_waiters();
        self.flushed().await
    }

    /// Waits until everything written so far is on disk (group commit).
    async fn flushed(&self) -> Result<(), QueueError> {
        let f = &self.inner.flush;
        let mine = f.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut rx = f.done.subscribe();
        f.kick.notify_one();
        rx.wait_for(|done| *done >= mine || f.failed.load(Ordering::SeqCst))
            .await
            .map_err(|_| QueueError::Closed)?;
        if f.failed.load(Ordering::SeqCst) {
            return Err(QueueError::Closed);
        }
        Ok(())
    }
}

/// Flushes sled whenever asked, covering every request made before the
/// flush started. Holds no strong reference while idle.
async fn flusher(inner: Weak<Inner>, state: Arc<FlushState>) {
    loop {
        state.kick.notified().await;
        let Some(q) = inner.upgrade() else { return };
        let target = state.requested.load(Ordering::SeqCst);
        let db = q.db.clone();
        drop(q);
        let r = tokio::task::spawn_blocking(move || db.flush()).await;
        if !matches!(r, Ok(Ok(_))) {
            tracing::error!("embedded queue flush failed; enqueuers will see a closed queue");
            state.failed.store(true, Ordering::SeqCst);
            state.done.send_modify(|_| {});
            return;
        }
        state.done.send_replace(target);
    }
}

impl Producer for EmbeddedQueue {
    async fn enqueue(&self, msgs: &[QueuedMessage]) -> Result<(), QueueError> {
        let parts = partitions_of(msgs, self.partitions(), self.inner.max_body_bytes)?;
        let mut by_part: Vec<Vec<QueuedMessage>> = vec![Vec::new(); self.inner.parts.len()];
        for (m, p) in msgs.iter().zip(parts) {
            by_part[p as usize].push(m.clone());
        }
        for (p, mut messages) in by_part.into_iter().enumerate() {
            let payload = match messages.len() {
                0 => continue,
                1 => encode(&messages.remove(0)),
                _ => QueuedBatch { messages }.encode_to_vec(),
            };
            let part = &self.inner.parts[p];
            let mut next = part.next.lock().unwrap_or_else(|e| e.into_inner());
            part.tree.insert(next.to_be_bytes(), payload)?;
            *next += 1;
        }
        self.inner.arrived.notify_waiters();
        self.flushed().await
    }
}

/// Token of an embedded delivery: its partition and key.
#[derive(Debug, Clone)]
pub struct EmbeddedToken {
    partition: u32,
    key: sled::IVec,
}

/// Consumes some partitions of an [`EmbeddedQueue`].
pub struct EmbeddedConsumer {
    queue: EmbeddedQueue,
    /// Per partition, the last key delivered.
    cursors: Vec<(u32, Option<sled::IVec>)>,
    /// Round-robin start, so no partition starves.
    start: usize,
}

impl EmbeddedConsumer {
    fn scan(&mut self, max: usize, out: &mut Vec<Delivery<EmbeddedToken>>) -> Result<(), QueueError> {
        let n = self.cursors.len();
        if n == 0 {
            return Ok(());
        }
        // A fair share per partition first, then whatever room is left.
        for round in 0..2 {
            for i in 0..n {
                let room = max.saturating_sub(out.len());
                if room == 0 {
                    return Ok(());
                }
                let share = if round == 0 { room.div_ceil(n).max(1) } else { room };
                let idx = (self.start + i) % n;
                let (p, cursor) = &mut self.cursors[idx];
                let tree = &self.queue.inner.parts[*p as usize].tree;
                let lower = match cursor {
                    Some(k) => Bound::Excluded(k.clone()),
                    None => Bound::Unbounded,
                };
                for item in tree.range::<sled::IVec, _>((lower, Bound::Unbounded)).take(share) {
                    let (k, v) = item?;
                    *cursor = Some(k.clone());
                    out.push(Delivery {
                        encoding: encoding_of(&v),
                        payload: v.to_vec(),
                        partition: *p,
                        token: EmbeddedToken {
                            partition: *p,
                            key: k,
                        },
                    });
                }
            }
        }
        self.start = (self.start + 1) % n;
        Ok(())
    }
}

impl Consumer for EmbeddedConsumer {
    type Token = EmbeddedToken;

    async fn next_batch(
        &mut self,
        max: usize,
        linger: Duration,
    ) -> Result<Vec<Delivery<EmbeddedToken>>, QueueError> {
        let mut out = Vec::new();
        let queue = self.queue.clone();
        loop {
            let notified = queue.inner.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.scan(max, &mut out)?;
            if !out.is_empty() {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
        if out.len() < max && !linger.is_zero() {
            tokio::time::sleep(linger).await;
            self.scan(max, &mut out)?;
        }
        Ok(out)
    }

    async fn ack(&mut self, tokens: Vec<EmbeddedToken>) -> Result<(), QueueError> {
        let mut batches: Vec<Option<sled::Batch>> = vec![None; self.queue.inner.parts.len()];
        for t in tokens {
            batches[t.partition as usize]
                .get_or_insert_with(sled::Batch::default)
                .remove(t.key);
        }
        for (p, b) in batches.into_iter().enumerate() {
            if let Some(b) = b {
                self.queue.inner.parts[p].tree.apply_batch(b)?;
            }
        }
        Ok(())
    }

    async fn dead_letter(&mut self, d: Delivery<EmbeddedToken>, reason: &str) -> Result<(), QueueError> {
        let reason = &reason.as_bytes()[..reason.len().min(4096)];
        let mut v = Vec::with_capacity(4 + reason.len() + d.payload.len());
        v.extend_from_slice(&(reason.len() as u32).to_be_bytes());
        v.extend_from_slice(reason);
        v.extend_from_slice(&d.payload);
        let id = self.queue.inner.db.generate_id()?;
        self.queue.inner.dlq.insert(id.to_be_bytes(), v)?;
        self.queue.inner.parts[d.token.partition as usize]
            .tree
            .remove(d.token.key)?;
        self.queue.flushed().await
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}
