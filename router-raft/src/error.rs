//! The router's typed errors. They meet the wire in one place:
//! `service::status` converts them to a `tonic::Status`.

use confab_proto::router as pb;

use crate::ids::GroupId;
use crate::ids::NodeId;

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
    /// A live gateway at another address holds the id a gateway registers.
    #[error("gateway id {gateway_id} is held by a live gateway at {addr}: give each gateway its own id")]
    GatewayIdTaken { gateway_id: u64, addr: String },
    /// A Raft message meant for node `meant` reached node `this` (a stale
    /// or wrong peer address).
    #[error("this is node {this}, not node {meant}: the sender's address for node {meant} is wrong")]
    WrongNode { this: NodeId, meant: NodeId },
    /// A Raft message from another cluster reached node `node`.
    #[error(
        "node {node} belongs to cluster {mine:016x}, not {theirs:016x}: the sender's peer address \
         points at another cluster"
    )]
    WrongCluster { node: NodeId, mine: u64, theirs: u64 },
    /// A Raft message for a group this node hosts no replica of.
    #[error("group {0} is not hosted here")]
    GroupNotHosted(GroupId),
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
            RouterError::GatewayIdTaken { .. } => "gateway_id_taken",
            RouterError::WrongNode { .. } => "wrong_node",
            RouterError::WrongCluster { .. } => "wrong_cluster",
            RouterError::GroupNotHosted(_) => "group_not_hosted",
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

pub type Result<T, E = RouterError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

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
}
