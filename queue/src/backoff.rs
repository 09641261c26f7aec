//! The queue's retry policy: the wait between attempts of its reconnect and
//! retry loops (persist's writer and startup use it too).

use std::time::Duration;

use confab_net::Backoff;

/// 50 ms doubling up to `max`; `retry(max).delay(attempt)` is the wait
/// before attempt number `attempt`.
pub const fn retry(max: Duration) -> Backoff {
    Backoff::exponential(Duration::from_millis(50), max)
}
