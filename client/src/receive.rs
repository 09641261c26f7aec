//! The receive side of [`Client`]: real-time pushes are shown at once,
//! commit notices (ConversationMoved) advance the sequence or reveal a gap,
//! which is fetched; a push whose sender's previous message has not been
//! seen waits for it; every message is shown once (by message id, and two
//! copies of one send, by its sender's client message id).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};

use crate::chat::{Client, Event, Update, unexpected};
use crate::connection::Push;
use crate::error::Result;
use crate::state::Held;
/// Fetch page size.
const PAGE: u32 = 200;
/// Friend, presence and group pushes kept for `next_update` (the oldest go
/// first when an application never asks for them).
const NOTICES_MAX: usize = 10_000;

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

impl Client {
    /// Pulls everything missed since the last sync: the conversations that
    /// moved, then the messages after the last sequence of each, in order,
    /// without duplicates. A stored message that is another copy of one
    /// shown before is not among them: [`Client::next_event`] hands out
    /// [`Event::Replaced`] for it.
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
                if !self.state.first_sight(m.message_id) {
                    continue;
                }
                let copy = self.state.other_copy(m.sender, &m.client_msg_id, m.message_id);
                self.state.shown_as(m.sender, &m.client_msg_id, m.message_id);
                match copy {
                    // The stored copy of a send shown as pushed: the
                    // push's copy was not the one kept.
                    Some(old_id) => self.replaced(old_id, m),
                    None => out.push(m),
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
        if !self.state.first_sight(m.message_id) {
            return;
        }
        if self
            .state
            .other_copy(m.sender, &m.client_msg_id, m.message_id)
            .is_some()
        {
            // The send's stored copy was fetched already (a resend that
            // was written first): this push is the copy not kept.
            return;
        }
        self.state.shown_as(m.sender, &m.client_msg_id, m.message_id);
        self.state.saw(&m.conversation_id, m.message_id);
        self.ready.push_back(Event::Message(m));
    }

    /// Tells the application that the message it has as `old_id` is
    /// `message` (reads ask for the stored id from now on).
    fn replaced(&mut self, old_id: u64, message: pb::Message) {
        tracing::debug!(
            old_id,
            message_id = message.message_id,
            "a pushed copy was not the stored one"
        );
        if self.state.last_seen(&message.conversation_id) == old_id {
            self.state.saw(&message.conversation_id, message.message_id);
        }
        self.ready.push_back(Event::Replaced { old_id, message });
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
