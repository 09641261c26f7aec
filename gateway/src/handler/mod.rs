//! One handler per request kind ([`dispatch`]), and [`Conn`], the state of
//! one connection the handlers work on (its login, its send queue).
//!
//! - `auth`: register, login (password), resume (token), logout;
//! - `send`: a 1:1 message: validate, id, enqueue + confirm, deliver, ack;
//! - `sync`: which conversations moved, fetch after a sequence, history
//!   pages, user lookup.

mod auth;
mod send;
mod sync;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::frame;
use crate::registry::SessionHandle;
use crate::state::Shared;

pub use auth::{kick_remote_or_local, kicked_frame as kicked_frame_for};

/// The login of a connection.
#[derive(Debug, Clone)]
pub struct Login {
    pub uid: u64,
    pub name: String,
    pub session_id: u64,
    pub token: String,
    pub device_id: String,
}

/// One connection as the handlers see it.
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
    /// (on shutdown, deregistering the gateway purges them all at once).
    pub async fn end(&mut self) {
        let Some(login) = self.login.take() else { return };
        self.shared.registry.remove(login.session_id);
        if self.shared.shutdown.is_cancelled() {
            return;
        }
        let router = self.shared.router.clone();
        let timeout = self.shared.rpc_timeout();
        tokio::spawn(async move {
            match tokio::time::timeout(timeout, router.logout(login.uid, login.session_id)).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, uid = login.uid, "logout on disconnect failed"),
                Err(_) => tracing::warn!(uid = login.uid, "logout on disconnect timed out"),
            }
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
        Body::Send(r) => send::send(conn, r).await,
        Body::Sync(r) => sync::sync(conn, r).await,
        Body::Fetch(r) => sync::fetch(conn, r).await,
        Body::History(r) => sync::history(conn, r).await,
        Body::LookupUser(r) => sync::lookup_user(conn, r).await,
        other => Err(Error::UnknownRequest(frame::kind(&other))),
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
