//! Latency and error tallies: one [`Recorder`] per worker, merged at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;

/// The largest latency tracked exactly, in microseconds (larger ones saturate).
const MAX_US: u64 = 120_000_000;

/// Tallies of one operation kind.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Latency of successful operations, in microseconds.
    pub latency: Histogram<u64>,
    pub errors: u64,
    /// Items carried by successful operations (e.g. uids of a batch lookup).
    pub items: u64,
    /// Whether `items` means something for this kind (reported only then).
    pub itemized: bool,
}

/// What one worker (or, merged, the whole run) observed.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub ops: BTreeMap<&'static str, OpStats>,
    /// Error kind -> count, over every operation.
    pub errors: BTreeMap<String, u64>,
}

/// A new latency histogram in microseconds.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_US, 3).context("creating a latency histogram")
}

impl Recorder {
    /// A recorder for the operation kinds `ops`: (name, whether it carries
    /// items worth reporting).
    pub fn new(ops: &[(&'static str, bool)]) -> anyhow::Result<Self> {
        let mut map = BTreeMap::new();
        for &(op, itemized) in ops {
            let stats = OpStats {
                latency: histogram()?,
                errors: 0,
                items: 0,
                itemized,
            };
            map.insert(op, stats);
        }
        Ok(Recorder {
            ops: map,
            errors: BTreeMap::new(),
        })
    }

    /// A successful `op` that took `latency` and carried `items` items.
    pub fn success(&mut self, op: &'static str, latency: Duration, items: u64) {
        if let Some(stats) = self.ops.get_mut(op) {
            let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            stats.latency.saturating_record(us.max(1));
            stats.items += items;
        }
    }

    /// A failed `op`, of error kind `kind`.
    pub fn failure(&mut self, op: &'static str, kind: String) {
        if let Some(stats) = self.ops.get_mut(op) {
            stats.errors += 1;
        }
        *self.errors.entry(kind).or_default() += 1;
    }

    /// Adds `other`'s tallies to this one.
    pub fn merge(&mut self, other: Recorder) -> anyhow::Result<()> {
        for (op, theirs) in other.ops {
            match self.ops.get_mut(op) {
                Some(ours) => {
                    ours.latency
                        .add(&theirs.latency)
                        .with_context(|| format!("merging {op} latencies"))?;
                    ours.errors += theirs.errors;
                    ours.items += theirs.items;
                }
                None => {
                    self.ops.insert(op, theirs);
                }
            }
        }
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        Ok(())
    }
}

/// The error kind of a router client error, e.g. `timeout`, `rpc_Internal`.
pub fn router_error_kind(error: &confab_router_client::Error) -> String {
    match error.status_code() {
        Some(code) => format!("rpc_{code:?}"),
        None => error.kind().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_merges() {
        let mut a = Recorder::new(&[("login", false), ("logout", false)]).expect("recorder");
        let mut b = Recorder::new(&[("login", false), ("logout", false)]).expect("recorder");
        a.success("login", Duration::from_micros(100), 1);
        b.success("login", Duration::from_micros(300), 1);
        b.success("logout", Duration::from_nanos(10), 1);
        b.failure("logout", "timeout".into());
        a.failure("login", "timeout".into());
        a.success("unknown", Duration::from_secs(1), 1);
        a.merge(b).expect("merge");
        let login = &a.ops["login"];
        assert_eq!((login.latency.len(), login.errors, login.items), (2, 1, 2));
        assert_eq!(login.latency.max(), 300);
        assert_eq!(a.ops["logout"].latency.max(), 1);
        assert_eq!(a.errors["timeout"], 2);
        assert!(!a.ops.contains_key("unknown"));
    }
}
