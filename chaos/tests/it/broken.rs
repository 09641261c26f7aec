//! The harness catches bugs: the same workload, recorder and checker as the
//! chaos run, against in-process stand-ins for the router. A correct one
//! (with latency and unknown outcomes) passes; one that serves reads from a
//! lagging copy, as a follower read without a linearizability check would,
//! and one that acknowledges logins it never applies, are caught.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use confab_chaos::checker;
use confab_chaos::checker::CheckOptions;
use confab_chaos::checker::CheckReport;
use confab_chaos::checker::LostWrite;
use confab_chaos::history::Call;
use confab_chaos::history::History;
use confab_chaos::history::Op;
use confab_chaos::history::Ret;
use confab_chaos::rng::Rng;
use confab_chaos::workload;
use confab_chaos::workload::Target;
use confab_chaos::workload::WorkloadSpec;
use tokio::sync::watch;

type Table = BTreeMap<u64, BTreeSet<u64>>;

#[derive(Clone, Copy, PartialEq)]
enum Bug {
    None,
    /// Lookups answer from a copy of the table as it was `lag` ago.
    StaleReads {
        lag: Duration,
    },
    /// One login in `one_in` is acknowledged but never applied.
    LostLogins {
        one_in: u64,
    },
    /// A OneInAll login answers whom it kicked but leaves them in.
    KickedStay,
}

/// An in-memory online table: linearizable writes (one lock), latency
/// before and after each operation, and unknown outcomes (applied or not).
struct Fake {
    bug: Bug,
    table: Mutex<Table>,
    /// (when, table after a write), oldest first: the lagging copy.
    past: Mutex<VecDeque<(Instant, Table)>>,
    rng: Mutex<Rng>,
}

impl Fake {
    fn new(bug: Bug) -> Arc<Fake> {
        Arc::new(Fake {
            bug,
            table: Mutex::default(),
            past: Mutex::default(),
            rng: Mutex::new(Rng::new(99)),
        })
    }

    fn roll(&self, n: u64) -> u64 {
        self.rng.lock().expect("rng").below(n)
    }

    async fn latency(&self) {
        tokio::time::sleep(Duration::from_micros(self.roll(2000))).await;
    }

    /// Applies `f` and keeps the result for the lagging copy.
    fn write<T>(&self, f: impl FnOnce(&mut Table) -> T) -> T {
        let mut table = self.table.lock().expect("table");
        let out = f(&mut table);
        let mut past = self.past.lock().expect("past");
        past.push_back((Instant::now(), table.clone()));
        if past.len() > 10_000 {
            past.pop_front();
        }
        out
    }

    /// 3 % fail after applying, 3 % fail without applying.
    fn fate(&self) -> (bool, Result<(), String>) {
        match self.roll(100) {
            0..=2 => (true, Err("timed out (applied)".into())),
            3..=5 => (false, Err("timed out (not applied)".into())),
            _ => (true, Ok(())),
        }
    }
}

impl Target for Fake {
    async fn login(&self, uid: u64, sid: u64, one: bool) -> Result<Vec<u64>, String> {
        self.latency().await;
        let (apply, answer) = self.fate();
        let lost = matches!(self.bug, Bug::LostLogins { one_in } if self.roll(one_in) == 0);
        let mut kicked = Vec::new();
        if apply && !lost {
            let keep_kicked = self.bug == Bug::KickedStay;
            kicked = self.write(|t| {
                let sessions = t.entry(uid).or_default();
                let others: Vec<u64> = if one {
                    sessions.iter().copied().filter(|s| *s != sid).collect()
                } else {
                    Vec::new()
                };
                if !keep_kicked {
                    sessions.retain(|s| !others.contains(s));
                }
                sessions.insert(sid);
                others
            });
        }
        self.latency().await;
        answer.map(|()| kicked)
    }

    async fn logout(&self, uid: u64, sid: u64) -> Result<bool, String> {
        self.latency().await;
        let (apply, answer) = self.fate();
        let removed = apply && self.write(|t| t.get_mut(&uid).is_some_and(|s| s.remove(&sid)));
        self.latency().await;
        answer.map(|()| removed)
    }

    async fn lookup(&self, uids: &[u64]) -> Result<HashMap<u64, Vec<u64>>, String> {
        self.latency().await;
        let table = match self.bug {
            Bug::StaleReads { lag } => {
                let past = self.past.lock().expect("past");
                let horizon = Instant::now().checked_sub(lag);
                past.iter()
                    .rev()
                    .find(|(at, _)| horizon.is_none_or(|h| *at <= h))
                    .map(|(_, t)| t.clone())
                    .unwrap_or_default()
            }
            _ => self.table.lock().expect("table").clone(),
        };
        let found = uids
            .iter()
            .filter_map(|uid| table.get(uid).map(|s| (*uid, s.iter().copied().collect())))
            .collect();
        self.latency().await;
        if self.roll(100) < 3 {
            return Err("timed out".into());
        }
        Ok(found)
    }
}

/// The chaos run's pipeline on `fake`: load for `secs`, final reads, check.
async fn pipeline(fake: Arc<Fake>, secs: f64) -> (CheckReport, Vec<LostWrite>, Vec<Op>) {
    let history = Arc::new(History::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let spec = WorkloadSpec {
        seed: 5,
        workers: 8,
        active_uids: 16,
        ops_per_uid: 16,
        ..WorkloadSpec::default()
    };
    let load = tokio::spawn(workload::run(fake.clone(), history.clone(), spec, stop_rx));
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop_tx.send(true).expect("workload listens");
    let stats = load.await.expect("workload");
    // Quiet: a lagging copy catches up before the final reads.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let unread = workload::final_reads(&*fake, &history, &stats.uids, 8, Duration::from_secs(10)).await;
    assert!(unread.is_empty());
    let ops = history.snapshot();
    let report = checker::check(&ops, CheckOptions::default());
    let (lost, _) = checker::final_reads(&ops);
    (report, lost, ops)
}

/// OneInAll logins that answered they kicked someone.
fn kicks(ops: &[Op]) -> usize {
    ops.iter()
        .filter(|op| matches!(op.call, Call::Login { one: true, .. }))
        .filter(|op| matches!(op.ret(), Some((_, Ret::LoggedIn { kicked })) if !kicked.is_empty()))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_target_with_unknown_outcomes_passes() {
    let (report, lost, ops) = pipeline(Fake::new(Bug::None), 1.5).await;
    assert!(ops.len() > 300, "only {} operations", ops.len());
    assert!(kicks(&ops) > 5, "OneInAll logins kicked: {}", kicks(&ops));
    assert!(
        report.unknown > 10,
        "unknown writes exercised: {}",
        report.unknown
    );
    assert!(
        report.is_linearizable(),
        "false positive:\n{}",
        report
            .violations
            .iter()
            .map(|v| v.to_string())
            .collect::<String>()
    );
    assert!(lost.is_empty(), "{lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_from_a_lagging_copy_are_caught() {
    let (report, lost, _) = pipeline(
        Fake::new(Bug::StaleReads {
            lag: Duration::from_millis(30),
        }),
        1.5,
    )
    .await;
    assert!(
        !report.violations.is_empty(),
        "stale reads went unnoticed over {} operations",
        report.ops
    );
    // The reads are what cannot be placed; writes are all there in the end.
    let stale = report
        .violations
        .iter()
        .filter(|v| v.stuck_at.as_ref().is_some_and(|op| op.call == Call::Lookup))
        .count();
    assert!(stale > 0, "{}", report.violations[0]);
    assert!(lost.is_empty(), "{lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_logins_that_were_never_applied_are_caught() {
    let (report, lost, _) = pipeline(Fake::new(Bug::LostLogins { one_in: 50 }), 1.5).await;
    assert!(!report.violations.is_empty(), "lost writes went unnoticed");
    assert!(!lost.is_empty(), "the final reads name the lost sessions");
    let by_uid: BTreeSet<u64> = report.violations.iter().map(|v| v.uid).collect();
    assert!(
        lost.iter().all(|l| by_uid.contains(&l.uid)),
        "every lost write is also a violation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kicks_that_are_announced_but_not_done_are_caught() {
    let (report, _, ops) = pipeline(Fake::new(Bug::KickedStay), 1.5).await;
    assert!(kicks(&ops) > 5, "OneInAll logins kicked: {}", kicks(&ops));
    assert!(
        !report.violations.is_empty(),
        "kicked sessions left in went unnoticed over {} operations",
        report.ops
    );
}
