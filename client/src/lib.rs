//! confab-client: the client side of the Confab client protocol, used by
//! confab-chat, confab-bench and the tests.
//!
//! Parts:
//! - [`Connection`]: one TCP connection to a gateway, plain or TLS
//!   ([`ClientTls`]: whom to trust, verification always on): the handshake,
//!   request/response matching by request id, heartbeats, pushes on a
//!   bounded channel (a reader that falls behind slows the socket, as it
//!   should).
//! - [`Client`]: login, resume, send, and the receive side with sync:
//!   per-conversation last sequences ([`SyncState`]), gaps pulled with
//!   Fetch, duplicates dropped by message id; two copies of one send (a
//!   resend racing its first attempt) are one message, the stored copy's.
//! - [`Outbox`]: sends awaiting their ack, each with a client message id
//!   (the gateway's idempotency key), sent again as resends by
//!   [`Client::reconnect`].
//! - [`Directory`]: `GET /v1/gateway` on one or more gateways names the
//!   gateway the caller's network zone reaches; [`Client::connect_via`]
//!   starts from it and [`Client::reconnect_via`] asks it again after the
//!   gateway is lost (a connection silent for three heartbeats counts as
//!   lost).
//! - `social`: friends (search, requests, the list with presence) and
//!   groups (life cycle, membership, group messages); their pushes come
//!   from [`Client::next_update`], messages keep coming from
//!   [`Client::next_event`].
//! - `reads`: read marks ([`Peer`] names a conversation), typing notices,
//!   recalls, and the conversation list with unread counts; receipts and
//!   typing come from [`Client::next_update`], recalls are events.
//!
//! What does not belong here: presentation (confab-chat), load generation
//! (confab-bench), anything server-side.

mod chat;
mod connection;
mod directory;
mod error;
mod outbox;
mod page;
mod reads;
mod receive;
mod social;
mod state;
mod tls;

pub use chat::{Client, Event, Reconnected, Update};
pub use confab_proto::client as proto;
pub use confab_proto::client::{DeviceKind, ErrorCode};
pub use connection::{Connection, Push};
pub use directory::{Directory, Pick};
pub use error::{Error, Result};
pub use outbox::{Outbox, Unacked, answer_lost, not_settled};
pub use reads::Peer;
pub use receive::event_of;
pub use state::SyncState;
pub use tls::{ClientTls, server_name};
