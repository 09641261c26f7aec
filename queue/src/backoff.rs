//! The wait between attempts of the queue's reconnect and retry loops
//! (persist's writer and startup use it too).

use std::time::Duration;

/// Exponential backoff: 50 ms doubling up to `max`.
pub fn backoff(attempt: u32, max: Duration) -> Duration {
    let ms = 50u64.saturating_mul(1u64 << attempt.min(16));
    Duration::from_millis(ms).min(max)
}
