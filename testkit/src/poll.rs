//! Polling a condition until it holds, with a deadline instead of a sleep.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How long [`eventually`] waits between two checks.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Polls `check` until it returns true; panics with `what` once `within`
/// has passed. The deadline is on tokio's clock, so a test with paused time
/// times out as well.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_once_the_check_holds() {
        let calls = AtomicU32::new(0);
        eventually(Duration::from_secs(5), "the third call", || async {
            calls.fetch_add(1, Ordering::SeqCst) == 2
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 100ms waiting for: never")]
    async fn panics_with_what_after_the_deadline() {
        eventually(Duration::from_millis(100), "never", || async { false }).await;
    }
}
