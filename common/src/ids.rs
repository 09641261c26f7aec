//! Message and session ids: snowflake-style u64, unique across gateways.
//! Gateways make them; persist reads their time (read-your-writes waits only
//! for recent ids).
//!
//! Layout, most significant bit first:
//! `0 | 41 bits: ms since 2025-01-01T00:00:00Z | 10 bits: worker (gateway id) | 12 bits: sequence`.
//! The top bit stays 0, so every id is below 2^63 (persist stores them as
//! signed 64-bit). 4096 ids per ms per gateway; when a millisecond's
//! sequence runs out, the generator moves on to the next millisecond. The
//! clock going backwards never repeats an id: time is taken as
//! `max(now, last)`. 41 bits of ms last until 2094.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// 2025-01-01T00:00:00Z in Unix ms.
pub const EPOCH_MS: u64 = 1_735_689_600_000;
pub const WORKER_BITS: u32 = 10;
pub const SEQ_BITS: u32 = 12;
pub const MAX_WORKER: u64 = (1 << WORKER_BITS) - 1;
const MAX_SEQ: u64 = (1 << SEQ_BITS) - 1;

/// Generates ids for one worker.
#[derive(Debug)]
pub struct IdGen {
    worker: u64,
    state: Mutex<State>,
}

/// Times in ms since [`EPOCH_MS`].
#[derive(Debug)]
struct State {
    last: u64,
    seq: u64,
    /// The first time an id may carry.
    from: u64,
    /// The last time an id may carry.
    until: u64,
}

/// No id can be made: the reservation is used up (the routers have not
/// extended it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "message ids are reserved up to {until_ms} (Unix ms) and used up; the routers have not extended the reservation"
)]
pub struct IdsExhausted {
    pub until_ms: u64,
}

impl IdGen {
    /// Ids without a reservation: for a worker id only one process ever
    /// uses (tests, tools). `worker` must be <= [`MAX_WORKER`] (config
    /// validation checks it).
    pub fn new(worker: u64) -> Self {
        Self::with_window(worker, 0, u64::MAX)
    }

    /// Ids that wait for a reservation: none is made before
    /// [`IdGen::reserve`] says from and until when.
    pub fn reserved(worker: u64) -> Self {
        Self::with_window(worker, 0, 0)
    }

    fn with_window(worker: u64, from: u64, until: u64) -> Self {
        Self {
            worker: worker & MAX_WORKER,
            state: Mutex::new(State {
                last: 0,
                seq: 0,
                from,
                until,
            }),
        }
    }

    /// Ids from now on carry times above `after_ms` (the last reservation
    /// of an earlier incarnation) and at most `until_ms` (this one's); both
    /// Unix ms, 0 for no change. Neither bound ever moves down.
    pub fn reserve(&self, after_ms: u64, until_ms: u64) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if after_ms > 0 {
            st.from = st.from.max(after_ms.saturating_sub(EPOCH_MS) + 1);
        }
        if until_ms > 0 {
            st.until = st.until.max(until_ms.saturating_sub(EPOCH_MS));
        }
    }

    /// The reservation in force (Unix ms; 0 before the first).
    pub fn reserved_until_ms(&self) -> u64 {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match st.until {
            0 => 0,
            u64::MAX => u64::MAX,
            u => u + EPOCH_MS,
        }
    }

    /// The time (Unix ms) the next id would carry if made now: the clock,
    /// or above it after a restart behind an earlier reservation.
    pub fn clock_ms(&self) -> u64 {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        now_ms().saturating_sub(EPOCH_MS).max(st.from).max(st.last) + EPOCH_MS
    }

    pub fn next(&self) -> Result<u64, IdsExhausted> {
        self.next_at(now_ms().saturating_sub(EPOCH_MS))
    }

    fn next_at(&self, now: u64) -> Result<u64, IdsExhausted> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = now.max(st.from);
        let (ms, seq) = if now > st.last {
            (now, 0)
        } else if st.seq < MAX_SEQ {
            (st.last, st.seq + 1)
        } else {
            (st.last + 1, 0)
        };
        if ms > st.until {
            return Err(IdsExhausted {
                until_ms: st.until.saturating_add(EPOCH_MS),
            });
        }
        (st.last, st.seq) = (ms, seq);
        Ok((ms << (WORKER_BITS + SEQ_BITS)) | (self.worker << SEQ_BITS) | seq)
    }
}

/// The worker id inside an id.
pub fn worker_of(id: u64) -> u64 {
    (id >> SEQ_BITS) & MAX_WORKER
}

/// The Unix ms at which `id` was made.
pub fn time_ms(id: u64) -> u64 {
    (id >> (WORKER_BITS + SEQ_BITS)) + EPOCH_MS
}

/// Wall-clock Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_grow_and_carry_the_worker() {
        let g = IdGen::new(7);
        let mut last = 0;
        for _ in 0..10_000 {
            let id = g.next().expect("unreserved ids are never used up");
            assert!(id > last, "ids strictly increase");
            assert!(id < 1 << 63);
            assert_eq!(worker_of(id), 7);
            assert!(time_ms(id).abs_diff(now_ms()) < 5_000, "the id carries its time");
            last = id;
        }
    }

    #[test]
    fn sequence_overflow_and_clock_going_back_never_repeat() {
        let g = IdGen::new(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5000 {
            assert!(seen.insert(g.next_at(100).expect("id")));
        }
        for _ in 0..100 {
            assert!(seen.insert(g.next_at(50).expect("id")), "clock went back");
        }
    }

    #[test]
    fn a_restart_behind_a_reservation_never_repeats_an_id() {
        // The first incarnation reserves up to t=1000 and makes ids up to it.
        let first = IdGen::reserved(3);
        assert!(first.next_at(10).is_err(), "nothing before a reservation");
        first.reserve(0, EPOCH_MS + 1_000);
        let mut seen = std::collections::HashSet::new();
        for t in [10, 500, 1_000] {
            assert!(seen.insert(first.next_at(t).expect("id")));
        }
        assert_eq!(
            first.next_at(1_001),
            Err(IdsExhausted {
                until_ms: EPOCH_MS + 1_000
            }),
            "no id beyond the reservation"
        );
        // The next one's clock stepped back to t=20: it starts above 1000.
        let second = IdGen::reserved(3);
        second.reserve(EPOCH_MS + 1_000, EPOCH_MS + 2_000);
        for _ in 0..5_000 {
            let id = second.next_at(20).expect("id");
            assert!(time_ms(id) > EPOCH_MS + 1_000);
            assert!(seen.insert(id), "an id of the earlier incarnation came back");
        }
        assert!(second.clock_ms() > EPOCH_MS + 1_000);
        // Bounds never move down.
        second.reserve(EPOCH_MS + 5, EPOCH_MS + 10);
        assert_eq!(second.reserved_until_ms(), EPOCH_MS + 2_000);
    }
}
