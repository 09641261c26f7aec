//! confab-router-client: the client of the router cluster (the online-state
//! table), used by gateways, confabctl, confab-bench and the router itself.
//!
//! Parts:
//! - [`keyspace`]: `slot_of(uid)` and [`ShardMap`], the uid -> slot -> shard
//!   mapping shared with the server (re-exported from `confab-route`);
//! - [`RouterClient`] (`client`, `sessions`, `admin`): cached cluster map,
//!   one channel per node, per-group leader cache, and the operations;
//! - `driver`: the retry loop; [`retry`] and [`plan`]: the pure routing
//!   policy (what to do about a failure, backoff, per-shard split, grouping
//!   by node), unit-tested without a server; the failures themselves are
//!   classified by `confab-route`;
//! - `routing`: the cache and how routing errors update it.
//!
//! What belongs here: anything a caller needs to reach the right router node
//! and follow its redirects. What does not: server logic, metrics, and
//! wire-type conversions of other services.

mod admin;
mod client;
mod coalesce;
mod config;
pub mod discovery;
mod driver;
mod error;
pub mod plan;
mod pool;
pub mod retry;
mod routing;
mod sessions;

pub use admin::Whereis;
pub use client::RouterClient;
pub use confab_net::ClientTls;
pub use confab_route::keyspace;
pub use confab_route::{DEFAULT_SLOTS, ShardMap, slot_of};
pub use config::ClientConfig;
pub use error::{Error, Result};
pub use pool::normalize_addr;
pub use routing::META_GROUP;
pub use sessions::LoginOutcome;

/// The wire types callers pass and receive, re-exported from `confab-proto`.
pub use confab_proto::router::{
    ClusterMap, DeviceKind, GatewayInfo, GroupStatus, MultiDevicePolicy, NodeInfo, NodeState,
    NodeStatusResponse, PlannedMove, RegisterGatewayResponse, Session, ShardDescriptor, ShardEpoch,
    SlotRange,
};
