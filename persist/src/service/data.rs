//! The gRPC `DataService`: synchronous data access for the gateways.

use confab_proto::persist as pb;
use confab_proto::persist::data_service_server::DataService;
use tonic::{Request, Response, Status};

use super::{PersistService, convert};
use crate::error::Error;

type R<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl DataService for PersistService {
    async fn create_user(&self, r: Request<pb::CreateUserRequest>) -> R<pb::User> {
        let r = r.into_inner();
        let out = self.db.create_user(&r.name, &r.password).await.map(convert::user);
        self.reply("create_user", out)
    }

    async fn authenticate(&self, r: Request<pb::AuthenticateRequest>) -> R<pb::Session> {
        let r = r.into_inner();
        let out = self
            .db
            .authenticate(&r.name, &r.password, &r.device)
            .await
            .map(convert::session);
        self.reply("authenticate", out)
    }

    async fn resume_session(&self, r: Request<pb::ResumeSessionRequest>) -> R<pb::Session> {
        let out = self
            .db
            .resume_session(&r.into_inner().token)
            .await
            .map(convert::session);
        self.reply("resume_session", out)
    }

    async fn revoke_session(&self, r: Request<pb::RevokeSessionRequest>) -> R<pb::Empty> {
        let out = self
            .db
            .revoke_session(&r.into_inner().token)
            .await
            .map(|_| pb::Empty {});
        self.reply("revoke_session", out)
    }

    async fn revoke_devices(&self, r: Request<pb::RevokeDevicesRequest>) -> R<pb::Empty> {
        let r = r.into_inner();
        let out = self
            .db
            .revoke_devices(r.user, &r.devices)
            .await
            .map(|_| pb::Empty {});
        self.reply("revoke_devices", out)
    }

    async fn get_user(&self, r: Request<pb::GetUserRequest>) -> R<pb::User> {
        use pb::get_user_request::Key;
        let out = match r.into_inner().key {
            Some(Key::Id(id)) => self.db.get_user(id).await,
            Some(Key::Name(name)) => self.db.get_user_by_name(&name).await,
            None => Err(Error::Invalid("give an id or a name".into())),
        };
        self.reply("get_user", out.map(convert::user))
    }

    async fn get_users(&self, r: Request<pb::GetUsersRequest>) -> R<pb::UsersReply> {
        let out = self
            .db
            .get_users(&r.into_inner().ids)
            .await
            .map(|u| pb::UsersReply {
                users: u.into_iter().map(convert::user).collect(),
            });
        self.reply("get_users", out)
    }

    async fn search_users(&self, r: Request<pb::SearchUsersRequest>) -> R<pb::UsersReply> {
        let r = r.into_inner();
        let out = self
            .db
            .search_users(&r.prefix, &r.after, r.limit)
            .await
            .map(|u| pb::UsersReply {
                users: u.into_iter().map(convert::user).collect(),
            });
        self.reply("search_users", out)
    }

    async fn send_friend_request(
        &self,
        r: Request<pb::SendFriendRequestRequest>,
    ) -> R<pb::SendFriendRequestReply> {
        let r = r.into_inner();
        let out = self
            .db
            .send_friend_request(r.from_user, r.to_user, &r.note)
            .await
            .map(|(req, became_friends)| pb::SendFriendRequestReply {
                request: Some(convert::friend_request(req)),
                became_friends,
            });
        self.reply("send_friend_request", out)
    }

    async fn respond_friend_request(
        &self,
        r: Request<pb::RespondFriendRequestRequest>,
    ) -> R<pb::FriendRequestMsg> {
        let r = r.into_inner();
        let out = self
            .db
            .respond_friend_request(r.user, r.from_user, r.accept)
            .await
            .map(convert::friend_request);
        self.reply("respond_friend_request", out)
    }

    async fn list_friend_requests(
        &self,
        r: Request<pb::ListFriendRequestsRequest>,
    ) -> R<pb::FriendRequestsReply> {
        let out = self
            .db
            .list_friend_requests(r.into_inner().user)
            .await
            .map(|(i, o)| pb::FriendRequestsReply {
                incoming: i.into_iter().map(convert::friend_request).collect(),
                outgoing: o.into_iter().map(convert::friend_request).collect(),
            });
        self.reply("list_friend_requests", out)
    }

    async fn list_friends(&self, r: Request<pb::ListFriendsRequest>) -> R<pb::FriendsReply> {
        let out = self
            .db
            .list_friends(r.into_inner().user)
            .await
            .map(|f| pb::FriendsReply {
                friends: f.into_iter().map(convert::user).collect(),
            });
        self.reply("list_friends", out)
    }

    async fn remove_friend(&self, r: Request<pb::RemoveFriendRequest>) -> R<pb::Empty> {
        let r = r.into_inner();
        let out = self
            .db
            .remove_friend(r.user, r.friend)
            .await
            .map(|_| pb::Empty {});
        self.reply("remove_friend", out)
    }

    async fn create_group(&self, r: Request<pb::CreateGroupRequest>) -> R<pb::Group> {
        let r = r.into_inner();
        let out = self.db.create_group(r.owner, &r.name).await.map(convert::group);
        self.reply("create_group", out)
    }

    async fn get_group(&self, r: Request<pb::GroupRef>) -> R<pb::Group> {
        let out = self
            .db
            .get_group(r.into_inner().group_id)
            .await
            .map(convert::group);
        self.reply("get_group", out)
    }

    async fn delete_group(&self, r: Request<pb::DeleteGroupRequest>) -> R<pb::Empty> {
        let r = r.into_inner();
        let out = self
            .db
            .delete_group(r.group_id, r.by_user)
            .await
            .map(|_| pb::Empty {});
        self.reply("delete_group", out)
    }

    async fn list_groups(&self, r: Request<pb::ListGroupsRequest>) -> R<pb::GroupsReply> {
        let out = self
            .db
            .list_groups(r.into_inner().user)
            .await
            .map(|g| pb::GroupsReply {
                groups: g.into_iter().map(convert::group).collect(),
            });
        self.reply("list_groups", out)
    }

    async fn list_members(&self, r: Request<pb::ListMembersRequest>) -> R<pb::MembersReply> {
        let r = r.into_inner();
        let out = self
            .db
            .list_members(r.group_id, r.by_user)
            .await
            .map(|m| pb::MembersReply {
                members: m.into_iter().map(convert::member).collect(),
            });
        self.reply("list_members", out)
    }

    async fn invite_member(&self, r: Request<pb::InviteMemberRequest>) -> R<pb::InviteMemberReply> {
        let r = r.into_inner();
        let out = self
            .db
            .invite_member(r.group_id, r.user, r.by_user)
            .await
            .map(convert::invited);
        self.reply("invite_member", out)
    }

    async fn respond_invite(&self, r: Request<pb::RespondInviteRequest>) -> R<pb::RespondInviteReply> {
        let r = r.into_inner();
        let out = self
            .db
            .respond_invite(r.group_id, r.user, r.accept)
            .await
            .map(convert::invite_answer);
        self.reply("respond_invite", out)
    }

    async fn list_invites(&self, r: Request<pb::ListInvitesRequest>) -> R<pb::InvitesReply> {
        let out = self
            .db
            .list_invites(r.into_inner().user)
            .await
            .map(|i| pb::InvitesReply {
                invites: i.into_iter().map(convert::invite).collect(),
            });
        self.reply("list_invites", out)
    }

    async fn remove_member(&self, r: Request<pb::RemoveMemberRequest>) -> R<pb::Empty> {
        let r = r.into_inner();
        let out = self
            .db
            .remove_member(r.group_id, r.user, r.by_user)
            .await
            .map(|_| pb::Empty {});
        self.reply("remove_member", out)
    }

    async fn promote_admin(&self, r: Request<pb::PromoteAdminRequest>) -> R<pb::Member> {
        let r = r.into_inner();
        let out = self
            .db
            .promote_admin(r.group_id, r.user, r.by_user)
            .await
            .map(convert::member);
        self.reply("promote_admin", out)
    }

    async fn request_join(&self, r: Request<pb::RequestJoinRequest>) -> R<pb::JoinRequestReply> {
        let r = r.into_inner();
        let out = async {
            let req = self.db.request_join(r.group_id, r.user, &r.note).await?;
            let approvers = self.db.approvers(r.group_id).await?;
            Ok(pb::JoinRequestReply {
                request: Some(convert::join_request(req)),
                approvers,
            })
        }
        .await;
        self.reply("request_join", out)
    }

    async fn respond_join(&self, r: Request<pb::RespondJoinRequest>) -> R<pb::JoinRequestMsg> {
        let r = r.into_inner();
        let out = self
            .db
            .respond_join(r.group_id, r.user, r.by_user, r.accept)
            .await
            .map(convert::join_request);
        self.reply("respond_join", out)
    }

    async fn list_join_requests(&self, r: Request<pb::ListJoinRequestsRequest>) -> R<pb::JoinRequestsReply> {
        let r = r.into_inner();
        let out = self
            .db
            .list_join_requests(r.group_id, r.by_user)
            .await
            .map(|j| pb::JoinRequestsReply {
                requests: j.into_iter().map(convert::join_request).collect(),
            });
        self.reply("list_join_requests", out)
    }

    async fn leave_group(&self, r: Request<pb::LeaveGroupRequest>) -> R<pb::Empty> {
        let r = r.into_inner();
        let out = self
            .db
            .leave_group(r.group_id, r.user)
            .await
            .map(|_| pb::Empty {});
        self.reply("leave_group", out)
    }

    async fn history(&self, r: Request<pb::HistoryRequest>) -> R<pb::MessagesReply> {
        let r = r.into_inner();
        let out = async {
            let written = self.wait_written(r.min_message_id).await?;
            let m = self
                .db
                .history(r.user, &r.conversation_id, r.before_seq, r.limit)
                .await?;
            Ok::<_, Error>((m, written))
        }
        .await
        .map(|(m, written)| pb::MessagesReply {
            messages: m.into_iter().map(convert::message).collect(),
            not_yet_written: !written,
        });
        self.reply("history", out)
    }

    async fn messages_after(&self, r: Request<pb::MessagesAfterRequest>) -> R<pb::MessagesReply> {
        let r = r.into_inner();
        let out = async {
            let written = self.wait_written(r.min_message_id).await?;
            let m = self
                .db
                .messages_after(r.user, &r.conversation_id, r.after_seq, r.limit)
                .await?;
            Ok::<_, Error>((m, written))
        }
        .await
        .map(|(m, written)| pb::MessagesReply {
            messages: m.into_iter().map(convert::message).collect(),
            not_yet_written: !written,
        });
        self.reply("messages_after", out)
    }

    async fn changed_conversations(
        &self,
        r: Request<pb::ChangedConversationsRequest>,
    ) -> R<pb::ChangedConversationsReply> {
        let r = r.into_inner();
        let out = self
            .db
            .changed_conversations(r.user, r.since)
            .await
            .map(|(c, cursor)| pb::ChangedConversationsReply {
                conversations: c.into_iter().map(convert::conversation).collect(),
                server_time_ms: crate::db::now_ms(),
                cursor,
            });
        self.reply("changed_conversations", out)
    }

    async fn find_sent(&self, r: Request<pb::FindSentRequest>) -> R<pb::FindSentReply> {
        let r = r.into_inner();
        let out = self
            .find_sent(r.sender, &r.client_msg_id, r.wait_for)
            .await
            .map(|m| pb::FindSentReply {
                message: m.map(convert::message),
            });
        self.reply("find_sent", out)
    }

    async fn mark_read(&self, r: Request<pb::MarkReadRequest>) -> R<pb::MarkReadReply> {
        let r = r.into_inner();
        let out = self
            .db
            .mark_read(r.user, &r.conversation_id, r.seq)
            .await
            .map(|(read_seq, moved)| pb::MarkReadReply { read_seq, moved });
        self.reply("mark_read", out)
    }

    async fn recall(&self, r: Request<pb::RecallRequest>) -> R<pb::RecallReply> {
        let r = r.into_inner();
        let out = async {
            if r.wait_written {
                self.wait_written(r.message_id).await?;
            }
            self.db
                .recall(r.user, r.message_id, r.entry_id, r.window_ms)
                .await
        }
        .await
        .map(|done| pb::RecallReply {
            entry: Some(convert::message(done.entry)),
            repeated: done.repeated,
        });
        self.reply("recall", out)
    }
}
