//! The retry policy, as pure functions: what the client does about a failed
//! call, and how long it backs off. How a failure is classified is
//! `confab-route`'s ([`Failure`], re-exported here).
//!
//! The client applies the cache updates a failure carries (see `routing`);
//! everything here is free of I/O so it is unit-tested without a server.

use std::time::Duration;

pub use confab_route::failure::{Failure, classify_route_error, classify_status};

/// What the client does next about a [`Failure`]. Ordered by severity: when
/// several parts of a lookup fail, the client takes the greatest action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Retry at once (the failure carried the fix).
    RetryNow,
    /// Sleep a backoff, then retry at another replica.
    Backoff,
    /// Fetch a fresh cluster map, then retry.
    RefreshMap,
    /// Give up and return the error.
    Fail,
}

/// The action for `failure`, given how many immediate retries this operation
/// already made in a row (`immediate_streak`) and the allowed maximum.
pub fn action_for(failure: &Failure, immediate_streak: u32, max_immediate: u32) -> Action {
    let immediate = match failure {
        Failure::NotLeader {
            leader: Some((_, addr)),
            ..
        } if !addr.is_empty() => Action::RetryNow,
        Failure::NotLeader { .. } => Action::Backoff,
        Failure::EpochNotMatch { current } if !current.is_empty() => Action::RetryNow,
        Failure::EpochNotMatch { .. } | Failure::ShardNotFound { .. } | Failure::Moved { .. } => {
            Action::RefreshMap
        }
        Failure::Transient { .. } => Action::Backoff,
        Failure::InvalidArgument(_) | Failure::Fatal { .. } => Action::Fail,
    };
    if immediate == Action::RetryNow && immediate_streak >= max_immediate {
        // A redirect loop between nodes with stale views: slow down and
        // re-read the map instead of spinning.
        return Action::RefreshMap;
    }
    immediate
}

/// The backoff before retry number `attempt` (0-based): `base * 2^attempt`
/// capped at `max`, then jittered into `[d/2, d]` by `jitter` in `[0, 1]`.
pub fn backoff_delay(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
    let full = base.saturating_mul(factor).min(max);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    full.mul_f64(0.5 + 0.5 * jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_proto::router::{EpochNotMatch, RouteError, ShardDescriptor, route_error};
    use tonic::Code;

    #[test]
    fn actions_follow_the_contract() {
        let hinted = Failure::NotLeader {
            group_id: 1,
            leader: Some((2, "a:1".into())),
        };
        assert_eq!(action_for(&hinted, 0, 4), Action::RetryNow);
        assert_eq!(action_for(&hinted, 4, 4), Action::RefreshMap);
        let election = Failure::NotLeader {
            group_id: 1,
            leader: None,
        };
        assert_eq!(action_for(&election, 0, 4), Action::Backoff);
        let epoch = Failure::EpochNotMatch {
            current: vec![ShardDescriptor::default()],
        };
        assert_eq!(action_for(&epoch, 0, 4), Action::RetryNow);
        let empty_epoch = classify_route_error(RouteError {
            kind: Some(route_error::Kind::EpochNotMatch(EpochNotMatch {
                current: vec![],
            })),
        })
        .expect("kind set");
        assert_eq!(action_for(&empty_epoch, 0, 4), Action::RefreshMap);
        assert_eq!(
            action_for(&Failure::ShardNotFound { shard_id: 1 }, 0, 4),
            Action::RefreshMap
        );
        assert_eq!(
            action_for(&Failure::InvalidArgument("x".into()), 0, 4),
            Action::Fail
        );
        assert_eq!(
            action_for(
                &Failure::Fatal {
                    code: Code::Internal,
                    message: "x".into()
                },
                0,
                4
            ),
            Action::Fail
        );
        assert!(classify_route_error(RouteError { kind: None }).is_none());
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let (base, max) = (Duration::from_millis(20), Duration::from_millis(500));
        assert_eq!(backoff_delay(0, base, max, 1.0), Duration::from_millis(20));
        assert_eq!(backoff_delay(1, base, max, 1.0), Duration::from_millis(40));
        assert_eq!(backoff_delay(4, base, max, 1.0), Duration::from_millis(320));
        assert_eq!(backoff_delay(5, base, max, 1.0), max);
        assert_eq!(backoff_delay(1000, base, max, 1.0), max);
        assert_eq!(backoff_delay(0, base, max, 0.0), Duration::from_millis(10));
        assert_eq!(backoff_delay(9, base, max, f64::NAN), Duration::from_millis(250));
        let mid = backoff_delay(2, base, max, 0.5);
        assert!(mid > Duration::from_millis(40) && mid < Duration::from_millis(80));
    }
}
