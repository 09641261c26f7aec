//! Groups: create, list mine, invite (pushed to the invitee, who accepts
//! or declines; the inviter hears of a decline), ask to join (pushed to the
//! owner and admins), approve / deny (pushed to the requester; the group
//! sees the new member), leave, remove a member, promote an admin, delete
//! (owner only; every member is told), list members.
//!
//! Every rule is checked here against the cached member list first, then
//! again by persist, which is the authority.

use std::sync::Arc;

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb, GroupEventKind};
use confab_proto::persist as db;

use super::conn::{Conn, Login};
use super::message::check_note;
use super::page::{Page, id_key};
use crate::error::{Error, Result};
use crate::service::calls::persist;
use crate::service::notify::{self, Notice};

use crate::service::{invalidate, social, users};
use crate::state::Shared;
use crate::state::social::{GroupEntry, Member, ROLE_ADMIN, ROLE_MEMBER, ROLE_OWNER};

fn group_info(g: db::Group) -> pb::GroupInfo {
    pb::GroupInfo {
        group_id: g.id,
        conversation_id: format!("g:{}", g.id),
        name: g.name,
        owner: g.owner,
        created_at_ms: g.created_at_ms,
    }
}

fn not_permitted(me: &Login, gid: u64, what: &str) -> Error {
    Error::NotPermitted(format!("user {} may not {what} in group {gid}", me.uid))
}

/// The group as `me` (a member) sees it, with my role at least `min`.
async fn as_role(shared: &Shared, me: &Login, gid: u64, min: i32, what: &str) -> Result<Arc<GroupEntry>> {
    let g = social::group(shared, gid, me.uid).await?;
    match g.role_of(me.uid) {
        Some(r) if r >= min => Ok(g),
        _ => Err(not_permitted(me, gid, what)),
    }
}

fn event(kind: GroupEventKind, g: &GroupEntry, user: Option<pb::UserInfo>, by: u64) -> Notice {
    Notice::Group(pb::GroupEvent {
        kind: kind as i32,
        group_id: g.id,
        group_name: g.name.clone(),
        user,
        by,
        note: String::new(),
    })
}

fn persist_err(s: tonic::Status, gid: u64) -> Error {
    Error::from_persist(s, || Error::NotFound(format!("group {gid} (or the user)")))
}

pub async fn create_group(conn: &mut Conn, r: pb::CreateGroupRequest) -> Result<Body> {
    let me = conn.logged_in()?.uid;
    let shared = conn.shared.clone();
    let request = db::CreateGroupRequest {
        owner: me,
        name: r.name,
    };
    let g = persist(
        &shared,
        |mut d| async move { d.create_group(request).await },
        |s| Error::from_persist(s, || Error::UserNotFound(me.to_string())),
    )
    .await?;
    Ok(Body::Group(group_info(g)))
}

pub async fn list_groups(conn: &mut Conn, r: pb::ListGroupsRequest) -> Result<Body> {
    let me = conn.logged_in()?.uid;
    let shared = conn.shared.clone();
    let request = db::ListGroupsRequest { user: me };
    let reply = persist(
        &shared,
        |mut d| async move { d.list_groups(request).await },
        |s| Error::from_persist(s, || Error::UserNotFound(me.to_string())),
    )
    .await?;
    let all = reply.groups.into_iter().map(group_info).collect();
    let (groups, page) = Page::of(&shared, r.page.as_ref()).cut("groups", all, |g| id_key(g.group_id));
    Ok(Body::Groups(pb::GroupsReply {
        groups,
        page: Some(page),
    }))
}

/// After a membership change persist accepted: apply it to the member list
/// cached here, drop it on every other gateway, then tell the members as
/// they are after the change, plus `extra` (who just left or was removed).
async fn changed(
    shared: &Arc<Shared>,
    me: &Login,
    before: &GroupEntry,
    change: impl Fn(&mut GroupEntry),
    notice: Notice,
    extra: &[u64],
) {
    // The cached list (which may have moved on since the check), else the
    // list the check ran on, with the change applied.
    let after = shared.social.apply_group(before.id, &change).unwrap_or_else(|| {
        let mut g = before.clone();
        change(&mut g);
        Arc::new(g)
    });
    invalidate::elsewhere(shared, &[], &[before.id]).await;
    let mut uids = after.uids();
    uids.extend_from_slice(extra);
    uids.sort_unstable();
    uids.dedup();
    notify::users(shared, &uids, notice, me.session_id).await;
}

fn member(id: u64, name: &str, role: i32) -> Member {
    Member {
        id,
        name: name.to_owned(),
        role,
        joined_at_ms: confab_common::ids::now_ms() as i64,
    }
}

/// Invites a user: pending until it answers ([`respond_invite`]), so an
/// invitation puts no one in a group (and in reach of its members'
/// messages) who did not agree. One who had asked to join joins at once.
pub async fn invite(conn: &mut Conn, r: pb::InviteRequest) -> Result<Body> {
    use db::invite_member_reply::Outcome;
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    let g = as_role(&shared, &me, r.group_id, ROLE_ADMIN, "invite members").await?;
    let user = users::resolve(&shared, r.user).await?;
    if g.role_of(user.id).is_some() {
        return Err(Error::AlreadyExists(format!(
            "user {} is already a member of group {}",
            user.name, g.id
        )));
    }
    let request = db::InviteMemberRequest {
        group_id: g.id,
        user: user.id,
        by_user: me.uid,
    };
    let reply = persist(
        &shared,
        |mut d| async move { d.invite_member(request).await },
        |s| persist_err(s, g.id),
    )
    .await?;
    let info = users::info(user.id, &user.name);
    match reply.outcome {
        Some(Outcome::Joined(_)) => {
            let notice = event(GroupEventKind::MemberJoined, &g, info, me.uid);
            let joined = member(user.id, &user.name, ROLE_MEMBER);
            changed(&shared, &me, &g, |e| e.upsert(joined.clone()), notice, &[]).await;
        }
        _ => {
            let notice = event(GroupEventKind::Invited, &g, info, me.uid);
            notify::users(&shared, &[user.id], notice, me.session_id).await;
        }
    }
    Ok(Body::Done(pb::Done {}))
}

/// The invitee accepts (joins: every member is told) or declines (the
/// inviter is told) its pending invitation.
pub async fn respond_invite(conn: &mut Conn, r: pb::RespondInviteRequest) -> Result<Body> {
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    let gid = r.group_id;
    let request = db::RespondInviteRequest {
        group_id: gid,
        user: me.uid,
        accept: r.accept,
    };
    let reply = persist(
        &shared,
        |mut d| async move { d.respond_invite(request).await },
        |s| persist_err(s, gid),
    )
    .await?;
    let invite = reply
        .invite
        .ok_or_else(|| Error::Internal("persist answered an invitation without it".into()))?;
    let group = invite.group.clone().unwrap_or_default();
    let name = group.name.clone();
    let notice = |kind: GroupEventKind| {
        Notice::Group(pb::GroupEvent {
            kind: kind as i32,
            group_id: gid,
            group_name: name.clone(),
            user: users::info(me.uid, &me.name),
            by: invite.invited_by,
            note: String::new(),
        })
    };
    if !r.accept {
        let declined = notice(GroupEventKind::InviteDeclined);
        notify::users(&shared, &[invite.invited_by], declined, me.session_id).await;
        return Ok(Body::Done(pb::Done {}));
    }
    // The member lists cached here and elsewhere lack the new member: drop
    // them, and tell the members as persist has them now.
    invalidate::everywhere(&shared, &[], &[gid]).await;
    let g = social::group(&shared, gid, me.uid).await?;
    notify::users(
        &shared,
        &g.uids(),
        notice(GroupEventKind::MemberJoined),
        me.session_id,
    )
    .await;
    Ok(Body::Group(group_info(group)))
}

/// My pending invitations, by group id, with who invited me.
pub async fn list_invites(conn: &mut Conn, r: pb::ListInvitesRequest) -> Result<Body> {
    let me = conn.logged_in()?.uid;
    let shared = conn.shared.clone();
    let request = db::ListInvitesRequest { user: me };
    let reply = persist(
        &shared,
        |mut d| async move { d.list_invites(request).await },
        |s| Error::from_persist(s, || Error::UserNotFound(me.to_string())),
    )
    .await?;
    let (invites, page) = Page::of(&shared, r.page.as_ref()).cut("invites", reply.invites, |i| {
        id_key(i.group.as_ref().map_or(0, |g| g.id))
    });
    let ids: Vec<u64> = invites.iter().map(|i| i.invited_by).collect();
    let names = users::names(&shared, &ids).await?;
    Ok(Body::Invites(pb::InvitesReply {
        invites: invites
            .into_iter()
            .map(|i| pb::InviteInfo {
                by: users::info(i.invited_by, names.get(&i.invited_by).map_or("", |s| s.as_str())),
                group: i.group.map(group_info),
                created_at_ms: i.created_at_ms,
            })
            .collect(),
        page: Some(page),
    }))
}

pub async fn join(conn: &mut Conn, r: pb::JoinGroupRequest) -> Result<Body> {
    let me = conn.logged_in()?.clone();
    check_note(&r.note)?;
    let shared = conn.shared.clone();
    let gid = r.group_id;
    let group = persist(
        &shared,
        |mut d| async move { d.get_group(db::GroupRef { group_id: gid }).await },
        |s| persist_err(s, gid),
    )
    .await?;
    let request = db::RequestJoinRequest {
        group_id: gid,
        user: me.uid,
        note: r.note.clone(),
    };
    let reply = persist(
        &shared,
        |mut d| async move { d.request_join(request).await },
        |s| persist_err(s, gid),
    )
    .await?;
    let notice = Notice::Group(pb::GroupEvent {
        kind: GroupEventKind::JoinRequested as i32,
        group_id: gid,
        group_name: group.name,
        user: users::info(me.uid, &me.name),
        by: 0,
        note: r.note,
    });
    notify::users(&shared, &reply.approvers, notice, me.session_id).await;
    Ok(Body::Done(pb::Done {}))
}

pub async fn respond_join(conn: &mut Conn, r: pb::RespondJoinRequest) -> Result<Body> {
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    let g = as_role(&shared, &me, r.group_id, ROLE_ADMIN, "answer join requests").await?;
    let request = db::RespondJoinRequest {
        group_id: g.id,
        user: r.user_id,
        by_user: me.uid,
        accept: r.accept,
    };
    persist(
        &shared,
        |mut d| async move { d.respond_join(request).await },
        |s| persist_err(s, g.id),
    )
    .await?;
    let name = users::names(&shared, &[r.user_id])
        .await
        .ok()
        .and_then(|mut n| n.remove(&r.user_id))
        .unwrap_or_default();
    let kind = if r.accept {
        GroupEventKind::JoinApproved
    } else {
        GroupEventKind::JoinDenied
    };
    let user = users::info(r.user_id, &name);
    notify::users(&shared, &[r.user_id], event(kind, &g, user.clone(), me.uid), 0).await;
    if r.accept {
        let notice = event(GroupEventKind::MemberJoined, &g, user, me.uid);
        let joined = member(r.user_id, &name, ROLE_MEMBER);
        changed(&shared, &me, &g, |e| e.upsert(joined.clone()), notice, &[]).await;
    }
    Ok(Body::Done(pb::Done {}))
}

pub async fn list_join_requests(conn: &mut Conn, r: pb::ListJoinRequestsRequest) -> Result<Body> {
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    let g = as_role(&shared, &me, r.group_id, ROLE_ADMIN, "see join requests").await?;
    let request = db::ListJoinRequestsRequest {
        group_id: g.id,
        by_user: me.uid,
    };
    let reply = persist(
        &shared,
        |mut d| async move { d.list_join_requests(request).await },
        |s| persist_err(s, g.id),
    )
    .await?;
    let (requests, page) =
        Page::of(&shared, r.page.as_ref()).cut("join_requests", reply.requests, |j| id_key(j.user));
    let ids: Vec<u64> = requests.iter().map(|j| j.user).collect();
    let names = users::names(&shared, &ids).await?;
    Ok(Body::JoinRequests(pb::JoinRequestsReply {
        requests: requests
            .into_iter()
            .map(|j| pb::JoinRequestInfo {
                group_id: j.group_id,
                user: users::info(j.user, names.get(&j.user).map_or("", |s| s.as_str())),
                note: j.note,
                created_at_ms: j.created_at_ms,
            })
            .collect(),
        page: Some(page),
    }))
}

pub async fn leave(conn: &mut Conn, r: pb::LeaveGroupRequest) -> Result<Body> {
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    let g = social::group(&shared, r.group_id, me.uid).await?;
    if g.role_of(me.uid) == Some(ROLE_OWNER) {
        return Err(Error::FailedPrecondition(
            "the owner cannot leave its group: delete it".into(),
        ));
    }
    let request = db::LeaveGroupRequest {
        group_id: g.id,
        user: me.uid,
    };
    persist(
        &shared,
        |mut d| async move { d.leave_group(request).await },
        |s| persist_err(s, g.id),
    )
    .await?;
    let notice = event(GroupEventKind::MemberLeft, &g, users::info(me.uid, &me.name), 0);
    let uid = me.uid;
    changed(&shared, &me, &g, |e| e.remove(uid), notice, &[uid]).await;
    Ok(Body::Done(pb::Done {}))
}

pub async fn remove_member(conn: &mut Conn, r: pb::RemoveMemberRequest) -> Result<Body> {
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    let g = as_role(&shared, &me, r.group_id, ROLE_ADMIN, "remove members").await?;
    let Some(target) = g.member(r.user_id).cloned() else {
        return Err(Error::NotFound(format!(
            "user {} is not a member of group {}",
            r.user_id, g.id
        )));
    };
    let mine = g.role_of(me.uid).unwrap_or(ROLE_MEMBER);
    let allowed = match mine {
        ROLE_OWNER => target.role != ROLE_OWNER,
        ROLE_ADMIN => target.role == ROLE_MEMBER,
        _ => false,
    };
    if !allowed {
        return Err(not_permitted(&me, g.id, "remove this member"));
    }
    let request = db::RemoveMemberRequest {
        group_id: g.id,
        user: target.id,
        by_user: me.uid,
    };
    persist(
        &shared,
        |mut d| async move { d.remove_member(request).await },
        |s| persist_err(s, g.id),
    )
    .await?;
    let notice = event(
        GroupEventKind::MemberRemoved,
        &g,
        users::info(target.id, &target.name),
        me.uid,
    );
    changed(&shared, &me, &g, |e| e.remove(target.id), notice, &[target.id]).await;
    Ok(Body::Done(pb::Done {}))
}

pub async fn promote(conn: &mut Conn, r: pb::PromoteRequest) -> Result<Body> {
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    let g = as_role(&shared, &me, r.group_id, ROLE_OWNER, "promote admins").await?;
    let Some(target) = g.member(r.user_id).cloned() else {
        return Err(Error::NotFound(format!(
            "user {} is not a member of group {}",
            r.user_id, g.id
        )));
    };
    let request = db::PromoteAdminRequest {
        group_id: g.id,
        user: target.id,
        by_user: me.uid,
    };
    persist(
        &shared,
        |mut d| async move { d.promote_admin(request).await },
        |s| persist_err(s, g.id),
    )
    .await?;
    let notice = event(
        GroupEventKind::AdminPromoted,
        &g,
        users::info(target.id, &target.name),
        me.uid,
    );
    changed(
        &shared,
        &me,
        &g,
        |e| e.set_role(target.id, ROLE_ADMIN),
        notice,
        &[],
    )
    .await;
    Ok(Body::Done(pb::Done {}))
}

pub async fn delete(conn: &mut Conn, r: pb::DeleteGroupRequest) -> Result<Body> {
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    let g = as_role(&shared, &me, r.group_id, ROLE_OWNER, "delete the group").await?;
    let request = db::DeleteGroupRequest {
        group_id: g.id,
        by_user: me.uid,
    };
    persist(
        &shared,
        |mut d| async move { d.delete_group(request).await },
        |s| persist_err(s, g.id),
    )
    .await?;
    invalidate::everywhere(&shared, &[], &[g.id]).await;
    let notice = event(GroupEventKind::GroupDeleted, &g, None, me.uid);
    notify::users(&shared, &g.uids(), notice, me.session_id).await;
    Ok(Body::Done(pb::Done {}))
}

pub async fn list_members(conn: &mut Conn, r: pb::ListMembersRequest) -> Result<Body> {
    let me = conn.logged_in()?.uid;
    let g = social::group(&conn.shared, r.group_id, me).await?;
    let all = g
        .members
        .iter()
        .map(|m| pb::MemberInfo {
            user: users::info(m.id, &m.name),
            role: m.role,
            joined_at_ms: m.joined_at_ms,
        })
        .collect();
    let (members, page) = Page::of(&conn.shared, r.page.as_ref()).cut("members", all, |m| {
        id_key(m.user.as_ref().map_or(0, |u| u.user_id))
    });
    Ok(Body::Members(pb::MembersReply {
        members,
        page: Some(page),
    }))
}
