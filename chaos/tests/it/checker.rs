//! The checker on hand-written histories: accepts the linearizable ones,
//! rejects each kind of violation, and handles unknown operations.

use confab_chaos::checker;
use confab_chaos::checker::CheckOptions;
use confab_chaos::checker::Search;
use confab_chaos::history::Call;
use confab_chaos::history::Op;
use confab_chaos::history::Outcome;
use confab_chaos::history::Ret;

const UID: u64 = 42;

/// An operation of process `p` on `UID` invoked at `from` ms, answered at `to` ms.
fn done(p: u32, call: Call, from: u64, to: u64, ret: Ret) -> Op {
    Op {
        process: p,
        uid: UID,
        call,
        invoke_ns: from * 1_000_000,
        outcome: Outcome::Ok {
            at_ns: to * 1_000_000,
            ret,
        },
    }
}

/// An operation invoked at `from` ms whose outcome is unknown.
fn unknown(p: u32, call: Call, from: u64) -> Op {
    Op {
        process: p,
        uid: UID,
        call,
        invoke_ns: from * 1_000_000,
        outcome: Outcome::Unknown {
            at_ns: (from + 5000) * 1_000_000,
            error: "timed out".into(),
        },
    }
}

fn login(p: u32, sid: u64, from: u64, to: u64) -> Op {
    done(
        p,
        Call::Login { sid, one: false },
        from,
        to,
        Ret::LoggedIn { kicked: vec![] },
    )
}

/// A OneInAll login that answered `kicked`.
fn login_one(p: u32, sid: u64, from: u64, to: u64, kicked: &[u64]) -> Op {
    done(
        p,
        Call::Login { sid, one: true },
        from,
        to,
        Ret::LoggedIn {
            kicked: kicked.to_vec(),
        },
    )
}

fn logout(p: u32, sid: u64, from: u64, to: u64, removed: bool) -> Op {
    done(p, Call::Logout { sid }, from, to, Ret::LoggedOut { removed })
}

fn read(p: u32, from: u64, to: u64, sids: &[u64]) -> Op {
    done(p, Call::Lookup, from, to, Ret::Found { sids: sids.to_vec() })
}

fn strict() -> CheckOptions {
    CheckOptions::default()
}

fn ok(ops: &[Op]) -> bool {
    checker::check_object(ops, strict()) == Search::Linearizable
}

fn violates(ops: &[Op]) -> bool {
    matches!(checker::check_object(ops, strict()), Search::Violation { .. })
}

#[test]
fn sequential_history_is_linearizable() {
    let h = [
        read(0, 0, 1, &[]),
        login(0, 1, 2, 3),
        read(0, 4, 5, &[1]),
        login(0, 2, 6, 7),
        read(0, 8, 9, &[1, 2]),
        logout(0, 1, 10, 11, true),
        read(0, 12, 13, &[2]),
        logout(0, 1, 14, 15, false),
        read(0, 16, 17, &[2]),
    ];
    assert!(ok(&h));
}

#[test]
fn reads_concurrent_with_a_login_may_see_it_or_not_but_never_lose_it_again() {
    let base = [login(0, 1, 0, 100)];
    let sees_then_stays = [read(1, 10, 20, &[]), read(1, 30, 40, &[1]), read(1, 50, 60, &[1])];
    let h: Vec<Op> = base.iter().chain(&sees_then_stays).cloned().collect();
    assert!(ok(&h));
    // Seen, then gone again with no logout: no order explains it.
    let flickers = [read(1, 10, 20, &[1]), read(1, 30, 40, &[])];
    let h: Vec<Op> = base.iter().chain(&flickers).cloned().collect();
    assert!(violates(&h));
}

#[test]
fn stale_read_after_an_acknowledged_login_is_a_violation() {
    let h = [login(0, 1, 0, 10), read(1, 11, 12, &[])];
    assert!(violates(&h));
    // Overlapping the login, the same answer is fine.
    let h = [login(0, 1, 0, 10), read(1, 9, 12, &[])];
    assert!(ok(&h));
}

#[test]
fn stale_read_after_an_acknowledged_logout_is_a_violation() {
    let h = [login(0, 1, 0, 1), logout(0, 1, 2, 3, true), read(1, 4, 5, &[1])];
    assert!(violates(&h));
}

#[test]
fn a_lost_acknowledged_login_is_a_violation_and_named_by_the_final_reads() {
    let h = vec![
        login(0, 1, 0, 1),
        login(1, 2, 0, 1),
        read(2, 5, 6, &[1, 2]),
        // The final quiet read lost session 2.
        read(u32::MAX, 100, 101, &[1]),
    ];
    assert!(violates(&h));
    let (lost, back) = checker::final_reads(&h);
    assert_eq!(lost, vec![checker::LostWrite { uid: UID, sid: 2 }]);
    assert!(back.is_empty());
}

#[test]
fn a_write_visible_before_its_invoke_is_a_violation() {
    let h = [read(0, 0, 1, &[7]), login(1, 7, 2, 3)];
    assert!(violates(&h));
    // Even if its outcome is unknown: it cannot act before it was sent.
    let h = [
        read(0, 0, 1, &[7]),
        unknown(1, Call::Login { sid: 7, one: false }, 2),
    ];
    assert!(violates(&h));
}

#[test]
fn a_session_nobody_logged_in_is_a_violation() {
    let h = [login(0, 1, 0, 1), read(0, 2, 3, &[1, 99])];
    assert!(violates(&h));
}

#[test]
fn unknown_writes_may_apply_late_or_never() {
    // Applied long after the client gave up.
    let h = [
        unknown(0, Call::Login { sid: 1, one: false }, 0),
        read(1, 10, 11, &[]),
        read(1, 20, 21, &[]),
        read(1, 9000, 9001, &[1]),
    ];
    assert!(ok(&h));
    // Never applied.
    let h = [
        unknown(0, Call::Login { sid: 1, one: false }, 0),
        read(1, 9000, 9001, &[]),
    ];
    assert!(ok(&h));
    // An unknown logout, applied between two reads.
    let h = [
        login(0, 1, 0, 1),
        unknown(0, Call::Logout { sid: 1 }, 2),
        read(1, 3, 4, &[1]),
        read(1, 5, 6, &[]),
    ];
    assert!(ok(&h));
    // But applied at most once: seen, gone, seen again needs two logins.
    let h = [
        unknown(0, Call::Login { sid: 1, one: false }, 0),
        read(1, 10, 11, &[1]),
        logout(1, 1, 12, 13, true),
        read(1, 14, 15, &[1]),
    ];
    assert!(violates(&h));
}

#[test]
fn pending_operations_count_as_unknown_and_unknown_reads_say_nothing() {
    let mut pending = login(0, 1, 0, 0);
    pending.outcome = Outcome::Pending;
    let mut lost_read = read(1, 2, 3, &[]);
    lost_read.outcome = Outcome::Unknown {
        at_ns: 3_000_000,
        error: "deadline".into(),
    };
    let h = vec![pending, lost_read, read(1, 5, 6, &[1])];
    let report = checker::check(&h, strict());
    assert!(report.is_linearizable(), "{report:?}");
    assert_eq!(report.ops, 2, "the unknown read is dropped");
    assert_eq!(report.unknown, 1);
}

#[test]
fn logout_answers_are_checked_as_far_as_the_options_allow() {
    // `removed = true` for a session that was never there.
    let h = [logout(0, 1, 0, 1, true)];
    assert!(violates(&h));
    // `removed = false` while the session was there.
    let h = [login(0, 1, 0, 1), logout(0, 1, 2, 3, false), read(0, 4, 5, &[])];
    assert!(violates(&h));
    let weak = CheckOptions {
        trust_logout_false: false,
        ..CheckOptions::default()
    };
    // A retrying client may answer false after its own first attempt
    // removed the session: accepted when false is not trusted...
    assert_eq!(checker::check_object(&h, weak), Search::Linearizable);
    // ...but the session must still be gone afterwards.
    let h = [login(0, 1, 0, 1), logout(0, 1, 2, 3, false), read(0, 4, 5, &[1])];
    assert!(matches!(
        checker::check_object(&h, weak),
        Search::Violation { .. }
    ));
}

#[test]
fn the_order_of_two_sessions_must_be_consistent_for_every_reader() {
    let both = [login(0, 1, 0, 50), login(1, 2, 0, 50)];
    // Two readers agree on one order: 1 then 2.
    let agree = [read(2, 10, 20, &[1]), read(3, 25, 30, &[1])];
    let h: Vec<Op> = both.iter().chain(&agree).cloned().collect();
    assert!(ok(&h));
    // They see opposite orders, without overlapping each other.
    let disagree = [read(2, 10, 20, &[1]), read(3, 25, 30, &[2])];
    let h: Vec<Op> = both.iter().chain(&disagree).cloned().collect();
    assert!(violates(&h));
}

#[test]
fn uids_are_checked_independently() {
    let mut bad = [login(0, 1, 0, 1), read(0, 2, 3, &[])];
    for op in &mut bad {
        op.uid = 7;
    }
    let good = [login(0, 5, 0, 1), read(0, 2, 3, &[5])];
    let h: Vec<Op> = bad.iter().chain(&good).cloned().collect();
    let report = checker::check(&h, strict());
    assert_eq!(report.uids, 2);
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].uid, 7);
    let text = report.violations[0].to_string();
    assert!(text.contains("uid 7: not linearizable"), "{text}");
}

#[test]
fn memoization_keeps_wide_concurrency_cheap() {
    // 14 concurrent logins and reads that see them arrive one by one: a
    // search without the cache tries up to 14! orders, with it at most
    // 2^14 sets of placed logins.
    let mut h: Vec<Op> = (1..=14).map(|sid| login(sid as u32, sid, 0, 1000)).collect();
    for k in 1..=14u64 {
        let sids: Vec<u64> = (1..=k).collect();
        h.push(read(100, 10 * k, 10 * k + 5, &sids));
    }
    let started = std::time::Instant::now();
    assert!(ok(&h));
    // The last read sees a session no login wrote.
    h.push(read(100, 2000, 2001, &[1, 2, 3, 77]));
    assert!(violates(&h));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn histories_too_long_for_the_search_are_reported_unchecked() {
    let h: Vec<Op> = (0..200).map(|i| read(0, 2 * i, 2 * i + 1, &[])).collect();
    assert_eq!(checker::check_object(&h, strict()), Search::Unchecked);
    let report = checker::check(&h, strict());
    assert_eq!(report.unchecked, vec![UID]);
    assert!(!report.is_linearizable());
}

#[test]
fn one_in_all_logins_must_name_exactly_whom_they_kicked() {
    // 1 and 2 in, then a OneInAll login kicks both: it must say so, and
    // leave itself alone in the set.
    let base = [login(0, 1, 0, 1), login(1, 2, 2, 3)];
    let right = [&base[..], &[login_one(0, 3, 4, 5, &[1, 2]), read(1, 6, 7, &[3])]].concat();
    assert!(ok(&right));
    // Naming one too few, or one that was never there, is caught.
    let short = [&base[..], &[login_one(0, 3, 4, 5, &[1]), read(1, 6, 7, &[3])]].concat();
    assert!(!ok(&short));
    let stranger = [
        &base[..],
        &[login_one(0, 3, 4, 5, &[1, 2, 9]), read(1, 6, 7, &[3])],
    ]
    .concat();
    assert!(!ok(&stranger));
    // Saying it kicked them but leaving one in is caught by the read.
    let kept = [
        &base[..],
        &[login_one(0, 3, 4, 5, &[1, 2]), read(1, 6, 7, &[2, 3])],
    ]
    .concat();
    assert!(!ok(&kept));
    // An AllowAll login never kicks.
    let kicking = [
        login(0, 1, 0, 1),
        done(
            1,
            Call::Login { sid: 2, one: false },
            2,
            3,
            Ret::LoggedIn { kicked: vec![1] },
        ),
    ];
    assert!(!ok(&kicking));
}

#[test]
fn a_retried_one_in_all_login_may_answer_nobody_only_when_retries_are_allowed() {
    let h = [login(0, 1, 0, 1), login_one(0, 2, 2, 3, &[]), read(1, 4, 5, &[2])];
    assert!(!ok(&h), "strict: it kicked 1 and must say so");
    let lenient = CheckOptions {
        trust_logout_false: false,
        exact_kicks: false,
        ..CheckOptions::default()
    };
    assert_eq!(checker::check_object(&h, lenient), Search::Linearizable);
}

#[test]
fn a_session_replaced_by_a_later_one_in_all_login_is_not_lost_but_one_kicked_must_stay_out() {
    let ops = [
        login_one(0, 1, 0, 1, &[]),
        login_one(0, 2, 2, 3, &[1]),
        read(1, 4, 5, &[2]),
    ];
    let (lost, back) = checker::final_reads(&ops);
    assert!(lost.is_empty() && back.is_empty(), "{lost:?} {back:?}");
    let ops = [
        login_one(0, 1, 0, 1, &[]),
        login_one(0, 2, 2, 3, &[1]),
        read(1, 4, 5, &[1, 2]),
    ];
    let (_, back) = checker::final_reads(&ops);
    assert_eq!(back.len(), 1, "the kicked session 1 is read again");
}
