//! confab-net: how one Confab process reaches another over gRPC.
//!
//! Parts:
//! - [`channel`]: the one place an outbound [`Channel`] to a Confab process is
//!   built: its address, timeouts, TCP_NODELAY, HTTP/2 keep-alive (and, with
//!   mutual TLS, its identity). No other crate constructs a tonic `Endpoint`.
//! - [`pool`]: [`ChannelPool`], one lazily connected channel per peer address,
//!   shared by every stub that calls that peer.
//! - [`backoff`]: [`Backoff`], the one retry delay policy (exponential, capped,
//!   optionally jittered), usable with `backon`'s `Retryable` or as a plain
//!   iterator of delays.
//! - [`trace`]: the trace context a call carries (W3C `traceparent`).
//!
//! What belongs here: transport concerns common to every caller. What does
//! not: which errors are worth a retry (that depends on the service: the
//! router's routing errors are classified in `confab-route`), stubs of a
//! particular service, servers.

pub mod backoff;
pub mod channel;
pub mod discovery;
mod error;
pub mod pool;
pub mod trace;

pub use backoff::{Backoff, Delays, Retryable};
pub use channel::{ChannelConfig, channel, uri, validate};
pub use confab_tls::ClientTls;
pub use error::{Error, Result};
pub use pool::ChannelPool;
/// The channel type every stub is built on.
pub use tonic::transport::Channel;
