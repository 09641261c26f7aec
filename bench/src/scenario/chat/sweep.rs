//! `confab-bench chat --sweep`: the latency-throughput curve. The chat run
//! again at offered rates `--sweep-from`, then `--sweep-step` more each
//! time, up to `--sweep-to`, each with fresh users; it stops after the
//! first step whose e2e p99 passes `--p99-target-ms` or that lost, repeated
//! or refused a message. The summary is the knee's run (the highest offered
//! rate with p99 under the target and nothing lost), with every step in
//! `results.steps` and `results.knee_msgs_per_s`; `--svg FILE` draws the
//! curve.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, ensure};
use serde::Serialize;
use serde_json::json;

use super::plan::ChatArgs;
use crate::report::Summary;

/// One point of the curve.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Step {
    pub(super) offered: f64,
    pub(super) delivered_per_s: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) max_ms: f64,
    pub(super) lost: u64,
    pub(super) duplicated: u64,
    /// Sends the gateways refused (rate limited, busy...).
    pub(super) refused: u64,
}

impl Step {
    fn of(offered: f64, s: &Summary) -> Step {
        let n = |k: &str| s.results.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        Step {
            offered,
            // Deliveries in the measured window, per second of it.
            delivered_per_s: s.operations.get(super::plan::E2E).map_or(0.0, |o| o.ops_per_s),
            p50_ms: s.p50_us as f64 / 1000.0,
            p99_ms: s.p99_us as f64 / 1000.0,
            max_ms: s.max_us as f64 / 1000.0,
            lost: n("lost"),
            duplicated: n("duplicated"),
            refused: s.errors.values().sum(),
        }
    }

    fn within(&self, target_ms: f64) -> bool {
        self.p99_ms < target_ms && self.lost == 0 && self.duplicated == 0 && self.refused == 0
    }
}

pub async fn run(args: &ChatArgs) -> anyhow::Result<Summary> {
    let s = &args.sweep;
    ensure!(
        s.sweep_from > 0.0 && s.sweep_step > 0.0 && s.sweep_to >= s.sweep_from,
        "--sweep-from, --sweep-step must be > 0 and --sweep-to >= --sweep-from"
    );
    ensure!(s.p99_target_ms > 0.0, "--p99-target-ms must be > 0");
    if let Some(svg) = &s.svg {
        ensure!(writable(svg), "--svg {}: no such directory", svg.display());
    }
    let mut steps = Vec::new();
    let mut knee: Option<(f64, Summary)> = None;
    let mut last: Option<Summary> = None;
    let mut rate = s.sweep_from;
    while rate <= s.sweep_to + f64::EPSILON {
        eprintln!("sweep: offering {rate} msg/s");
        let mut one = args.clone();
        one.rate = rate;
        one.sweep.sweep = false;
        let summary = super::run(&one)
            .await
            .with_context(|| format!("the run at {rate} msg/s"))?;
        let step = Step::of(rate, &summary);
        eprintln!(
            "sweep: {rate} offered -> {:.0}/s delivered, p99 {:.1} ms, lost {}, refused {}",
            step.delivered_per_s, step.p99_ms, step.lost, step.refused
        );
        let ok = step.within(s.p99_target_ms);
        steps.push(step);
        if ok {
            knee = Some((rate, summary));
        } else {
            last = Some(summary);
            break;
        }
        rate += s.sweep_step;
    }
    if let Some(path) = &s.svg {
        std::fs::write(path, svg(&steps, s.p99_target_ms))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let knee_rate = knee.as_ref().map_or(0.0, |(r, _)| *r);
    // The knee's run speaks for the curve; with no step under the target,
    // the first (failed) one does.
    let mut out = match (knee, last) {
        (Some((_, summary)), _) | (None, Some(summary)) => summary,
        (None, None) => anyhow::bail!("the sweep ran no step"),
    };
    out.scenario = "chat-sweep".into();
    out.settings.insert("sweep_from".into(), json!(s.sweep_from));
    out.settings.insert("sweep_step".into(), json!(s.sweep_step));
    out.settings.insert("sweep_to".into(), json!(s.sweep_to));
    out.settings
        .insert("p99_target_ms".into(), json!(s.p99_target_ms));
    out.results.insert("knee_msgs_per_s".into(), json!(knee_rate));
    out.results.insert("steps".into(), serde_json::to_value(&steps)?);
    Ok(out)
}

/// The curve as an SVG: delivered/s (left axis) and e2e p99 (right axis)
/// against the offered rate, the p99 target as a dashed line.
pub(super) fn svg(steps: &[Step], target_ms: f64) -> String {
    let (w, h, pad) = (640.0, 360.0, 56.0);
    let max_x = steps.iter().map(|s| s.offered).fold(1.0, f64::max);
    let max_y = steps.iter().map(|s| s.delivered_per_s).fold(max_x, f64::max);
    let max_ms = steps.iter().map(|s| s.p99_ms).fold(target_ms * 1.5, f64::max);
    let x = |v: f64| pad + v / max_x * (w - 2.0 * pad);
    let y = |v: f64| h - pad - v / max_y * (h - 2.0 * pad);
    let ym = |v: f64| h - pad - v / max_ms * (h - 2.0 * pad);
    let line = |f: &dyn Fn(&Step) -> (f64, f64)| {
        steps
            .iter()
            .map(|s| {
                let (a, b) = f(s);
                format!("{a:.1},{b:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/>
<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" stroke="black"/>
<line x1="{r}" y1="{pad}" x2="{r}" y2="{b}" stroke="black"/>
<text x="{cx}" y="{lx}" text-anchor="middle">offered msg/s (max {max_x:.0})</text>
<text x="{pad}" y="{ty}" fill="#1f77b4">delivered msg/s (max {max_y:.0})</text>
<text x="{r}" y="{ty}" text-anchor="end" fill="#d62728">e2e p99 ms (max {max_ms:.0})</text>
<line x1="{pad}" y1="{t:.1}" x2="{r}" y2="{t:.1}" stroke="#d62728" stroke-dasharray="4 4"/>
<text x="{r}" y="{tl:.1}" text-anchor="end" fill="#d62728">p99 target {target_ms} ms</text>
<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{d}"/>
<polyline fill="none" stroke="#d62728" stroke-width="2" points="{p}"/>
"##,
        b = h - pad,
        r = w - pad,
        cx = w / 2.0,
        lx = h - pad / 3.0,
        ty = pad / 2.0,
        t = ym(target_ms),
        tl = ym(target_ms) - 4.0,
        d = line(&|s| (x(s.offered), y(s.delivered_per_s))),
        p = line(&|s| (x(s.offered), ym(s.p99_ms))),
    );
    for s in steps {
        let _ = writeln!(
            out,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#1f77b4"/><circle cx="{:.1}" cy="{:.1}" r="3" fill="#d62728"/>"##,
            x(s.offered),
            y(s.delivered_per_s),
            x(s.offered),
            ym(s.p99_ms)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Whether `path`'s directory exists (an SVG path given on the command line).
fn writable(path: &Path) -> bool {
    path.parent()
        .is_none_or(|d| d.as_os_str().is_empty() || d.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(offered: f64, p99_ms: f64, lost: u64) -> Step {
        Step {
            offered,
            delivered_per_s: offered,
            p50_ms: p99_ms / 2.0,
            p99_ms,
            max_ms: p99_ms * 2.0,
            lost,
            duplicated: 0,
            refused: 0,
        }
    }

    #[test]
    fn a_step_is_within_only_under_the_target_and_lossless() {
        assert!(step(100.0, 20.0, 0).within(50.0));
        assert!(!step(100.0, 60.0, 0).within(50.0));
        assert!(!step(100.0, 20.0, 1).within(50.0));
    }

    #[test]
    fn the_plot_has_a_point_per_step_and_the_target_line() {
        let svg = svg(
            &[
                step(1000.0, 10.0, 0),
                step(2000.0, 30.0, 0),
                step(3000.0, 70.0, 0),
            ],
            50.0,
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains("p99 target 50 ms"));
    }
}
