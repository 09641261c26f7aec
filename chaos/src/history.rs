//! The history of a run: every operation's invoke and return, as the
//! clients saw them, on one monotonic clock.
//!
//! An operation that failed (timeout, transport error, any error) is
//! *unknown*: it may or may not have taken effect, at any time after its
//! invoke. It never completes; the checker may place it anywhere after its
//! invoke, or nowhere.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;
use serde::Serialize;

/// Index of an operation in its [`History`].
pub type OpId = usize;

/// What a client asked, for one uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// Log session `sid` in (a device of its own) under policy AllowAll,
    /// or with `one` under OneInAll: the login replaces every other
    /// session of the uid and answers which it kicked.
    Login { sid: u64, one: bool },
    /// Log session `sid` out.
    Logout { sid: u64 },
    /// Read the uid's sessions (one uid's share of a batch lookup).
    Lookup,
}

/// What the answer said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ret {
    /// The sessions the login kicked (sorted; none under AllowAll).
    LoggedIn {
        kicked: Vec<u64>,
    },
    LoggedOut {
        removed: bool,
    },
    /// The uid's session ids, sorted (empty when the uid has none).
    Found {
        sids: Vec<u64>,
    },
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Not ended when the history was taken: unknown.
    Pending,
    /// Answered at `at_ns`.
    Ok { at_ns: u64, ret: Ret },
    /// Failed at `at_ns` with `error`: unknown.
    Unknown { at_ns: u64, error: String },
}

/// One operation on one uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The client task that issued it (`u32::MAX` for the final reads).
    pub process: u32,
    pub uid: u64,
    pub call: Call,
    /// Nanoseconds since the history started, taken before the request left.
    pub invoke_ns: u64,
    pub outcome: Outcome,
}

impl Op {
    /// The answer, when the operation completed.
    pub fn ret(&self) -> Option<(u64, &Ret)> {
        match &self.outcome {
            Outcome::Ok { at_ns, ret } => Some((*at_ns, ret)),
            _ => None,
        }
    }
}

/// The recorder, shared by every client task.
#[derive(Debug)]
pub struct History {
    start: Instant,
    ops: Mutex<Vec<Op>>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    pub fn new() -> Self {
        History {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the history started.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Op>> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the invoke of `call` on `uid`; call it right before sending.
    pub fn invoke(&self, process: u32, uid: u64, call: Call) -> OpId {
        let invoke_ns = self.now_ns();
        let mut ops = self.lock();
        ops.push(Op {
            process,
            uid,
            call,
            invoke_ns,
            outcome: Outcome::Pending,
        });
        ops.len() - 1
    }

    /// Records a batch lookup of `uids`: one read per uid, invoked together.
    pub fn invoke_lookup(&self, process: u32, uids: &[u64]) -> Vec<OpId> {
        let invoke_ns = self.now_ns();
        let mut ops = self.lock();
        uids.iter()
            .map(|&uid| {
                ops.push(Op {
                    process,
                    uid,
                    call: Call::Lookup,
                    invoke_ns,
                    outcome: Outcome::Pending,
                });
                ops.len() - 1
            })
            .collect()
    }

    /// Records the answer of `id`; call it right after it arrived.
    pub fn ok(&self, id: OpId, ret: Ret) {
        let at_ns = self.now_ns();
        self.set(id, Outcome::Ok { at_ns, ret });
    }

    /// Records the answer of a batch lookup: `found(uid)` is each uid's
    /// session ids.
    pub fn ok_lookup(&self, ids: &[OpId], mut found: impl FnMut(u64) -> Vec<u64>) {
        let at_ns = self.now_ns();
        let mut ops = self.lock();
        for &id in ids {
            if let Some(op) = ops.get_mut(id) {
                let sids: BTreeSet<u64> = found(op.uid).into_iter().collect();
                op.outcome = Outcome::Ok {
                    at_ns,
                    ret: Ret::Found {
                        sids: sids.into_iter().collect(),
                    },
                };
            }
        }
    }

    /// Records that `ids` failed: their effect is unknown.
    pub fn unknown(&self, ids: &[OpId], error: &str) {
        let at_ns = self.now_ns();
        let mut ops = self.lock();
        for &id in ids {
            if let Some(op) = ops.get_mut(id) {
                op.outcome = Outcome::Unknown {
                    at_ns,
                    error: error.to_owned(),
                };
            }
        }
    }

    fn set(&self, id: OpId, outcome: Outcome) {
        if let Some(op) = self.lock().get_mut(id) {
            op.outcome = outcome;
        }
    }

    /// A copy of every operation recorded so far.
    pub fn snapshot(&self) -> Vec<Op> {
        self.lock().clone()
    }
}
