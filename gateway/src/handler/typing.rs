//! Typing notices: never stored, pushed to the other user's devices (or
//! the group's online members), never to the typist's own devices. The
//! same checks as a message (friendship unless strangers are allowed,
//! group membership), then the connection's typing gate: one notice per
//! conversation per `user_limits.typing_interval_ms`; one sooner is
//! RATE_LIMITED and goes nowhere.

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};

use super::conn::Conn;
use super::conversation;
use crate::error::{Error, Result};
use crate::metrics;
use crate::service::notify::{self, Notice};

pub async fn typing(conn: &mut Conn, r: pb::TypingRequest) -> Result<Body> {
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    let named = conversation::named(&shared, me.uid, r.user.as_ref(), r.group_id, true).await?;
    let conversation_id = named.id.to_string();
    conn.typing.pass(&conversation_id).map_err(|wait| {
        metrics::RATE_LIMITED.with_label_values(&["typing"]).inc();
        Error::RateLimited {
            what: "typing notices in this conversation",
            retry_after_ms: wait.as_millis().max(1) as u64,
        }
    })?;
    let notice = Notice::Typing(pb::Typing {
        conversation_id,
        user_id: me.uid,
    });
    notify::users_but(&shared, &named.participants(me.uid), notice, me.uid).await;
    Ok(Body::Done(pb::Done {}))
}
