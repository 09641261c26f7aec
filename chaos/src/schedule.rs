//! The fault schedule: a seed gives a reproducible list of faults with their
//! start times and durations, one fault at a time, each healed before the
//! next (so a majority is mostly reachable and the run makes progress).
//!
//! Beside the faults, a schedule may hold membership changes ([`AdminOp`]),
//! run in a lane of their own so they overlap the faults: shard replica
//! moves, each started while a fault holds, and in long runs a node added
//! (then a rebalance) and a node drained and removed. Faults never pick the
//! added node, nor the drained one from its drain's time on.

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

/// A membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AdminOp {
    /// Move a replica of `shard`: `pick` chooses, when the move starts,
    /// which replica leaves (by node id order) and which up node without
    /// one receives it.
    Move { shard: u32, pick: u64 },
    /// Start node `node`, which joins the cluster; then rebalance.
    AddNode { node: u64 },
    /// Drain node `node`, remove it from the cluster, stop its process.
    DrainRemove { node: u64 },
}

impl AdminOp {
    pub fn kind(&self) -> &'static str {
        match self {
            AdminOp::Move { .. } => "move",
            AdminOp::AddNode { .. } => "add-node",
            AdminOp::DrainRemove { .. } => "drain-remove",
        }
    }
}

impl fmt::Display for AdminOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AdminOp::Move { shard, pick } => write!(f, "move a replica of shard {shard} (pick {pick})"),
            AdminOp::AddNode { node } => write!(f, "add node {node}, then rebalance"),
            AdminOp::DrainRemove { node } => write!(f, "drain node {node}, then remove it"),
        }
    }
}

/// A membership change at an offset from the start of the fault phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AdminStep {
    pub at: Duration,
    pub op: AdminOp,
}

/// A fault at an offset from the start of the fault phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Step {
    pub at: Duration,
    pub fault: Fault,
}

/// A seeded list of faults, and of membership changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    pub seed: u64,
    pub steps: Vec<Step>,
    /// Membership changes, by time; run beside the faults.
    pub admin: Vec<AdminStep>,
}

/// The fault kinds every schedule contains at least once.
const KINDS: usize = 6;

impl Schedule {
    /// Faults over about `secs` seconds on nodes `1..=nodes`: first one of
    /// each kind in a seeded order, then seeded picks. Quiet gaps of 0.5-1.5 s
    /// separate the faults. No membership changes.
    /// Each of nodes `1..=nodes` cut off from the others in turn for
    /// `hold_ms` (clients still reach it), a second apart: every leader is
    /// isolated once, while the others elect a new one.
    pub fn isolations(seed: u64, nodes: u64, hold_ms: u64) -> Schedule {
        let steps = (1..=nodes)
            .map(|node| Step {
                at: Duration::from_millis((node - 1) * (hold_ms + 1000)),
                fault: Fault::Isolate {
                    node,
                    cut: Cut::Drop,
                    hold_ms,
                },
            })
            .collect();
        Schedule {
            seed,
            steps,
            admin: Vec::new(),
        }
    }

    pub fn generate(seed: u64, nodes: u64, secs: u64) -> Schedule {
        let members: Vec<u64> = (1..=nodes.max(1)).collect();
        Self::faults(seed, secs, |_| members.clone())
    }

    /// [`Schedule::generate`] with membership changes over `shards` shards:
    /// a replica move started during every third fault (the second fault
    /// first) and, with `grow_and_shrink`, node `nodes + 1` added a quarter
    /// into the run and a seeded node of `1..=nodes` drained and removed at
    /// five eighths.
    pub fn generate_elastic(
        seed: u64,
        nodes: u64,
        shards: u32,
        secs: u64,
        grow_and_shrink: bool,
    ) -> Schedule {
        let mut rng = Rng::new(seed ^ 0x00AD_0000_E1A5_71C5);
        let budget = Duration::from_secs(secs);
        let membership = grow_and_shrink.then(|| {
            let added = (nodes + 1, budget / 4);
            let drained = (rng.between(1, nodes.max(1)), budget * 5 / 8);
            (added, drained)
        });
        // Faults spare the added node (the changes before it may delay its
        // start past its time) and the drained one from its drain's time on.
        let members_at = |at: Duration| -> Vec<u64> {
            let mut m: Vec<u64> = (1..=nodes.max(1)).collect();
            if let Some((_, (drained, t_drain))) = membership
                && at >= t_drain
            {
                m.retain(|&n| n != drained);
            }
            m
        };
        let mut schedule = Self::faults(seed, secs, members_at);
        let mut admin = Vec::new();
        if let Some(((added, t_add), (drained, t_drain))) = membership {
            admin.push(AdminStep {
                at: t_add,
                op: AdminOp::AddNode { node: added },
            });
            admin.push(AdminStep {
                at: t_drain,
                op: AdminOp::DrainRemove { node: drained },
            });
        }
        // Moves keep clear of the node changes, which move replicas too.
        let busy = |at: Duration| {
            admin.iter().any(|a: &AdminStep| {
                at + Duration::from_secs(5) >= a.at && at <= a.at + Duration::from_secs(30)
            })
        };
        let mut moves = Vec::new();
        for (i, step) in schedule.steps.iter().enumerate() {
            let at = step.at + Duration::from_millis(300);
            if i % 3 != 1 || busy(at) {
                continue;
            }
            moves.push(AdminStep {
                at,
                op: AdminOp::Move {
                    shard: rng.between(1, u64::from(shards.max(1))) as u32,
                    pick: rng.next_u64() % 1_000,
                },
            });
        }
        admin.extend(moves);
        admin.sort_by_key(|a| a.at);
        schedule.admin = admin;
        schedule
    }

    /// The faults, each on a node of `members_at(start)`.
    fn faults(seed: u64, secs: u64, members_at: impl Fn(Duration) -> Vec<u64>) -> Schedule {
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
            let fault = Self::fault(&mut rng, kind, &members_at(at));
            steps.push(Step { at, fault });
            at += fault.hold() + Duration::from_millis(rng.between(500, 1500));
            if matches!(fault, Fault::Terminate { .. }) {
                // Room for the hand-off before the node exits.
                at += Duration::from_secs(2);
            }
        }
        Schedule {
            seed,
            steps,
            admin: Vec::new(),
        }
    }

    fn fault(rng: &mut Rng, kind: usize, members: &[u64]) -> Fault {
        let node = members
            .get(rng.below(members.len() as u64) as usize)
            .copied()
            .unwrap_or(1);
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
        if !self.admin.is_empty() {
            writeln!(f, "membership changes ({}), beside the faults:", self.admin.len())?;
            for a in &self.admin {
                writeln!(f, "  t+{:>6.2} s  {}", a.at.as_secs_f64(), a.op)?;
            }
        }
        Ok(())
    }
}
