//! Users and friends: search by name prefix, friend requests (pushed to the
//! other side live), accept / decline (pushed back), remove, and the friend
//! list with every friend's presence from one batch router lookup.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb, FriendEventKind};
use confab_proto::gateway::SessionRef;
use confab_proto::persist as db;

use super::conn::{Conn, Login};
use super::message::check_note;
use super::page::Page;
use crate::error::{Error, Result};
use crate::metrics;
use crate::service::calls::{persist, timed};
use crate::service::notify::{self, Notice};
use crate::service::presence::{device, session_ref};

use crate::service::{invalidate, social, users};
use crate::state::Shared;
use crate::state::social::Friend;

const DEFAULT_SEARCH: u32 = 20;
const MAX_SEARCH: u32 = 100;

pub async fn search_users(conn: &mut Conn, r: pb::SearchUsersRequest) -> Result<Body> {
    conn.logged_in()?;
    let limit = match r.limit {
        0 => DEFAULT_SEARCH,
        n => n.min(MAX_SEARCH),
    };
    let shared = conn.shared.clone();
    let request = db::SearchUsersRequest {
        prefix: r.prefix,
        limit,
        after: r.after,
    };
    let reply = persist(
        &shared,
        |mut d| async move { d.search_users(request).await },
        |s| Error::from_persist(s, || Error::Internal("search: not found".into())),
    )
    .await?;
    Ok(Body::Users(pb::UsersReply {
        users: reply
            .users
            .into_iter()
            .map(|u| pb::UserInfo {
                user_id: u.id,
                name: u.name,
            })
            .collect(),
    }))
}

fn friend_event(kind: FriendEventKind, from: &Login, note: String) -> Notice {
    Notice::Friend(pb::FriendEvent {
        kind: kind as i32,
        user: users::info(from.uid, &from.name),
        note,
    })
}

pub async fn add_friend(conn: &mut Conn, r: pb::AddFriendRequest) -> Result<Body> {
    let me = conn.logged_in()?.clone();
    check_note(&r.note)?;
    let shared = conn.shared.clone();
    let to = users::resolve(&shared, r.user).await?;
    if to.id == me.uid {
        return Err(Error::Invalid("cannot befriend oneself".into()));
    }
    let request = db::SendFriendRequestRequest {
        from_user: me.uid,
        to_user: to.id,
        note: r.note.clone(),
    };
    let reply = persist(
        &shared,
        |mut d| async move { d.send_friend_request(request).await },
        |s| Error::from_persist(s, || Error::UserNotFound(to.name.clone())),
    )
    .await?;
    let kind = if reply.became_friends {
        invalidate::everywhere(&shared, &[me.uid, to.id], &[]).await;
        FriendEventKind::Accepted
    } else {
        FriendEventKind::Requested
    };
    notify::users(&shared, &[to.id], friend_event(kind, &me, r.note), 0).await;
    let request = reply.request.unwrap_or_default();
    Ok(Body::AddFriendOk(pb::AddFriendReply {
        request: Some(request_info(
            &request,
            &HashMap::from([(me.uid, me.name.clone()), (to.id, to.name.clone())]),
        )),
        became_friends: reply.became_friends,
    }))
}

pub async fn respond_friend(conn: &mut Conn, r: pb::RespondFriendRequest) -> Result<Body> {
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    let from = users::resolve(&shared, r.user).await?;
    let request = db::RespondFriendRequestRequest {
        user: me.uid,
        from_user: from.id,
        accept: r.accept,
    };
    persist(
        &shared,
        |mut d| async move { d.respond_friend_request(request).await },
        |s| Error::from_persist(s, || Error::UserNotFound(from.name.clone())),
    )
    .await?;
    let kind = if r.accept {
        invalidate::everywhere(&shared, &[me.uid, from.id], &[]).await;
        FriendEventKind::Accepted
    } else {
        FriendEventKind::Declined
    };
    notify::users(&shared, &[from.id], friend_event(kind, &me, String::new()), 0).await;
    Ok(Body::Done(pb::Done {}))
}

pub async fn remove_friend(conn: &mut Conn, r: pb::RemoveFriendRequest) -> Result<Body> {
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    let other = users::resolve(&shared, r.user).await?;
    let request = db::RemoveFriendRequest {
        user: me.uid,
        friend: other.id,
    };
    persist(
        &shared,
        |mut d| async move { d.remove_friend(request).await },
        |s| Error::from_persist(s, || Error::UserNotFound(other.name.clone())),
    )
    .await?;
    invalidate::everywhere(&shared, &[me.uid, other.id], &[]).await;
    let event = friend_event(FriendEventKind::Removed, &me, String::new());
    notify::users(&shared, &[other.id], event, 0).await;
    Ok(Body::Done(pb::Done {}))
}

/// The friends (cached list) with their presence: one batch lookup in the
/// routers, split per shard by the router client.
pub async fn list_friends(conn: &mut Conn, r: pb::ListFriendsRequest) -> Result<Body> {
    let me = conn.logged_in()?.uid;
    let shared = conn.shared.clone();
    let friends = social::friends(&shared, me).await?;
    let all = friends_with_presence(&shared, me, &friends).await?;
    let (friends, page) = Page::of(&shared, r.page.as_ref()).cut("friends", all.friends, |f| {
        f.user.as_ref().map(|u| u.name.clone()).unwrap_or_default()
    });
    Ok(Body::Friends(pb::FriendsReply {
        friends,
        page: Some(page),
    }))
}

/// The friends of `me` with their sessions: one batch router lookup (split
/// per shard by the router client), which also refreshes what this gateway
/// remembers of them. Later lists are answered from that copy, which
/// presence pushes and the dead-gateway watch keep current; once it is
/// older than `social.presence_max_age_ms` a list starts a re-read in the
/// background (0: every list reads the routers itself).
pub async fn friends_with_presence(
    shared: &Arc<Shared>,
    me: u64,
    friends: &[Friend],
) -> Result<pb::FriendsReply> {
    let uids: Vec<u64> = friends.iter().map(|f| f.id).collect();
    let max_age = Duration::from_millis(shared.config.social.presence_max_age_ms);
    let known = if max_age.is_zero() || uids.is_empty() {
        None
    } else {
        shared.presence.view(me, &uids, max_age)
    };
    let sessions: Vec<Vec<SessionRef>> = match known {
        Some((s, old)) => {
            metrics::SOCIAL_CACHE
                .with_label_values(&["presence", "hit"])
                .inc();
            if old && shared.presence.begin_refresh(me) {
                let (shared, uids) = (shared.clone(), uids.clone());
                tokio::spawn(async move {
                    if let Err(error) = read_presence(&shared, me, &uids).await {
                        tracing::debug!(%error, uid = me, "re-reading friends' presence failed");
                        shared.presence.end_refresh(me);
                    }
                });
            }
            s
        }
        None if uids.is_empty() => Vec::new(),
        None => {
            metrics::SOCIAL_CACHE
                .with_label_values(&["presence", "miss"])
                .inc();
            read_presence(shared, me, &uids).await?
        }
    };
    Ok(pb::FriendsReply {
        friends: friends
            .iter()
            .zip(sessions)
            .map(|(f, s)| pb::FriendInfo {
                user: users::info(f.id, &f.name),
                online: !s.is_empty(),
                devices: s.iter().map(device).collect(),
            })
            .collect(),
        page: None,
    })
}

/// One batch router lookup of `uids` (the friends of `me`), remembered for
/// `me` while it is logged in here.
async fn read_presence(shared: &Arc<Shared>, me: u64, uids: &[u64]) -> Result<Vec<Vec<SessionRef>>> {
    let online = timed(shared, "router", async { Ok(shared.router.lookup(uids).await?) }).await?;
    let s: Vec<Vec<SessionRef>> = uids
        .iter()
        .map(|u| {
            online
                .get(u)
                .map(|s| s.iter().map(session_ref).collect())
                .unwrap_or_default()
        })
        .collect();
    if !shared.registry.of_user(me).is_empty() {
        shared
            .presence
            .track(me, uids.iter().copied().zip(s.iter().cloned()).collect());
    }
    Ok(s)
}

pub async fn list_friend_requests(conn: &mut Conn, r: pb::ListFriendRequestsRequest) -> Result<Body> {
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    let request = db::ListFriendRequestsRequest { user: me.uid };
    let reply = persist(
        &shared,
        |mut d| async move { d.list_friend_requests(request).await },
        |s| Error::from_persist(s, || Error::UserNotFound(me.name.clone())),
    )
    .await?;
    let mut ids: Vec<u64> = reply
        .incoming
        .iter()
        .map(|r| r.from_user)
        .chain(reply.outgoing.iter().map(|r| r.to_user))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut names = users::names(&shared, &ids).await?;
    names.insert(me.uid, me.name.clone());
    // One list for the pages: the incoming ones ("i:" + name) first.
    let all: Vec<(bool, pb::FriendRequestInfo)> = reply
        .incoming
        .iter()
        .map(|r| (true, request_info(r, &names)))
        .chain(reply.outgoing.iter().map(|r| (false, request_info(r, &names))))
        .collect();
    let name = |u: &Option<pb::UserInfo>| u.as_ref().map(|u| u.name.clone()).unwrap_or_default();
    let (items, page) = Page::of(&shared, r.page.as_ref()).cut("friend_requests", all, |(incoming, r)| {
        if *incoming {
            format!("i:{}", name(&r.from))
        } else {
            format!("o:{}", name(&r.to))
        }
    });
    let (incoming, outgoing): (Vec<_>, Vec<_>) = items.into_iter().partition(|(incoming, _)| *incoming);
    Ok(Body::FriendRequests(pb::FriendRequestsReply {
        incoming: incoming.into_iter().map(|(_, r)| r).collect(),
        outgoing: outgoing.into_iter().map(|(_, r)| r).collect(),
        page: Some(page),
    }))
}

fn request_info(r: &db::FriendRequestMsg, names: &HashMap<u64, String>) -> pb::FriendRequestInfo {
    let name = |id: u64| names.get(&id).cloned().unwrap_or_default();
    pb::FriendRequestInfo {
        from: users::info(r.from_user, &name(r.from_user)),
        to: users::info(r.to_user, &name(r.to_user)),
        note: r.note.clone(),
        state: r.state,
        created_at_ms: r.created_at_ms,
    }
}
