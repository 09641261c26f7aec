//! One chaos run: a cluster behind proxies, the workload, the seeded fault
//! schedule and beside it the membership changes (replica moves; in long
//! runs a node added and one drained and removed), heal, final quiet reads,
//! and the check.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::sync::Mutex;

use confab_router_client::ClientConfig;
use tokio::sync::watch;
use tokio::time::Instant;

pub use crate::apply::AdminRecord;
use crate::apply::TERM_GRACE;
use crate::apply::administer;
use crate::apply::inject;
use crate::checker;
use crate::checker::CheckOptions;
use crate::checker::CheckReport;
use crate::checker::LostWrite;
use crate::cluster::Cluster;
use crate::cluster::ClusterSpec;
use crate::error::Result;
use crate::history::Call;
use crate::history::History;
use crate::history::Op;
use crate::history::Outcome;
use crate::proxy::ProxyCounts;
use crate::schedule::Schedule;
use crate::workload;
use crate::workload::RouterTarget;
use crate::workload::WorkloadSpec;

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    pub schedule: Schedule,
    pub cluster: ClusterSpec,
    pub workload: WorkloadSpec,
    /// The workload's router client: generous deadlines (a timeout is an
    /// unknown outcome, not a failure, but fewer unknowns check more).
    pub client: ClientConfig,
    /// Load before the first fault.
    pub warmup: Duration,
    /// Load after the last heal, before the workload stops.
    pub cooldown: Duration,
    /// How long the cluster may take to be ready (at start, after heal).
    pub ready_within: Duration,
}

impl ChaosOptions {
    /// A run of about `fault_secs` seconds of faults on 4 routers, with
    /// replica moves during the faults; from two minutes on, also a node
    /// added (and a rebalance) and a node drained and removed.
    pub fn new(seed: u64, fault_secs: u64) -> Result<Self> {
        let cluster = ClusterSpec::small()?;
        let grow_and_shrink = fault_secs >= 120;
        Ok(ChaosOptions {
            schedule: Schedule::generate_elastic(
                seed,
                cluster.nodes,
                cluster.shards,
                fault_secs,
                grow_and_shrink,
            ),
            cluster,
            workload: WorkloadSpec {
                seed,
                ..WorkloadSpec::default()
            },
            client: ClientConfig {
                deadline: Duration::from_secs(8),
                attempt_timeout: Duration::from_secs(2),
                connect_timeout: Duration::from_millis(500),
                ..Default::default()
            },
            warmup: Duration::from_secs(2),
            cooldown: Duration::from_secs(2),
            ready_within: Duration::from_secs(60),
        })
    }
}

/// What a run found.
#[derive(Debug)]
pub struct ChaosReport {
    pub schedule: Schedule,
    /// One line per fault applied or healed, with its time.
    pub timeline: Vec<String>,
    pub faults_injected: usize,
    /// When each applied fault held, from the start of the fault phase.
    pub fault_windows: Vec<(Duration, Duration)>,
    /// The membership changes, as carried out.
    pub admin: Vec<AdminRecord>,
    /// SIGTERMs the node did not honour within the grace period (it was
    /// then killed): an operability finding, not a correctness failure.
    pub term_timeouts: usize,
    /// Operations recorded (one per uid of a lookup), final reads included.
    pub ops: usize,
    /// (logins, logouts, per-uid reads, OneInAll logins, of those kicking)
    pub mix: (usize, usize, usize, usize, usize),
    pub completed: usize,
    pub unknown: usize,
    pub uids: usize,
    /// Why operations ended unknown: the error's leading words, counted.
    pub errors: BTreeMap<String, usize>,
    /// Uids the final reads never reached.
    pub unread: Vec<u64>,
    pub check: CheckReport,
    pub lost: Vec<LostWrite>,
    pub resurrected: Vec<LostWrite>,
    /// Nodes whose process exited without being told to, with their log.
    pub crashed: Vec<(u64, String)>,
    pub proxies: BTreeMap<u64, ProxyCounts>,
    pub elapsed: Duration,
    /// Where the history was written when the run failed.
    pub history_file: Option<PathBuf>,
    /// The cluster's data and logs, kept when the run failed or
    /// `CONFAB_CHAOS_KEEP` is set.
    pub cluster_dir: Option<PathBuf>,
}

/// The least share of operations that must complete (answered, not
/// unknown) for a run to count: a run where almost everything timed out
/// checked next to nothing.
pub const MIN_COMPLETED: f64 = 0.5;

impl ChaosReport {
    pub fn passed(&self) -> bool {
        self.check.is_linearizable()
            && self.lost.is_empty()
            && self.resurrected.is_empty()
            && self.unread.is_empty()
            && self.crashed.is_empty()
            && self.enough_completed()
    }

    /// At least [`MIN_COMPLETED`] of the operations were answered.
    pub fn enough_completed(&self) -> bool {
        self.ops > 0 && self.completed as f64 >= MIN_COMPLETED * self.ops as f64
    }

    /// A human summary; the violations in full.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "chaos seed {}: {} faults injected, {} operations ({} logins, {} of them one-in-all \
             with {} kicking, {} logouts, {} reads; \
             {} completed, {} unknown) on {} uids, {} checked ({} unknown writes), {:.1} s\n",
            self.schedule.seed,
            self.faults_injected,
            self.ops,
            self.mix.0,
            self.mix.3,
            self.mix.4,
            self.mix.1,
            self.mix.2,
            self.completed,
            self.unknown,
            self.uids,
            self.check.ops,
            self.check.unknown,
            self.elapsed.as_secs_f64()
        );
        for a in &self.admin {
            s += &format!(
                "  {} {} (t+{:.2} s to t+{:.2} s{}): {}\n",
                if a.done { "done" } else { "NOT DONE" },
                a.op.kind(),
                a.started.as_secs_f64(),
                a.ended.as_secs_f64(),
                if a.overlaps(&self.fault_windows) {
                    ", during a fault"
                } else {
                    ""
                },
                a.what
            );
        }
        if self.term_timeouts > 0 {
            s += &format!(
                "  {} SIGTERM(s) not honoured within {TERM_GRACE:?} (node killed instead)\n",
                self.term_timeouts
            );
        }
        for (error, n) in &self.errors {
            s += &format!("  unknown outcome x{n}: {error}\n");
        }
        for (node, counts) in &self.proxies {
            s += &format!(
                "  proxy of node {node}: accepted {:?}, cut {}, held {}, delayed chunks {}\n",
                counts.accepted, counts.cut, counts.held, counts.delayed
            );
        }
        if self.passed() {
            s += "  linearizable; no acknowledged write lost\n";
            return s;
        }
        for v in self.check.violations.iter().take(5) {
            s += &v.to_string();
        }
        if self.check.violations.len() > 5 {
            s += &format!("  ... {} more violations\n", self.check.violations.len() - 5);
        }
        if !self.check.unchecked.is_empty() {
            s += &format!("  unchecked uids (search gave up): {:?}\n", self.check.unchecked);
        }
        if !self.lost.is_empty() {
            s += &format!("  acknowledged logins lost: {:?}\n", self.lost);
        }
        if !self.resurrected.is_empty() {
            s += &format!(
                "  sessions back after an acknowledged logout: {:?}\n",
                self.resurrected
            );
        }
        if !self.unread.is_empty() {
            s += &format!("  uids without a final read: {}\n", self.unread.len());
        }
        if !self.enough_completed() {
            s += &format!(
                "  only {} of {} operations completed (at least {:.0} % must)\n",
                self.completed,
                self.ops,
                MIN_COMPLETED * 100.0
            );
        }
        for (node, log) in &self.crashed {
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            s += &format!("  node {node} exited on its own; log tail:\n");
            for line in tail.into_iter().rev() {
                s += &format!("    {line}\n");
            }
        }
        if let Some(f) = &self.history_file {
            s += &format!("  history written to {}\n", f.display());
        }
        if let Some(d) = &self.cluster_dir {
            s += &format!("  cluster data and logs kept in {}\n", d.display());
        }
        s
    }
}

/// Router clients the workload spreads its operations over (gateways, each
/// with its own leader cache).
const CLIENTS: usize = 4;

/// Runs the whole thing. The schedule is printed first (stderr), so a
/// failing seed can be run again.
pub async fn run(options: ChaosOptions) -> Result<ChaosReport> {
    let started = Instant::now();
    eprint!("{}", options.schedule);
    let cluster = Cluster::start(options.cluster.clone()).await?;
    cluster.wait_ready(options.ready_within).await?;
    eprintln!(
        "chaos: cluster ready after {:.1} s ({})",
        started.elapsed().as_secs_f64(),
        cluster.dir().display()
    );

    let clients = (0..CLIENTS)
        .map(|_| cluster.client(options.client.clone()))
        .collect::<Result<Vec<_>>>()?;
    let target = Arc::new(RouterTarget::new(clients));
    // One attempt of a move may wait on a stopped or cut-off node: give up
    // on it after a while and ask again (every step is safe to repeat).
    let admin_client = cluster.client(ClientConfig {
        deadline: Duration::from_secs(12),
        attempt_timeout: Duration::from_secs(10),
        ..options.client.clone()
    })?;
    let history = Arc::new(History::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let load = tokio::spawn(workload::run(
        target.clone(),
        history.clone(),
        options.workload.clone(),
        stop_rx,
    ));

    tokio::time::sleep(options.warmup).await;
    let cluster = tokio::sync::Mutex::new(cluster);
    let timeline = Mutex::new(Vec::new());
    let phase = Instant::now();
    let ((faults_injected, term_timeouts, fault_windows), admin) = tokio::join!(
        inject(&cluster, &options.schedule, &timeline, phase),
        administer(&cluster, &options.schedule, &admin_client, &timeline, phase),
    );
    let mut cluster = cluster.into_inner();
    let timeline = timeline.into_inner().unwrap_or_else(|e| e.into_inner());
    heal(&mut cluster);
    tokio::time::sleep(options.cooldown).await;
    let _ = stop_tx.send(true);
    let stats = load.await.unwrap_or_default();
    eprintln!(
        "chaos: workload stopped: {} calls, {} failed, {} uids",
        stats.calls,
        stats.failed_calls,
        stats.uids.len()
    );

    cluster.wait_ready(options.ready_within).await?;
    let unread = workload::final_reads(&*target, &history, &stats.uids, 32, Duration::from_secs(30)).await;

    let ops = history.snapshot();
    let check = checker::check(
        &ops,
        CheckOptions {
            // The router client retries: a logout may answer false after its
            // own first attempt removed the session.
            trust_logout_false: false,
            exact_kicks: false,
            ..CheckOptions::default()
        },
    );
    let (lost, resurrected) = checker::final_reads(&ops);
    let mut crashed = Vec::new();
    for id in cluster.node_ids() {
        if cluster.has_exited(id) || cluster.log(id).contains("panicked") {
            crashed.push((id, cluster.log(id)));
        }
    }
    let proxies = cluster.proxies().map(|p| (p.node(), p.counts())).collect();
    let completed = ops.iter().filter(|op| op.ret().is_some()).count();
    let mut report = ChaosReport {
        schedule: options.schedule,
        timeline,
        faults_injected,
        fault_windows,
        admin,
        term_timeouts,
        ops: ops.len(),
        mix: op_mix(&ops),
        completed,
        unknown: ops.len() - completed,
        uids: stats.uids.len(),
        errors: error_tally(&ops),
        unread,
        check,
        lost,
        resurrected,
        crashed,
        proxies,
        elapsed: started.elapsed(),
        history_file: None,
        cluster_dir: None,
    };
    if !report.passed() {
        report.history_file = save_history(report.schedule.seed, &ops);
    }
    if !report.passed() || std::env::var_os("CONFAB_CHAOS_KEEP").is_some() {
        report.cluster_dir = Some(cluster.keep_dir());
    }
    Ok(report)
}

/// Every link passes, every node runs.
fn heal(cluster: &mut Cluster) {
    cluster.links().heal();
    for id in cluster.node_ids() {
        if cluster.is_running(id) {
            let _ = cluster.resume(id);
        } else {
            let _ = cluster.spawn(id);
        }
    }
}

/// Writes the history as JSON next to the temp files; the path, if it worked.
fn save_history(seed: u64, ops: &[Op]) -> Option<PathBuf> {
    let path = std::env::temp_dir().join(format!("confab-chaos-{seed}-{}.json", std::process::id()));
    let json = serde_json::to_vec(ops).ok()?;
    std::fs::write(&path, json).ok()?;
    Some(path)
}

/// Unknown outcomes by the first words of their error (numbers dropped, so
/// alike errors count together).
fn error_tally(ops: &[Op]) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for op in ops {
        if let Outcome::Unknown { error, .. } = &op.outcome {
            let words: Vec<&str> = error
                .split_whitespace()
                .filter(|w| !w.starts_with(|c: char| c.is_ascii_digit()))
                .take(14)
                .collect();
            *tally.entry(words.join(" ")).or_default() += 1;
        }
    }
    tally
}

/// Counts of the recorded operations by kind: (logins, logouts, lookups,
/// OneInAll logins, of those the ones answered with a kick).
pub fn op_mix(ops: &[Op]) -> (usize, usize, usize, usize, usize) {
    ops.iter().fold((0, 0, 0, 0, 0), |(a, b, c, d, e), op| match op.call {
        Call::Login { one, .. } => {
            let kicked = matches!(op.ret(), Some((_, crate::history::Ret::LoggedIn { kicked })) if !kicked.is_empty());
            (a + 1, b, c, d + usize::from(one), e + usize::from(one && kicked))
        }
        Call::Logout { .. } => (a, b + 1, c, d, e),
        Call::Lookup => (a, b, c + 1, d, e),
    })
}
