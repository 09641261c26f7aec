//! Gateway leases, kept by the meta leader: the table of deadlines.
//!
//! Deadlines live in the leader's memory, not in the log (time is not
//! deterministic across replicas). A node that becomes meta leader starts
//! every registered gateway on a full lease, so a leader change never ends a
//! lease early. What happens when a deadline passes is `purge`'s.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use crate::sm::meta::MetaState;

/// gateway id -> (incarnation, deadline), on the meta leader only.
pub struct Leases {
    lease: Duration,
    table: Mutex<HashMap<u64, (u64, Instant)>>,
}

impl Leases {
    pub fn new(lease: Duration) -> Self {
        Self {
            lease,
            table: Mutex::new(HashMap::new()),
        }
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (u64, Instant)>> {
        self.table.lock().expect("lease table lock poisoned")
    }

    /// Starts or extends the lease of `incarnation`.
    pub fn renew(&self, gateway_id: u64, incarnation: u64) {
        self.table()
            .insert(gateway_id, (incarnation, Instant::now() + self.lease));
    }

    /// Time left on a gateway's lease, if this node tracks it.
    pub fn remaining(&self, gateway_id: u64) -> Option<Duration> {
        self.table()
            .get(&gateway_id)
            .map(|(_, d)| d.saturating_duration_since(Instant::now()))
    }

    /// Forgets every lease (this node is no longer the meta leader).
    pub(crate) fn clear(&self) {
        self.table().clear();
    }

    /// Aligns the table with the registered gateways and returns the expired.
    pub(crate) fn expired(&self, meta: &MetaState) -> Vec<(u64, u64)> {
        let now = Instant::now();
        let mut table = self.table();
        table.retain(|id, (inc, _)| meta.gateways.get(id).is_some_and(|g| g.incarnation == *inc));
        for g in meta.gateways.values() {
            table
                .entry(g.gateway_id)
                .or_insert((g.incarnation, now + self.lease));
        }
        table
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(id, (inc, _))| (*id, *inc))
            .collect()
    }
}
