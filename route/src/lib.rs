//! confab-route: what the router and every caller of it must agree on to
//! route a request.
//!
//! Parts:
//! - [`keyspace`]: [`slot_of`] (uid -> slot) and [`ShardMap`] (slot ->
//!   shard), the mapping both sides compute identically;
//! - [`failure`]: the one classification of a failed router call
//!   ([`Failure`]): the routing errors a status carries in its details
//!   (`RouteError`: not leader, stale epoch, unknown shard, moved slot) and
//!   the plain codes (transient, invalid, fatal).
//!
//! What belongs here: pure functions and types both sides of the router's
//! wire use. What does not: transport (channels, backoff: `confab-net`),
//! the client's retry policy and caches (`confab-router-client`), server
//! logic (`confab-router`).

mod error;
pub mod failure;
pub mod keyspace;

pub use error::KeySpaceError;
pub use failure::{Failure, classify_route_error, classify_status, not_leader_hint};
pub use keyspace::{DEFAULT_SLOTS, MAX_SLOTS, ShardMap, slot_of};
