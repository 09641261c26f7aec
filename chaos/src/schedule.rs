//! The fault schedule: a seed gives a reproducible list of faults with their
//! start times and durations, one fault at a time, each healed before the
//! next (so a majority is mostly reachable and the run makes progress).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::rng::Rng;

/// How an isolated node's links are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Cut {
    /// Connections refused and closed.
    Drop,
    /// Connections held silently (packets lost, nothing closes).
    Blackhole,
}

/// One fault and how long it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Fault {
    /// Cut node `node` from the other nodes (clients still reach it).
    Isolate { node: u64, cut: Cut, hold_ms: u64 },
    /// Delay every link between nodes by `fixed_ms + [0, jitter_ms]`.
    DelayAll {
        fixed_ms: u64,
        jitter_ms: u64,
        hold_ms: u64,
    },
    /// SIGKILL node `node`, restart it on its data dir after `down_ms`.
    Kill { node: u64, down_ms: u64 },
    /// SIGSTOP node `node`, SIGCONT after `hold_ms`.
    Pause { node: u64, hold_ms: u64 },
    /// SIGTERM node `node` (graceful, hands leaderships off), restart it
    /// `down_ms` after it exited.
    Terminate { node: u64, down_ms: u64 },
}

impl Fault {
    /// How long the fault stays before it is healed (not counting the
    /// time a SIGTERM takes).
    pub fn hold(&self) -> Duration {
        Duration::from_millis(match *self {
            Fault::Isolate { hold_ms, .. }
            | Fault::DelayAll { hold_ms, .. }
            | Fault::Pause { hold_ms, .. } => hold_ms,
            Fault::Kill { down_ms, .. } | Fault::Terminate { down_ms, .. } => down_ms,
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Isolate { cut: Cut::Drop, .. } => "isolate-drop",
            Fault::Isolate {
                cut: Cut::Blackhole, ..
            } => "isolate-blackhole",
            Fault::DelayAll { .. } => "delay-all",
            Fault::Kill { .. } => "sigkill",
            Fault::Pause { .. } => "sigstop",
            Fault::Terminate { .. } => "sigterm",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fault::Isolate { node, cut, hold_ms } => {
                write!(f, "isolate node {node} ({cut:?}) for {hold_ms} ms")
            }
            Fault::DelayAll {
                fixed_ms,
                jitter_ms,
                hold_ms,
            } => write!(f, "delay all links {fixed_ms}+{jitter_ms} ms for {hold_ms} ms"),
            Fault::Kill { node, down_ms } => write!(f, "SIGKILL node {node}, restart after {down_ms} ms"),
            Fault::Pause { node, hold_ms } => write!(f, "SIGSTOP node {node}, SIGCONT after {hold_ms} ms"),
            Fault::Terminate { node, down_ms } => {
                write!(f, "SIGTERM node {node}, restart {down_ms} ms after it exits")
            }
        }
    }
}

/// A fault at an offset from the start of the fault phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Step {
    pub at: Duration,
    pub fault: Fault,
}

/// A seeded list of faults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    pub seed: u64,
    pub steps: Vec<Step>,
}

/// The fault kinds every schedule contains at least once.
const KINDS: usize = 6;

impl Schedule {
    /// Faults over about `secs` seconds on nodes `1..=nodes`: first one of
    /// each kind in a seeded order, then seeded picks. Quiet gaps of 0.5-1.5 s
    /// separate the faults.
    pub fn generate(seed: u64, nodes: u64, secs: u64) -> Schedule {
        let mut rng = Rng::new(seed);
        let budget = Duration::from_secs(secs);
        let mut order: Vec<usize> = (0..KINDS).collect();
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let mut steps = Vec::new();
        let mut at = Duration::from_millis(rng.between(300, 1000));
        let mut n = 0usize;
        while at < budget {
            let kind = order
                .get(n)
                .copied()
                .unwrap_or_else(|| rng.below(KINDS as u64) as usize);
            n += 1;
            let fault = Self::fault(&mut rng, kind, nodes);
            steps.push(Step { at, fault });
            at += fault.hold() + Duration::from_millis(rng.between(500, 1500));
            if matches!(fault, Fault::Terminate { .. }) {
                // Room for the hand-off before the node exits.
                at += Duration::from_secs(2);
            }
        }
        Schedule { seed, steps }
    }

    fn fault(rng: &mut Rng, kind: usize, nodes: u64) -> Fault {
        let node = rng.between(1, nodes.max(1));
        match kind {
            0 => Fault::Isolate {
                node,
                cut: Cut::Blackhole,
                hold_ms: rng.between(2000, 4000),
            },
            1 => Fault::Isolate {
                node,
                cut: Cut::Drop,
                hold_ms: rng.between(1500, 3500),
            },
            2 => Fault::DelayAll {
                fixed_ms: rng.between(10, 60),
                jitter_ms: rng.between(0, 60),
                hold_ms: rng.between(2000, 4000),
            },
            3 => Fault::Kill {
                node,
                down_ms: rng.between(500, 2500),
            },
            4 => Fault::Pause {
                node,
                hold_ms: rng.between(1000, 3000),
            },
            _ => Fault::Terminate {
                node,
                down_ms: rng.between(300, 1500),
            },
        }
    }

    /// When the last fault is healed (SIGTERM hand-offs not counted).
    pub fn span(&self) -> Duration {
        self.steps
            .iter()
            .map(|s| s.at + s.fault.hold())
            .max()
            .unwrap_or_default()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "chaos schedule: seed {} ({} faults over {:.1} s)",
            self.seed,
            self.steps.len(),
            self.span().as_secs_f64()
        )?;
        for s in &self.steps {
            writeln!(f, "  t+{:>6.2} s  {}", s.at.as_secs_f64(), s.fault)?;
        }
        Ok(())
    }
}
