//! Domain types -> wire types (persist.proto).

use confab_proto::persist as pb;

use crate::db::friends::FriendRequest;
use crate::db::groups::{Group, JoinRequest, Member};
use crate::db::history::{ConversationState, StoredMessage};
use crate::db::invites::{Invite, InviteAnswer, Invited};
use crate::db::users::{Session, User};

pub fn user(u: User) -> pb::User {
    pb::User {
        id: u.id,
        name: u.name,
        created_at_ms: u.created_at_ms,
    }
}

pub fn session(s: Session) -> pb::Session {
    pb::Session {
        user: Some(user(s.user)),
        token: s.token,
        device: s.device,
    }
}

/// Database state codes (1 pending, 2 accepted, 3 declined) are the proto
/// enum values.
fn state(s: i16) -> i32 {
    i32::from(s)
}

pub fn friend_request(r: FriendRequest) -> pb::FriendRequestMsg {
    pb::FriendRequestMsg {
        from_user: r.from_user,
        to_user: r.to_user,
        note: r.note,
        state: state(r.state),
        created_at_ms: r.created_at_ms,
    }
}

pub fn group(g: Group) -> pb::Group {
    pb::Group {
        id: g.id,
        conversation_id: format!("g:{}", g.id),
        name: g.name,
        owner: g.owner,
        created_at_ms: g.created_at_ms,
    }
}

/// Database roles (1 member, 2 admin, 3 owner) are the proto enum values.
pub fn member(m: Member) -> pb::Member {
    pb::Member {
        user: m.user,
        role: i32::from(m.role),
        joined_at_ms: m.joined_at_ms,
        name: m.name,
    }
}

pub fn invite(i: Invite) -> pb::InviteMsg {
    pb::InviteMsg {
        group: Some(group(i.group)),
        user: i.user,
        invited_by: i.invited_by,
        created_at_ms: i.created_at_ms,
    }
}

pub fn invited(i: Invited) -> pb::InviteMemberReply {
    use pb::invite_member_reply::Outcome;
    pb::InviteMemberReply {
        outcome: Some(match i {
            Invited::Pending(i) => Outcome::Pending(invite(i)),
            Invited::Joined(m) => Outcome::Joined(member(m)),
        }),
    }
}

pub fn invite_answer(a: InviteAnswer) -> pb::RespondInviteReply {
    pb::RespondInviteReply {
        invite: Some(invite(a.invite)),
        member: a.member.map(member),
    }
}

pub fn join_request(r: JoinRequest) -> pb::JoinRequestMsg {
    pb::JoinRequestMsg {
        group_id: r.group_id,
        user: r.user,
        note: r.note,
        state: state(r.state),
        created_at_ms: r.created_at_ms,
    }
}

pub fn message(m: StoredMessage) -> pb::StoredMessage {
    pb::StoredMessage {
        message_id: m.message_id,
        conversation_id: m.conversation_id,
        seq: m.seq,
        sender: m.sender,
        body: m.body,
        client_msg_id: m.client_msg_id,
        server_time_ms: m.server_time_ms,
        recalled: m.recalled,
        recall_of: m.recall_of,
    }
}

pub fn conversation(c: ConversationState) -> pb::ConversationState {
    pb::ConversationState {
        conversation_id: c.conversation_id,
        seq: c.seq,
        last_message_id: c.last_message_id,
        updated_at_ms: c.updated_at_ms,
        read_seq: c.read_seq,
        unread_count: c.unread_count,
        peer_read_seq: c.peer_read_seq,
    }
}

#[cfg(test)]
mod tests {
    use confab_proto::persist::{RequestState, Role};

    use crate::db::friends::{ACCEPTED, DECLINED, PENDING};
    use crate::db::groups::{ADMIN, MEMBER, OWNER};

    #[test]
    fn codes_match_the_proto_enums() {
        assert_eq!(i32::from(PENDING), RequestState::Pending as i32);
        assert_eq!(i32::from(ACCEPTED), RequestState::Accepted as i32);
        assert_eq!(i32::from(DECLINED), RequestState::Declined as i32);
        assert_eq!(i32::from(MEMBER), Role::Member as i32);
        assert_eq!(i32::from(ADMIN), Role::Admin as i32);
        assert_eq!(i32::from(OWNER), Role::Owner as i32);
    }
}
