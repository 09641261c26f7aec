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
    state: Mutex<(u64, u64)>,
}

impl IdGen {
    /// `worker` must be <= [`MAX_WORKER`] (config validation checks it).
    pub fn new(worker: u64) -> Self {
        Self {
            worker: worker & MAX_WORKER,
            state: Mutex::new((0, 0)),
        }
    }

    pub fn next(&self) -> u64 {
        self.next_at(now_ms().saturating_sub(EPOCH_MS))
    }

    fn next_at(&self, now: u64) -> u64 {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, seq) = *st;
        let (ms, seq) = if now > last {
            (now, 0)
        } else if seq < MAX_SEQ {
            (last, seq + 1)
        } else {
            (last + 1, 0)
        };
        *st = (ms, seq);
        (ms << (WORKER_BITS + SEQ_BITS)) | (self.worker << SEQ_BITS) | seq
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
            let id = g.next();
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
            assert!(seen.insert(g.next_at(100)));
        }
        for _ in 0..100 {
            assert!(seen.insert(g.next_at(50)), "clock went back");
        }
    }
}
