//! Recall of one's own message: persist checks the sender and the window
//! (`user_limits.recall_window_ms`, by the message's server time), empties
//! the body and adds a recall entry with the conversation's next sequence
//! (so devices that were offline find it by sync); then every session of
//! every participant but the recalling one gets a Recalled push. A repeat
//! answers the same and pushes nothing. A recall takes a token of the
//! user's message bucket, like a message.

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};
use confab_proto::persist as db;
use confab_queue::ConversationId;

use super::conn::Conn;
use super::message::take_message_token;
use crate::error::{Error, Result};
use crate::service::calls::persist;
use crate::service::notify::{self, Notice};
use crate::service::social;
use crate::state::reads::Wait;

pub async fn recall(conn: &mut Conn, r: pb::RecallRequest) -> Result<Body> {
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    let id = r.message_id;
    if id == 0 || id > i64::MAX as u64 {
        return Err(Error::Invalid(format!("bad message id {id}")));
    }
    take_message_token(&shared, me.uid)?;
    // A message this connection sent (or was pushed) lately may still be
    // on its way to the database: persist waits for it, a few at a time.
    let slot = match conn.reads.wait_for(id) {
        Wait::Own(_, slot) => Some(slot),
        _ => None,
    };
    let request = db::RecallRequest {
        user: me.uid,
        message_id: id,
        entry_id: shared.ids.next()?,
        window_ms: shared.config.user_limits.recall_window_ms,
        wait_written: slot.is_some(),
    };
    let reply = persist(
        &shared,
        |mut d| async move { d.recall(request).await },
        |s| match s.code() {
            tonic::Code::PermissionDenied => {
                Error::NotPermitted(format!("message {id} is not yours to recall"))
            }
            tonic::Code::FailedPrecondition => Error::RecallWindowPassed(format!(
                "message {id} was sent more than {} ms ago",
                shared.config.user_limits.recall_window_ms
            )),
            _ => Error::from_persist(s, || Error::NotFound(format!("message {id}"))),
        },
    )
    .await?;
    drop(slot);
    let entry = reply
        .entry
        .ok_or_else(|| Error::Internal("recall answered without its entry".into()))?;
    let recalled = pb::Recalled {
        conversation_id: entry.conversation_id,
        message_id: id,
        by: me.uid,
        seq: entry.seq,
        entry_id: entry.message_id,
        recalled_at_ms: entry.server_time_ms,
    };
    conn.reads.known(recalled.entry_id);
    if !reply.repeated {
        let told = match recalled.conversation_id.parse::<ConversationId>() {
            Ok(ConversationId::Direct { lo, hi }) if lo == hi => vec![lo],
            Ok(ConversationId::Direct { lo, hi }) => vec![lo, hi],
            Ok(ConversationId::Group(g)) => match social::group(&shared, g, me.uid).await {
                Ok(group) => group.uids(),
                Err(error) => {
                    tracing::warn!(%error, group = g, "members unknown; they see the recall when they sync");
                    vec![me.uid]
                }
            },
            Err(_) => vec![me.uid],
        };
        notify::users(&shared, &told, Notice::Recalled(recalled.clone()), me.session_id).await;
    }
    Ok(Body::Recalled(recalled))
}
