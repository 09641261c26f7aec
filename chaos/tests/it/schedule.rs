//! The schedule: reproducible from its seed, covering every fault kind.

use std::collections::BTreeSet;
use std::time::Duration;

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
