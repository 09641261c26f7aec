//! The embedded queue: an append-only log inside the persist process.
//!
//! On disk, `dir` holds numbered segments (`seg-NNNNNNNNNNNNNNNN.log`), a
//! `partitions` file (the partition count, fixed at creation), a
//! `dead-letters.log` and a `lock` file. A segment is a sequence of records
//! `[len u32][crc32 u32][body]` (little-endian): an entry (partition, key,
//! payload) or the acks of entries. An enqueue call stores its messages of
//! one partition as one entry (a `QueuedBatch` envelope when there are
//! several, as RabbitMQ does).
//!
//! One writer thread appends: whatever was handed to it while it wrote the
//! last group goes out in one `write` and one `fdatasync` (group commit);
//! only then are the entries visible to consumers and the enqueue calls
//! answered. Acks are appended without waiting for the disk: a lost ack
//! means a redelivery, which the writers' idempotent insert absorbs. A
//! segment is deleted once every entry in it is acked (never the one being
//! written). Reopening replays the segments: entries not acked are
//! delivered again; a torn record at the end of the last segment (a crash
//! mid-write, never acknowledged) is cut off.
//!
//! In memory there is only an index (partition -> key -> where the payload
//! lies); payloads are read back from the segment when delivered, so a
//! queue that grows during a database outage grows on disk, not in memory.
//! Gateways reach the queue through the gRPC `QueueService`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use confab_proto::persist::QueuedBatch;
use prost::Message;

use crate::consumer::{Consumer, Delivery};
use crate::envelope::{Encoding, QueuedMessage, encode, partitions_of};
use crate::error::QueueError;
use crate::producer::Producer;

/// A segment past this size is closed and a new one started.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// Record header: body length and CRC-32 of the body.
const HEADER: usize = 8;
/// Largest record body accepted when reading back (far above any entry:
/// persist takes at most 5,000 messages of at most a few KiB per call).
const MAX_RECORD: usize = 256 << 20;
/// Most jobs the writer takes into one group commit.
const MAX_GROUP: usize = 4096;

const KIND_ENTRY: u8 = 1;
const KIND_ACKS: u8 = 2;

/// Handle on an open embedded queue; cheap to clone.
#[derive(Clone)]
pub struct EmbeddedQueue {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    shared: Arc<Shared>,
    /// Key assignment and hand-over to the writer under one lock, so the
    /// writer sees each partition's keys in order.
    submit: Mutex<Submit>,
    dead: Mutex<File>,
    partitions: u32,
    max_body_bytes: usize,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Held (locked) while the queue is open: one process per directory.
    _lock: File,
}

impl Drop for Inner {
    /// Lets the writer finish what it was handed (acks included) before the
    /// directory is released to the next opener.
    fn drop(&mut self) {
        let submit = self.submit.get_mut().unwrap_or_else(|e| e.into_inner());
        submit.tx = mpsc::channel().0;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

struct Submit {
    next: Vec<u64>,
    tx: mpsc::Sender<Job>,
}

/// What the writer thread and the handles share.
struct Shared {
    state: Mutex<State>,
    arrived: Notify,
    failed: AtomicBool,
    /// Messages in the entries not yet acked.
    waiting: AtomicU64,
    /// Where the writer reports each group commit's seconds, once set.
    commit_seconds: OnceLock<prometheus::Histogram>,
}

#[derive(Default)]
struct State {
    /// Per partition, the durable entries not yet acked, by key.
    parts: Vec<BTreeMap<u64, Entry>>,
    segments: BTreeMap<u64, Segment>,
    /// The segment being written.
    active: u64,
}

#[derive(Clone, Copy)]
struct Entry {
    segment: u64,
    /// Where the payload lies in the segment.
    offset: u64,
    len: u32,
    /// Messages in the payload (an envelope holds several).
    messages: u32,
}

struct Segment {
    file: Arc<File>,
    path: PathBuf,
    /// Entries not yet acked.
    live: usize,
}

enum Job {
    /// Entries of one enqueue call; answered once they are on disk.
    Append {
        entries: Vec<NewEntry>,
        done: oneshot::Sender<Result<(), QueueError>>,
    },
    /// Acks to record (nobody waits for them).
    Acks(Vec<(u32, u64)>),
}

struct NewEntry {
    partition: u32,
    key: u64,
    payload: Vec<u8>,
    messages: u32,
}

/// A dead letter: the payload and why it was set aside.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub payload: Vec<u8>,
    pub reason: String,
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

fn messages_in(payload: &[u8]) -> u32 {
    match encoding_of(payload) {
        Encoding::Batch => QueuedBatch::decode(payload).map_or(1, |b| b.messages.len() as u32),
        Encoding::Single => 1,
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:016}.log"))
}

fn segment_id(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?.strip_suffix(".log")?.parse().ok()
}

/// Appends one record (header and body) to `buf`; returns where the body
/// starts within `buf`.
fn put_record(buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER]);
    body(buf);
    let len = (buf.len() - start - HEADER) as u32;
    let crc = crc32fast::hash(&buf[start + HEADER..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    start + HEADER
}

/// Bytes of an entry record's body before its payload: kind, partition, key.
const ENTRY_PREFIX: usize = 1 + 4 + 8;

fn put_entry(buf: &mut Vec<u8>, e: &NewEntry) -> usize {
    put_record(buf, |b| {
        b.push(KIND_ENTRY);
        b.extend_from_slice(&e.partition.to_le_bytes());
        b.extend_from_slice(&e.key.to_le_bytes());
        b.extend_from_slice(&e.payload);
    }) + ENTRY_PREFIX
}

fn put_acks(buf: &mut Vec<u8>, acks: &[(u32, u64)]) {
    put_record(buf, |b| {
        b.push(KIND_ACKS);
        for (p, k) in acks {
            b.extend_from_slice(&p.to_le_bytes());
            b.extend_from_slice(&k.to_le_bytes());
        }
    });
}

/// The records of `data`, with each body's offset, up to the first torn or
/// corrupt one; the second value is where the good records end.
fn records(data: &[u8]) -> (Vec<(usize, &[u8])>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while data.len() - at >= HEADER {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap_or_default());
        let start = at + HEADER;
        if len > MAX_RECORD || data.len() - start < len || len == 0 {
            break;
        }
        let body = &data[start..start + len];
        if crc32fast::hash(body) != crc {
            break;
        }
        out.push((start, body));
        at = start + len;
    }
    (out, at)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn invalid(dir: &Path, what: String) -> QueueError {
    QueueError::Invalid(format!("embedded queue in {}: {what}", dir.display()))
}

impl EmbeddedQueue {
    /// Opens (or creates) the queue in `dir`. The partition count is fixed
    /// at creation: reopening with another count fails, as does opening a
    /// directory another process holds open.
    pub fn open(dir: &Path, partitions: u32, max_body_bytes: usize) -> Result<Self, QueueError> {
        Self::open_segmented(dir, partitions, max_body_bytes, SEGMENT_BYTES)
    }

    /// [`EmbeddedQueue::open`] with another segment size (tests use small
    /// ones to see segments come and go).
    pub fn open_segmented(
        dir: &Path,
        partitions: u32,
        max_body_bytes: usize,
        segment_bytes: u64,
    ) -> Result<Self, QueueError> {
        if partitions == 0 {
            return Err(invalid(dir, "the partition count must be at least 1".into()));
        }
        fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        if lock.try_lock().is_err() {
            return Err(invalid(dir, "open in another process".into()));
        }
        if dir.join("conf").exists() && dir.join("db").exists() {
            return Err(invalid(
                dir,
                "holds a queue of the earlier sled format: let that version drain it, or move it away".into(),
            ));
        }
        check_partitions(dir, partitions)?;

        let mut state = State {
            parts: vec![BTreeMap::new(); partitions as usize],
            ..State::default()
        };
        let mut next = vec![1u64; partitions as usize];
        let mut ids: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok()?.file_name().to_str().and_then(segment_id))
            .collect();
        ids.sort_unstable();
        for (i, &id) in ids.iter().enumerate() {
            replay(dir, id, i + 1 == ids.len(), &mut state, &mut next)?;
        }
        // Segments whose entries were all acked go; writing starts afresh.
        let drained: Vec<u64> = state
            .segments
            .iter()
            .filter(|(_, s)| s.live == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in drained {
            if let Some(s) = state.segments.remove(&id) {
                fs::remove_file(&s.path)?;
            }
        }
        let active = ids.last().map_or(1, |id| id + 1);
        let (file, path) = create_segment(dir, active)?;
        state.active = active;
        state.segments.insert(
            active,
            Segment {
                file: Arc::new(file.try_clone()?),
                path,
                live: 0,
            },
        );

        let dead = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(dir.join("dead-letters.log"))?;
        let waiting = state
            .parts
            .iter()
            .flat_map(|p| p.values())
            .map(|e| u64::from(e.messages))
            .sum();
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            arrived: Notify::new(),
            failed: AtomicBool::new(false),
            waiting: AtomicU64::new(waiting),
            commit_seconds: OnceLock::new(),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir: dir.to_owned(),
            shared: shared.clone(),
            file,
            size: 0,
            active,
            segment_bytes: segment_bytes.max(1),
        };
        let writer = std::thread::Builder::new()
            .name("queue-log".into())
            .spawn(move || writer.run(rx))?;
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                shared,
                submit: Mutex::new(Submit { next, tx }),
                dead: Mutex::new(dead),
                partitions,
                max_body_bytes,
                writer: Some(writer),
                _lock: lock,
            }),
        })
    }

    pub fn partitions(&self) -> u32 {
        self.inner.partitions
    }

    /// True once a write to the log failed (disk full, I/O error): every
    /// enqueue is refused from then on, and only a restart (which replays
    /// what was durable) brings the queue back.
    pub fn failed(&self) -> bool {
        self.inner.shared.failed.load(Ordering::SeqCst)
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
        self.inner.shared.waiting.load(Ordering::SeqCst) as usize
    }

    /// Reports the seconds of every group commit (write + fdatasync) to
    /// `h` from now on (the first histogram given stays).
    pub fn observe_commits(&self, h: prometheus::Histogram) {
        let _ = self.inner.shared.commit_seconds.set(h);
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The log's segment files now on disk (the one being written
    /// included).
    pub fn segments(&self) -> usize {
        lock(&self.inner.shared.state).segments.len()
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let data = fs::read(self.inner.dir.join("dead-letters.log"))?;
        let (recs, _) = records(&data);
        recs.into_iter()
            .map(|(_, body)| {
                let n = u32_at(body, 0).ok_or_else(|| QueueError::Invalid("truncated dead letter".into()))?;
                let n = (n as usize).min(body.len() - 4);
                Ok(DeadLetter {
                    reason: String::from_utf8_lossy(&body[4..4 + n]).into_owned(),
                    payload: body[4 + n..].to_vec(),
                })
            })
            .collect()
    }

    /// Enqueues raw payloads into one partition (tests use this to inject
    /// malformed payloads; production code goes through [`Producer`]).
    pub async fn enqueue_raw(&self, partition: u32, payloads: &[Vec<u8>]) -> Result<(), QueueError> {
        if partition >= self.inner.partitions {
            return Err(QueueError::Invalid(format!("no partition {partition}")));
        }
        let entries = payloads
            .iter()
            .map(|p| (partition, p.clone(), messages_in(p)))
            .collect();
        self.append(entries).await
    }

    /// Hands entries (partition, payload, messages) to the writer, keyed in
    /// order, and waits until they are on disk.
    async fn append(&self, entries: Vec<(u32, Vec<u8>, u32)>) -> Result<(), QueueError> {
        if entries.is_empty() {
            return Ok(());
        }
        if self.inner.shared.failed.load(Ordering::SeqCst) {
            return Err(QueueError::Closed);
        }
        let (done, answer) = oneshot::channel();
        {
            let mut submit = self.inner.submit.lock().unwrap_or_else(|e| e.into_inner());
            let entries = entries
                .into_iter()
                .map(|(partition, payload, messages)| {
                    let next = &mut submit.next[partition as usize];
                    let key = *next;
                    *next += 1;
                    NewEntry {
                        partition,
                        key,
                        payload,
                        messages,
                    }
                })
                .collect();
            submit
                .tx
                .send(Job::Append { entries, done })
                .map_err(|_| QueueError::Closed)?;
        }
        answer.await.map_err(|_| QueueError::Closed)?
    }

    /// Forgets acked entries and records the acks; deletes segments left
    /// with nothing to deliver, on a blocking thread: unlinking 64 MiB takes
    /// 15-20 ms here (ext4), a stall for every task of a runtime worker.
    async fn ack_keys(&self, keys: Vec<(u32, u64)>) -> Result<(), QueueError> {
        let drained = self.forget(keys)?;
        if !drained.is_empty() {
            // Awaited, so that an ack returns with the files gone; a failed
            // unlink only leaves a drained segment the next open deletes.
            let _ = tokio::task::spawn_blocking(move || unlink(&drained)).await;
        }
        Ok(())
    }

    /// The bookkeeping of [`Self::ack_keys`]: returns the segment files to
    /// delete.
    fn forget(&self, keys: Vec<(u32, u64)>) -> Result<Vec<PathBuf>, QueueError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut gone = Vec::new();
        let drained = {
            let mut state = lock(&self.inner.shared.state);
            let state = &mut *state;
            for &(p, k) in &keys {
                let Some(e) = state.parts.get_mut(p as usize).and_then(|m| m.remove(&k)) else {
                    continue;
                };
                self.inner
                    .shared
                    .waiting
                    .fetch_sub(u64::from(e.messages), Ordering::SeqCst);
                if let Some(s) = state.segments.get_mut(&e.segment) {
                    s.live -= 1;
                    if s.live == 0 && e.segment != state.active {
                        gone.push(e.segment);
                    }
                }
            }
            gone.retain_mut(|id| state.segments.remove(id).is_some());
            gone.iter()
                .map(|id| segment_path(&self.inner.dir, *id))
                .collect::<Vec<_>>()
        };
        // Unlinked outside the lock (readers keep their open handles).
        let submit = self.inner.submit.lock().unwrap_or_else(|e| e.into_inner());
        submit.tx.send(Job::Acks(keys)).map_err(|_| QueueError::Closed)?;
        Ok(drained)
    }
}

/// Deletes drained segment files; a failure is logged (the next open
/// deletes what is left).
fn unlink(paths: &[PathBuf]) {
    for path in paths {
        if let Err(e) = fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete a drained queue segment");
        }
    }
}

fn check_partitions(dir: &Path, partitions: u32) -> Result<(), QueueError> {
    let path = dir.join("partitions");
    match fs::read_to_string(&path) {
        Ok(s) => {
            let stored: u32 = s
                .trim()
                .parse()
                .map_err(|_| invalid(dir, format!("unreadable partition count {s:?}")))?;
            if stored != partitions {
                return Err(invalid(
                    dir,
                    format!("has {stored} partitions, config says {partitions}"),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let tmp = dir.join("partitions.tmp");
            let mut f = File::create(&tmp)?;
            writeln!(f, "{partitions}")?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            sync_dir(dir)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn create_segment(dir: &Path, id: u64) -> Result<(File, PathBuf), QueueError> {
    let path = segment_path(dir, id);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// Reads one segment into the index. A torn tail is cut off in the last
/// segment (it was never acknowledged) and refused anywhere else.
fn replay(dir: &Path, id: u64, last: bool, state: &mut State, next: &mut [u64]) -> Result<(), QueueError> {
    let path = segment_path(dir, id);
    let data = fs::read(&path)?;
    let (recs, good) = records(&data);
    if good < data.len() {
        if !last {
            return Err(invalid(
                dir,
                format!("segment {} is damaged at byte {good}", path.display()),
            ));
        }
        tracing::warn!(segment = %path.display(), at = good, "cutting off a torn record at the end of the queue log");
        OpenOptions::new().write(true).open(&path)?.set_len(good as u64)?;
    }
    let file = Arc::new(File::open(&path)?);
    let parts = state.parts.len();
    let mut live = 0;
    for (at, body) in recs {
        let bad = || {
            invalid(
                dir,
                format!("segment {}: bad record at byte {at}", path.display()),
            )
        };
        match body.first() {
            Some(&KIND_ENTRY) => {
                let p = u32_at(body, 1).ok_or_else(bad)?;
                let key = u64_at(body, 5).ok_or_else(bad)?;
                if p as usize >= parts {
                    return Err(bad());
                }
                let payload = &body[ENTRY_PREFIX..];
                state.parts[p as usize].insert(
                    key,
                    Entry {
                        segment: id,
                        offset: (at + ENTRY_PREFIX) as u64,
                        len: payload.len() as u32,
                        messages: messages_in(payload),
                    },
                );
                next[p as usize] = next[p as usize].max(key + 1);
                live += 1;
            }
            Some(&KIND_ACKS) => {
                for pair in body[1..].chunks_exact(12) {
                    let p = u32_at(pair, 0).ok_or_else(bad)? as usize;
                    let key = u64_at(pair, 4).ok_or_else(bad)?;
                    let Some(e) = state.parts.get_mut(p).and_then(|m| m.remove(&key)) else {
                        continue;
                    };
                    if e.segment == id {
                        live -= 1;
                    } else if let Some(s) = state.segments.get_mut(&e.segment) {
                        s.live -= 1;
                    }
                }
            }
            _ => return Err(bad()),
        }
    }
    state.segments.insert(id, Segment { file, path, live });
    Ok(())
}

/// The one thread that appends to the log.
struct Writer {
    dir: PathBuf,
    shared: Arc<Shared>,
    file: File,
    size: u64,
    active: u64,
    segment_bytes: u64,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        let mut buf = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.commit(&mut buf, jobs) {
                tracing::error!(error = %e, "embedded queue write failed; enqueuers will see a closed queue");
                self.shared.failed.store(true, Ordering::SeqCst);
                // Later jobs are answered Closed as their senders drop.
                return;
            }
        }
    }

    /// Writes one group: every entry and ack in one write, then one
    /// fdatasync when entries wait for it; then publishes and answers.
    fn commit(&mut self, buf: &mut Vec<u8>, jobs: Vec<Job>) -> Result<(), QueueError> {
        if self.size >= self.segment_bytes {
            self.rotate()?;
        }
        buf.clear();
        let mut placed = Vec::new();
        let mut waiters = Vec::new();
        for job in jobs {
            match job {
                Job::Append { entries, done } => {
                    for e in entries {
                        let at = put_entry(buf, &e);
                        placed.push((e.partition, e.key, at, e.payload.len(), e.messages));
                    }
                    waiters.push(done);
                }
                Job::Acks(acks) => put_acks(buf, &acks),
            }
        }
        let base = self.size;
        let started = Instant::now();
        let written = self.file.write_all_at(buf, base).and_then(|_| {
            if waiters.is_empty() {
                Ok(())
            } else {
                self.file.sync_data()
            }
        });
        if let Err(e) = written {
            for w in waiters {
                let _ = w.send(Err(QueueError::Closed));
            }
            return Err(e.into());
        }
        if let Some(h) = self.shared.commit_seconds.get()
            && !waiters.is_empty()
        {
            h.observe(started.elapsed().as_secs_f64());
        }
        self.size += buf.len() as u64;
        let placed_any = !placed.is_empty();
        if placed_any {
            let mut state = lock(&self.shared.state);
            let state = &mut *state;
            let n = placed.len();
            let messages: u64 = placed.iter().map(|p| u64::from(p.4)).sum();
            self.shared.waiting.fetch_add(messages, Ordering::SeqCst);
            for (p, key, at, len, messages) in placed {
                state.parts[p as usize].insert(
                    key,
                    Entry {
                        segment: self.active,
                        offset: base + at as u64,
                        len: len as u32,
                        messages,
                    },
                );
            }
            if let Some(s) = state.segments.get_mut(&self.active) {
                s.live += n;
            }
        }
        if placed_any {
            self.shared.arrived.notify_waiters();
        }
        for w in waiters {
            let _ = w.send(Ok(()));
        }
        Ok(())
    }

    /// Closes the active segment and starts the next one.
    fn rotate(&mut self) -> Result<(), QueueError> {
        let id = self.active + 1;
        let (file, path) = create_segment(&self.dir, id)?;
        let reader = Arc::new(file.try_clone()?);
        let mut state = lock(&self.shared.state);
        let old = self.active;
        state.active = id;
        state.segments.insert(
            id,
            Segment {
                file: reader,
                path,
                live: 0,
            },
        );
        let drained = if state.segments.get(&old).is_some_and(|s| s.live == 0) {
            state.segments.remove(&old)
        } else {
            None
        };
        drop(state);
        if let Some(s) = drained {
            // Not on this thread: every enqueue waits for its next commit.
            let paths = vec![s.path];
            let spawned = std::thread::Builder::new()
                .name("queue-unlink".into())
                .spawn(move || unlink(&paths));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a thread to delete a drained queue segment");
            }
        }
        self.file = file;
        self.size = 0;
        self.active = id;
        Ok(())
    }
}

impl Producer for EmbeddedQueue {
    async fn enqueue(&self, msgs: &[QueuedMessage]) -> Result<(), QueueError> {
        let parts = partitions_of(msgs, self.partitions(), self.inner.max_body_bytes)?;
        let mut by_part: Vec<Vec<QueuedMessage>> = vec![Vec::new(); self.inner.partitions as usize];
        for (m, p) in msgs.iter().zip(parts) {
            by_part[p as usize].push(m.clone());
        }
        let entries = by_part
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
            .collect();
        self.append(entries).await
    }
}

/// Token of an embedded delivery: its partition and key.
#[derive(Debug, Clone)]
pub struct EmbeddedToken {
    partition: u32,
    key: u64,
}

/// Consumes some partitions of an [`EmbeddedQueue`].
pub struct EmbeddedConsumer {
    queue: EmbeddedQueue,
    /// Per partition, the last key delivered.
    cursors: Vec<(u32, Option<u64>)>,
    /// Round-robin start, so no partition starves.
    start: usize,
}

impl EmbeddedConsumer {
    fn scan(&mut self, max: usize, out: &mut Vec<Delivery<EmbeddedToken>>) -> Result<(), QueueError> {
        let n = self.cursors.len();
        if n == 0 {
            return Ok(());
        }
        // Where the payloads lie, taken under the lock; read after it.
        let mut found: Vec<(u32, u64, Entry, Arc<File>)> = Vec::new();
        {
            let state = lock(&self.queue.inner.shared.state);
            // A fair share per partition first, then whatever room is left.
            for round in 0..2 {
                for i in 0..n {
                    let room = max.saturating_sub(out.len() + found.len());
                    if room == 0 {
                        break;
                    }
                    let share = if round == 0 { room.div_ceil(n).max(1) } else { room };
                    let idx = (self.start + i) % n;
                    let (p, cursor) = &mut self.cursors[idx];
                    let Some(part) = state.parts.get(*p as usize) else {
                        continue;
                    };
                    let lower = cursor.map_or(0, |k| k + 1);
                    for (&key, e) in part.range(lower..).take(share) {
                        let file = state
                            .segments
                            .get(&e.segment)
                            .map(|s| s.file.clone())
                            .ok_or_else(|| {
                                QueueError::Invalid(format!("entry {p}/{key} lost its segment"))
                            })?;
                        *cursor = Some(key);
                        found.push((*p, key, *e, file));
                    }
                }
            }
        }
        for (partition, key, e, file) in found {
            let mut payload = vec![0; e.len as usize];
            file.read_exact_at(&mut payload, e.offset)?;
            out.push(Delivery {
                encoding: encoding_of(&payload),
                payload,
                partition,
                token: EmbeddedToken { partition, key },
            });
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
            let notified = queue.inner.shared.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.scan(max, &mut out)?;
            if !out.is_empty() {
                break;
            }
            if queue.inner.shared.failed.load(Ordering::SeqCst) {
                return Err(QueueError::Closed);
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
        self.queue
            .ack_keys(tokens.into_iter().map(|t| (t.partition, t.key)).collect())
            .await
    }

    async fn dead_letter(&mut self, d: Delivery<EmbeddedToken>, reason: &str) -> Result<(), QueueError> {
        let reason = &reason.as_bytes()[..reason.len().min(4096)];
        let mut buf = Vec::with_capacity(HEADER + 4 + reason.len() + d.payload.len());
        put_record(&mut buf, |b| {
            b.extend_from_slice(&(reason.len() as u32).to_le_bytes());
            b.extend_from_slice(reason);
            b.extend_from_slice(&d.payload);
        });
        let queue = self.queue.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut f = queue.inner.dead.lock().unwrap_or_else(|e| e.into_inner());
            f.write_all(&buf)?;
            f.sync_data()
        })
        .await
        .map_err(|_| QueueError::Closed)??;
        self.queue.ack_keys(vec![(d.token.partition, d.token.key)]).await
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_write_answers_closed_and_marks_the_queue_failed() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("seg-0000000000000001.log");
        File::create(&path).expect("create");
        // A handle the writer cannot write through, as a disk that refuses.
        let file = File::open(&path).expect("open read-only");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                parts: vec![BTreeMap::new()],
                ..State::default()
            }),
            arrived: Notify::new(),
            failed: AtomicBool::new(false),
            waiting: AtomicU64::new(0),
            commit_seconds: OnceLock::new(),
        });
        let writer = Writer {
            dir: dir.path().to_owned(),
            shared: shared.clone(),
            file,
            size: 0,
            active: 1,
            segment_bytes: SEGMENT_BYTES,
        };
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || writer.run(rx));
        let (done, answer) = oneshot::channel();
        let entry = NewEntry {
            partition: 0,
            key: 1,
            payload: b"x".to_vec(),
            messages: 1,
        };
        tx.send(Job::Append {
            entries: vec![entry],
            done,
        })
        .expect("send");
        let r = answer.await.expect("answered");
        assert!(matches!(r, Err(QueueError::Closed)), "{r:?}");
        thread.join().expect("writer ends");
        assert!(shared.failed.load(Ordering::SeqCst));
        assert!(
            lock(&shared.state).parts[0].is_empty(),
            "nothing undurable is delivered"
        );
    }

    #[test]
    fn records_stop_at_a_torn_or_corrupt_tail() {
        let mut buf = Vec::new();
        put_record(&mut buf, |b| b.extend_from_slice(b"one"));
        put_record(&mut buf, |b| b.extend_from_slice(b"two"));
        let whole = buf.len();
        let (recs, end) = records(&buf);
        assert_eq!(recs.len(), 2);
        assert_eq!(end, whole);
        assert_eq!(recs[1].1, b"two");

        let (recs, end) = records(&buf[..whole - 1]);
        assert_eq!(
            (recs.len(), end),
            (1, HEADER + 3),
            "a torn last record is not read"
        );

        let mut flipped = buf.clone();
        flipped[whole - 1] ^= 1;
        let (recs, _) = records(&flipped);
        assert_eq!(recs.len(), 1, "a record whose checksum fails is not read");
    }
}
