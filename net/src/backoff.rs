//! [`Backoff`]: the one retry delay policy of Confab's callers.
//!
//! A policy is a value (`const`-constructible, so each caller names its own
//! next to the loop it drives); it yields delays that double from `first`
//! up to `max`. Jittered, each delay is drawn from `[d/2, d)`, so callers
//! that failed together do not retry in step. Use it with `backon`'s
//! [`Retryable`] (`op.retry(POLICY).when(..)`) or, where a loop decides more
//! than "again or not" (the router client's redirects and deadlines), as an
//! iterator of delays ([`Backoff::delays`]).

use std::time::Duration;

pub use backon::Retryable;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// One retry sequence's delays ([`Backoff::delays`]): an iterator that a
/// loop can keep by value.
pub type Delays = ExponentialBackoff;

/// Exponential delays from `first` to `max`, optionally jittered, for a
/// bounded number of attempts or a bounded total wait (unbounded otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    jitter: bool,
    attempts: Option<usize>,
    total: Option<Duration>,
}

impl Backoff {
    /// Delays `first`, `2 * first`, `4 * first`, ... capped at `max`.
    pub const fn exponential(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            jitter: false,
            attempts: None,
            total: None,
        }
    }

    /// Each delay `d` becomes a uniform draw from `[d/2, d)`.
    pub const fn jittered(mut self) -> Self {
        self.jitter = true;
        self
    }

    /// No more than `attempts` delays (retries) are given.
    pub const fn at_most(mut self, attempts: usize) -> Self {
        self.attempts = Some(attempts);
        self
    }

    /// Delays stop once their sum would pass `total`.
    pub const fn within(mut self, total: Duration) -> Self {
        self.total = Some(total);
        self
    }

    /// The delays of one retry sequence, from the first.
    pub fn delays(&self) -> Delays {
        self.build()
    }

    /// The delay before retry number `attempt` (0: the first): element
    /// `attempt` of [`delays`](Self::delays), for loops that count their
    /// attempts themselves (and start again from 0 after a success).
    pub fn delay(&self, attempt: u32) -> Duration {
        // Past 64 doublings every delay is at the cap.
        self.delays().nth(attempt.min(64) as usize).unwrap_or(self.max)
    }
}

impl BackoffBuilder for Backoff {
    type Backoff = ExponentialBackoff;

    fn build(self) -> ExponentialBackoff {
        // backon's jitter adds up to 100% of a delay; halving the bounds
        // turns that into a draw from [d/2, d) of the unjittered delay d.
        let (first, max) = if self.jitter {
            (self.first / 2, self.max / 2)
        } else {
            (self.first, self.max)
        };
        let mut builder = ExponentialBuilder::new()
            .with_factor(2.0)
            .with_min_delay(first)
            .with_max_delay(max)
            .without_max_times()
            .with_total_delay(self.total);
        if let Some(n) = self.attempts {
            builder = builder.with_max_times(n);
        }
        if self.jitter {
            builder = builder.with_jitter();
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Whole milliseconds (backon multiplies in f32: 40 ms comes out as
    /// 39.999999 ms).
    fn ms(d: Duration) -> u64 {
        (d.as_secs_f64() * 1000.0).round() as u64
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let got: Vec<_> = Backoff::exponential(20 * MS, 500 * MS)
            .delays()
            .take(7)
            .map(ms)
            .collect();
        assert_eq!(got, [20, 40, 80, 160, 320, 500, 500]);
    }

    #[test]
    fn the_nth_delay_is_the_nth_of_the_sequence() {
        let policy = Backoff::exponential(50 * MS, 2000 * MS);
        assert_eq!(ms(policy.delay(0)), 50);
        assert_eq!(ms(policy.delay(1)), 100);
        assert_eq!(ms(policy.delay(5)), 1600);
        assert_eq!(ms(policy.delay(6)), 2000);
        assert_eq!(ms(policy.delay(u32::MAX)), 2000);
        // A sequence that ran out stays at the cap.
        assert_eq!(ms(policy.at_most(2).delay(9)), 2000);
    }

    #[test]
    fn jitter_draws_from_the_lower_half() {
        for _ in 0..200 {
            let got: Vec<_> = Backoff::exponential(20 * MS, 500 * MS)
                .jittered()
                .delays()
                .take(7)
                .collect();
            for (d, full) in got.iter().zip([20, 40, 80, 160, 320, 500, 500]) {
                let full = full * MS;
                // 2 µs of slack for backon's f32 arithmetic.
                let slack = Duration::from_micros(2);
                assert!(
                    *d + slack >= full / 2 && *d < full + slack,
                    "{d:?} not in [{:?}, {full:?})",
                    full / 2
                );
            }
        }
    }

    #[test]
    fn attempts_and_total_bound_the_sequence() {
        assert_eq!(Backoff::exponential(MS, 10 * MS).at_most(3).delays().count(), 3);
        // 1 + 2 + 4 = 7 ms fit in 10 ms; the next (8 ms) would not.
        let within: Vec<_> = Backoff::exponential(MS, 100 * MS)
            .within(10 * MS)
            .delays()
            .map(ms)
            .collect();
        assert_eq!(within, [1, 2, 4]);
    }

    #[tokio::test]
    async fn retries_until_the_operation_succeeds() {
        let calls = AtomicU32::new(0);
        let op = || async {
            match calls.fetch_add(1, Ordering::Relaxed) {
                0 | 1 => Err("not yet"),
                n => Ok(n),
            }
        };
        let got = op
            .retry(Backoff::exponential(MS, 2 * MS).at_most(5))
            .when(|e| *e == "not yet")
            .await;
        assert_eq!(got, Ok(2));
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn gives_up_on_an_error_it_is_told_not_to_retry() {
        let calls = AtomicU32::new(0);
        let op = || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>("fatal")
        };
        let got = op
            .retry(Backoff::exponential(MS, 2 * MS))
            .when(|e| *e != "fatal")
            .await;
        assert_eq!(got, Err("fatal"));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
