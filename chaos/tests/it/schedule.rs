//! The schedule: reproducible from its seed, covering every fault kind.

use std::collections::BTreeSet;
use std::time::Duration;

use confab_chaos::schedule::AdminOp;
use confab_chaos::schedule::Fault;
use confab_chaos::schedule::Schedule;

#[test]
fn a_seed_gives_the_same_schedule_and_another_seed_another() {
    let a = Schedule::generate(7, 3, 25);
    assert_eq!(a, Schedule::generate(7, 3, 25));
    assert_ne!(a.steps, Schedule::generate(8, 3, 25).steps);
}

#[test]
fn the_short_schedule_has_every_kind_within_its_budget() {
    for seed in 0..50 {
        let s = Schedule::generate(seed, 3, 25);
        let kinds: BTreeSet<&str> = s.steps.iter().map(|st| st.fault.kind()).collect();
        assert_eq!(kinds.len(), 6, "seed {seed}: {kinds:?}\n{s}");
        let last = s.steps.last().expect("faults");
        assert!(
            last.at < Duration::from_secs(25),
            "seed {seed}: starts in budget\n{s}"
        );
        assert!(
            s.span() < Duration::from_secs(25 + 5),
            "seed {seed}: ends near budget\n{s}"
        );
        for w in s.steps.windows(2) {
            let end = w[0].at + w[0].fault.hold();
            assert!(w[1].at > end, "seed {seed}: faults overlap\n{s}");
        }
        for st in &s.steps {
            let node = match st.fault {
                Fault::Isolate { node, .. }
                | Fault::Kill { node, .. }
                | Fault::Pause { node, .. }
                | Fault::Terminate { node, .. } => node,
                Fault::DelayAll { .. } => 1,
            };
            assert!((1..=3).contains(&node), "seed {seed}: node {node}");
        }
    }
}

#[test]
fn a_long_schedule_keeps_injecting() {
    let s = Schedule::generate(3, 3, 300);
    assert!(s.steps.len() > 50, "{} faults in 300 s", s.steps.len());
    let text = s.to_string();
    assert!(text.starts_with("chaos schedule: seed 3 ("), "{text}");
}

fn fault_node(f: &Fault) -> Option<u64> {
    match *f {
        Fault::Isolate { node, .. }
        | Fault::Kill { node, .. }
        | Fault::Pause { node, .. }
        | Fault::Terminate { node, .. } => Some(node),
        Fault::DelayAll { .. } => None,
    }
}

#[test]
fn a_short_elastic_schedule_moves_replicas_while_faults_hold() {
    for seed in 0..50 {
        let s = Schedule::generate_elastic(seed, 4, 4, 24, false);
        assert_eq!(
            s,
            Schedule::generate_elastic(seed, 4, 4, 24, false),
            "seed {seed}"
        );
        let moves: Vec<_> = s
            .admin
            .iter()
            .filter(|a| matches!(a.op, AdminOp::Move { .. }))
            .collect();
        assert!(!moves.is_empty(), "seed {seed}: no move\n{s}");
        assert_eq!(
            moves.len(),
            s.admin.len(),
            "seed {seed}: only moves in a short run\n{s}"
        );
        for m in moves {
            let during = s
                .steps
                .iter()
                .any(|f| f.at <= m.at && m.at < f.at + f.fault.hold());
            assert!(during, "seed {seed}: a move outside every fault\n{s}");
            let AdminOp::Move { shard, .. } = m.op else {
                unreachable!()
            };
            assert!((1..=4).contains(&shard), "seed {seed}\n{s}");
        }
        let text = s.to_string();
        assert!(text.contains("move a replica of shard"), "{text}");
    }
}

#[test]
fn a_long_elastic_schedule_grows_and_shrinks_and_spares_absent_nodes() {
    for seed in 0..20 {
        let s = Schedule::generate_elastic(seed, 4, 4, 300, true);
        let added = s.admin.iter().find_map(|a| match a.op {
            AdminOp::AddNode { node } => Some((node, a.at)),
            _ => None,
        });
        let drained = s.admin.iter().find_map(|a| match a.op {
            AdminOp::DrainRemove { node } => Some((node, a.at)),
            _ => None,
        });
        let ((added, t_add), (drained, t_drain)) = added.zip(drained).expect("both changes");
        assert_eq!(added, 5, "seed {seed}");
        assert!((1..=4).contains(&drained) && t_add < t_drain, "seed {seed}\n{s}");
        assert!(
            s.admin.iter().filter(|a| a.op.kind() == "move").count() > 5,
            "seed {seed}\n{s}"
        );
        for f in &s.steps {
            if let Some(node) = fault_node(&f.fault) {
                assert!(
                    node != added || f.at >= t_add,
                    "seed {seed}: node {added} faulted before it joined"
                );
                assert!(
                    node != drained || f.at < t_drain,
                    "seed {seed}: node {drained} faulted after its drain began"
                );
            }
        }
        let text = s.to_string();
        assert!(text.contains("add node 5, then rebalance"), "{text}");
        assert!(
            text.contains(&format!("drain node {drained}, then remove it")),
            "{text}"
        );
    }
}
