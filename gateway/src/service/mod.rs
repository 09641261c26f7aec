//! The middle layer's upper half: what the gateway does with its state
//! ([`crate::state`]) for handlers, the internal service and the
//! background tasks. Each module is one concern:
//!
//! - [`calls`]: calls to persist and the routers, bounded by the RPC
//!   timeout, refusals turned into the gateway's errors;
//! - [`users`]: users by id or name (cached, else persist), names of many;
//! - [`social`]: friend lists and group members through the cache;
//! - [`deliver`]: messages and kicks to sessions here or elsewhere;
//! - [`notify`]: friend and group pushes to users wherever they are;
//! - [`presence`]: friends' presence (announcements, the live-gateway
//!   watch);
//! - [`invalidate`]: stale friend and member lists, dropped everywhere;
//! - [`lease`]: registration and lease renewal with the routers;
//! - [`moved`]: persist's commit stream turned into pushes;
//! - [`zone`]: the pick of `GET /v1/gateway` among live gateways.
//!
//! A module here uses the state, the wire codec and the modules listed
//! before it, never one listed after it; none uses a handler, a connection
//! or the servers above.

pub mod calls;
pub mod deliver;
pub mod invalidate;
pub mod lease;
pub mod moved;
pub mod notify;
pub mod presence;
pub mod social;
pub mod users;
pub mod zone;
