//! The checks a request's handler makes on the request's own fields,
//! before it reads or changes any state, gathered in one place so they can
//! be exercised on their own (the frame fuzz target, property tests).
//! Each handler makes the same calls itself, after what the connection's
//! state decides first (logged in or not).

use confab_proto::client::frame::Body;

use super::message::{check_device, check_group_id, check_message, check_note};
use super::sync::check_participant;
use crate::config::LimitsConfig;
use crate::error::{Error, Result};
use crate::service::users;

/// The field checks of the handler of `body` for a connection logged in as
/// `uid`, in the handler's order; `Ok` when the handler would go on to its
/// state.
pub fn precheck(body: &Body, limits: &LimitsConfig, uid: u64) -> Result<()> {
    match body {
        Body::Register(r) => {
            if r.name.trim().is_empty() || r.password.is_empty() {
                return Err(Error::Invalid("name and password must not be empty".into()));
            }
            Ok(())
        }
        Body::Login(r) => check_device(&r.device_id),
        Body::Resume(r) => check_device(&r.device_id),
        Body::Send(r) => check_message(limits, &r.body, &r.client_msg_id),
        Body::GroupSend(r) => {
            check_message(limits, &r.body, &r.client_msg_id)?;
            check_group_id(r.group_id)
        }
        Body::Fetch(r) => check_participant(uid, &r.conversation_id).map(drop),
        Body::History(r) => check_participant(uid, &r.conversation_id).map(drop),
        Body::LookupUser(r) => users::key(r.user_id, r.name.clone())
            .map(drop)
            .ok_or_else(|| Error::Invalid("user_id or name is required".into())),
        Body::AddFriend(r) => check_note(&r.note),
        Body::JoinGroup(r) => check_note(&r.note),
        Body::Recall(r) if r.message_id == 0 || r.message_id > i64::MAX as u64 => {
            Err(Error::Invalid(format!("bad message id {}", r.message_id)))
        }
        _ => Ok(()),
    }
}
