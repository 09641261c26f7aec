//! The in-memory index of the log, which the writer thread and the handles
//! share: per partition, the durable entries not yet acked (key -> where
//! the payload lies); the segments and how many live entries each holds;
//! and the flags and counters around them. Payloads stay on disk.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Mutex, MutexGuard, OnceLock};

use tokio::sync::Notify;

use super::segment::Segment;
use crate::embedded::shared::DurableObserver;

/// What the writer thread and the handles share.
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) arrived: Notify,
    pub(super) failed: AtomicBool,
    /// Messages in the entries not yet acked.
    pub(super) waiting: AtomicU64,
    /// Where the writer reports each group commit's seconds, once set.
    pub(super) commit_seconds: OnceLock<prometheus::Histogram>,
    /// Told what each sync made durable (a test seam).
    pub(super) durable: Option<DurableObserver>,
}

impl Shared {
    /// Shares `state`, which holds `waiting` messages not yet acked.
    pub(super) fn new(state: State, waiting: u64, durable: Option<DurableObserver>) -> Self {
        Self {
            state: Mutex::new(state),
            arrived: Notify::new(),
            failed: AtomicBool::new(false),
            waiting: AtomicU64::new(waiting),
            commit_seconds: OnceLock::new(),
            durable,
        }
    }
}

#[derive(Default)]
pub(super) struct State {
    /// Per partition, the durable entries not yet acked, by key.
    pub(super) parts: Vec<BTreeMap<u64, Entry>>,
    pub(super) segments: BTreeMap<u64, Segment>,
    /// The segment being written.
    pub(super) active: u64,
}

impl State {
    /// An index of `partitions` empty partitions and no segment.
    pub(super) fn new(partitions: u32) -> Self {
        Self {
            parts: vec![BTreeMap::new(); partitions as usize],
            ..State::default()
        }
    }

    /// Takes out the segments that may be deleted: the oldest ones, up to
    /// the first that holds a live entry or is being written. A drained
    /// segment after that one stays, for it may hold acks of that one's
    /// entries, which a replay needs.
    pub(super) fn take_drained(&mut self) -> Vec<Segment> {
        let ids: Vec<u64> = self
            .segments
            .iter()
            .take_while(|(id, s)| s.live == 0 && **id != self.active)
            .map(|(id, _)| *id)
            .collect();
        ids.iter().filter_map(|id| self.segments.remove(id)).collect()
    }
}

#[derive(Clone, Copy)]
pub(super) struct Entry {
    pub(super) segment: u64,
    /// Where the payload lies in the segment.
    pub(super) offset: u64,
    pub(super) len: u32,
    /// Messages in the payload (an envelope holds several).
    pub(super) messages: u32,
}

pub(super) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}
