//! What a request's own fields must be, checked before anything is done
//! with them: a message's body (not empty, not over the configured limit)
//! and client id (bounded), a device id, a note, a group id; how often
//! one user may send a message; who the other user of a 1:1 conversation
//! is and whether one may message (or type to) them.

use confab_proto::persist::get_user_request;

use super::conn::Conn;
use crate::config::LimitsConfig;
use crate::error::{Error, Result};
use crate::metrics;
use crate::service::{social, users};
use crate::state::Shared;

const MAX_CLIENT_MSG_ID: usize = 64;
const MAX_DEVICE_ID: usize = 64;
/// Longest note of a friend or join request (bytes).
const MAX_NOTE: usize = 512;

/// Checks a message's body and client id before anything else is done.
pub fn check_message(limits: &LimitsConfig, body: &str, client_msg_id: &str) -> Result<()> {
    if body.is_empty() {
        return Err(Error::Invalid("empty message body".into()));
    }
    let max = limits.max_body_bytes;
    if body.len() > max {
        return Err(Error::Invalid(format!(
            "message body of {} bytes is over the limit of {max}",
            body.len()
        )));
    }
    if client_msg_id.len() > MAX_CLIENT_MSG_ID {
        return Err(Error::Invalid(format!(
            "client_msg_id longer than {MAX_CLIENT_MSG_ID} bytes"
        )));
    }
    check_text("message body", body)?;
    check_text("client_msg_id", client_msg_id)
}

/// Text that every SQL backend stores as it is: no control character but
/// tab, line feed and carriage return (PostgreSQL refuses NUL in text; the
/// others are no chat text either). Refused here, a message never reaches
/// the queue to be refused by the database after its sender's ack.
fn check_text(what: &str, text: &str) -> Result<()> {
    match text
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        None => Ok(()),
        Some((at, c)) => Err(Error::Invalid(format!(
            "{what} holds control character U+{:04X} at byte {at}",
            c as u32
        ))),
    }
}

/// A resend (`resend` set) names the message it repeats by its client id.
pub fn check_resend(resend: bool, client_msg_id: &str) -> Result<()> {
    if resend && client_msg_id.is_empty() {
        return Err(Error::Invalid(
            "a resend needs the client_msg_id of the first attempt".into(),
        ));
    }
    Ok(())
}

/// The message `uid` stored under `client_msg_id`, if any; with
/// `wait_for` (the id a resend was queued under) persist waits a little
/// for the writer to store it.
pub async fn find_sent(
    shared: &Shared,
    uid: u64,
    client_msg_id: &str,
    wait_for: u64,
) -> Result<Option<confab_proto::persist::StoredMessage>> {
    let request = confab_proto::persist::FindSentRequest {
        sender: uid,
        client_msg_id: client_msg_id.to_owned(),
        wait_for,
    };
    let reply = crate::service::calls::persist(
        shared,
        |mut d| async move { d.find_sent(request).await },
        |s| Error::from_persist(s, || Error::NotFound("sent message".into())),
    )
    .await?;
    Ok(reply.message)
}

/// The `prev_message_id` a push carries: the sender's previous message,
/// when it is one this connection was told of (acknowledged or pushed to
/// it); any other id (a guess) would make each receiver's next read wait
/// for a message that may never come, so it is dropped.
pub fn prev_message(conn: &Conn, prev: u64) -> u64 {
    if prev != 0 && conn.reads.knows(prev) {
        prev
    } else {
        0
    }
}

/// The ack of a stored message (the answer to a resend).
pub fn stored_ack(m: confab_proto::persist::StoredMessage, to_user: u64) -> confab_proto::client::SendAck {
    confab_proto::client::SendAck {
        message_id: m.message_id,
        conversation_id: m.conversation_id,
        server_time_ms: m.server_time_ms,
        client_msg_id: m.client_msg_id,
        to_user,
    }
}

/// The end of a resend whose first attempt was not found stored: once the
/// new copy is queued, the pair is stored by whichever copy the writer
/// took first; answer with that one. Nothing is pushed for a resend: the
/// commit notice tells every participant's devices, who fetch it.
pub async fn settle_resend(
    shared: &Shared,
    uid: u64,
    client_msg_id: &str,
    queued_as: u64,
    to_user: u64,
) -> Result<confab_proto::client::SendAck> {
    match find_sent(shared, uid, client_msg_id, queued_as).await? {
        Some(m) => Ok(stored_ack(m, to_user)),
        None => Err(Error::Unavailable {
            what: "the message store",
            detail: "the resend is queued but not yet written: resend it again".into(),
        }),
    }
}

/// Takes one of `uid`'s message tokens (`user_limits.messages_per_s`,
/// over all of its connections here); RATE_LIMITED with the wait when the
/// bucket is empty. Runs before anything else of a send, so a refused
/// message costs nothing and leaves nothing behind.
pub fn take_message_token(shared: &Shared, uid: u64) -> Result<()> {
    shared.message_rates.take(uid).map_err(|wait| {
        metrics::RATE_LIMITED.with_label_values(&["message"]).inc();
        Error::RateLimited {
            what: "messages",
            retry_after_ms: wait.as_millis().max(1) as u64,
        }
    })
}

/// A device id: 1 to 64 bytes.
pub fn check_device(device_id: &str) -> Result<()> {
    if device_id.is_empty() || device_id.len() > MAX_DEVICE_ID {
        return Err(Error::Invalid(format!(
            "device_id must be 1..={MAX_DEVICE_ID} bytes"
        )));
    }
    Ok(())
}

/// The note of a friend or join request: at most 512 bytes.
pub fn check_note(note: &str) -> Result<()> {
    if note.len() > MAX_NOTE {
        return Err(Error::Invalid(format!("note longer than {MAX_NOTE} bytes")));
    }
    Ok(())
}

/// A group id a message is sent to: 1..=i64::MAX.
pub fn check_group_id(group_id: u64) -> Result<()> {
    if group_id == 0 || group_id > i64::MAX as u64 {
        return Err(Error::Invalid(format!("bad group id {group_id}")));
    }
    Ok(())
}

/// A user named by id or (when 0) by name, checked to exist (cached).
pub async fn resolve(shared: &Shared, to_user: u64, to_name: &str) -> Result<u64> {
    let key = if to_user != 0 {
        if shared.users.has_id(to_user) {
            return Ok(to_user);
        }
        get_user_request::Key::Id(to_user)
    } else if !to_name.is_empty() {
        if let Some(id) = shared.users.id_of(to_name) {
            return Ok(id);
        }
        get_user_request::Key::Name(to_name.to_owned())
    } else {
        return Err(Error::Invalid(
            "a recipient (to_user or to_name) is required".into(),
        ));
    };
    let shown = if to_user != 0 {
        to_user.to_string()
    } else {
        to_name.to_owned()
    };
    let user = users::get_user(shared, key, shown).await?;
    Ok(user.id)
}

/// Whether `me` may message (or send typing notices to) `to`: friends, or
/// oneself, or any user when the gateway runs with `allow_strangers`.
pub async fn may_message(shared: &Shared, me: u64, to: u64) -> Result<()> {
    if shared.config.allow_strangers || to == me || social::are_friends(shared, me, to).await? {
        Ok(())
    } else {
        Err(Error::NotPermitted(format!(
            "user {me} and user {to} are not friends: send a friend request first"
        )))
    }
}
