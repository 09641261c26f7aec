//! [`Conn`]: one connection as the handlers see it (its login, its send
//! queue, its kill switch), and [`Login`].

use std::sync::Arc;

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use confab_proto::client::frame::Body;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::service::presence;
use crate::state::Shared;
use crate::state::outbox::Outbox;
use crate::state::reads::ReadWaits;
use crate::state::registry::SessionHandle;
use crate::state::typing::TypingGate;
use crate::wire::frame;

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
    tx: Outbox,
    kill: CancellationToken,
    pub login: Option<Login>,
    /// The client's address (limits per address).
    pub peer: IpAddr,
    /// The messages it was told of, and its reads waiting for them.
    pub reads: Arc<ReadWaits>,
    /// When its last typing notice per conversation went out.
    pub typing: Arc<TypingGate>,
}

impl Conn {
    pub fn new(shared: Arc<Shared>, tx: Outbox, kill: CancellationToken, peer: IpAddr) -> Self {
        let reads = Arc::new(ReadWaits::new(shared.config.user_limits.max_read_waits));
        let typing = Arc::new(TypingGate::new(Duration::from_millis(
            shared.config.user_limits.typing_interval_ms,
        )));
        Self {
            typing,
            shared,
            tx,
            kill,
            login: None,
            peer,
            reads,
        }
    }

    /// Answers a request (a send's ack makes its id one the connection's
    /// reads may wait for).
    pub fn send(&self, request_id: u64, body: Body) {
        if let Body::SendAck(ack) = &body {
            self.reads.known(ack.message_id);
        }
        self.queue(frame::encode(request_id, body));
    }

    /// Answers with an error frame; what it logs server-side (an internal
    /// or unavailable cause) names the user and the request.
    pub fn send_error(&self, request_id: u64, e: &Error) {
        let uid = self.login.as_ref().map_or(0, |l| l.uid);
        let _request = tracing::info_span!("request", uid, request_id).entered();
        self.queue(frame::error(request_id, e));
    }

    fn queue(&self, bytes: Bytes) {
        // An answer: no request is read while the queue is at its bound,
        // so answers are bounded by the requests in flight.
        self.tx.answer(bytes);
    }

    /// A handle for the registry (pushes from elsewhere reach this queue).
    pub fn handle(&self, uid: u64, device_id: String) -> SessionHandle {
        SessionHandle {
            uid,
            device_id,
            tx: self.tx.clone(),
            kill: self.kill.clone(),
            reads: self.reads.clone(),
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
            presence::announce(shared, login.uid, false).await;
        });
    }
}
