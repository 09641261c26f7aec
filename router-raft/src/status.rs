//! Per-group status from Raft metrics: what `NodeStatus` answers and what the
//! per-group gauges on /metrics show.

use confab_proto::router as pb;
use openraft::async_runtime::WatchReceiver;

use crate::node::Group;
use crate::sm::GroupData;

pub fn group_status(g: &Group) -> pb::GroupStatus {
    let m = g.raft.metrics().borrow_watched().clone();
    let membership = m.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let learners: Vec<u64> = membership.learner_ids().collect();
    let matched = m
        .replication
        .as_ref()
        .map(|r| {
            r.iter()
                .map(|(id, log)| (*id, log.as_ref().map_or(0, |l| l.index())))
                .collect()
        })
        .unwrap_or_default();
    let entries = match &g.sm.read().data {
        GroupData::Shard(s) => s.session_count(),
        GroupData::Meta(meta) => meta.gateways.len() as u64,
    };
    pb::GroupStatus {
        group_id: g.id,
        leader: m.current_leader.unwrap_or(0),
        term: m.current_term,
        commit_index: m.local_committed.as_ref().map_or(0, |l| l.index()),
        applied_index: m.last_applied.as_ref().map_or(0, |l| l.index()),
        last_log_index: m.last_log_index.unwrap_or(0),
        matched,
        entries,
        role: format!("{:?}", m.state),
        voters,
        learners,
        checksum: 0,
    }
}

/// The order-free checksum of a group's records (see `GroupStatus`).
pub fn checksum(g: &Group) -> u64 {
    match &g.sm.read().data {
        GroupData::Shard(s) => s.checksum(),
        GroupData::Meta(meta) => meta
            .gateways
            .values()
            .map(|r| {
                crate::sm::shard::fnv1a(&[
                    &r.gateway_id.to_le_bytes(),
                    r.addr.as_bytes(),
                    &r.incarnation.to_le_bytes(),
                ])
            })
            .fold(0, u64::wrapping_add),
    }
}

/// Refreshes the per-group gauges before a scrape.
pub fn refresh_gauges(groups: &[Group]) {
    use crate::metrics::GROUP_GAUGE;
    use crate::metrics::REPLICA_LAG;
    use crate::metrics::SHARD_SESSIONS;
    // Groups this node no longer hosts (moved away) drop out: a stale
    // `is_leader` would hide a group without a leader.
    REPLICA_LAG.reset();
    GROUP_GAUGE.reset();
    SHARD_SESSIONS.reset();
    for g in groups {
        let s = group_status(g);
        let id = g.id.to_string();
        let set = |field: &str, v: u64| GROUP_GAUGE.with_label_values(&[id.as_str(), field]).set(v as i64);
        set("leader", s.leader);
        set("term", s.term);
        set("commit_index", s.commit_index);
        set("applied_index", s.applied_index);
        set("last_log_index", s.last_log_index);
        set("is_leader", u64::from(s.role == "Leader"));
        for (replica, matched) in &s.matched {
            let lag = s.last_log_index.saturating_sub(*matched);
            REPLICA_LAG
                .with_label_values(&[id.as_str(), replica.to_string().as_str()])
                .set(lag as i64);
        }
        if g.id != crate::types::META_GROUP {
            SHARD_SESSIONS
                .with_label_values(&[id.as_str()])
                .set(s.entries as i64);
        }
    }
}
