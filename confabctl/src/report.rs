//! Serde shapes shared by several commands' JSON output, and their text forms.

use std::fmt;

use confab_router_client::{NodeState, ShardEpoch, SlotRange};
use serde::Serialize;

/// A half-open slot range `[start, end)`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct RangeReport {
    pub start: u32,
    pub end: u32,
}

impl From<&SlotRange> for RangeReport {
    fn from(r: &SlotRange) -> Self {
        RangeReport {
            start: r.start,
            end: r.end,
        }
    }
}

impl fmt::Display for RangeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A shard epoch.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct EpochReport {
    pub conf_ver: u64,
    pub version: u64,
}

impl From<ShardEpoch> for EpochReport {
    fn from(e: ShardEpoch) -> Self {
        EpochReport {
            conf_ver: e.conf_ver,
            version: e.version,
        }
    }
}

impl fmt::Display for EpochReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conf_ver={} version={}", self.conf_ver, self.version)
    }
}

/// `up`, `draining`, `removed` or `unspecified` for a wire node state.
pub fn node_state_name(state: i32) -> String {
    match NodeState::try_from(state) {
        Ok(NodeState::Up) => "up",
        Ok(NodeState::Draining) => "draining",
        Ok(NodeState::Removed) => "removed",
        Ok(NodeState::Unspecified) | Err(_) => "unspecified",
    }
    .to_owned()
}
