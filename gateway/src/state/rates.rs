//! Per-user token buckets: how many messages one user may send through
//! this gateway, over all of its connections here.
//!
//! A bucket holds up to `burst` tokens and refills at `rate` per second; a
//! message takes one. An empty bucket answers how long until the next
//! token. Buckets that are full again are forgotten (they hold nothing a
//! fresh bucket would not), so the table only holds users who sent lately.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many buckets, full ones are swept out on the next take.
const SWEEP_AT: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct UserRates {
    /// Tokens per second; 0 = no limit.
    rate: f64,
    burst: f64,
    table: Mutex<Table>,
}

struct Table {
    buckets: HashMap<u64, Bucket>,
    /// The size at which the next take sweeps full buckets out.
    sweep_at: usize,
}

impl UserRates {
    pub fn new(per_s: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(per_s),
            burst: f64::from(burst.max(1)),
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                sweep_at: SWEEP_AT,
            }),
        }
    }

    /// Takes one token of `uid`'s bucket, or says how long until one is
    /// there.
    pub fn take(&self, uid: u64) -> Result<(), Duration> {
        self.take_at(uid, Instant::now())
    }

    fn take_at(&self, uid: u64, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.buckets.len() >= table.sweep_at {
            let (rate, burst) = (self.rate, self.burst);
            table.buckets.retain(|_, b| refilled(b, now, rate, burst) < burst);
            // Sweep again only once the table doubled from what stayed.
            table.sweep_at = (table.buckets.len() * 2).max(SWEEP_AT);
        }
        let bucket = table.buckets.entry(uid).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        bucket.tokens = refilled(bucket, now, self.rate, self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.rate;
            Err(Duration::from_secs_f64(wait).max(Duration::from_millis(1)))
        }
    }

    /// Buckets held now (for tests).
    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn refilled(b: &Bucket, now: Instant, rate: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    (b.tokens + elapsed * rate).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate_then_retry_after() {
        let r = UserRates::new(10, 5);
        let t0 = Instant::now();
        for _ in 0..5 {
            r.take_at(1, t0).expect("within the burst");
        }
        let wait = r.take_at(1, t0).expect_err("the burst is spent");
        assert!(wait <= Duration::from_millis(100) && wait >= Duration::from_millis(99));
        // Another user has its own bucket.
        r.take_at(2, t0).expect("user 2 is not limited by user 1");
        // 100 ms later one token is back, not two.
        let t1 = t0 + Duration::from_millis(100);
        r.take_at(1, t1).expect("one token refilled");
        assert!(r.take_at(1, t1).is_err());
    }

    #[test]
    fn zero_rate_is_no_limit() {
        let r = UserRates::new(0, 0);
        for _ in 0..10_000 {
            r.take(7).expect("no limit");
        }
        assert!(r.is_empty());
    }

    #[test]
    fn full_buckets_are_swept() {
        let r = UserRates::new(1000, 2);
        let t0 = Instant::now();
        for uid in 0..SWEEP_AT as u64 {
            r.take_at(uid, t0).expect("first message");
        }
        assert_eq!(r.len(), SWEEP_AT);
        // A second later every bucket is full again: the next take sweeps.
        r.take_at(u64::MAX, t0 + Duration::from_secs(1)).expect("take");
        assert_eq!(r.len(), 1);
    }
}
