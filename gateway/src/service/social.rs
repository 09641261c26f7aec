//! Friend lists and group member lists as handlers and services read them:
//! from the cache here ([`crate::state::social`]), else from persist (the
//! answer is cached unless an invalidation raced it).

use std::sync::Arc;
use std::time::Duration;

use confab_proto::persist as db;

use crate::error::{Error, Result};
use crate::metrics;
use crate::service::calls::timed;
use crate::state::Shared;
use crate::state::social::{Friend, GroupEntry};

/// How long a cached entry is used.
pub fn ttl(shared: &Shared) -> Duration {
    Duration::from_millis(shared.config.social.cache_ttl_ms)
}

/// The friends of `uid` (cached).
pub async fn friends(shared: &Shared, uid: u64) -> Result<Arc<Vec<Friend>>> {
    if let Some(f) = shared.social.cached_friends(uid, ttl(shared)) {
        metrics::SOCIAL_CACHE.with_label_values(&["friends", "hit"]).inc();
        return Ok(f);
    }
    metrics::SOCIAL_CACHE
        .with_label_values(&["friends", "miss"])
        .inc();
    let started = shared.social.generation();
    let reply = timed(shared, "persist", async {
        shared
            .data()
            .list_friends(db::ListFriendsRequest { user: uid })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| Error::from_persist(s, || Error::UserNotFound(uid.to_string())))
    })
    .await?;
    let list: Arc<Vec<Friend>> = Arc::new(
        reply
            .friends
            .into_iter()
            .map(|u| Friend {
                id: u.id,
                name: u.name,
            })
            .collect(),
    );
    shared
        .social
        .store_friends(uid, list.clone(), started, shared.config.social.cache_max_entries);
    Ok(list)
}

/// True when `a` and `b` are friends (from `a`'s cached list).
pub async fn are_friends(shared: &Shared, a: u64, b: u64) -> Result<bool> {
    Ok(friends(shared, a).await?.iter().any(|f| f.id == b))
}

/// Group `gid` with its members, read for `acting` (who must be a member
/// for persist to answer on a miss). Anyone else, and a group that does
/// not exist, gets `Forbidden`: the answer tells nothing about the group.
pub async fn group(shared: &Shared, gid: u64, acting: u64) -> Result<Arc<GroupEntry>> {
    let forbidden = || Error::Forbidden {
        uid: acting,
        conversation: format!("g:{gid}"),
    };
    if let Some(g) = shared.social.cached_group(gid, ttl(shared)) {
        metrics::SOCIAL_CACHE.with_label_values(&["groups", "hit"]).inc();
        return if g.role_of(acting).is_some() {
            Ok(g)
        } else {
            Err(forbidden())
        };
    }
    metrics::SOCIAL_CACHE.with_label_values(&["groups", "miss"]).inc();
    let started = shared.social.generation();
    let entry = timed(shared, "persist", async {
        let mut data = shared.data();
        let mut data2 = shared.data();
        let group = data.get_group(db::GroupRef { group_id: gid });
        let members = data2.list_members(db::ListMembersRequest {
            group_id: gid,
            by_user: acting,
        });
        let (group, members) = futures::join!(group, members);
        let map = |s: tonic::Status| match s.code() {
            tonic::Code::NotFound | tonic::Code::PermissionDenied | tonic::Code::InvalidArgument => {
                forbidden()
            }
            _ => Error::from_persist(s, forbidden),
        };
        let group = group.map_err(map)?.into_inner();
        let members = members.map_err(map)?.into_inner().members;
        Ok(GroupEntry::new(group, members))
    })
    .await?;
    let entry = Arc::new(entry);
    shared
        .social
        .store_group(entry.clone(), started, shared.config.social.cache_max_entries);
    if entry.role_of(acting).is_some() {
        Ok(entry)
    } else {
        Err(forbidden())
    }
}
