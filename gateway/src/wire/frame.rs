//! Client frames: decoding, encoding (counted by kind), the push frames
//! built in more than one place (message, kicked), the kind names used by
//! metrics and logs, and error frames: [`error`] is the one place a gateway
//! [`Error`] becomes what a client reads.

use bytes::Bytes;
use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb, Frame, KickReason};
use prost::Message;

use crate::error::Error;
use crate::metrics;

pub fn decode(bytes: &[u8]) -> Result<Frame, Error> {
    Frame::decode(bytes).map_err(|e| Error::BadFrame(e.to_string()))
}

/// Encodes a frame and counts it.
pub fn encode(request_id: u64, body: Body) -> Bytes {
    metrics::FRAMES_OUT.with_label_values(&[kind(&body)]).inc();
    Bytes::from(
        Frame {
            request_id,
            body: Some(body),
        }
        .encode_to_vec(),
    )
}

/// An error frame (and counts the error by code).
pub fn error(request_id: u64, e: &Error) -> Bytes {
    metrics::ERRORS.with_label_values(&[e.code_name()]).inc();
    encode(request_id, Body::Error(to_wire(e)))
}

/// The error frame body. What a dependency or the gateway itself got wrong
/// stays in the server log (logged here, where the error is answered); the
/// client gets a generic message.
fn to_wire(e: &Error) -> pb::Error {
    let message = match e {
        Error::Internal(_) | Error::Config(_) | Error::Io(_) => {
            tracing::error!(error = %e, "internal error");
            "internal error".to_owned()
        }
        Error::Router(error) => {
            tracing::warn!(%error, "router call failed");
            "online-state service unavailable, retry".to_owned()
        }
        Error::Unavailable { what, detail } => {
            tracing::warn!(what, %detail, "dependency unavailable");
            format!("{what} unavailable, retry")
        }
        other => other.to_string(),
    };
    pb::Error {
        code: e.code() as i32,
        message,
        retry_after_ms: u32::try_from(e.retry_after_ms()).unwrap_or(u32::MAX),
    }
}

/// A push (request id 0).
pub fn push(body: Body) -> Bytes {
    encode(0, body)
}

pub fn message_push(m: pb::Message) -> Bytes {
    push(Body::MessagePush(pb::MessagePush { message: Some(m) }))
}

/// The push that tells a session it was replaced (before it is closed).
pub fn kicked(reason: KickReason, by_device: &str) -> Bytes {
    let message = match reason {
        KickReason::SameDevice => "logged in again from this device".to_owned(),
        _ => format!("logged in from device {by_device:?}; the multi-device policy allows no more sessions"),
    };
    push(Body::Kicked(pb::Kicked {
        reason: reason as i32,
        message,
        by_device_id: by_device.to_owned(),
    }))
}

/// The kind of a frame body, for metrics and logs.
pub fn kind(body: &Body) -> &'static str {
    match body {
        Body::Hello(_) => "hello",
        Body::HelloOk(_) => "hello_ok",
        Body::Error(_) => "error",
        Body::Ping(_) => "ping",
        Body::Pong(_) => "pong",
        Body::Register(_) => "register",
        Body::RegisterOk(_) => "register_ok",
        Body::Login(_) => "login",
        Body::Resume(_) => "resume",
        Body::LoginOk(_) => "login_ok",
        Body::Logout(_) => "logout",
        Body::LogoutOk(_) => "logout_ok",
        Body::Send(_) => "send",
        Body::SendAck(_) => "send_ack",
        Body::Sync(_) => "sync",
        Body::SyncReply(_) => "sync_reply",
        Body::Fetch(_) => "fetch",
        Body::History(_) => "history",
        Body::Messages(_) => "messages",
        Body::LookupUser(_) => "lookup_user",
        Body::User(_) => "user",
        Body::MessagePush(_) => "message_push",
        Body::Moved(_) => "moved",
        Body::Kicked(_) => "kicked",
        Body::Resync(_) => "resync",
        other => social_kind(other),
    }
}

/// The kind of the friend and group frame bodies.
fn social_kind(body: &Body) -> &'static str {
    match body {
        Body::FriendEvent(_) => "friend_event",
        Body::Presence(_) => "presence",
        Body::GroupEvent(_) => "group_event",
        Body::SearchUsers(_) => "search_users",
        Body::Users(_) => "users",
        Body::AddFriend(_) => "add_friend",
        Body::AddFriendOk(_) => "add_friend_ok",
        Body::RespondFriend(_) => "respond_friend",
        Body::RemoveFriend(_) => "remove_friend",
        Body::ListFriends(_) => "list_friends",
        Body::Friends(_) => "friends",
        Body::ListFriendRequests(_) => "list_friend_requests",
        Body::FriendRequests(_) => "friend_requests",
        Body::Done(_) => "done",
        Body::CreateGroup(_) => "create_group",
        Body::Group(_) => "group",
        Body::ListGroups(_) => "list_groups",
        Body::Groups(_) => "groups",
        Body::Invite(_) => "invite",
        Body::JoinGroup(_) => "join_group",
        Body::RespondJoin(_) => "respond_join",
        Body::ListJoinRequests(_) => "list_join_requests",
        Body::JoinRequests(_) => "join_requests",
        Body::LeaveGroup(_) => "leave_group",
        Body::RemoveMember(_) => "remove_member",
        Body::Promote(_) => "promote",
        Body::DeleteGroup(_) => "delete_group",
        Body::ListMembers(_) => "list_members",
        Body::Members(_) => "members",
        Body::GroupSend(_) => "group_send",
        Body::RespondInvite(_) => "respond_invite",
        Body::ListInvites(_) => "list_invites",
        Body::Invites(_) => "invites",
        Body::MarkRead(_) => "mark_read",
        Body::ReadReceipt(_) => "read_receipt",
        Body::Typing(_) => "typing",
        Body::TypingPush(_) => "typing_push",
        Body::Recall(_) => "recall",
        Body::Recalled(_) => "recalled",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use confab_proto::client::ErrorCode;

    use super::*;

    #[test]
    fn internal_details_do_not_reach_the_wire() {
        let w = to_wire(&Error::Internal("secret path /x".into()));
        assert_eq!(w.code, ErrorCode::Internal as i32);
        assert!(!w.message.contains("secret"));
        let w = to_wire(&Error::UserNotFound("zed".into()));
        assert_eq!(w.code, ErrorCode::UserNotFound as i32);
        assert!(w.message.contains("zed"));
        let w = to_wire(&Error::Unavailable {
            what: "persist",
            detail: "error returned from database: relation \"users\" does not exist".into(),
        });
        assert_eq!(w.code, ErrorCode::Unavailable as i32);
        assert_eq!(w.message, "persist unavailable, retry");
    }
}
