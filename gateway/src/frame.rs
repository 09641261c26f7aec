//! Frames on the wire: encoding, decoding, the TCP length-prefix codec, and
//! the kind names used by metrics.

use bytes::Bytes;
use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb, Frame};
use prost::Message;
use tokio_util::codec::LengthDelimitedCodec;

use crate::error::Error;
use crate::metrics;

/// Largest frame the gateway writes (a page of history can be large; the
/// read limit for clients is `limits.max_frame_bytes`).
pub const MAX_OUT_FRAME: usize = 16 << 20;

/// The length-prefix codec: 4-byte big-endian length, then the frame.
pub fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame)
        .new_codec()
}

/// Maps a read error of the TCP codec: an over-long length prefix is
/// FRAME_TOO_LARGE, anything else ends the connection.
pub fn read_error(e: std::io::Error, limit: u32) -> Error {
    let too_large = e
        .get_ref()
        .is_some_and(|i| i.is::<tokio_util::codec::LengthDelimitedCodecError>());
    if too_large {
        Error::FrameTooLarge { limit }
    } else {
        Error::Io(e)
    }
}

pub fn decode(bytes: &[u8]) -> Result<Frame, Error> {
    Frame::decode(bytes).map_err(|e| Error::BadFrame(e.to_string()))
}

/// Encodes a frame and counts it.
pub fn encode(request_id: u64, body: Body) -> Bytes {
    metrics::FRAMES_OUT.with_label_values(&[kind(&body)]).inc();
    Bytes::from(
        Frame {
            request_id,
            body: Some(body),
        }
        .encode_to_vec(),
    )
}

/// An error frame (and counts the error by code).
pub fn error(request_id: u64, e: &Error) -> Bytes {
    metrics::ERRORS.with_label_values(&[e.code_name()]).inc();
    encode(request_id, Body::Error(e.to_wire()))
}

/// A push (request id 0).
pub fn push(body: Body) -> Bytes {
    encode(0, body)
}

pub fn message_push(m: pb::Message) -> Bytes {
    push(Body::MessagePush(pb::MessagePush { message: Some(m) }))
}

/// The kind of a frame body, for metrics and logs.
pub fn kind(body: &Body) -> &'static str {
    match body {
        Body::Hello(_) => "hello",
        Body::HelloOk(_) => "hello_ok",
        Body::Error(_) => "error",
        Body::Ping(_) => "ping",
        Body::Pong(_) => "pong",
        Body::Register(_) => "register",
        Body::RegisterOk(_) => "register_ok",
        Body::Login(_) => "login",
        Body::Resume(_) => "resume",
        Body::LoginOk(_) => "login_ok",
        Body::Logout(_) => "logout",
        Body::LogoutOk(_) => "logout_ok",
        Body::Send(_) => "send",
        Body::SendAck(_) => "send_ack",
        Body::Sync(_) => "sync",
        Body::SyncReply(_) => "sync_reply",
        Body::Fetch(_) => "fetch",
        Body::History(_) => "history",
        Body::Messages(_) => "messages",
        Body::LookupUser(_) => "lookup_user",
        Body::User(_) => "user",
        Body::MessagePush(_) => "message_push",
        Body::Moved(_) => "moved",
        Body::Kicked(_) => "kicked",
        Body::Resync(_) => "resync",
    }
}
