//! The workload: client tasks doing login, logout and lookup on a rolling
//! set of uids, recording every operation in the [`History`].
//!
//! Each uid sees a few operations (`ops_per_uid`) and is then retired for a
//! fresh one, so per-uid histories stay short and the check stays cheap
//! while the run covers many uids. Every login carries a new session id and
//! a device of its own: the model is the set of session ids. Three uids in
//! four log in under policy AllowAll; the fourth under OneInAll (one
//! session in all: a login kicks the others, and says which), with never
//! two of its logins at once. Logouts name sessions whose login ended
//! (acknowledged or unknown); a lookup asks for one to `lookup_max` uids at
//! once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use confab_router_client::DeviceKind;
use confab_router_client::MultiDevicePolicy;
use confab_router_client::RouterClient;
use confab_router_client::Session;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::history::Call;
use crate::history::History;
use crate::history::Ret;
use crate::rng::Rng;

/// The process number the final reads are recorded under.
pub const FINAL_READER: u32 = u32::MAX;

/// What the workload drives: the router cluster, or a stand-in in tests.
/// An `Err` is an unknown outcome.
pub trait Target: Send + Sync + 'static {
    /// Logs `sid` in, under OneInAll when `one` (else AllowAll); answers
    /// the session ids the login kicked.
    fn login(&self, uid: u64, sid: u64, one: bool) -> impl Future<Output = Result<Vec<u64>, String>> + Send;
    fn logout(&self, uid: u64, sid: u64) -> impl Future<Output = Result<bool, String>> + Send;
    /// Session ids by uid; uids without sessions may be left out.
    fn lookup(&self, uids: &[u64]) -> impl Future<Output = Result<HashMap<u64, Vec<u64>>, String>> + Send;
}

/// The router cluster through several [`RouterClient`]s, as many gateways
/// reach it: each with its own map and leader cache, so one may still talk
/// to a deposed leader while another has moved on. Operations take the
/// clients in turn.
#[derive(Debug)]
pub struct RouterTarget {
    clients: Vec<RouterClient>,
    next: std::sync::atomic::AtomicUsize,
}

impl RouterTarget {
    /// Over `clients` (at least one).
    pub fn new(clients: Vec<RouterClient>) -> Self {
        assert!(!clients.is_empty(), "a target needs a client");
        Self {
            clients,
            next: Default::default(),
        }
    }

    fn client(&self) -> &RouterClient {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.clients[i % self.clients.len()]
    }
}

/// The gateway id the workload's sessions claim (never registered, so
/// never purged by a lease expiry).
const GATEWAY: u64 = 7;

impl Target for RouterTarget {
    async fn login(&self, uid: u64, sid: u64, one: bool) -> Result<Vec<u64>, String> {
        let session = Session {
            session_id: sid,
            gateway_id: GATEWAY,
            gateway_incarnation: 1,
            device_kind: DeviceKind::Mobile as i32,
            device_id: format!("d{sid}"),
            login_at_ms: 1,
        };
        let policy = if one {
            MultiDevicePolicy::OneInAll
        } else {
            MultiDevicePolicy::AllowAll
        };
        self.client()
            .login(uid, session, policy)
            .await
            .map(|outcome| {
                let mut kicked: Vec<u64> = outcome.kicked.iter().map(|s| s.session_id).collect();
                kicked.sort_unstable();
                kicked
            })
            .map_err(|e| e.to_string())
    }

    async fn logout(&self, uid: u64, sid: u64) -> Result<bool, String> {
        self.client().logout(uid, sid).await.map_err(|e| e.to_string())
    }

    async fn lookup(&self, uids: &[u64]) -> Result<HashMap<u64, Vec<u64>>, String> {
        let found = self.client().lookup(uids).await.map_err(|e| e.to_string())?;
        Ok(found
            .into_iter()
            .map(|(uid, sessions)| (uid, sessions.iter().map(|s| s.session_id).collect()))
            .collect())
    }
}

/// The workload's shape.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub seed: u64,
    /// Concurrent client tasks.
    pub workers: u32,
    /// Uids in play at once.
    pub active_uids: usize,
    /// Operations a uid takes part in before it is retired.
    pub ops_per_uid: u32,
    pub first_uid: u64,
    /// Largest number of uids in one lookup.
    pub lookup_max: usize,
    /// Pause between a worker's operations: uniform in `[0, think]`.
    pub think: Duration,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            seed: 1,
            workers: 20,
            active_uids: 48,
            ops_per_uid: 16,
            first_uid: 1_000,
            lookup_max: 4,
            think: Duration::from_millis(4),
        }
    }
}

#[derive(Debug)]
struct Slot {
    uid: u64,
    /// Logs in under OneInAll.
    one: bool,
    /// A OneInAll login of this uid is running (another waits).
    logging_in: bool,
    ops: u32,
    /// Sessions whose login ended and that no logout named yet.
    ended: Vec<u64>,
}

#[derive(Debug)]
struct Pool {
    slots: Vec<Slot>,
    next_uid: u64,
    next_sid: u64,
    used: Vec<u64>,
}

enum Plan {
    /// uid, sid, OneInAll.
    Login(u64, u64, bool),
    Logout(u64, u64),
    Lookup(Vec<u64>),
}

impl Pool {
    fn new(spec: &WorkloadSpec) -> Pool {
        let mut pool = Pool {
            slots: Vec::new(),
            next_uid: spec.first_uid,
            next_sid: 1,
            used: Vec::new(),
        };
        for _ in 0..spec.active_uids.max(1) {
            let slot = pool.fresh();
            pool.slots.push(slot);
        }
        pool
    }

    fn fresh(&mut self) -> Slot {
        let uid = self.next_uid;
        self.next_uid += 1;
        self.used.push(uid);
        Slot {
            uid,
            one: uid.is_multiple_of(4),
            logging_in: false,
            ops: 0,
            ended: Vec::new(),
        }
    }

    /// Counts one operation on slot `i`; retires it when it had its share.
    fn reserve(&mut self, i: usize, cap: u32) -> u64 {
        let uid = self.slots[i].uid;
        self.slots[i].ops += 1;
        if self.slots[i].ops >= cap {
            self.slots[i] = self.fresh();
        }
        uid
    }

    fn plan(&mut self, rng: &mut Rng, spec: &WorkloadSpec) -> Plan {
        let n = self.slots.len() as u64;
        let roll = rng.below(100);
        if roll < 35 {
            let k = rng.between(1, spec.lookup_max.max(1) as u64);
            let mut picked: Vec<usize> = Vec::new();
            for _ in 0..k {
                let i = rng.below(n) as usize;
                if !picked.contains(&i) {
                    picked.push(i);
                }
            }
            let mut uids: Vec<u64> = picked
                .into_iter()
                .map(|i| self.reserve(i, spec.ops_per_uid))
                .collect();
            uids.dedup();
            return Plan::Lookup(uids);
        }
        let i = rng.below(n) as usize;
        let busy = self.slots[i].one && self.slots[i].logging_in;
        if busy && self.slots[i].ended.is_empty() {
            return Plan::Lookup(vec![self.reserve(i, spec.ops_per_uid)]);
        }
        if !busy && (roll < 70 || self.slots[i].ended.is_empty()) {
            let sid = self.next_sid;
            self.next_sid += 1;
            let one = self.slots[i].one;
            self.slots[i].logging_in = one;
            return Plan::Login(self.reserve(i, spec.ops_per_uid), sid, one);
        }
        let ended = &mut self.slots[i].ended;
        let sid = ended.swap_remove(rng.below(ended.len() as u64) as usize);
        Plan::Logout(self.reserve(i, spec.ops_per_uid), sid)
    }

    fn login_ended(&mut self, uid: u64, sid: u64) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.uid == uid) {
            slot.ended.push(sid);
            slot.logging_in = false;
        }
    }
}

/// What the workload did.
#[derive(Debug, Clone, Default)]
pub struct WorkloadStats {
    /// Every uid that took part.
    pub uids: Vec<u64>,
    pub calls: u64,
    pub failed_calls: u64,
    pub elapsed: Duration,
}

/// Runs `spec.workers` client tasks against `target` until `stop` turns
/// true, then waits for the operations in flight.
pub async fn run<T: Target>(
    target: Arc<T>,
    history: Arc<History>,
    spec: WorkloadSpec,
    stop: watch::Receiver<bool>,
) -> WorkloadStats {
    let started = Instant::now();
    let pool = Arc::new(Mutex::new(Pool::new(&spec)));
    let mut seeds = Rng::new(spec.seed ^ 0x005E_ED0F_C0DE);
    let mut workers = Vec::new();
    for process in 0..spec.workers {
        let worker = Worker {
            process,
            target: target.clone(),
            history: history.clone(),
            pool: pool.clone(),
            spec: spec.clone(),
            rng: seeds.fork(),
        };
        workers.push(tokio::spawn(worker.run(stop.clone())));
    }
    let mut stats = WorkloadStats::default();
    for w in workers {
        if let Ok((calls, failed)) = w.await {
            stats.calls += calls;
            stats.failed_calls += failed;
        }
    }
    stats.uids = pool.lock().unwrap_or_else(|e| e.into_inner()).used.clone();
    stats.elapsed = started.elapsed();
    stats
}

struct Worker<T> {
    process: u32,
    target: Arc<T>,
    history: Arc<History>,
    pool: Arc<Mutex<Pool>>,
    spec: WorkloadSpec,
    rng: Rng,
}

impl<T: Target> Worker<T> {
    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (calls, calls that failed)
    async fn run(mut self, stop: watch::Receiver<bool>) -> (u64, u64) {
        let (mut calls, mut failed) = (0u64, 0u64);
        while !*stop.borrow() {
            let plan = {
                let mut rng = self.rng.fork();
                self.pool().plan(&mut rng, &self.spec)
            };
            calls += 1;
            if !self.execute(plan).await {
                failed += 1;
            }
            let think = self.rng.below(self.spec.think.as_micros() as u64 + 1);
            tokio::time::sleep(Duration::from_micros(think)).await;
        }
        (calls, failed)
    }

    /// Runs and records one operation; false when it failed (unknown).
    async fn execute(&self, plan: Plan) -> bool {
        let h = &self.history;
        match plan {
            Plan::Login(uid, sid, one) => {
                let id = h.invoke(self.process, uid, Call::Login { sid, one });
                let res = self.target.login(uid, sid, one).await;
                let ok = match res {
                    Ok(kicked) => {
                        h.ok(id, Ret::LoggedIn { kicked });
                        true
                    }
                    Err(e) => {
                        h.unknown(&[id], &e);
                        false
                    }
                };
                self.pool().login_ended(uid, sid);
                ok
            }
            Plan::Logout(uid, sid) => {
                let id = h.invoke(self.process, uid, Call::Logout { sid });
                match self.target.logout(uid, sid).await {
                    Ok(removed) => {
                        h.ok(id, Ret::LoggedOut { removed });
                        true
                    }
                    Err(e) => {
                        h.unknown(&[id], &e);
                        false
                    }
                }
            }
            Plan::Lookup(uids) => read(&*self.target, h, self.process, &uids).await,
        }
    }
}

/// One recorded lookup of `uids`; false when it failed.
async fn read<T: Target>(target: &T, history: &History, process: u32, uids: &[u64]) -> bool {
    let ids = history.invoke_lookup(process, uids);
    match target.lookup(uids).await {
        Ok(mut found) => {
            history.ok_lookup(&ids, |uid| found.remove(&uid).unwrap_or_default());
            true
        }
        Err(e) => {
            history.unknown(&ids, &e);
            false
        }
    }
}

/// The final quiet reads: every uid in `uids`, `chunk` at a time, each chunk
/// retried until it succeeds or `within` passes. Returns the uids never read.
pub async fn final_reads<T: Target>(
    target: &T,
    history: &History,
    uids: &[u64],
    chunk: usize,
    within: Duration,
) -> Vec<u64> {
    let deadline = Instant::now() + within;
    let mut unread = Vec::new();
    for part in uids.chunks(chunk.max(1)) {
        loop {
            if read(target, history, FINAL_READER, part).await {
                break;
            }
            if Instant::now() >= deadline {
                unread.extend_from_slice(part);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    unread
}
