//! The retry policy, as pure functions: how a failed call is classified, what
//! the client does about it, and how long it backs off.
//!
//! The client applies the cache updates a failure carries (see `routing`);
//! everything here is free of I/O so it is unit-tested without a server.

use std::time::Duration;

use confab_proto::router::{RouteError, ShardDescriptor, route_error};
use prost::Message;
use tonic::{Code, Status};

/// A failed call (or a failed part of a lookup), classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The called node does not lead `group_id`; `leader` is the hint
    /// `(node id, address)` when an election is not running.
    NotLeader {
        group_id: u32,
        leader: Option<(u64, String)>,
    },
    /// The shard's epoch moved; `current` are the answering node's descriptors.
    EpochNotMatch { current: Vec<ShardDescriptor> },
    /// The node does not know the shard at all.
    ShardNotFound { shard_id: u32 },
    /// The slot moved to another shard (and owner).
    Moved {
        slot: u32,
        shard_id: u32,
        owner: u64,
        owner_addr: String,
    },
    /// Unreachable node, timeout, overload: try another node after a backoff.
    Transient { code: Code, message: String },
    /// The request is malformed.
    InvalidArgument(String),
    /// Anything else: not retryable.
    Fatal { code: Code, message: String },
}

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

/// Classifies a status: routing errors from its details, else by code.
pub fn classify_status(status: &Status) -> Failure {
    let details = status.details();
    if !details.is_empty()
        && let Ok(error) = RouteError::decode(details)
        && let Some(failure) = classify_route_error(error)
    {
        return failure;
    }
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => Failure::Transient {
            code: status.code(),
            message: status.message().to_owned(),
        },
        // A connection reset or refused on the way (the node died, a link
        // dropped): tonic reports it as Unknown with the transport error as
        // its source. Another node, or the same one later, may answer.
        Code::Unknown if is_transport_failure(status) => Failure::Transient {
            code: status.code(),
            message: status.message().to_owned(),
        },
        Code::InvalidArgument => Failure::InvalidArgument(status.message().to_owned()),
        code => Failure::Fatal {
            code,
            message: status.message().to_owned(),
        },
    }
}

/// Whether `status` stands for a failure of the connection rather than an
/// answer of the server (a server's own errors carry no source).
fn is_transport_failure(status: &Status) -> bool {
    std::error::Error::source(status).is_some() || status.message() == "transport error"
}

/// Classifies a routing error; `None` when its `kind` is not set.
pub fn classify_route_error(error: RouteError) -> Option<Failure> {
    Some(match error.kind? {
        route_error::Kind::NotLeader(e) => Failure::NotLeader {
            group_id: e.group_id,
            leader: (e.leader_id != 0).then_some((e.leader_id, e.leader_addr)),
        },
        route_error::Kind::EpochNotMatch(e) => Failure::EpochNotMatch { current: e.current },
        route_error::Kind::ShardNotFound(e) => Failure::ShardNotFound { shard_id: e.shard_id },
        route_error::Kind::Moved(e) => Failure::Moved {
            slot: e.slot,
            shard_id: e.shard_id,
            owner: e.owner,
            owner_addr: e.owner_addr,
        },
    })
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
    use confab_proto::router::{EpochNotMatch, NotLeader, ShardNotFound};

    fn status_with(error: route_error::Kind) -> Status {
        let bytes = RouteError { kind: Some(error) }.encode_to_vec();
        Status::with_details(Code::FailedPrecondition, "route", bytes.into())
    }

    #[test]
    fn classifies_route_errors_from_details() {
        let status = status_with(route_error::Kind::NotLeader(NotLeader {
            group_id: 3,
            leader_id: 2,
            leader_addr: "127.0.0.1:7102".into(),
        }));
        assert_eq!(
            classify_status(&status),
            Failure::NotLeader {
                group_id: 3,
                leader: Some((2, "127.0.0.1:7102".into()))
            }
        );
        let status = status_with(route_error::Kind::NotLeader(NotLeader {
            group_id: 0,
            leader_id: 0,
            leader_addr: String::new(),
        }));
        assert_eq!(
            classify_status(&status),
            Failure::NotLeader {
                group_id: 0,
                leader: None
            }
        );
        let status = status_with(route_error::Kind::ShardNotFound(ShardNotFound { shard_id: 9 }));
        assert_eq!(classify_status(&status), Failure::ShardNotFound { shard_id: 9 });
    }

    #[test]
    fn classifies_plain_statuses_by_code() {
        assert!(matches!(
            classify_status(&Status::unavailable("refused")),
            Failure::Transient {
                code: Code::Unavailable,
                ..
            }
        ));
        assert!(matches!(
            classify_status(&Status::deadline_exceeded("slow")),
            Failure::Transient { .. }
        ));
        assert_eq!(
            classify_status(&Status::invalid_argument("uid 0")),
            Failure::InvalidArgument("uid 0".into())
        );
        assert!(matches!(
            classify_status(&Status::internal("boom")),
            Failure::Fatal {
                code: Code::Internal,
                ..
            }
        ));
        // Garbage details fall back to the code.
        let status = Status::with_details(Code::Unavailable, "x", vec![0xff, 0xff].into());
        assert!(matches!(classify_status(&status), Failure::Transient { .. }));
        // A reset connection is worth another try; a server's Unknown is not.
        let reset = Status::from_error(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(reset.code(), Code::Unknown);
        assert!(matches!(classify_status(&reset), Failure::Transient { .. }));
        assert!(matches!(
            classify_status(&Status::unknown("transport error")),
            Failure::Transient { .. }
        ));
        assert!(matches!(
            classify_status(&Status::unknown("a handler failed")),
            Failure::Fatal { .. }
        ));
    }

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
