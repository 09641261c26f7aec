//! The chat client: login and resume, send, and the receive side that
//! keeps every conversation in sequence: real-time pushes are shown at
//! once, commit notices (ConversationMoved) advance the sequence or reveal
//! a gap, which is fetched; every message is shown once (by message id).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb, DeviceKind};

use crate::connection::{Connection, Push};
use crate::error::{Error, Result};
use crate::outbox::{Outbox, Unacked, answer_lost, not_settled};
use crate::state::SyncState;

/// What the application receives.
#[derive(Debug, Clone)]
pub enum Event {
    Message(pb::Message),
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

/// Fetch page size.
const PAGE: u32 = 200;
/// Friend, presence and group pushes kept for `next_update` (the oldest go
/// first when an application never asks for them).
const NOTICES_MAX: usize = 10_000;

pub struct Client {
    pub conn: Connection,
    pub state: SyncState,
    pub me: Option<pb::LoginOk>,
    /// Sends awaiting their ack (sent again by [`Client::reconnect`]).
    pub outbox: Outbox,
    /// The device of the login, for resuming on a new connection.
    device: Option<(String, DeviceKind)>,
    ready: VecDeque<Event>,
    notices: VecDeque<Update>,
    /// This device's last acknowledged message per target
    /// ([`Unacked::target`]): the next send there names it, so receivers
    /// show the two in order.
    last_sent: HashMap<String, u64>,
    /// Pushes waiting, per conversation in arrival order, for their
    /// sender's previous message to be seen ([`Held`]).
    held: HashMap<String, Held>,
}

/// A conversation's pushes held back: the first names a previous message
/// this device has not seen and a fetch did not bring (not written yet);
/// those after it wait behind it.
#[derive(Debug)]
struct Held {
    messages: VecDeque<pb::Message>,
    since: Instant,
}

/// What waiting for a push ended with.
enum Waited {
    /// A push, or `None`: the connection closed.
    Push(Option<Push>),
    /// No push within [`HELD_RETRY`]; held conversations were fetched again.
    Retried,
}

/// While pushes are held, the conversation is fetched again this often
/// (its commit notice usually releases them first).
const HELD_RETRY: Duration = Duration::from_secs(1);
/// A push held this long is shown anyway (its predecessor was never found:
/// a message of a group left meanwhile, or a store that lost it).
const HELD_MAX: Duration = Duration::from_secs(30);

/// What [`Client::reconnect`] caught up with.
#[derive(Debug, Default)]
pub struct Reconnected {
    /// The acks of the sends that were waiting (the original's when the
    /// first attempt had been stored).
    pub acks: Vec<pb::SendAck>,
    /// Messages missed while away, in order, new ones only.
    pub messages: Vec<pb::Message>,
}

fn unexpected(what: &str, body: &Body) -> Error {
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
    fn acked(&mut self, ack: &pb::SendAck) {
        self.state.first_sight(ack.message_id);
        self.state.saw(&ack.conversation_id, ack.message_id);
    }

    /// Pulls everything missed since the last sync: the conversations that
    /// moved, then the messages after the last sequence of each, in order,
    /// without duplicates.
    pub async fn sync(&mut self) -> Result<Vec<pb::Message>> {
        let since = self.state.cursor;
        let mut out = Vec::new();
        let mut page = crate::page::first_page();
        // The first page's cursor: what moved while the later pages were
        // read is found by the next sync.
        let mut cursor = None;
        loop {
            let request = Body::Sync(pb::SyncRequest {
                since,
                page: Some(page),
                ..Default::default()
            });
            let reply = match self.conn.request(request).await? {
                Body::SyncReply(r) => r,
                other => return Err(unexpected("SyncReply", &other)),
            };
            cursor.get_or_insert(reply.cursor);
            for c in reply.conversations {
                if c.seq > self.state.last(&c.conversation_id) {
                    out.extend(self.fetch_after(&c.conversation_id).await?);
                }
            }
            match crate::page::next(reply.page) {
                Some(p) => page = p,
                None => break,
            }
        }
        self.state.cursor = cursor.unwrap_or(since).max(since);
        // What was held may follow now (after `out`, which the caller
        // shows first).
        let held: Vec<String> = self.held.keys().cloned().collect();
        for conversation in held {
            self.release(&conversation);
        }
        Ok(out)
    }

    /// Messages of `conversation` after our last sequence, new ones only.
    async fn fetch_after(&mut self, conversation: &str) -> Result<Vec<pb::Message>> {
        let wait_for = self.state.last_seen(conversation);
        Ok(self.fetch_waiting(conversation, wait_for).await?.0)
    }

    /// [`Client::fetch_after`], the first page including message
    /// `wait_for` when it is written within the gateway's read wait (and
    /// this user may see it); true beside: it was not written in time.
    async fn fetch_waiting(
        &mut self,
        conversation: &str,
        mut wait_for: u64,
    ) -> Result<(Vec<pb::Message>, bool)> {
        let mut out = Vec::new();
        let mut not_yet_written = None;
        loop {
            let after = self.state.last(conversation);
            let body = Body::Fetch(pb::FetchRequest {
                conversation_id: conversation.into(),
                after_seq: after,
                limit: PAGE,
                min_message_id: std::mem::take(&mut wait_for),
            });
            let page = match self.conn.request(body).await? {
                Body::Messages(m) => {
                    not_yet_written.get_or_insert(m.not_yet_written);
                    m.messages
                }
                other => return Err(unexpected("Messages", &other)),
            };
            let n = page.len();
            for m in page {
                self.state.advance(conversation, m.seq);
                if self.state.first_sight(m.message_id) {
                    out.push(m);
                }
            }
            if n < PAGE as usize {
                return Ok((out, not_yet_written.unwrap_or(false)));
            }
        }
    }

    /// A page of history, newest first (`before_seq` 0 = from the newest).
    /// It includes every message of the conversation this client has seen
    /// (the server waits briefly for one still being written).
    pub async fn history(&self, conversation: &str, before_seq: u64, limit: u32) -> Result<Vec<pb::Message>> {
        let body = Body::History(pb::HistoryRequest {
            conversation_id: conversation.into(),
            before_seq,
            limit,
            min_message_id: self.state.last_seen(conversation),
        });
        match self.conn.request(body).await? {
            Body::Messages(m) => Ok(m.messages),
            other => Err(unexpected("Messages", &other)),
        }
    }

    /// The next message, kick or close, in order; friend, presence and
    /// group pushes are kept aside for [`Client::next_update`]. `None` after
    /// the connection closed and everything was handed out.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            match self.next_push().await {
                Waited::Push(None) => return None,
                Waited::Push(Some(Push::Error(e))) => return Some(Event::Closed(Some(e))),
                Waited::Push(Some(Push::Frame(body))) => self.on_push(body).await,
                Waited::Retried => {}
            }
        }
    }

    /// The next push of any kind: messages (in sequence, once), kicks,
    /// closes, friend events, presence changes and group events.
    pub async fn next_update(&mut self) -> Option<Update> {
        loop {
            if let Some(n) = self.notices.pop_front() {
                return Some(n);
            }
            if let Some(e) = self.ready.pop_front() {
                return Some(Update::Event(e));
            }
            match self.next_push().await {
                Waited::Push(None) => return None,
                Waited::Push(Some(Push::Error(e))) => return Some(Update::Event(Event::Closed(Some(e)))),
                Waited::Push(Some(Push::Frame(body))) => self.on_push(body).await,
                Waited::Retried => {}
            }
        }
    }

    /// The next push; while pushes are held, every [`HELD_RETRY`] without
    /// one the held conversations are fetched again instead.
    async fn next_push(&mut self) -> Waited {
        if self.held.is_empty() {
            return Waited::Push(self.conn.next_push().await);
        }
        match tokio::time::timeout(HELD_RETRY, self.conn.next_push()).await {
            Ok(push) => Waited::Push(push),
            Err(_) => {
                self.retry_held().await;
                Waited::Retried
            }
        }
    }

    /// Fetches each held conversation again, waiting for the message its
    /// first held push names, then shows what may follow.
    async fn retry_held(&mut self) {
        let waiting: Vec<(String, u64)> = self
            .held
            .iter()
            .filter_map(|(c, h)| h.messages.front().map(|m| (c.clone(), m.prev_message_id)))
            .collect();
        for (conversation, prev) in waiting {
            match self.fetch_waiting(&conversation, prev).await {
                Ok((msgs, pending)) => {
                    self.ready.extend(msgs.into_iter().map(event_of));
                    if !pending
                        && !self.state.seen(prev)
                        && let Some(head) = self
                            .held
                            .get_mut(&conversation)
                            .and_then(|h| h.messages.front_mut())
                    {
                        // Written, yet not this user's to see: the head
                        // waits no more.
                        head.prev_message_id = 0;
                    }
                }
                Err(error) => tracing::warn!(%error, "fetching for a held push failed"),
            }
            self.release(&conversation);
        }
    }

    /// Shows the held pushes of `conversation` whose previous message is
    /// seen now (or that waited [`HELD_MAX`]), in order, up to the first
    /// that still waits.
    fn release(&mut self, conversation: &str) {
        let Some(held) = self.held.get_mut(conversation) else {
            return;
        };
        let expired = held.since.elapsed() > HELD_MAX;
        let mut out = Vec::new();
        while let Some(m) = held.messages.front() {
            let waits = m.prev_message_id != 0 && !self.state.seen(m.prev_message_id);
            if waits && !expired {
                break;
            }
            if waits {
                tracing::warn!(
                    message_id = m.message_id,
                    prev = m.prev_message_id,
                    "a push waited {HELD_MAX:?} for its sender's previous message; shown without it"
                );
            }
            out.extend(held.messages.pop_front());
        }
        if held.messages.is_empty() {
            self.held.remove(conversation);
        } else if !out.is_empty() {
            // A new head: its wait starts now.
            held.since = Instant::now();
        }
        for m in out {
            self.show(m);
        }
    }

    /// Hands a pushed message out, once.
    fn show(&mut self, m: pb::Message) {
        if self.state.first_sight(m.message_id) {
            self.state.saw(&m.conversation_id, m.message_id);
            self.ready.push_back(Event::Message(m));
        }
    }

    /// Friend, presence and group pushes received so far and not yet taken.
    pub fn take_notices(&mut self) -> Vec<Update> {
        self.notices.drain(..).collect()
    }

    fn notice(&mut self, u: Update) {
        if self.notices.len() >= NOTICES_MAX {
            self.notices.pop_front();
        }
        self.notices.push_back(u);
    }

    async fn on_push(&mut self, body: Body) {
        match body {
            Body::FriendEvent(e) => self.notice(Update::Friend(e)),
            Body::Presence(p) => self.notice(Update::Presence(p)),
            Body::GroupEvent(e) => self.notice(Update::Group(e)),
            Body::ReadReceipt(r) => self.notice(Update::Receipt(r)),
            Body::TypingPush(t) => self.notice(Update::Typing(t)),
            Body::Recalled(r) if !self.state.seen(r.entry_id) => {
                self.recalled(&r);
                self.ready.push_back(Event::Recalled(r));
            }
            Body::MessagePush(p) => {
                let Some(m) = p.message else { return };
                if self.state.seen(m.message_id) {
                    return;
                }
                let conversation = m.conversation_id.clone();
                if let Some(held) = self.held.get_mut(&conversation) {
                    // Behind a held one: in arrival order.
                    held.messages.push_back(m);
                    return;
                }
                if m.prev_message_id != 0 && !self.state.seen(m.prev_message_id) {
                    // The sender's previous message has not reached this
                    // device (it came by resend, or was pushed to a session
                    // that went away): read it first, the gateway waiting
                    // for it to be written; this one may come with it.
                    let pending = match self.fetch_waiting(&conversation, m.prev_message_id).await {
                        Ok((msgs, pending)) => {
                            self.ready.extend(msgs.into_iter().map(event_of));
                            pending
                        }
                        Err(error) => {
                            tracing::warn!(%error, "fetching before a push failed");
                            true
                        }
                    };
                    // Written but not brought: not this user's to see (sent
                    // before it joined the group); shown without it.
                    if pending && !self.state.seen(m.prev_message_id) && !self.state.seen(m.message_id) {
                        // Not written yet: held until it is (its commit
                        // notice, a sync, or the retry brings it).
                        self.held.insert(
                            conversation,
                            Held {
                                messages: VecDeque::from([m]),
                                since: Instant::now(),
                            },
                        );
                        return;
                    }
                }
                self.show(m);
            }
            Body::Moved(m) => {
                let last = self.state.last(&m.conversation_id);
                if m.seq <= last {
                    return;
                }
                if m.seq == last + 1 && self.state.seen(m.message_id) {
                    self.state.advance(&m.conversation_id, m.seq);
                    return;
                }
                match self.fetch_after(&m.conversation_id).await {
                    Ok(msgs) => self.ready.extend(msgs.into_iter().map(event_of)),
                    Err(error) => tracing::warn!(%error, "fetching a gap failed"),
                }
                self.release(&m.conversation_id);
            }
            Body::Resync(_) => match self.sync().await {
                Ok(msgs) => self.ready.extend(msgs.into_iter().map(event_of)),
                Err(error) => tracing::warn!(%error, "resync failed"),
            },
            Body::Kicked(k) => self.ready.push_back(Event::Kicked(k)),
            _ => {}
        }
    }
}

/// A fetched entry as an event: a recall entry (`recall_of` set) is a
/// recall, anything else a message.
pub fn event_of(m: pb::Message) -> Event {
    if m.recall_of == 0 {
        return Event::Message(m);
    }
    Event::Recalled(pb::Recalled {
        conversation_id: m.conversation_id,
        message_id: m.recall_of,
        by: m.sender,
        seq: m.seq,
        entry_id: m.message_id,
        recalled_at_ms: m.server_time_ms,
    })
}
