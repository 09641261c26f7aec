//! One handler per request kind ([`dispatch`]), and [`Conn`], the state of
//! one connection the handlers work on (its login, its send queue).
//!
//! - `auth`: register, login (password), resume (token), logout;
//! - `send`: a 1:1 message: validate, id, enqueue + confirm, deliver, ack;
//! - `sync`: which conversations moved, fetch after a sequence, history
//!   pages (participants only), user lookup;
//! - `friends`: user search, friend requests, the friend list with
//!   presence;
//! - `groups`: group life cycle and membership; `group_send`: a message to
//!   every member.

mod auth;
mod friends;
mod group_send;
mod groups;
mod send;
mod sync;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};
use confab_proto::persist::data_service_client::DataServiceClient;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::frame;
use crate::registry::SessionHandle;
use crate::state::Shared;

pub use auth::{kick_remote_or_local, kicked_frame as kicked_frame_for};
pub use send::SendOrder;

/// The login of a connection.
#[derive(Debug, Clone)]
pub struct Login {
    pub uid: u64,
    pub name: String,
    pub session_id: u64,
    pub token: String,
    pub device_id: String,
}

/// One connection as the handlers see it (a clone serves a request that
/// runs beside the connection's others).
#[derive(Clone)]
pub struct Conn {
    pub shared: Arc<Shared>,
    tx: mpsc::Sender<Bytes>,
    kill: CancellationToken,
    pub login: Option<Login>,
}

impl Conn {
    pub fn new(shared: Arc<Shared>, tx: mpsc::Sender<Bytes>, kill: CancellationToken) -> Self {
        Self {
            shared,
            tx,
            kill,
            login: None,
        }
    }

    pub fn send(&self, request_id: u64, body: Body) {
        self.queue(frame::encode(request_id, body));
    }

    pub fn send_error(&self, request_id: u64, e: &Error) {
        self.queue(frame::error(request_id, e));
    }

    fn queue(&self, bytes: Bytes) {
        // Same rule as pushes: a full queue means the client does not read.
        self.handle(0, String::new()).push(bytes);
    }

    /// A handle for the registry (pushes from elsewhere reach this queue).
    pub fn handle(&self, uid: u64, device_id: String) -> SessionHandle {
        SessionHandle {
            uid,
            device_id,
            tx: self.tx.clone(),
            kill: self.kill.clone(),
        }
    }

    pub fn logged_in(&self) -> Result<&Login> {
        self.login.as_ref().ok_or(Error::NotLoggedIn)
    }

    /// The connection ends: forget the session here and in the router
    /// (on shutdown, deregistering the gateway purges them all at once),
    /// then tell the user's friends.
    pub async fn end(&mut self) {
        let Some(login) = self.login.take() else { return };
        self.shared.registry.remove(login.session_id);
        if self.shared.registry.of_user(login.uid).is_empty() {
            self.shared.presence.untrack(login.uid);
        }
        if self.shared.shutdown.is_cancelled() {
            return;
        }
        let shared = self.shared.clone();
        let timeout = self.shared.rpc_timeout();
        tokio::spawn(async move {
            match tokio::time::timeout(timeout, shared.router.logout(login.uid, login.session_id)).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, uid = login.uid, "logout on disconnect failed"),
                Err(_) => tracing::warn!(uid = login.uid, "logout on disconnect timed out"),
            }
            crate::presence::announce(shared, login.uid, false).await;
        });
    }
}

/// Runs the handler of one request.
pub async fn dispatch(conn: &mut Conn, body: Body) -> Result<Body> {
    match body {
        Body::Ping(_) => Ok(Body::Pong(pb::Pong {})),
        Body::Register(r) => auth::register(conn, r).await,
        Body::Login(r) => auth::login(conn, r).await,
        Body::Resume(r) => auth::resume(conn, r).await,
        Body::Logout(_) => auth::logout(conn).await,
        Body::Send(r) => {
            check_may_message(conn, &r).await?;
            send::send(conn, r).await
        }
        Body::GroupSend(r) => group_send::group_send(conn, r).await,
        Body::Sync(r) => sync::sync(conn, r).await,
        Body::Fetch(r) => sync::fetch(conn, r).await,
        Body::History(r) => sync::history(conn, r).await,
        Body::LookupUser(r) => sync::lookup_user(conn, r).await,
        Body::SearchUsers(r) => friends::search_users(conn, r).await,
        Body::AddFriend(r) => friends::add_friend(conn, r).await,
        Body::RespondFriend(r) => friends::respond_friend(conn, r).await,
        Body::RemoveFriend(r) => friends::remove_friend(conn, r).await,
        Body::ListFriends(_) => friends::list_friends(conn).await,
        Body::ListFriendRequests(_) => friends::list_friend_requests(conn).await,
        Body::CreateGroup(r) => groups::create_group(conn, r).await,
        Body::ListGroups(_) => groups::list_groups(conn).await,
        Body::Invite(r) => groups::invite(conn, r).await,
        Body::JoinGroup(r) => groups::join(conn, r).await,
        Body::RespondJoin(r) => groups::respond_join(conn, r).await,
        Body::ListJoinRequests(r) => groups::list_join_requests(conn, r).await,
        Body::LeaveGroup(r) => groups::leave(conn, r).await,
        Body::RemoveMember(r) => groups::remove_member(conn, r).await,
        Body::Promote(r) => groups::promote(conn, r).await,
        Body::DeleteGroup(r) => groups::delete(conn, r).await,
        Body::ListMembers(r) => groups::list_members(conn, r).await,
        other => Err(Error::UnknownRequest(frame::kind(&other))),
    }
}

/// The ordered part of a 1:1 send (see [`send::begin`]); the returned
/// future finishes it.
pub async fn begin_send(conn: &Conn, r: pb::SendRequest, order: &mut SendOrder) -> Result<send::Finish> {
    check_may_message(conn, &r).await?;
    send::begin(conn, r, order).await
}

/// 1:1 messages need friendship unless `allow_strangers` (a message to
/// oneself is always fine). The recipient is resolved here as the send
/// itself resolves it (cached), so an unknown user is USER_NOT_FOUND.
async fn check_may_message(conn: &Conn, r: &pb::SendRequest) -> Result<()> {
    let me = conn.logged_in()?.uid;
    let shared = &conn.shared;
    if shared.config.allow_strangers {
        return Ok(());
    }
    let to = if r.to_user != 0 {
        if !shared.users.has_id(r.to_user) {
            let key = confab_proto::persist::get_user_request::Key::Id(r.to_user);
            send::get_user(shared, key, r.to_user.to_string()).await?;
        }
        r.to_user
    } else if !r.to_name.is_empty() {
        match shared.users.id_of(&r.to_name) {
            Some(id) => id,
            None => {
                let key = confab_proto::persist::get_user_request::Key::Name(r.to_name.clone());
                send::get_user(shared, key, r.to_name.clone()).await?.id
            }
        }
    } else {
        // Let the send handler explain what is missing.
        return Ok(());
    };
    if to == me || crate::social::are_friends(shared, me, to).await? {
        Ok(())
    } else {
        Err(Error::NotPermitted(format!(
            "user {me} and user {to} are not friends: send a friend request first"
        )))
    }
}

/// The metrics name of the friend and group frame kinds.
pub fn social_kind(body: &Body) -> &'static str {
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
        _ => "other",
    }
}

/// Bounds a call to a dependency by the configured RPC timeout.
pub async fn timed<T>(
    shared: &Shared,
    what: &'static str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(shared.rpc_timeout(), fut)
        .await
        .map_err(|_| Error::Unavailable {
            what,
            detail: "timed out".into(),
        })?
}

/// One call to persist's data service, bounded by the RPC timeout; a
/// refused call becomes the client's error through `on_error` (most pass
/// [`Error::from_persist`] with what a NotFound means for them).
pub async fn persist<T, Fut>(
    shared: &Shared,
    call: impl FnOnce(DataServiceClient<Channel>) -> Fut,
    on_error: impl FnOnce(tonic::Status) -> Error,
) -> Result<T>
where
    Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
{
    let reply = timed(shared, "persist", async {
        call(shared.data()).await.map_err(on_error)
    })
    .await?;
    Ok(reply.into_inner())
}
