//! The retry policy, as pure functions: what the client does about a failed
//! call, and how long it backs off. How a failure is classified is
//! `confab-route`'s ([`Failure`], re-exported here).
//!
//! The client applies the cache updates a failure carries (see `routing`);
//! everything here is free of I/O so it is unit-tested without a server.

use std::time::Duration;

use confab_net::Backoff;
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

/// The client's backoff policy: `base`, `2 * base`, ... capped at `max`,
/// each delay `d` drawn from `[d/2, d)` so that callers that failed together
/// do not retry in step. The operation's deadline bounds the sequence.
pub fn backoff(base: Duration, max: Duration) -> Backoff {
    Backoff::exponential(base, max).jittered()
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
        // Full delays 20, 40, 80, 160, 320, then 500 ms from there on; each
        // drawn from [d/2, d) (2 µs of slack for backon's f32 arithmetic).
        let full = [20, 40, 80, 160, 320, 500, 500, 500].map(Duration::from_millis);
        let slack = Duration::from_micros(2);
        for _ in 0..100 {
            let delays: Vec<Duration> = backoff(base, max).delays().take(full.len()).collect();
            assert_eq!(delays.len(), full.len(), "the policy never runs out");
            for (d, full) in delays.iter().zip(full) {
                assert!(
                    *d + slack >= full / 2 && *d < full + slack,
                    "{d:?} not in [{:?}, {full:?})",
                    full / 2
                );
            }
        }
    }
}
