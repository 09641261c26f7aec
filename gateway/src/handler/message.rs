//! What a request's own fields must be, checked before anything is done
//! with them: a message's body (not empty, not over the configured limit)
//! and client id (bounded), a device id, a note, a group id; and how often
//! one user may send a message.

use crate::config::LimitsConfig;
use crate::error::{Error, Result};
use crate::metrics;
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
    Ok(())
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
