//! The run summary: built from the merged [`Recorder`], printed for humans or
//! as one JSON document.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::stats::{OpStats, Recorder, histogram};

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub scenario: String,
    /// Scenario-specific settings (mix, users, batch...).
    pub settings: BTreeMap<String, serde_json::Value>,
    /// The measured window (after warm-up), in seconds.
    pub duration_s: f64,
    pub concurrency: usize,
    /// Every operation together.
    pub ops: u64,
    pub ops_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Error kind -> count.
    pub errors: BTreeMap<String, u64>,
    /// Per operation kind.
    pub operations: BTreeMap<String, OpSummary>,
    /// Scenario-specific results (messages lost and duplicated, memory per
    /// connection...); absent when the scenario has none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub results: BTreeMap<String, serde_json::Value>,
}

/// One operation kind.
#[derive(Debug, Serialize, PartialEq)]
pub struct OpSummary {
    pub ops: u64,
    pub ops_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub errors: u64,
    /// Items carried (uids of batch lookups); absent when the op has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items_per_s: Option<f64>,
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

fn op_summary(stats: &OpStats, elapsed: Duration) -> OpSummary {
    let h = &stats.latency;
    let ops = h.len();
    let items = stats.itemized.then_some(stats.items);
    OpSummary {
        ops,
        ops_per_s: rate(ops, elapsed),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
        errors: stats.errors,
        items,
        items_per_s: items.map(|n| rate(n, elapsed)),
    }
}

impl Summary {
    /// Summarizes `recorder` over a measured window of `elapsed`.
    pub fn build(
        scenario: &str,
        settings: BTreeMap<String, serde_json::Value>,
        concurrency: usize,
        recorder: &Recorder,
        elapsed: Duration,
    ) -> anyhow::Result<Self> {
        let mut all = histogram()?;
        for stats in recorder.ops.values() {
            all.add(&stats.latency)?;
        }
        Ok(Summary {
            scenario: scenario.to_owned(),
            settings,
            duration_s: elapsed.as_secs_f64(),
            concurrency,
            ops: all.len(),
            ops_per_s: rate(all.len(), elapsed),
            p50_us: all.value_at_quantile(0.5),
            p99_us: all.value_at_quantile(0.99),
            max_us: all.max(),
            errors: recorder.errors.clone(),
            operations: recorder
                .ops
                .iter()
                .map(|(op, stats)| ((*op).to_owned(), op_summary(stats, elapsed)))
                .collect(),
            results: BTreeMap::new(),
        })
    }

    /// How many operations failed, when they are most of those tried: such
    /// a run measured the failures, and `confab-bench` exits non-zero.
    pub fn mostly_failed(&self) -> Option<u64> {
        let failed: u64 = self.errors.values().sum();
        (failed > self.ops).then_some(failed)
    }

    /// The summary for humans.
    pub fn render_text(&self) -> String {
        let settings: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(text) => format!("{k}={text}"),
                None => format!("{k}={v}"),
            })
            .collect();
        let mut out = format!(
            "scenario {} ({}), concurrency {}, measured {:.1}s\n",
            self.scenario,
            settings.join(" "),
            self.concurrency,
            self.duration_s
        );
        out.push_str(&format!(
            "{:<8} {:>10} {:>11} {:>9} {:>9} {:>9} {:>7}  items/s\n",
            "op", "ops", "ops/s", "p50_us", "p99_us", "max_us", "errors"
        ));
        let total = OpSummary {
            ops: self.ops,
            ops_per_s: self.ops_per_s,
            p50_us: self.p50_us,
            p99_us: self.p99_us,
            max_us: self.max_us,
            errors: self.errors.values().sum(),
            items: None,
            items_per_s: None,
        };
        let rows = self.operations.iter().map(|(op, s)| (op.as_str(), s));
        for (op, s) in rows.chain(std::iter::once(("all", &total))) {
            let items = s
                .items_per_s
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.0}"));
            out.push_str(&format!(
                "{:<8} {:>10} {:>11.1} {:>9} {:>9} {:>9} {:>7}  {}\n",
                op, s.ops, s.ops_per_s, s.p50_us, s.p99_us, s.max_us, s.errors, items
            ));
        }
        if !self.results.is_empty() {
            out.push_str("results:");
            for (k, v) in &self.results {
                match v.as_f64() {
                    Some(x) if v.is_f64() => out.push_str(&format!(" {k}={x:.1}")),
                    _ => out.push_str(&format!(" {k}={v}")),
                }
            }
            out.push('\n');
        }
        if !self.errors.is_empty() {
            out.push_str("errors:");
            for (kind, count) in &self.errors {
                out.push_str(&format!(" {kind}={count}"));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Summary {
        let mut rec =
            Recorder::new(&[("login", false), ("logout", false), ("lookup", true)]).expect("recorder");
        for us in [100u64, 200, 300, 400] {
            rec.success("login", Duration::from_micros(us), 1);
            rec.success("logout", Duration::from_micros(us / 2), 1);
        }
        rec.success("lookup", Duration::from_micros(1000), 100);
        rec.failure("login", "timeout".into());
        let settings = BTreeMap::from([("mix".to_owned(), serde_json::json!("both"))]);
        Summary::build("router", settings, 8, &rec, Duration::from_secs(2)).expect("summary")
    }

    #[test]
    fn a_run_is_mostly_failed_only_when_failures_outnumber_successes() {
        let mut s = sample();
        assert_eq!(s.mostly_failed(), None, "1 failure, 9 successes");
        s.errors.insert("Forbidden".into(), 9);
        assert_eq!(s.mostly_failed(), Some(10));
    }

    #[test]
    fn summarizes_per_op_and_overall() {
        let s = sample();
        assert_eq!(s.ops, 9);
        assert!((s.ops_per_s - 4.5).abs() < 1e-9);
        assert_eq!(s.max_us, 1000);
        assert_eq!(s.operations["login"].ops, 4);
        assert_eq!(s.operations["login"].errors, 1);
        assert_eq!(s.operations["login"].items, None);
        assert_eq!(s.operations["lookup"].items, Some(100));
        assert_eq!(s.operations["lookup"].items_per_s, Some(50.0));
        assert_eq!(s.errors["timeout"], 1);
    }

    #[test]
    fn renders_text_and_json() {
        let s = sample();
        let text = s.render_text();
        assert!(
            text.starts_with("scenario router (mix=both), concurrency 8, measured 2.0s\n"),
            "{text}"
        );
        assert!(
            text.contains("lookup            1         0.5      1000      1000      1000       0  50\n"),
            "{text}"
        );
        assert!(text.contains("errors: timeout=1\n"), "{text}");
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["scenario"], "router");
        assert_eq!(json["errors"]["timeout"], 1);
        assert!(json["operations"]["login"].get("items").is_none());
    }
}
