//! The model-based crash test of the embedded queue, one model run against
//! both engines (`log` and `rocksdb`).
//!
//! A case is a random sequence of operations on a queue of 4 partitions:
//! enqueue (1-4 messages over 6 conversations), take deliveries, ack some
//! of those held, dead-letter one, restart (the process stops and starts
//! again; the disk keeps everything written) and crash.
//!
//! The crash drops every write not yet synced. Each engine reports every
//! sync right after it returns, before it answers anyone (the `durable`
//! observer of `OpenOptions`): the log says "this file is on disk up to N
//! bytes" after each `fdatasync` and "this directory's names are on disk"
//! after each directory sync; RocksDB says "everything written is on disk"
//! after each synced write batch, and the test takes a RocksDB checkpoint
//! of that state then (table files linked, the MANIFEST and the WAL copied
//! as far as they go; no flush). From the reports the test keeps the disk
//! a power cut would leave (`crash_disk.rs`): each file's bytes as of its
//! last sync, each directory's names as of its last directory sync. A crash
//! freezes that state at a chosen instant (between operations, or while an
//! enqueue or a dead letter is in flight), closes the queue, replaces the
//! directory with it, and sometimes keeps a random prefix of the unsynced
//! tail of an append-only file (the log's segments and dead letters,
//! RocksDB's WAL): a torn write. Then the queue is opened on it.
//!
//! Checked on every delivery and at the end (everything drained):
//! - nothing lost: every message whose enqueue returned Ok is delivered
//!   until it is acked or dead-lettered; every dead letter whose call
//!   returned Ok is among the dead letters;
//! - nothing made up: a delivery is a message enqueued, with its body, in
//!   its partition, and in each life a partition delivers in enqueue order;
//! - redelivery is bounded: a message is delivered at most once per life of
//!   the queue (open to restart or crash); after a restart an acked message
//!   never comes again; after a crash only one whose ack was not yet made
//!   durable may (an ack is durable once a later enqueue returned in the
//!   same life). So a message is delivered at most once, plus once per
//!   crash between its delivery and the enqueue that made its ack durable.
//!
//! `CONFAB_MODEL_CASES` (default 24 per engine) sets the number of cases,
//! `CONFAB_MODEL_SEED` replays a run (its seed is printed).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_queue::embedded::{EmbeddedConsumer, EmbeddedQueue, EmbeddedToken, Engine, OpenOptions};
use confab_queue::{Consumer, ConversationId, Delivery, Encoding, Producer, decode_payload};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

use crate::crash_disk::CrashDisk;
use crate::helpers::qmsg;

const PARTITIONS: u32 = 4;
/// Small log segments, so that segments rotate and drain within a case.
const SEGMENT_BYTES: u64 = 512;
const CONVERSATIONS: [(&str, u64); 6] = [
    ("d:1:2", 1),
    ("d:1:3", 3),
    ("g:7", 4),
    ("g:8", 5),
    ("d:2:5", 2),
    ("g:9", 6),
];

#[derive(Clone, Debug)]
enum Op {
    /// Messages in these conversations (indexes into CONVERSATIONS).
    Enqueue(Vec<usize>),
    /// Up to this many deliveries.
    Take(usize),
    /// The held deliveries whose bit is set.
    Ack(u64),
    /// One held delivery (index modulo their number).
    DeadLetter(usize),
    Restart,
    Crash(Crash),
}

#[derive(Clone, Debug)]
struct Crash {
    during: During,
    /// Microseconds between starting what is in flight and the crash.
    after_us: u64,
    /// Lengths of the torn tails, as fractions of them (none: no torn write).
    torn: Option<(u8, u64)>,
}

#[derive(Clone, Debug)]
enum During {
    Nothing,
    Enqueue(Vec<usize>),
    DeadLetter(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let convs = || proptest::collection::vec(0..CONVERSATIONS.len(), 1..=4);
    let during = prop_oneof![
        2 => Just(During::Nothing),
        2 => convs().prop_map(During::Enqueue),
        1 => any::<usize>().prop_map(During::DeadLetter),
    ];
    let crash = (
        during,
        0..1500u64,
        proptest::option::weighted(0.4, (0..=255u8, any::<u64>())),
    )
        .prop_map(|(during, after_us, torn)| {
            Op::Crash(Crash {
                during,
                after_us,
                torn,
            })
        });
    prop_oneof![
        6 => convs().prop_map(Op::Enqueue),
        5 => (1..8usize).prop_map(Op::Take),
        4 => any::<u64>().prop_map(Op::Ack),
        1 => any::<usize>().prop_map(Op::DeadLetter),
        1 => Just(Op::Restart),
        2 => crash,
    ]
}

/// What the model knows of one message.
struct Msg {
    body: String,
    partition: u32,
    /// Enqueue order (message ids count up).
    order: u64,
    /// The enqueue returned Ok (else it was in flight at a crash).
    confirmed: bool,
    /// Acked or dead-lettered: in which life, and whether that is durable.
    done: Option<(u32, bool)>,
    /// Dead-letter calls on it, and whether one returned Ok.
    dead_calls: u32,
    dead_confirmed: bool,
}

struct Model {
    engine: Engine,
    dir: PathBuf,
    disk: Arc<Mutex<CrashDisk>>,
    queue: Option<EmbeddedQueue>,
    consumer: Option<EmbeddedConsumer>,
    msgs: BTreeMap<u64, Msg>,
    next_id: u64,
    life: u32,
    /// Lives that began with a crash.
    crashed: Vec<u32>,
    /// Deliveries taken in this life and not acked, with their message ids.
    held: Vec<(Delivery<EmbeddedToken>, Vec<u64>)>,
    /// Messages acked in this life since the last enqueue returned.
    undurable: Vec<u64>,
    seen: HashSet<u64>,
    last_order: HashMap<u32, u64>,
}

type Check = Result<(), String>;

fn fail<T>(why: String) -> Result<T, String> {
    Err(why)
}

impl Model {
    fn new(engine: Engine, dir: &Path) -> Result<Self, String> {
        let mut m = Model {
            engine,
            dir: dir.to_owned(),
            disk: CrashDisk::new(dir),
            queue: None,
            consumer: None,
            msgs: BTreeMap::new(),
            next_id: 1,
            life: 0,
            crashed: Vec::new(),
            held: Vec::new(),
            undurable: Vec::new(),
            seen: HashSet::new(),
            last_order: HashMap::new(),
        };
        m.open()?;
        Ok(m)
    }

    fn open(&mut self) -> Check {
        let options = OpenOptions {
            engine: self.engine,
            segment_bytes: SEGMENT_BYTES,
            durable: Some(CrashDisk::observer(&self.disk)),
        };
        let q = EmbeddedQueue::open_with(&self.dir, PARTITIONS, 64, &options)
            .map_err(|e| format!("open in life {}: {e}", self.life + 1))?;
        self.consumer = Some(q.consumer((0..PARTITIONS).collect()));
        self.queue = Some(q);
        self.life += 1;
        self.held.clear();
        self.undurable.clear();
        self.seen.clear();
        self.last_order.clear();
        Ok(())
    }

    fn queue(&self) -> &EmbeddedQueue {
        self.queue.as_ref().expect("open")
    }

    fn disk_error(&self) -> Check {
        match &self.disk.lock().unwrap_or_else(|e| e.into_inner()).error {
            Some(e) => fail(format!("durability report: {e}")),
            None => Ok(()),
        }
    }

    /// New messages for `convs`, known to the model as not yet confirmed.
    fn messages(&mut self, convs: &[usize]) -> Vec<confab_queue::QueuedMessage> {
        convs
            .iter()
            .map(|&c| {
                let (conv, sender) = CONVERSATIONS[c];
                let id = self.next_id;
                self.next_id += 1;
                let body = format!("m{id}");
                self.msgs.insert(
                    id,
                    Msg {
                        body: body.clone(),
                        partition: ConversationId::partition(conv, PARTITIONS),
                        order: id,
                        confirmed: false,
                        done: None,
                        dead_calls: 0,
                        dead_confirmed: false,
                    },
                );
                qmsg(id, conv, sender, &body)
            })
            .collect()
    }

    /// An enqueue returned Ok: its messages are confirmed, and the acks
    /// before it durable.
    fn confirmed(&mut self, ids: impl IntoIterator<Item = u64>) {
        for id in ids {
            if let Some(m) = self.msgs.get_mut(&id) {
                m.confirmed = true;
            }
        }
        for id in self.undurable.drain(..) {
            if let Some(Msg {
                done: Some((_, durable)),
                ..
            }) = self.msgs.get_mut(&id)
            {
                *durable = true;
            }
        }
    }

    async fn enqueue(&mut self, convs: &[usize]) -> Check {
        let msgs = self.messages(convs);
        self.queue()
            .enqueue(&msgs)
            .await
            .map_err(|e| format!("enqueue: {e}"))?;
        self.confirmed(msgs.iter().map(|m| m.message_id));
        Ok(())
    }

    fn held_messages(&self) -> usize {
        self.held.iter().map(|(_, ids)| ids.len()).sum()
    }

    async fn take(&mut self, max: usize) -> Check {
        if self.queue().len() <= self.held_messages() {
            return Ok(());
        }
        let c = self.consumer.as_mut().expect("open");
        let batch = tokio::time::timeout(Duration::from_secs(5), c.next_batch(max, Duration::ZERO))
            .await
            .map_err(|_| "the queue counts messages it does not deliver".to_owned())?
            .map_err(|e| format!("next_batch: {e}"))?;
        for d in batch {
            self.delivered(d)?;
        }
        Ok(())
    }

    fn delivered(&mut self, d: Delivery<EmbeddedToken>) -> Check {
        let life = self.life;
        let ms =
            decode_payload(&d.payload, d.encoding, 64).map_err(|e| format!("undecodable delivery: {e}"))?;
        let mut ids = Vec::new();
        for nm in ms {
            let id = nm.message_id;
            let crashed_since = |since: u32| self.crashed.iter().any(|&l| l > since);
            let Some(m) = self.msgs.get_mut(&id) else {
                return fail(format!("message {id} was never enqueued"));
            };
            if nm.body != m.body || d.partition != m.partition {
                return fail(format!("message {id} came back altered or in another partition"));
            }
            if !self.seen.insert(id) {
                return fail(format!("message {id} delivered twice in life {life}"));
            }
            let last = self.last_order.entry(d.partition).or_insert(0);
            if m.order <= *last {
                return fail(format!(
                    "partition {} delivered {id} after a later message",
                    d.partition
                ));
            }
            *last = m.order;
            match m.done {
                Some((_, true)) => {
                    return fail(format!("message {id} delivered again after its ack was durable"));
                }
                Some((when, false)) if !crashed_since(when) => {
                    return fail(format!(
                        "message {id} delivered again after its ack, with no crash since"
                    ));
                }
                _ => {}
            }
            m.done = None;
            m.confirmed = true;
            ids.push(id);
        }
        self.held.push((d, ids));
        Ok(())
    }

    fn mark_done(&mut self, ids: &[u64]) {
        for id in ids {
            if let Some(m) = self.msgs.get_mut(id) {
                m.done = Some((self.life, false));
            }
            self.undurable.push(*id);
        }
    }

    async fn ack(&mut self, mask: u64) -> Check {
        let (acked, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .enumerate()
            .partition(|(i, _)| mask & (1 << (i % 64)) != 0);
        self.held = kept.into_iter().map(|(_, h)| h).collect();
        let ids: Vec<u64> = acked.iter().flat_map(|(_, (_, ids))| ids.clone()).collect();
        let tokens = acked.into_iter().map(|(_, (d, _))| d.token).collect();
        let c = self.consumer.as_mut().expect("open");
        c.ack(tokens).await.map_err(|e| format!("ack: {e}"))?;
        self.mark_done(&ids);
        Ok(())
    }

    /// Takes one held delivery out for a dead letter; counts the call.
    fn pick_dead(&mut self, pick: usize) -> Option<(Delivery<EmbeddedToken>, Vec<u64>)> {
        if self.held.is_empty() {
            return None;
        }
        let (d, ids) = self.held.remove(pick % self.held.len());
        for id in &ids {
            if let Some(m) = self.msgs.get_mut(id) {
                m.dead_calls += 1;
            }
        }
        Some((d, ids))
    }

    fn dead_confirmed(&mut self, ids: &[u64]) {
        for id in ids {
            if let Some(m) = self.msgs.get_mut(id) {
                m.dead_confirmed = true;
            }
        }
        self.mark_done(ids);
    }

    async fn dead_letter(&mut self, pick: usize) -> Check {
        let Some((d, ids)) = self.pick_dead(pick) else {
            return Ok(());
        };
        let c = self.consumer.as_mut().expect("open");
        c.dead_letter(d, &format!("poison {}", ids[0]))
            .await
            .map_err(|e| format!("dead_letter: {e}"))?;
        self.dead_confirmed(&ids);
        Ok(())
    }

    fn close(&mut self) {
        self.consumer = None;
        self.queue = None;
    }

    async fn restart(&mut self) -> Check {
        self.close();
        self.open()
    }

    async fn crash(&mut self, crash: &Crash) -> Check {
        let finished = Arc::new(AtomicBool::new(false));
        let in_flight = match &crash.during {
            During::Nothing => None,
            During::Enqueue(convs) => {
                let msgs = self.messages(convs);
                let ids: Vec<u64> = msgs.iter().map(|m| m.message_id).collect();
                let (q, done) = (self.queue().clone(), finished.clone());
                let task = tokio::spawn(async move {
                    if q.enqueue(&msgs).await.is_ok() {
                        done.store(true, Ordering::SeqCst);
                    }
                });
                Some((task, ids, false))
            }
            During::DeadLetter(pick) => match self.pick_dead(*pick) {
                None => None,
                Some((d, ids)) => {
                    let mut c = self.consumer.take().expect("open");
                    let done = finished.clone();
                    let task = tokio::spawn(async move {
                        if c.dead_letter(d, "poison").await.is_ok() {
                            done.store(true, Ordering::SeqCst);
                        }
                    });
                    Some((task, ids, true))
                }
            },
        };
        if crash.after_us > 0 {
            std::thread::sleep(Duration::from_micros(crash.after_us));
        }
        // Read before the freeze: true means it returned before the crash.
        let before = finished.load(Ordering::SeqCst);
        let tails = self.disk.lock().unwrap_or_else(|e| e.into_inner()).freeze();
        if let Some((task, ids, dead)) = in_flight {
            let _ = task.await;
            match (before, dead) {
                (true, false) => self.confirmed(ids),
                (true, true) => self.dead_confirmed(&ids),
                (false, _) => {}
            }
        }
        self.close();
        let mut torn = BTreeMap::new();
        if let Some((fraction, seed)) = crash.torn {
            for (i, (name, tail)) in tails.iter().enumerate() {
                // Some files torn, some cut at their last sync.
                if (seed >> (i % 64)) & 1 == 1 {
                    torn.insert(
                        name.clone(),
                        (tail.len() * (usize::from(fraction) + 1)).div_ceil(256),
                    );
                }
            }
        }
        {
            let disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
            disk.restore(&tails, &torn);
        }
        self.disk = CrashDisk::new(&self.dir);
        self.crashed.push(self.life + 1);
        self.open()
    }

    async fn step(&mut self, op: &Op) -> Check {
        match op {
            Op::Enqueue(convs) => self.enqueue(convs).await?,
            Op::Take(max) => self.take(*max).await?,
            Op::Ack(mask) => self.ack(*mask).await?,
            Op::DeadLetter(pick) => self.dead_letter(*pick).await?,
            Op::Restart => self.restart().await?,
            Op::Crash(c) => self.crash(c).await?,
        }
        self.disk_error()
    }

    /// Takes and acks everything left, then checks that nothing was lost.
    async fn finish(&mut self) -> Check {
        while self.queue().len() > self.held_messages() {
            self.take(64).await?;
        }
        self.ack(u64::MAX).await?;
        if !self.queue().is_empty() {
            return fail(format!(
                "{} messages left after acking every delivery",
                self.queue().len()
            ));
        }
        let dead = self
            .queue()
            .dead_letters()
            .map_err(|e| format!("dead letters: {e}"))?;
        let mut dead_count: HashMap<u64, u32> = HashMap::new();
        for dl in dead {
            let encoding = match dl.payload.first() {
                Some(0x0A) => Encoding::Batch,
                _ => Encoding::Single,
            };
            let ms = decode_payload(&dl.payload, encoding, 64).map_err(|e| format!("dead letter: {e}"))?;
            for nm in ms {
                *dead_count.entry(nm.message_id).or_default() += 1;
            }
        }
        for (id, m) in &self.msgs {
            let dead = dead_count.get(id).copied().unwrap_or(0);
            // A dead letter in flight at a crash may have gone in whole (the
            // entry gone with it) or not at all (the message delivered again).
            if m.confirmed && m.done.is_none() && !(m.dead_calls > 0 && dead > 0) {
                return fail(format!(
                    "message {id} was enqueued and never delivered after life {}",
                    self.life
                ));
            }
            if m.dead_confirmed && dead == 0 {
                return fail(format!("the dead letter of message {id} is lost"));
            }
            if dead > m.dead_calls {
                return fail(format!(
                    "message {id} is {dead} times among the dead letters, set aside {} times",
                    m.dead_calls
                ));
            }
        }
        self.disk_error()
    }
}

async fn run_case(engine: Engine, ops: &[Op]) -> Check {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut model = Model::new(engine, &tmp.path().join("queue"))?;
    for (i, op) in ops.iter().enumerate() {
        model
            .step(op)
            .await
            .map_err(|e| format!("step {i} ({op:?}): {e}"))?;
    }
    model.finish().await
}

fn run_model(engine: Engine) {
    let cases = std::env::var("CONFAB_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let seed = std::env::var("CONFAB_MODEL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("model test of the {engine} engine: {cases} cases, CONFAB_MODEL_SEED={seed}");
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let result = TestRunner::new(config).run(&proptest::collection::vec(op(), 1..60), |ops| {
        rt.block_on(run_case(engine, &ops)).map_err(TestCaseError::fail)
    });
    println!("{engine}: {:.1} s", started.elapsed().as_secs_f64());
    if let Err(e) = result {
        panic!("{engine} engine, CONFAB_MODEL_SEED={seed}: {e}");
    }
}

#[test]
fn model_log_engine() {
    run_model(Engine::Log);
}

#[test]
fn model_rocksdb_engine() {
    run_model(Engine::Rocksdb);
}
