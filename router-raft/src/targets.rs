//! What this router heard from lately: the processes that announced where
//! their metrics are (`RouterDiscovery.Announce`), each until its time to
//! live runs out. Soft state, in memory only: every process announces to
//! every router every few seconds, so each router's list is whole without
//! replication, and one that restarts is whole again within a round.
//! `GET /sd` renders it for Prometheus.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use confab_proto::router::Target;
use serde::Serialize;

/// Most targets a router keeps (an announcer cannot grow the table beyond).
const MAX_TARGETS: usize = 10_000;
/// The longest time to live an announcement may ask for.
const MAX_TTL: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct Targets {
    table: Mutex<BTreeMap<(String, u64), (Target, Instant)>>,
}

/// One entry of Prometheus's http_sd JSON.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SdGroup {
    pub targets: Vec<String>,
    pub labels: BTreeMap<&'static str, String>,
}

impl Targets {
    /// Keeps `target` for `ttl` (bounded); false when the table is full of
    /// others.
    pub fn announce(&self, target: Target, ttl: Duration) -> bool {
        let deadline = Instant::now() + ttl.min(MAX_TTL);
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        table.retain(|_, (_, until)| *until > now);
        let key = (target.role.clone(), target.id);
        if table.len() >= MAX_TARGETS && !table.contains_key(&key) {
            return false;
        }
        table.insert(key, (target, deadline));
        true
    }

    /// Every target still within its time to live, by role and id.
    pub fn live(&self) -> Vec<Target> {
        let now = Instant::now();
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table
            .values()
            .filter(|(_, until)| *until > now)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// The live targets as http_sd groups: one per process, labelled with
    /// its role, its id (`node`) and its zone (when it has one).
    pub fn http_sd(&self) -> Vec<SdGroup> {
        self.live()
            .into_iter()
            .map(|t| {
                let mut labels = BTreeMap::new();
                labels.insert("role", t.role);
                labels.insert("node", t.id.to_string());
                if !t.zone.is_empty() {
                    labels.insert("zone", t.zone);
                }
                SdGroup {
                    targets: vec![t.metrics_addr],
                    labels,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(role: &str, id: u64, addr: &str) -> Target {
        Target {
            role: role.into(),
            id,
            metrics_addr: addr.into(),
            zone: String::new(),
        }
    }

    #[test]
    fn an_entry_lives_until_its_ttl_and_is_replaced_by_a_newer_one() {
        let t = Targets::default();
        assert!(t.announce(target("gateway", 1, "a:1"), Duration::from_secs(10)));
        assert!(t.announce(target("gateway", 1, "a:2"), Duration::from_secs(10)));
        assert!(t.announce(target("persist", 1, "p:1"), Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(5));
        let live = t.live();
        assert_eq!(live.len(), 1, "{live:?}");
        assert_eq!(live[0].metrics_addr, "a:2");
        let sd = t.http_sd();
        assert_eq!(sd[0].targets, vec!["a:2".to_string()]);
        assert_eq!(sd[0].labels["role"], "gateway");
        assert_eq!(sd[0].labels["node"], "1");
        assert!(!sd[0].labels.contains_key("zone"));
    }
}
