//! Read marks, typing notices and recalls: the requests of the client
//! protocol's reads section, one method each, and the conversation list
//! with unread counts. Receipts and typing pushes arrive through
//! [`Client::next_update`]; recalls through [`Client::next_event`] too.

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};

use crate::chat::Client;
use crate::error::{Error, Result};
use crate::page::{first_page, next};

fn unexpected(what: &str, body: &Body) -> Error {
    Error::Protocol(format!("expected {what}, got {body:?}"))
}

/// A conversation as a request names it: the other user or a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// The other user, by name.
    Name(String),
    /// The other user, by id.
    Id(u64),
    Group(u64),
}

impl Peer {
    fn parts(&self) -> (Option<pb::UserRef>, u64) {
        match self {
            Peer::Name(name) => (
                Some(pb::UserRef {
                    user_id: 0,
                    name: name.clone(),
                }),
                0,
            ),
            Peer::Id(id) => (
                Some(pb::UserRef {
                    user_id: *id,
                    name: String::new(),
                }),
                0,
            ),
            Peer::Group(g) => (None, *g),
        }
    }
}

impl Client {
    /// Marks the conversation with `peer` read up to `seq` (0: up to the
    /// newest message); the answer is the mark stored now (it never moves
    /// back).
    pub async fn mark_read(&self, peer: &Peer, seq: u64) -> Result<pb::ReadReceipt> {
        let (user, group_id) = peer.parts();
        let body = Body::MarkRead(pb::MarkReadRequest { user, group_id, seq });
        match self.conn.request(body).await? {
            Body::ReadReceipt(r) => Ok(r),
            other => Err(unexpected("ReadReceipt", &other)),
        }
    }

    /// Tells `peer` (or the group's members) that this user is typing.
    /// RATE_LIMITED more often than the gateway's typing interval.
    pub async fn typing(&self, peer: &Peer) -> Result<()> {
        let (user, group_id) = peer.parts();
        match self
            .conn
            .request(Body::Typing(pb::TypingRequest { user, group_id }))
            .await?
        {
            Body::Done(_) => Ok(()),
            other => Err(unexpected("Done", &other)),
        }
    }

    /// Recalls our own message `message_id` (within the gateway's window).
    pub async fn recall(&mut self, message_id: u64) -> Result<pb::Recalled> {
        match self
            .conn
            .request(Body::Recall(pb::RecallRequest { message_id }))
            .await?
        {
            Body::Recalled(r) => {
                self.recalled(&r);
                Ok(r)
            }
            other => Err(unexpected("Recalled", &other)),
        }
    }

    /// Every conversation of this user with its sequence, read marks and
    /// unread count (all pages of a sync from the start; nothing fetched).
    pub async fn conversations(&self) -> Result<Vec<pb::ConversationState>> {
        let mut out = Vec::new();
        let mut page = first_page();
        loop {
            let request = Body::Sync(pb::SyncRequest {
                since: 0,
                page: Some(page),
                ..Default::default()
            });
            let reply = match self.conn.request(request).await? {
                Body::SyncReply(r) => r,
                other => return Err(unexpected("SyncReply", &other)),
            };
            out.extend(reply.conversations);
            match next(reply.page) {
                Some(p) => page = p,
                None => return Ok(out),
            }
        }
    }
}
