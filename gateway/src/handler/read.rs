//! Mark read: store the user's read mark of a conversation through persist
//! (never moving back; 0 = up to the newest message), and when it moved,
//! push a read receipt to the reader's other devices and, in a 1:1
//! conversation, to the other user's devices, wherever they are connected.
//! Group members' marks are not pushed to other members (a receipt per
//! member per read grows with the square of the group); each member's own
//! devices are told. A mark takes a token of the user's message bucket:
//! each one is a database write.

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb};
use confab_proto::persist as db;

use super::conn::Conn;
use super::conversation::{self, Target};
use super::message::take_message_token;
use crate::error::{Error, Result};
use crate::service::calls::persist;
use crate::service::notify::{self, Notice};

pub async fn mark_read(conn: &mut Conn, r: pb::MarkReadRequest) -> Result<Body> {
    let me = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    take_message_token(&shared, me.uid)?;
    let named = conversation::named(&shared, me.uid, r.user.as_ref(), r.group_id, false).await?;
    let conversation_id = named.id.to_string();
    let request = db::MarkReadRequest {
        user: me.uid,
        conversation_id: conversation_id.clone(),
        seq: r.seq,
    };
    let forbidden = Error::Forbidden {
        uid: me.uid,
        conversation: conversation_id.clone(),
    };
    let reply = persist(
        &shared,
        |mut d| async move { d.mark_read(request).await },
        |s| match s.code() {
            tonic::Code::PermissionDenied => forbidden,
            _ => Error::from_persist(s, || Error::UserNotFound(me.uid.to_string())),
        },
    )
    .await?;
    let receipt = pb::ReadReceipt {
        conversation_id,
        reader: me.uid,
        read_seq: reply.read_seq,
    };
    if reply.moved {
        let told = match named.target {
            Target::Group(_) => vec![me.uid],
            Target::Direct { .. } => named.participants(me.uid),
        };
        notify::users(&shared, &told, Notice::Receipt(receipt.clone()), me.session_id).await;
    }
    Ok(Body::ReadReceipt(receipt))
}
