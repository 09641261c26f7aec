//! The linearizability checker: a Wing-Gong search with Lowe's memoization,
//! one uid at a time.
//!
//! **Model.** Each uid is an independent object (P-compositionality: a
//! history is linearizable iff each uid's sub-history is), whose state is the
//! set of its session ids, one device per session. A login under policy
//! AllowAll adds its session (already there: no change) and kicks nobody;
//! under OneInAll (a quarter of the workload's uids) it leaves its session
//! alone in the set and answers the others it kicked: the kick decisions
//! are checked like every other answer. A logout removes its session and
//! answers whether it was there; a lookup answers the set.
//!
//! **Unknown operations** (timeouts, errors, never answered) get a return at
//! +infinity: they may be placed anywhere after their invoke, including after
//! every other operation, where their effect is unobservable — that is how
//! "never took effect" is expressed. An unknown lookup says nothing and is
//! dropped.
//!
//! **The search** (Lowe, "Testing for linearizability", 2017): the
//! operations' call and return events in time order in a linked list; take
//! the first call whose operation the model accepts in the current state,
//! lift it (its call and return) out of the list and go on from the head; a
//! return event reached means that operation could not be placed before it
//! returned: undo the last choice and try the next call. A cache of
//! (operations placed, state) pairs cuts every branch already explored.
//! Placed operations and states are 128-bit sets, so one uid's history holds
//! at most 128 operations and 128 distinct session ids (the workload keeps
//! far fewer); a longer one is reported as not checked.
//!
//! **Limits.** A logout answered `removed = false` proves nothing when the
//! client retries on its own: a first attempt may have removed the session
//! and the retry found it gone. [`CheckOptions::trust_logout_false`] says
//! whether such an answer must be explained by the session's absence.

use std::collections::BTreeMap;
use std::collections::HashSet;

use crate::history::Call;
use crate::history::Op;
use crate::history::Outcome;
use crate::history::Ret;

/// Largest number of operations (and of distinct session ids) of one uid.
pub const MAX_OPS_PER_UID: usize = 128;

/// How the checker reads answers, and how hard it tries.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// A logout answered `removed = false` requires the session to be absent
    /// at its linearization point. False when the client retries writes (a
    /// retried logout may answer false after its own first attempt removed
    /// the session).
    pub trust_logout_false: bool,
    /// A OneInAll login's answer names exactly the sessions it replaced.
    /// False when the client retries writes: a retry after the first
    /// attempt applied finds its session alone and kicks nobody (the
    /// workload never runs two logins of a OneInAll uid at once, so a
    /// retry answers either the whole set or nothing).
    pub exact_kicks: bool,
    /// Search steps allowed per uid before it is reported as not checked.
    pub max_steps_per_uid: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            trust_logout_false: true,
            exact_kicks: true,
            max_steps_per_uid: 2_000_000,
        }
    }
}

/// A uid whose history has no linearization.
#[derive(Debug, Clone)]
pub struct Violation {
    pub uid: u64,
    /// The uid's operations, by invoke time.
    pub ops: Vec<Op>,
    /// The most operations the search could place, and the first operation
    /// that returned before it could be placed in that deepest attempt.
    pub placed: usize,
    pub stuck_at: Option<Op>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "uid {}: not linearizable ({} of {} operations placed)",
            self.uid,
            self.placed,
            self.ops.len()
        )?;
        if let Some(op) = &self.stuck_at {
            writeln!(f, "  cannot place: {}", describe(op))?;
        }
        for op in &self.ops {
            writeln!(f, "  {}", describe(op))?;
        }
        Ok(())
    }
}

/// One line per operation: times in milliseconds since the history started.
pub fn describe(op: &Op) -> String {
    let ms = |ns: u64| ns as f64 / 1e6;
    let call = match op.call {
        Call::Login { sid, one: false } => format!("login({sid})"),
        Call::Login { sid, one: true } => format!("login-one-in-all({sid})"),
        Call::Logout { sid } => format!("logout({sid})"),
        Call::Lookup => "lookup".to_string(),
    };
    let end = match &op.outcome {
        Outcome::Pending => "pending".to_string(),
        Outcome::Ok { at_ns, ret } => format!("{:.3} ms -> {ret:?}", ms(*at_ns)),
        Outcome::Unknown { at_ns, error } => format!("{:.3} ms -> unknown ({error})", ms(*at_ns)),
    };
    format!("p{} {call} invoked {:.3} ms, {end}", op.process, ms(op.invoke_ns))
}

/// What the checker found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Uids checked.
    pub uids: usize,
    /// Operations that took part in the search (unknown lookups excluded).
    pub ops: usize,
    /// Of those, writes with an unknown outcome.
    pub unknown: usize,
    /// Uids without a linearization.
    pub violations: Vec<Violation>,
    /// Uids the search gave up on (too long, or out of steps).
    pub unchecked: Vec<u64>,
}

impl CheckReport {
    pub fn is_linearizable(&self) -> bool {
        self.violations.is_empty() && self.unchecked.is_empty()
    }
}

/// Checks `history` uid by uid.
pub fn check(history: &[Op], options: CheckOptions) -> CheckReport {
    let mut by_uid: BTreeMap<u64, Vec<&Op>> = BTreeMap::new();
    for op in history {
        by_uid.entry(op.uid).or_default().push(op);
    }
    let mut report = CheckReport::default();
    for (uid, ops) in by_uid {
        report.uids += 1;
        let ops: Vec<Op> = ops
            .into_iter()
            .filter(|op| op.call != Call::Lookup || op.ret().is_some())
            .cloned()
            .collect();
        report.ops += ops.len();
        report.unknown += ops.iter().filter(|op| op.ret().is_none()).count();
        match check_object(&ops, options) {
            Search::Linearizable => {}
            Search::Unchecked => report.unchecked.push(uid),
            Search::Violation { placed, stuck_at } => {
                let mut ops = ops;
                ops.sort_by_key(|op| op.invoke_ns);
                report.violations.push(Violation {
                    uid,
                    ops,
                    placed,
                    stuck_at,
                });
            }
        }
    }
    report
}

/// The result of the search on one uid.
#[derive(Debug, Clone, PartialEq)]
pub enum Search {
    Linearizable,
    Violation { placed: usize, stuck_at: Option<Op> },
    Unchecked,
}

/// An operation in the model's terms: session ids as bits.
#[derive(Debug, Clone, Copy)]
enum Step {
    Add(u128),
    /// A OneInAll login: its bit alone remains; the answer's kicked set
    /// when known, and whether an empty answer is also allowed.
    Replace(u128, Option<u128>, bool),
    /// Remove; `Some(true)`: must be present, `Some(false)`: must be absent.
    Remove(u128, Option<bool>),
    Read(u128),
}

/// The model: the next state, or `None` when `step` cannot happen in `state`.
fn apply(state: u128, step: Step) -> Option<u128> {
    match step {
        Step::Add(bit) => Some(state | bit),
        Step::Replace(bit, None, _) => Some(bit),
        Step::Replace(bit, Some(kicked), empty_ok) => {
            (kicked == state & !bit || (empty_ok && kicked == 0)).then_some(bit)
        }
        Step::Remove(bit, Some(true)) => (state & bit != 0).then_some(state & !bit),
        Step::Remove(bit, Some(false)) => (state & bit == 0).then_some(state),
        Step::Remove(bit, None) => Some(state & !bit),
        Step::Read(set) => (state == set).then_some(state),
    }
}

/// One uid's history (every op of the same uid; unknown lookups already
/// dropped) against the model, from the empty state.
pub fn check_object(ops: &[Op], options: CheckOptions) -> Search {
    if ops.len() > MAX_OPS_PER_UID {
        return Search::Unchecked;
    }
    // Session ids as bit positions.
    let mut bits: BTreeMap<u64, u32> = BTreeMap::new();
    let mut bit_of = |sid: u64| -> Option<u128> {
        let next = u32::try_from(bits.len()).ok()?;
        let pos = *bits.entry(sid).or_insert(next);
        (pos < 128).then(|| 1u128 << pos)
    };
    let mut steps = Vec::with_capacity(ops.len());
    for op in ops {
        let step = match (op.call, op.ret()) {
            (Call::Login { sid, one }, ret) => {
                let kicked = match ret {
                    Some((_, Ret::LoggedIn { kicked })) => {
                        let mut set = 0u128;
                        for &k in kicked {
                            match bit_of(k) {
                                Some(b) => set |= b,
                                None => return Search::Unchecked,
                            }
                        }
                        Some(set)
                    }
                    _ => None,
                };
                match (bit_of(sid), one, kicked) {
                    (None, ..) => None,
                    (Some(bit), true, kicked) => Some(Step::Replace(bit, kicked, !options.exact_kicks)),
                    (Some(bit), false, None | Some(0)) => Some(Step::Add(bit)),
                    // AllowAll kicked someone: never right.
                    (Some(_), false, Some(_)) => Some(Step::Read(u128::MAX)),
                }
            }
            (Call::Logout { sid }, ret) => {
                let must = match ret {
                    Some((_, Ret::LoggedOut { removed: true })) => Some(true),
                    Some((_, Ret::LoggedOut { removed: false })) if options.trust_logout_false => Some(false),
                    _ => None,
                };
                bit_of(sid).map(|bit| Step::Remove(bit, must))
            }
            (Call::Lookup, Some((_, Ret::Found { sids }))) => {
                let mut set = 0u128;
                for &sid in sids {
                    match bit_of(sid) {
                        Some(bit) => set |= bit,
                        None => return Search::Unchecked,
                    }
                }
                Some(Step::Read(set))
            }
            // A lookup answered with something else never happens; treat it
            // as a read of an impossible set so it cannot pass unnoticed.
            (Call::Lookup, _) => Some(Step::Read(u128::MAX)),
        };
        match step {
            Some(step) => steps.push(step),
            None => return Search::Unchecked,
        }
    }
    wgl(ops, &steps, options.max_steps_per_uid)
}

const NIL: usize = usize::MAX;

/// The call/return event list: index 0 is the head sentinel.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The operation of each event (unused for the sentinel).
    op: Vec<usize>,
    /// For a call event, the index of its return event; NIL for a return.
    partner: Vec<usize>,
}

impl Events {
    fn new(ops: &[Op]) -> Events {
        // (time, returns after calls at the same time, op, is_call)
        let mut order: Vec<(u64, u8, usize, bool)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.invoke_ns, 0, i, true));
            let ret = op.ret().map_or(u64::MAX, |(at, _)| at.max(op.invoke_ns));
            order.push((ret, 1, i, false));
        }
        order.sort_unstable();
        let n = order.len() + 1;
        let mut ev = Events {
            next: vec![NIL; n],
            prev: vec![NIL; n],
            op: vec![0; n],
            partner: vec![NIL; n],
        };
        let mut ret_event = vec![NIL; ops.len()];
        for (k, &(_, _, op, is_call)) in order.iter().enumerate() {
            let idx = k + 1;
            ev.op[idx] = op;
            ev.prev[idx] = k;
            ev.next[k] = idx;
            if !is_call {
                ret_event[op] = idx;
            }
        }
        for (k, &(_, _, op, is_call)) in order.iter().enumerate() {
            if is_call {
                ev.partner[k + 1] = ret_event[op];
            }
        }
        ev
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        if n != NIL {
            self.prev[n] = e;
        }
    }

    /// Takes a call and its return out of the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.partner[call]);
    }

    /// Puts them back (in the reverse order of `lift`).
    fn unlift(&mut self, call: usize) {
        self.relink(self.partner[call]);
        self.relink(call);
    }
}

fn wgl(ops: &[Op], steps: &[Step], budget: u64) -> Search {
    let mut ev = Events::new(ops);
    let mut state = 0u128;
    let mut placed = 0u128;
    let mut depth = 0usize;
    let mut deepest = (0usize, None::<usize>);
    let mut cache: HashSet<(u128, u128)> = HashSet::new();
    let mut stack: Vec<(usize, u128)> = Vec::new();
    let mut entry = ev.next[0];
    let mut spent = 0u64;
    while ev.next[0] != NIL {
        spent += 1;
        if spent > budget {
            return Search::Unchecked;
        }
        if entry == NIL {
            // Cannot happen: every call has its return after it.
            return Search::Unchecked;
        }
        let op = ev.op[entry];
        if ev.partner[entry] != NIL {
            // A call: try to place its operation now.
            if let Some(next) = apply(state, steps[op]) {
                let now_placed = placed | (1u128 << op);
                if cache.insert((now_placed, next)) {
                    stack.push((entry, state));
                    state = next;
                    placed = now_placed;
                    depth += 1;
                    ev.lift(entry);
                    entry = ev.next[0];
                    continue;
                }
            }
            entry = ev.next[entry];
        } else {
            // A return of an operation not placed yet: undo the last choice.
            if depth > deepest.0 || deepest.1.is_none() {
                deepest = (depth, Some(op));
            }
            let Some((call, before)) = stack.pop() else {
                return Search::Violation {
                    placed: deepest.0,
                    stuck_at: deepest.1.map(|i| ops[i].clone()),
                };
            };
            depth -= 1;
            state = before;
            placed &= !(1u128 << ev.op[call]);
            ev.unlift(call);
            entry = ev.next[call];
        }
    }
    Search::Linearizable
}

/// An acknowledged login missing from the final read although no logout of
/// that session was ever issued: a lost write, named directly (the search
/// reports it too, as a violation of the uid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostWrite {
    pub uid: u64,
    pub sid: u64,
}

/// Compares each uid's last completed read (the final quiet read) with the
/// acknowledged logins: a session logged in, acknowledged, never logged out
/// (nor possibly replaced by a later OneInAll login) and absent from the
/// final read is lost; a session whose logout was acknowledged as removed,
/// or that an acknowledged login said it kicked, and that is present in the
/// final read came back.
pub fn final_reads(history: &[Op]) -> (Vec<LostWrite>, Vec<LostWrite>) {
    let mut by_uid: BTreeMap<u64, Vec<&Op>> = BTreeMap::new();
    for op in history {
        by_uid.entry(op.uid).or_default().push(op);
    }
    let (mut lost, mut back) = (Vec::new(), Vec::new());
    for (uid, ops) in by_uid {
        let last_read = ops
            .iter()
            .filter_map(|op| match op.ret() {
                Some((at, Ret::Found { sids })) if op.call == Call::Lookup => Some((op.invoke_ns, at, sids)),
                _ => None,
            })
            .max_by_key(|(invoke, ..)| *invoke);
        let Some((read_invoke, _, sids)) = last_read else {
            continue;
        };
        // Only writes that ended before the final read began are settled.
        let settled = |op: &Op| op.ret().is_some_and(|(at, _)| at < read_invoke);
        let logouts: HashSet<u64> = ops
            .iter()
            .filter_map(|op| match op.call {
                Call::Logout { sid } => Some(sid),
                _ => None,
            })
            .collect();
        // Every OneInAll login may replace the sessions logged in before it.
        let replaced_after = |invoke: u64| {
            ops.iter()
                .any(|o| matches!(o.call, Call::Login { one: true, .. }) && o.invoke_ns > invoke)
        };
        let kicked: HashSet<u64> = ops
            .iter()
            .filter(|op| settled(op))
            .filter_map(|op| match op.ret() {
                Some((_, Ret::LoggedIn { kicked })) => Some(kicked.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect();
        // A kicked session whose own login was acknowledged (an unknown
        // one may still take effect later) must not be read again.
        let acked_login = |sid: u64| {
            ops.iter().any(|o| {
                matches!(o.call, Call::Login { sid: s, .. } if s == sid)
                    && matches!(o.ret(), Some((_, Ret::LoggedIn { .. })))
            })
        };
        for sid in kicked.iter().filter(|s| sids.contains(s) && acked_login(**s)) {
            back.push(LostWrite { uid, sid: *sid });
        }
        for op in &ops {
            match op.call {
                Call::Login { sid, .. }
                    if settled(op)
                        && !logouts.contains(&sid)
                        && !replaced_after(op.invoke_ns)
                        && !sids.contains(&sid) =>
                {
                    lost.push(LostWrite { uid, sid });
                }
                Call::Logout { sid }
                    if settled(op)
                        && matches!(op.ret(), Some((_, Ret::LoggedOut { removed: true })))
                        && sids.contains(&sid) =>
                {
                    back.push(LostWrite { uid, sid });
                }
                _ => {}
            }
        }
    }
    (lost, back)
}
