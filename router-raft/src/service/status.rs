//! Where the router's errors meet the wire: the one conversion from
//! [`RouterError`] to a `tonic::Status`, and the bookkeeping every handler
//! ends with.
//!
//! Routing errors carry their fix (TiKV style): the status details hold a
//! prost-encoded `RouteError` that the router client decodes and follows.
//! Internal errors reach the caller as a generic message; their text is
//! logged here, on the server.

use prost::Message;
use tonic::Code;
use tonic::Response;
use tonic::Status;

use crate::error::Result;
use crate::error::RouterError;
use crate::metrics;

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
            RouterError::UnknownGateway { .. } | RouterError::GroupNotHosted(_) => {
                Status::not_found(e.to_string())
            }
            RouterError::WrongNode { .. } | RouterError::WrongCluster { .. } => {
                Status::failed_precondition(e.to_string())
            }
            RouterError::GatewayIdTaken { .. } => Status::already_exists(e.to_string()),
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

/// Counts the call and its error kind, and converts the error for the wire.
pub(super) fn finish<T>(method: &'static str, res: Result<T>) -> Result<Response<T>, Status> {
    counted(method, res).map(Response::new).map_err(Status::from)
}

/// Counts the call (or batch item) and its error kind.
pub(super) fn counted<T>(method: &'static str, res: Result<T>) -> Result<T> {
    metrics::RPC_TOTAL.with_label_values(&[method]).inc();
    if let Err(e) = &res {
        metrics::count_error(method, e);
    }
    res
}

#[cfg(test)]
mod tests {
    use confab_proto::router as pb;

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
    fn internal_errors_do_not_leak() {
        let status: Status = RouterError::Internal("disk path /secret".into()).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
        assert!(status.details().is_empty());
    }

    #[test]
    fn misaddressed_raft_messages_are_refused_as_before() {
        let status: Status = RouterError::WrongNode { this: 1, meant: 2 }.into();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.message(),
            "this is node 1, not node 2: the sender's address for node 2 is wrong"
        );
        let status: Status = RouterError::GroupNotHosted(7).into();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "group 7 is not hosted here");
        assert!(status.details().is_empty());
    }
}
