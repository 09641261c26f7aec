//! [`Failure`]: a failed router call (or a failed part of a lookup),
//! classified. Routing errors come from the status details (a prost-encoded
//! `RouteError`, which carries its fix); any other status by its code.
//!
//! The client's retry policy acts on a `Failure`; routers calling each other
//! follow the leader hints the same classification yields
//! ([`not_leader_hint`]).

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

/// The address a `NotLeader` status points at: the leader, or (leader not
/// known) a replica that may lead; `None` for any other status. Routers
/// calling each other retry there.
pub fn not_leader_hint(status: &Status) -> Option<String> {
    let error = RouteError::decode(status.details()).ok()?;
    match error.kind? {
        route_error::Kind::NotLeader(e) if !e.leader_addr.is_empty() => Some(e.leader_addr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_proto::router::{NotLeader, ShardNotFound};

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
    fn leader_hints_need_an_address() {
        let hinted = status_with(route_error::Kind::NotLeader(NotLeader {
            group_id: 3,
            leader_id: 2,
            leader_addr: "127.0.0.1:7102".into(),
        }));
        assert_eq!(not_leader_hint(&hinted).as_deref(), Some("127.0.0.1:7102"));
        let replica = status_with(route_error::Kind::NotLeader(NotLeader {
            group_id: 3,
            leader_id: 0,
            leader_addr: "127.0.0.1:7103".into(),
        }));
        assert_eq!(not_leader_hint(&replica).as_deref(), Some("127.0.0.1:7103"));
        let electing = status_with(route_error::Kind::NotLeader(NotLeader {
            group_id: 3,
            leader_id: 0,
            leader_addr: String::new(),
        }));
        assert_eq!(not_leader_hint(&electing), None);
        assert_eq!(not_leader_hint(&Status::unavailable("down")), None);
    }
}
