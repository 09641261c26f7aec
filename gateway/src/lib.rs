//! confab-gateway: where clients connect. It speaks the client protocol
//! (`proto/proto/client.proto`) over TCP and WebSocket, authenticates
//! through persist, records who is online where in the routers, sends 1:1
//! messages through persist's queue and pushes them to every session of the
//! participants, here or on other gateways (`proto/proto/gateway.proto`).
//!
//! Parts, following a request:
//! - [`server`]: [`start`]/[`run`] wire the listeners and tasks; `main` and
//!   the tests both use it. [`config`]: typed, defaulted, validated.
//! - [`connection`]: one connection whatever the transport: frame codec
//!   ([`frame`]), handshake, idle timeout, the bounded send queue.
//! - [`handler`]: one handler per request kind (auth, send, sync, friends,
//!   groups, group send).
//! - [`registry`]: the sessions connected here; [`deliver`]: pushes to
//!   sessions here or through other gateways ([`peers`], [`internal`]).
//! - [`social`]: cached friend lists and group members; [`presence`]:
//!   friends' presence (announcements, where friends are, dead gateways);
//!   [`notify`]: friend and group pushes.
//! - [`lease`]: registration and lease renewal with the routers;
//!   [`moved`]: persist's commit stream turned into pushes.
//! - [`http`]: metrics, health, `/ws`, `/v1/gateway` ([`zone`]);
//!   [`metrics`]; [`ids`]: snowflake message ids; [`error`]: the one
//!   mapping of errors to error frames.
//!
//! What does not belong here: storage (persist), online-state consensus
//! (the routers), client-side sync logic (confab-client).

pub mod batch;
pub mod config;
pub mod connection;
pub mod deliver;
pub mod error;
pub mod frame;
pub mod handler;
pub mod http;
pub mod internal;
pub mod lease;
pub mod metrics;
pub mod moved;
pub mod notify;
pub mod peers;
pub mod presence;
pub mod registry;
pub mod server;
pub mod social;
pub mod state;
pub mod zone;

pub use config::GatewayConfig;
pub use error::{Error, Result};
pub use server::{Listeners, Running, run, start};
