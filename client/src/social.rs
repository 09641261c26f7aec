//! Friends and groups: the requests of the client protocol's friend and
//! group sections, one method each. Pushes about them arrive through
//! [`Client::next_update`].

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};

use crate::chat::Client;
use crate::error::{Error, Result};
use crate::outbox::Unacked;
use crate::page::{first_page, next};

fn unexpected(what: &str, body: &Body) -> Error {
    Error::Protocol(format!("expected {what}, got {body:?}"))
}

fn by_name(name: &str) -> Option<pb::UserRef> {
    Some(pb::UserRef {
        user_id: 0,
        name: name.into(),
    })
}

impl Client {
    async fn done(&self, body: Body) -> Result<()> {
        match self.conn.request(body).await? {
            Body::Done(_) => Ok(()),
            other => Err(unexpected("Done", &other)),
        }
    }

    /// Users whose name starts with `prefix`, by name, after `after` (the
    /// last name of the previous page; "" for the first).
    pub async fn search_users(&self, prefix: &str, after: &str, limit: u32) -> Result<Vec<pb::UserInfo>> {
        let body = Body::SearchUsers(pb::SearchUsersRequest {
            prefix: prefix.into(),
            limit,
            after: after.into(),
        });
        match self.conn.request(body).await? {
            Body::Users(u) => Ok(u.users),
            other => Err(unexpected("Users", &other)),
        }
    }

    /// Asks `name` for friendship (they are friends at once when `name` had
    /// asked already: `became_friends`).
    pub async fn add_friend(&self, name: &str, note: &str) -> Result<pb::AddFriendReply> {
        let body = Body::AddFriend(pb::AddFriendRequest {
            user: by_name(name),
            note: note.into(),
        });
        match self.conn.request(body).await? {
            Body::AddFriendOk(r) => Ok(r),
            other => Err(unexpected("AddFriendOk", &other)),
        }
    }

    /// Accepts (or declines) the pending request of `name`.
    pub async fn respond_friend(&self, name: &str, accept: bool) -> Result<()> {
        self.done(Body::RespondFriend(pb::RespondFriendRequest {
            user: by_name(name),
            accept,
        }))
        .await
    }

    pub async fn accept_friend(&self, name: &str) -> Result<()> {
        self.respond_friend(name, true).await
    }

    pub async fn decline_friend(&self, name: &str) -> Result<()> {
        self.respond_friend(name, false).await
    }

    pub async fn remove_friend(&self, name: &str) -> Result<()> {
        self.done(Body::RemoveFriend(pb::RemoveFriendRequest {
            user: by_name(name),
        }))
        .await
    }

    /// My friends, by name, each with its presence and devices (every
    /// page).
    pub async fn friends(&self) -> Result<Vec<pb::FriendInfo>> {
        let mut out = Vec::new();
        let mut page = first_page();
        loop {
            let body = Body::ListFriends(pb::ListFriendsRequest { page: Some(page) });
            match self.conn.request(body).await? {
                Body::Friends(f) => {
                    out.extend(f.friends);
                    match next(f.page) {
                        Some(p) => page = p,
                        None => return Ok(out),
                    }
                }
                other => return Err(unexpected("Friends", &other)),
            }
        }
    }

    /// Pending friend requests: to me and from me (every page).
    pub async fn friend_requests(&self) -> Result<pb::FriendRequestsReply> {
        let mut out = pb::FriendRequestsReply::default();
        let mut page = first_page();
        loop {
            let body = Body::ListFriendRequests(pb::ListFriendRequestsRequest { page: Some(page) });
            match self.conn.request(body).await? {
                Body::FriendRequests(r) => {
                    out.incoming.extend(r.incoming);
                    out.outgoing.extend(r.outgoing);
                    match next(r.page) {
                        Some(p) => page = p,
                        None => return Ok(out),
                    }
                }
                other => return Err(unexpected("FriendRequests", &other)),
            }
        }
    }

    pub async fn create_group(&self, name: &str) -> Result<pb::GroupInfo> {
        let body = Body::CreateGroup(pb::CreateGroupRequest { name: name.into() });
        match self.conn.request(body).await? {
            Body::Group(g) => Ok(g),
            other => Err(unexpected("Group", &other)),
        }
    }

    /// The groups I am a member of (every page).
    pub async fn groups(&self) -> Result<Vec<pb::GroupInfo>> {
        let mut out = Vec::new();
        let mut page = first_page();
        loop {
            let body = Body::ListGroups(pb::ListGroupsRequest { page: Some(page) });
            match self.conn.request(body).await? {
                Body::Groups(g) => {
                    out.extend(g.groups);
                    match next(g.page) {
                        Some(p) => page = p,
                        None => return Ok(out),
                    }
                }
                other => return Err(unexpected("Groups", &other)),
            }
        }
    }

    /// Owner or admin: invites `name` to the group. It joins when it
    /// accepts ([`Client::accept_invite`]), or at once if it had asked to.
    pub async fn invite(&self, group_id: u64, name: &str) -> Result<()> {
        self.done(Body::Invite(pb::InviteRequest {
            group_id,
            user: by_name(name),
        }))
        .await
    }

    /// Accepts my pending invitation to the group: I am a member, and get
    /// the group.
    pub async fn accept_invite(&self, group_id: u64) -> Result<pb::GroupInfo> {
        let body = Body::RespondInvite(pb::RespondInviteRequest {
            group_id,
            accept: true,
        });
        match self.conn.request(body).await? {
            Body::Group(g) => Ok(g),
            other => Err(unexpected("Group", &other)),
        }
    }

    /// Declines my pending invitation to the group (the inviter is told).
    pub async fn decline_invite(&self, group_id: u64) -> Result<()> {
        self.done(Body::RespondInvite(pb::RespondInviteRequest {
            group_id,
            accept: false,
        }))
        .await
    }

    /// My pending invitations (every page).
    pub async fn invites(&self) -> Result<Vec<pb::InviteInfo>> {
        let mut out = Vec::new();
        let mut page = first_page();
        loop {
            let body = Body::ListInvites(pb::ListInvitesRequest { page: Some(page) });
            match self.conn.request(body).await? {
                Body::Invites(r) => {
                    out.extend(r.invites);
                    match next(r.page) {
                        Some(p) => page = p,
                        None => return Ok(out),
                    }
                }
                other => return Err(unexpected("Invites", &other)),
            }
        }
    }

    /// Asks to join; the owner and admins are told.
    pub async fn join_group(&self, group_id: u64, note: &str) -> Result<()> {
        self.done(Body::JoinGroup(pb::JoinGroupRequest {
            group_id,
            note: note.into(),
        }))
        .await
    }

    /// Owner or admin: approves (or denies) the request of `user_id`.
    pub async fn respond_join(&self, group_id: u64, user_id: u64, accept: bool) -> Result<()> {
        self.done(Body::RespondJoin(pb::RespondJoinRequest {
            group_id,
            user_id,
            accept,
        }))
        .await
    }

    pub async fn approve(&self, group_id: u64, user_id: u64) -> Result<()> {
        self.respond_join(group_id, user_id, true).await
    }

    pub async fn deny(&self, group_id: u64, user_id: u64) -> Result<()> {
        self.respond_join(group_id, user_id, false).await
    }

    /// Owner or admin: the pending join requests.
    pub async fn join_requests(&self, group_id: u64) -> Result<Vec<pb::JoinRequestInfo>> {
        let mut out = Vec::new();
        let mut page = first_page();
        loop {
            let body = Body::ListJoinRequests(pb::ListJoinRequestsRequest {
                group_id,
                page: Some(page),
            });
            match self.conn.request(body).await? {
                Body::JoinRequests(r) => {
                    out.extend(r.requests);
                    match next(r.page) {
                        Some(p) => page = p,
                        None => return Ok(out),
                    }
                }
                other => return Err(unexpected("JoinRequests", &other)),
            }
        }
    }

    pub async fn leave_group(&self, group_id: u64) -> Result<()> {
        self.done(Body::LeaveGroup(pb::LeaveGroupRequest { group_id }))
            .await
    }

    /// Owner or admin: removes member `user_id`.
    pub async fn remove_member(&self, group_id: u64, user_id: u64) -> Result<()> {
        self.done(Body::RemoveMember(pb::RemoveMemberRequest { group_id, user_id }))
            .await
    }

    /// Owner: makes member `user_id` an admin.
    pub async fn promote(&self, group_id: u64, user_id: u64) -> Result<()> {
        self.done(Body::Promote(pb::PromoteRequest { group_id, user_id }))
            .await
    }

    /// Owner: deletes the group.
    pub async fn delete_group(&self, group_id: u64) -> Result<()> {
        self.done(Body::DeleteGroup(pb::DeleteGroupRequest { group_id }))
            .await
    }

    /// Members only: the members and their roles.
    pub async fn members(&self, group_id: u64) -> Result<Vec<pb::MemberInfo>> {
        let mut out = Vec::new();
        let mut page = first_page();
        loop {
            let body = Body::ListMembers(pb::ListMembersRequest {
                group_id,
                page: Some(page),
            });
            match self.conn.request(body).await? {
                Body::Members(m) => {
                    out.extend(m.members);
                    match next(m.page) {
                        Some(p) => page = p,
                        None => return Ok(out),
                    }
                }
                other => return Err(unexpected("Members", &other)),
            }
        }
    }

    /// Sends `text` to every member of the group; Ok once durable.
    pub async fn group_send(
        &mut self,
        group_id: u64,
        text: &str,
        client_msg_id: &str,
    ) -> Result<pb::SendAck> {
        let client_msg_id = if client_msg_id.is_empty() {
            self.outbox.new_id()
        } else {
            client_msg_id.to_owned()
        };
        let req = pb::GroupSendRequest {
            group_id,
            body: text.into(),
            client_msg_id,
            resend: false,
            prev_message_id: self.last_sent_to(&format!("g:{group_id}")),
        };
        let body = Body::GroupSend(req.clone());
        self.send_tracked(Unacked::Group(req), body).await
    }

    /// A page of the group's history, newest first.
    pub async fn group_history(
        &self,
        group_id: u64,
        before_seq: u64,
        limit: u32,
    ) -> Result<Vec<pb::Message>> {
        self.history(&format!("g:{group_id}"), before_seq, limit).await
    }
}
