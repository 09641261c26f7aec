//! Conversions between the wire types of `confab_proto::router` and the
//! router's domain types.

use confab_proto::router as pb;

use crate::error::RouterError;
use crate::sm::meta::Epoch;
use crate::sm::meta::NodeRecordState;
use crate::sm::meta::ShardRecord;
use crate::sm::shard::DevicePolicy;
use crate::sm::shard::SessionRecord;

pub fn session_from_pb(s: Option<pb::Session>) -> Result<SessionRecord, RouterError> {
    let s = s.ok_or_else(|| RouterError::InvalidArgument("login without a session".into()))?;
    if s.session_id == 0 {
        return Err(RouterError::InvalidArgument("session_id must not be 0".into()));
    }
    if s.gateway_id == 0 {
        return Err(RouterError::InvalidArgument("gateway_id must not be 0".into()));
    }
    if s.device_id.len() > 256 {
        return Err(RouterError::InvalidArgument(
            "device_id longer than 256 bytes".into(),
        ));
    }
    if pb::DeviceKind::try_from(s.device_kind).is_err() {
        return Err(RouterError::InvalidArgument(format!(
            "unknown device kind {}",
            s.device_kind
        )));
    }
    Ok(SessionRecord {
        session_id: s.session_id,
        gateway_id: s.gateway_id,
        gateway_incarnation: s.gateway_incarnation,
        device_kind: s.device_kind,
        device_id: s.device_id,
        login_at_ms: s.login_at_ms,
    })
}

pub fn session_to_pb(s: &SessionRecord) -> pb::Session {
    pb::Session {
        session_id: s.session_id,
        gateway_id: s.gateway_id,
        gateway_incarnation: s.gateway_incarnation,
        device_kind: s.device_kind,
        device_id: s.device_id.clone(),
        login_at_ms: s.login_at_ms,
    }
}

pub fn policy_from_pb(p: i32) -> Result<DevicePolicy, RouterError> {
    match pb::MultiDevicePolicy::try_from(p) {
        Ok(pb::MultiDevicePolicy::AllowAll) => Ok(DevicePolicy::AllowAll),
        Ok(pb::MultiDevicePolicy::OnePerKind) => Ok(DevicePolicy::OnePerKind),
        Ok(pb::MultiDevicePolicy::OneInAll) => Ok(DevicePolicy::OneInAll),
        Err(_) => Err(RouterError::InvalidArgument(format!(
            "unknown multi-device policy {p}"
        ))),
    }
}

pub fn epoch_to_pb(e: Epoch) -> pb::ShardEpoch {
    pb::ShardEpoch {
        conf_ver: e.conf_ver,
        version: e.version,
    }
}

pub fn epoch_from_pb(e: Option<pb::ShardEpoch>) -> Epoch {
    e.map(|e| Epoch {
        conf_ver: e.conf_ver,
        version: e.version,
    })
    .unwrap_or_default()
}

pub fn shard_to_pb(s: &ShardRecord, leader: u64) -> pb::ShardDescriptor {
    pb::ShardDescriptor {
        shard_id: s.id,
        ranges: s
            .ranges
            .iter()
            .map(|&(start, end)| pb::SlotRange { start, end })
            .collect(),
        replicas: s.replicas.clone(),
        epoch: Some(epoch_to_pb(s.epoch)),
        leader,
    }
}

pub fn node_state_to_pb(s: NodeRecordState) -> pb::NodeState {
    match s {
        NodeRecordState::Up => pb::NodeState::Up,
        NodeRecordState::Draining => pb::NodeState::Draining,
        NodeRecordState::Removed => pb::NodeState::Removed,
    }
}
