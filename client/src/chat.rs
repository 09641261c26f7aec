//! The chat client: login and resume, send and resend; what the
//! application receives ([`Event`], [`Update`]). The receive side itself is
//! in `receive`.

use std::collections::{HashMap, VecDeque};

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb, DeviceKind};

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::outbox::{Outbox, Unacked, answer_lost, not_settled};
use crate::state::{Held, SyncState};

/// What the application receives.
#[derive(Debug, Clone)]
pub enum Event {
    Message(pb::Message),
    /// A message shown before under `old_id` is stored under another id:
    /// its sender resent it (the first answer was lost) and the store kept
    /// the resend's copy. The same message, from now on by
    /// `message.message_id`; never a second message.
    Replaced {
        old_id: u64,
        message: pb::Message,
    },
    /// A message of a conversation was recalled by its sender (pushed, or
    /// found as a recall entry by a sync or a fetch).
    Recalled(pb::Recalled),
    /// This session was replaced by another login; the connection closes.
    Kicked(pb::Kicked),
    /// The gateway closed the connection with this error.
    Closed(Option<pb::Error>),
}

/// Anything the gateway pushes, for applications that show friends and
/// groups too ([`Client::next_update`]).
#[derive(Debug, Clone)]
pub enum Update {
    Event(Event),
    Friend(pb::FriendEvent),
    Presence(pb::PresenceChanged),
    Group(pb::GroupEvent),
    /// Someone read a conversation up to a sequence (the other user of a
    /// 1:1 conversation, or this user on another device).
    Receipt(pb::ReadReceipt),
    /// Someone is typing in a conversation.
    Typing(pb::Typing),
}

pub struct Client {
    pub conn: Connection,
    pub state: SyncState,
    pub me: Option<pb::LoginOk>,
    /// Sends awaiting their ack (sent again by [`Client::reconnect`]).
    pub outbox: Outbox,
    /// The device of the login, for resuming on a new connection.
    device: Option<(String, DeviceKind)>,
    pub(crate) ready: VecDeque<Event>,
    pub(crate) notices: VecDeque<Update>,
    /// This device's last acknowledged message per target
    /// ([`Unacked::target`]): the next send there names it, so receivers
    /// show the two in order.
    last_sent: HashMap<String, u64>,
    /// Pushes waiting, per conversation in arrival order, for their
    /// sender's previous message to be seen ([`Held`]).
    pub(crate) held: HashMap<String, Held>,
}

/// What [`Client::reconnect`] caught up with.
#[derive(Debug, Default)]
pub struct Reconnected {
    /// The acks of the sends that were waiting (the original's when the
    /// first attempt had been stored).
    pub acks: Vec<pb::SendAck>,
    /// Messages missed while away, in order, new ones only.
    pub messages: Vec<pb::Message>,
}

pub(crate) fn unexpected(what: &str, body: &Body) -> Error {
    Error::Protocol(format!("expected {what}, got {body:?}"))
}

impl Client {
    pub async fn connect(addr: &str) -> Result<Self> {
        Ok(Self::with_connection(Connection::connect(addr).await?))
    }

    /// Over TLS with `tls` (plain without).
    pub async fn connect_with(addr: &str, tls: Option<&crate::ClientTls>) -> Result<Self> {
        Ok(Self::with_connection(Connection::connect_with(addr, tls).await?))
    }

    pub fn with_connection(conn: Connection) -> Self {
        Self {
            conn,
            state: SyncState::default(),
            me: None,
            outbox: Outbox::default(),
            device: None,
            ready: VecDeque::new(),
            notices: VecDeque::new(),
            last_sent: HashMap::new(),
            held: HashMap::new(),
        }
    }

    pub fn uid(&self) -> u64 {
        self.me.as_ref().map_or(0, |m| m.user_id)
    }

    pub async fn register(&self, name: &str, password: &str) -> Result<pb::RegisterOk> {
        let body = Body::Register(pb::RegisterRequest {
            name: name.into(),
            password: password.into(),
        });
        match self.conn.request(body).await? {
            Body::RegisterOk(ok) => Ok(ok),
            other => Err(unexpected("RegisterOk", &other)),
        }
    }

    pub async fn login(
        &mut self,
        name: &str,
        password: &str,
        device_id: &str,
        kind: DeviceKind,
    ) -> Result<pb::LoginOk> {
        let body = Body::Login(pb::LoginRequest {
            name: name.into(),
            password: password.into(),
            device_id: device_id.into(),
            device_kind: kind as i32,
        });
        self.device = Some((device_id.to_owned(), kind));
        self.finish_login(body).await
    }

    pub async fn resume(&mut self, token: &str, device_id: &str, kind: DeviceKind) -> Result<pb::LoginOk> {
        let body = Body::Resume(pb::ResumeRequest {
            token: token.into(),
            device_id: device_id.into(),
            device_kind: kind as i32,
        });
        self.device = Some((device_id.to_owned(), kind));
        self.finish_login(body).await
    }

    /// Carries on over a new connection (the old one broke, or its gateway
    /// went away): resumes the session with its token, sends again every
    /// send still awaiting its ack (as resends: the gateway stores none
    /// twice and answers with the first attempt's ack), then syncs.
    /// Sends the gateway refuses now are dropped from the outbox and
    /// reported as the error, after the others went out.
    pub async fn reconnect(&mut self, conn: Connection) -> Result<Reconnected> {
        let (token, (device_id, kind)) = match (&self.me, &self.device) {
            (Some(me), Some(device)) => (me.token.clone(), device.clone()),
            _ => return Err(Error::Protocol("reconnect before any login".into())),
        };
        self.conn = conn;
        self.resume(&token, &device_id, kind).await?;
        let mut out = Reconnected::default();
        let refused = self.resend_into(&mut out.acks).await?;
        out.messages = self.sync().await?;
        match refused {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Sends the outbox again on this connection, in order, each marked as
    /// a resend (what [`Client::reconnect`] does): call it after a resend
    /// was answered "not yet" ([`not_settled`]), which leaves that send and
    /// those after it in the outbox. A send refused for good leaves the
    /// outbox; the first such refusal is the error.
    pub async fn resend_pending(&mut self) -> Result<Vec<pb::SendAck>> {
        let mut acks = Vec::new();
        match self.resend_into(&mut acks).await? {
            Some(e) => Err(e),
            None => Ok(acks),
        }
    }

    /// Resends the outbox in order into `acks`; `Ok(Some(e))` names the
    /// first send refused for good. Stops at the first send whose fate is
    /// still open (its answer lost, or "not yet" to a resend), keeping it
    /// and the later ones: a later send must not overtake it.
    async fn resend_into(&mut self, acks: &mut Vec<pb::SendAck>) -> Result<Option<Error>> {
        let mut refused = None;
        let pending: Vec<Unacked> = self.outbox.pending().cloned().collect();
        for send in pending {
            match self.conn.request(send.resend()).await {
                Ok(Body::SendAck(ack)) => {
                    self.outbox.done(send.client_msg_id());
                    self.acked(&ack);
                    self.sent_to(send.target(), &ack);
                    acks.push(ack);
                }
                Ok(other) => return Err(unexpected("SendAck", &other)),
                Err(e) if answer_lost(&e) || not_settled(&e) => return Err(e),
                Err(e) => {
                    self.outbox.done(send.client_msg_id());
                    refused.get_or_insert(e);
                }
            }
        }
        Ok(refused)
    }

    async fn finish_login(&mut self, body: Body) -> Result<pb::LoginOk> {
        match self.conn.request(body).await? {
            Body::LoginOk(ok) => {
                self.me = Some(ok.clone());
                Ok(ok)
            }
            other => Err(unexpected("LoginOk", &other)),
        }
    }

    pub async fn logout(&mut self) -> Result<()> {
        match self.conn.request(Body::Logout(pb::LogoutRequest {})).await? {
            Body::LogoutOk(_) => {
                self.me = None;
                Ok(())
            }
            other => Err(unexpected("LogoutOk", &other)),
        }
    }

    pub async fn lookup_user(&self, name: &str) -> Result<pb::UserInfo> {
        let body = Body::LookupUser(pb::LookupUserRequest {
            user_id: 0,
            name: name.into(),
        });
        match self.conn.request(body).await? {
            Body::User(u) => Ok(u),
            other => Err(unexpected("UserInfo", &other)),
        }
    }

    /// The user with id `user_id` (its name).
    pub async fn user_by_id(&self, user_id: u64) -> Result<pb::UserInfo> {
        let body = Body::LookupUser(pb::LookupUserRequest {
            user_id,
            name: String::new(),
        });
        match self.conn.request(body).await? {
            Body::User(u) => Ok(u),
            other => Err(unexpected("UserInfo", &other)),
        }
    }

    /// Sends `text` to a user by name; Ok once the message is durable.
    pub async fn send_to_name(&mut self, to: &str, text: &str, client_msg_id: &str) -> Result<pb::SendAck> {
        self.send(pb::SendRequest {
            to_user: 0,
            to_name: to.into(),
            body: text.into(),
            client_msg_id: client_msg_id.into(),
            ..Default::default()
        })
        .await
    }

    /// Sends `text` to user `to`; Ok once the message is durable.
    pub async fn send_to(&mut self, to: u64, text: &str, client_msg_id: &str) -> Result<pb::SendAck> {
        self.send(pb::SendRequest {
            to_user: to,
            to_name: String::new(),
            body: text.into(),
            client_msg_id: client_msg_id.into(),
            ..Default::default()
        })
        .await
    }

    /// Sends; Ok once the message is durable. Without a client message id
    /// the request gets one. Until its ack arrives the send stays in the
    /// outbox: a send whose answer was lost (the connection broke, no
    /// answer in time) is sent again by [`Client::reconnect`].
    pub async fn send(&mut self, mut req: pb::SendRequest) -> Result<pb::SendAck> {
        if req.client_msg_id.is_empty() {
            req.client_msg_id = self.outbox.new_id();
        }
        if req.prev_message_id == 0 {
            req.prev_message_id = self.last_sent_to(&Unacked::Direct(req.clone()).target());
        }
        let body = Body::Send(req.clone());
        self.send_tracked(Unacked::Direct(req), body).await
    }

    /// Sends a request of the outbox's kind and keeps it there until its
    /// answer is final.
    pub(crate) async fn send_tracked(&mut self, send: Unacked, body: Body) -> Result<pb::SendAck> {
        let id = send.client_msg_id().to_owned();
        let target = send.target();
        self.outbox.add(send);
        let answer = self.conn.request(body).await;
        if !matches!(&answer, Err(e) if answer_lost(e)) {
            self.outbox.done(&id);
        }
        match answer? {
            Body::SendAck(ack) => {
                self.acked(&ack);
                self.sent_to(target, &ack);
                Ok(ack)
            }
            other => Err(unexpected("SendAck", &other)),
        }
    }

    /// A recall we were told of: its entry is not shown again when a fetch
    /// finds it, and the sequence moves on when the entry is the next one.
    pub(crate) fn recalled(&mut self, r: &pb::Recalled) {
        self.state.first_sight(r.entry_id);
        if r.seq == self.state.last(&r.conversation_id) + 1 {
            self.state.advance(&r.conversation_id, r.seq);
        }
    }

    /// The last message this device sent to `target` and got acknowledged
    /// (0: none).
    pub(crate) fn last_sent_to(&self, target: &str) -> u64 {
        self.last_sent.get(target).copied().unwrap_or(0)
    }

    /// `ack` is the newest message to `target` (and to its user by id, for
    /// a send by name).
    fn sent_to(&mut self, target: String, ack: &pb::SendAck) {
        if ack.to_user != 0 {
            self.last_sent
                .insert(format!("u:{}", ack.to_user), ack.message_id);
        }
        self.last_sent.insert(target, ack.message_id);
    }

    /// Our own message: its commit notice must not look like a gap, and a
    /// read of the conversation must include it.
    pub(crate) fn acked(&mut self, ack: &pb::SendAck) {
        self.state.first_sight(ack.message_id);
        self.state.saw(&ack.conversation_id, ack.message_id);
    }
}
