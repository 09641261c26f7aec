//! Catching up: which conversations moved since a commit-order cursor, the messages after
//! a sequence, history pages (newest first), and user lookup.

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};
use confab_proto::persist as db;
use confab_queue::ConversationId;

use super::conn::Conn;
use super::page::Page;
use crate::error::{Error, Result};
use crate::metrics;
use crate::service::calls::persist;
use crate::service::{social, users};
use crate::state::Shared;
use crate::state::reads::Wait;
use tokio::sync::OwnedSemaphorePermit;

/// Most messages in one Fetch or History page.
const MAX_PAGE: u32 = 200;
const DEFAULT_PAGE: u32 = 100;

pub async fn sync(conn: &mut Conn, r: pb::SyncRequest) -> Result<Body> {
    let me = conn.logged_in()?.uid;
    let shared = conn.shared.clone();
    let request = db::ChangedConversationsRequest {
        user: me,
        since: r.since,
    };
    let reply = persist(
        &shared,
        |mut d| async move { d.changed_conversations(request).await },
        |s| Error::from_persist(s, || Error::UserNotFound(me.to_string())),
    )
    .await?;
    let all = reply
        .conversations
        .into_iter()
        .map(|c| pb::ConversationState {
            conversation_id: c.conversation_id,
            seq: c.seq,
            last_message_id: c.last_message_id,
            updated_at_ms: c.updated_at_ms,
            read_seq: c.read_seq,
            unread_count: c.unread_count,
            peer_read_seq: c.peer_read_seq,
        })
        .collect();
    let (conversations, page) =
        Page::of(&shared, r.page.as_ref()).cut("sync", all, |c| c.conversation_id.clone());
    Ok(Body::SyncReply(pb::SyncReply {
        conversations,
        server_time_ms: reply.server_time_ms,
        page: Some(page),
        cursor: reply.cursor,
    }))
}

pub async fn fetch(conn: &mut Conn, r: pb::FetchRequest) -> Result<Body> {
    let me = conn.logged_in()?.uid;
    let shared = conn.shared.clone();
    may_read(&shared, me, &r.conversation_id).await?;
    let (min_message_id, _slot) = read_wait(conn, r.min_message_id)?;
    let forbidden = forbidden(me, &r.conversation_id);
    let request = db::MessagesAfterRequest {
        conversation_id: r.conversation_id,
        after_seq: r.after_seq,
        limit: page(r.limit),
        user: me,
        min_message_id,
    };
    let reply = persist(
        &shared,
        |mut d| async move { d.messages_after(request).await },
        |s| read_error(s, forbidden),
    )
    .await?;
    Ok(messages(reply))
}

pub async fn history(conn: &mut Conn, r: pb::HistoryRequest) -> Result<Body> {
    let me = conn.logged_in()?.uid;
    let shared = conn.shared.clone();
    may_read(&shared, me, &r.conversation_id).await?;
    let (min_message_id, _slot) = read_wait(conn, r.min_message_id)?;
    let forbidden = forbidden(me, &r.conversation_id);
    let request = db::HistoryRequest {
        conversation_id: r.conversation_id,
        before_seq: r.before_seq,
        limit: page(r.limit),
        user: me,
        min_message_id,
    };
    let reply = persist(
        &shared,
        |mut d| async move { d.history(request).await },
        |s| read_error(s, forbidden),
    )
    .await?;
    Ok(messages(reply))
}

pub async fn lookup_user(conn: &mut Conn, r: pb::LookupUserRequest) -> Result<Body> {
    conn.logged_in()?;
    let Some((key, shown)) = users::key(r.user_id, r.name) else {
        return Err(Error::Invalid("user_id or name is required".into()));
    };
    let user = users::get_user(&conn.shared, key, shown).await?;
    Ok(Body::User(pb::UserInfo {
        user_id: user.id,
        name: user.name,
    }))
}

/// The `min_message_id` a read hands to persist, and the connection's wait
/// slot it holds until answered: the id of a message the connection sent
/// or was pushed lately is waited for (a few reads at a time; one more is
/// BUSY), any other is read at once.
fn read_wait(conn: &Conn, id: u64) -> Result<(u64, Option<OwnedSemaphorePermit>)> {
    let outcome = |o: &str| metrics::READ_WAITS.with_label_values(&[o]).inc();
    match conn.reads.wait_for(id) {
        Wait::None => Ok((0, None)),
        Wait::NotOwn => {
            outcome("not_own");
            Ok((0, None))
        }
        Wait::Own(id, slot) => {
            outcome("waited");
            Ok((id, Some(slot)))
        }
        Wait::Busy => {
            outcome("busy");
            Err(Error::Busy {
                what: format!(
                    "{} reads of this connection already wait for their messages",
                    conn.shared.config.user_limits.max_read_waits
                ),
                retry_after_ms: READ_BUSY_RETRY_MS,
            })
        }
    }
}

/// When a read refused for want of a wait slot may try again.
const READ_BUSY_RETRY_MS: u64 = 100;

fn page(limit: u32) -> u32 {
    if limit == 0 {
        DEFAULT_PAGE
    } else {
        limit.min(MAX_PAGE)
    }
}

fn forbidden(uid: u64, conversation_id: &str) -> Error {
    Error::Forbidden {
        uid,
        conversation: conversation_id.to_owned(),
    }
}

/// Persist refuses a reader that is no participant (the second check):
/// the same FORBIDDEN as ours.
fn read_error(s: tonic::Status, forbidden: Error) -> Error {
    match s.code() {
        tonic::Code::PermissionDenied => forbidden,
        _ => Error::from_persist(s, || Error::Internal("read: not found".into())),
    }
}

/// Only the two users of a direct conversation, and the members of a group,
/// read it. A group that does not exist (or no longer does) answers the
/// same FORBIDDEN as one the user is not in: nothing is told about it.
async fn may_read(shared: &Shared, uid: u64, conversation_id: &str) -> Result<()> {
    match check_participant(uid, conversation_id)? {
        None => Ok(()),
        Some(group) => social::group(shared, group, uid).await.map(drop),
    }
}

/// Ok(None) for a direct conversation of `uid`; Ok(Some(group)) when group
/// membership decides.
pub(super) fn check_participant(uid: u64, conversation_id: &str) -> Result<Option<u64>> {
    match conversation_id.parse::<ConversationId>() {
        Ok(ConversationId::Direct { lo, hi }) if lo == uid || hi == uid => Ok(None),
        Ok(ConversationId::Direct { .. }) => Err(forbidden(uid, conversation_id)),
        Ok(ConversationId::Group(g)) => Ok(Some(g)),
        Err(_) => Err(Error::Invalid(format!("bad conversation id {conversation_id:?}"))),
    }
}

fn messages(reply: db::MessagesReply) -> Body {
    Body::Messages(pb::MessagesReply {
        messages: reply.messages.into_iter().map(message).collect(),
        not_yet_written: reply.not_yet_written,
    })
}

pub fn message(m: db::StoredMessage) -> pb::Message {
    pb::Message {
        message_id: m.message_id,
        conversation_id: m.conversation_id,
        seq: m.seq,
        sender: m.sender,
        body: m.body,
        client_msg_id: m.client_msg_id,
        server_time_ms: m.server_time_ms,
        recalled: m.recalled,
        recall_of: m.recall_of,
        // A stored message comes in sequence: nothing to wait for.
        prev_message_id: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_participants_read_a_direct_conversation() {
        assert!(matches!(check_participant(3, "d:3:9"), Ok(None)));
        assert!(matches!(check_participant(9, "d:3:9"), Ok(None)));
        assert!(matches!(
            check_participant(4, "d:3:9"),
            Err(Error::Forbidden { .. })
        ));
        assert!(
            matches!(check_participant(4, "g:1"), Ok(Some(1))),
            "membership decides"
        );
        assert!(matches!(check_participant(4, "nonsense"), Err(Error::Invalid(_))));
    }
}
