//! What every message (1:1 or group) must be: a body, not over the
//! configured limit, and a client id of bounded length.

use crate::error::{Error, Result};
use crate::state::Shared;

const MAX_CLIENT_MSG_ID: usize = 64;

/// Checks a message's body and client id before anything else is done.
pub fn check_message(shared: &Shared, body: &str, client_msg_id: &str) -> Result<()> {
    if body.is_empty() {
        return Err(Error::Invalid("empty message body".into()));
    }
    let max = shared.config.limits.max_body_bytes;
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
