//! The router's typed errors, and the one place they meet the wire.
//!
//! Routing errors carry their fix (TiKV style): the status details hold a
//! prost-encoded `RouteError` that the router client decodes and follows.

use confab_proto::router as pb;
use prost::Message;
use tonic::Code;
use tonic::Status;

use crate::types::GroupId;
use crate::types::NodeId;

#[derive(Debug, Clone, thiserror::Error)]
pub enum RouterError {
    #[error("node is not the leader of group {group} (leader: {leader_id:?})")]
    NotLeader {
        group: GroupId,
        leader_id: Option<NodeId>,
        leader_addr: String,
    },
    #[error("shard epoch does not match ({} current descriptors attached)", current.len())]
    EpochNotMatch { current: Vec<pb::ShardDescriptor> },
    /// This node gave its replica of `shard` away; `current` is where the
    /// shard went. On the wire an `EpochNotMatch`.
    #[error("shard {shard} moved away from this node")]
    Tombstone {
        shard: u32,
        current: Vec<pb::ShardDescriptor>,
    },
    #[error("shard {0} not found")]
    ShardNotFound(u32),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("gateway {gateway_id} incarnation {incarnation} is not registered")]
    UnknownGateway { gateway_id: u64, incarnation: u64 },
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl RouterError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RouterError::NotLeader { .. } => "not_leader",
            RouterError::EpochNotMatch { .. } => "epoch_not_match",
            RouterError::Tombstone { .. } => "tombstone",
            RouterError::ShardNotFound(_) => "shard_not_found",
            RouterError::InvalidArgument(_) => "invalid_argument",
            RouterError::UnknownGateway { .. } => "unknown_gateway",
            RouterError::NotReady(_) => "not_ready",
            RouterError::Internal(_) => "internal",
        }
    }

    /// The redirect this error is, by kind (`not_leader`, `epoch_not_match`,
    /// `tombstone`, `shard_not_found`); `None` when it is not a redirect.
    pub fn redirect_kind(&self) -> Option<&'static str> {
        match self {
            RouterError::NotLeader { .. }
            | RouterError::EpochNotMatch { .. }
            | RouterError::Tombstone { .. }
            | RouterError::ShardNotFound(_) => Some(self.kind()),
            _ => None,
        }
    }

    /// The routing part, if this is a routing error.
    pub fn route_error(&self) -> Option<pb::RouteError> {
        use pb::route_error::Kind;
        let kind = match self {
            RouterError::NotLeader {
                group,
                leader_id,
                leader_addr,
            } => Kind::NotLeader(pb::NotLeader {
                group_id: *group,
                leader_id: leader_id.unwrap_or(0),
                leader_addr: leader_addr.clone(),
            }),
            RouterError::EpochNotMatch { current } | RouterError::Tombstone { current, .. } => {
                Kind::EpochNotMatch(pb::EpochNotMatch {
                    current: current.clone(),
                })
            }
            RouterError::ShardNotFound(id) => Kind::ShardNotFound(pb::ShardNotFound { shard_id: *id }),
            _ => return None,
        };
        Some(pb::RouteError { kind: Some(kind) })
    }
}

impl From<RouterError> for Status {
    fn from(e: RouterError) -> Status {
        if let Some(route) = e.route_error() {
            let code = match e {
                RouterError::ShardNotFound(_) => Code::NotFound,
                _ => Code::FailedPrecondition,
            };
            return Status::with_details(code, e.to_string(), route.encode_to_vec().into());
        }
        match e {
            RouterError::InvalidArgument(m) => Status::invalid_argument(m),
            RouterError::UnknownGateway { .. } => Status::not_found(e.to_string()),
            RouterError::NotReady(m) => Status::unavailable(m),
            RouterError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                Status::internal("internal error")
            }
            // Routing errors returned above.
            other => Status::unknown(other.to_string()),
        }
    }
}

pub type Result<T, E = RouterError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_errors_carry_their_fix_in_the_details() {
        let status: Status = RouterError::NotLeader {
            group: 3,
            leader_id: Some(2),
            leader_addr: "127.0.0.1:7102".into(),
        }
        .into();
        assert_eq!(status.code(), Code::FailedPrecondition);
        let route = pb::RouteError::decode(status.details()).expect("details decode");
        match route.kind {
            Some(pb::route_error::Kind::NotLeader(nl)) => {
                assert_eq!((nl.group_id, nl.leader_id), (3, 2));
                assert_eq!(nl.leader_addr, "127.0.0.1:7102");
            }
            other => panic!("unexpected {other:?}"),
        }
        let status: Status = RouterError::ShardNotFound(99).into();
        assert_eq!(status.code(), Code::NotFound);
        assert!(pb::RouteError::decode(status.details()).is_ok());
        // A tombstone redirects like a stale epoch, with where the shard went.
        let moved = pb::ShardDescriptor {
            shard_id: 4,
            replicas: vec![2, 3, 5],
            ..Default::default()
        };
        let status: Status = RouterError::Tombstone {
            shard: 4,
            current: vec![moved.clone()],
        }
        .into();
        assert_eq!(status.code(), Code::FailedPrecondition);
        match pb::RouteError::decode(status.details()).expect("details").kind {
            Some(pb::route_error::Kind::EpochNotMatch(e)) => assert_eq!(e.current, vec![moved]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn redirects_are_told_apart_from_failures() {
        assert_eq!(
            RouterError::Tombstone {
                shard: 1,
                current: vec![]
            }
            .redirect_kind(),
            Some("tombstone")
        );
        assert_eq!(
            RouterError::ShardNotFound(1).redirect_kind(),
            Some("shard_not_found")
        );
        assert_eq!(RouterError::NotReady("x".into()).redirect_kind(), None);
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let status: Status = RouterError::Internal("disk path /secret".into()).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
        assert!(status.details().is_empty());
    }
}
