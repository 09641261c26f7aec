//! The top of the client side: one handler per request kind
//! ([`dispatch`]), working on [`Conn`], the state of one connection.
//!
//! - `auth`: register, login (password), resume (token), logout;
//! - `send`: a 1:1 message: who may message whom, validate, id, enqueue +
//!   confirm, deliver, ack;
//! - `sync`: which conversations moved, fetch after a sequence, history
//!   pages (participants only), user lookup;
//! - `friends`: user search, friend requests, the friend list with
//!   presence;
//! - `groups`: group life cycle and membership; `group_send`: a message to
//!   every member;
//! - `read`: mark a conversation read, receipts to the other user and the
//!   reader's other devices; `typing`: typing notices (never stored, gated
//!   per connection); `recall`: take one's own message back within the
//!   window, every participant's devices told;
//! - `conversation`: the conversation a read or typing request names;
//! - `message`: what every message (1:1 or group) must be, and who may
//!   message whom;
//! - `page`: how every list answer is cut into pages.
//!
//! Handlers use services, state and the wire codec below them, never each
//! other: what two handlers need lives in a lower module (or in `conn`,
//! `conversation`, `message` and `page` here, which use no handler).

mod auth;
mod checks;
pub mod conn;
mod conversation;
mod friends;
mod group_send;
mod groups;
mod message;
mod page;
mod read;
mod recall;
mod send;
mod sync;
mod typing;

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};

pub use checks::precheck;
pub use conn::{Conn, Login};
pub use send::{Finish, SendOrder};

use crate::error::{Error, Result};
use crate::wire::frame;

/// Runs the handler of one request.
pub async fn dispatch(conn: &mut Conn, body: Body) -> Result<Body> {
    match body {
        Body::Ping(_) => Ok(Body::Pong(pb::Pong {})),
        Body::Register(r) => auth::register(conn, r).await,
        Body::Login(r) => auth::login(conn, r).await,
        Body::Resume(r) => auth::resume(conn, r).await,
        Body::Logout(_) => auth::logout(conn).await,
        Body::Send(r) => send::send(conn, r).await,
        Body::GroupSend(r) => group_send::group_send(conn, r).await,
        Body::Sync(r) => sync::sync(conn, r).await,
        Body::Fetch(r) => sync::fetch(conn, r).await,
        Body::History(r) => sync::history(conn, r).await,
        Body::LookupUser(r) => sync::lookup_user(conn, r).await,
        Body::SearchUsers(r) => friends::search_users(conn, r).await,
        Body::AddFriend(r) => friends::add_friend(conn, r).await,
        Body::RespondFriend(r) => friends::respond_friend(conn, r).await,
        Body::RemoveFriend(r) => friends::remove_friend(conn, r).await,
        Body::ListFriends(r) => friends::list_friends(conn, r).await,
        Body::ListFriendRequests(r) => friends::list_friend_requests(conn, r).await,
        Body::CreateGroup(r) => groups::create_group(conn, r).await,
        Body::ListGroups(r) => groups::list_groups(conn, r).await,
        Body::Invite(r) => groups::invite(conn, r).await,
        Body::RespondInvite(r) => groups::respond_invite(conn, r).await,
        Body::ListInvites(r) => groups::list_invites(conn, r).await,
        Body::JoinGroup(r) => groups::join(conn, r).await,
        Body::RespondJoin(r) => groups::respond_join(conn, r).await,
        Body::ListJoinRequests(r) => groups::list_join_requests(conn, r).await,
        Body::LeaveGroup(r) => groups::leave(conn, r).await,
        Body::RemoveMember(r) => groups::remove_member(conn, r).await,
        Body::Promote(r) => groups::promote(conn, r).await,
        Body::DeleteGroup(r) => groups::delete(conn, r).await,
        Body::ListMembers(r) => groups::list_members(conn, r).await,
        Body::MarkRead(r) => read::mark_read(conn, r).await,
        Body::Typing(r) => typing::typing(conn, r).await,
        Body::Recall(r) => recall::recall(conn, r).await,
        other => Err(Error::UnknownRequest(frame::kind(&other))),
    }
}

/// The ordered part of a 1:1 send (`send::begin`); the returned
/// future finishes it.
pub async fn begin_send(conn: &Conn, r: pb::SendRequest, order: &mut SendOrder) -> Result<Finish> {
    send::begin(conn, r, order).await
}
