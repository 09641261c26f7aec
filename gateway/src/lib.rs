//! confab-gateway: where clients connect. It speaks the client protocol
//! (`proto/proto/client.proto`) over TCP and WebSocket, authenticates
//! through persist, records who is online where in the routers, sends 1:1
//! and group messages through persist's queue and pushes them to every
//! session of the recipients, here or on other gateways
//! (`proto/proto/gateway.proto`).
//!
//! The code is in layers; a module uses the layers below it, never one
//! above (so no two modules import each other):
//!
//! 1. Foundations: [`error`] (the typed errors, their protocol codes),
//!    [`metrics`], [`config`] (typed, defaulted, validated) and [`cidr`].
//! 2. [`wire`]: the client protocol on the wire. Frame bodies, pushes and
//!    error frames ([`wire::frame`]: the one place an error becomes what a
//!    client reads), the TCP length prefix ([`wire::stream`]).
//! 3. [`state`]: what the gateway holds while it runs. [`state::Shared`]
//!    and its parts: the session registry, the directory of other
//!    gateways, the user, friend-list and member-list caches, the presence
//!    tracker, the send path's batchers.
//! 4. [`service`]: what the gateway does with that state. Calls to persist
//!    and the routers, deliveries and pushes to sessions wherever they are,
//!    presence, cache invalidation, the lease, the commit stream, the zone
//!    pick.
//! 5. [`handler`]: one handler per client request kind, on [`handler::Conn`].
//! 6. The edges: [`connection`] (one client connection whatever the
//!    transport: handshake, lanes, idle timeout, the bounded send queue),
//!    [`http`] (the public port: health, `/ws`, `/v1/gateway`, the web
//!    client from [`web`]; the internal one: metrics, health), [`client_tls`] (TLS on the client
//!    ports, reloaded on SIGHUP), [`internal`] (the
//!    gRPC service other gateways call: Deliver, Load) and [`server`]
//!    ([`start`]/[`run`] wire it all; `main` and the tests both use it).
//!
//! Where a new piece goes: a new request kind is a handler; something two
//! handlers need goes down into a service (or into the state, if it is
//! held in memory); a new frame or push shape goes into `wire`.
//!
//! What does not belong here: storage (persist), online-state consensus
//! (the routers), client-side sync logic (confab-client).

pub mod cidr;
pub mod client_tls;
pub mod config;
pub mod connection;
pub mod error;
pub mod handler;
pub mod http;
pub mod internal;
pub mod metrics;
pub mod server;
pub mod service;
pub mod state;
pub mod web;
pub mod wire;

pub use config::GatewayConfig;
pub use error::{Error, Result};
pub use server::{Listeners, Running, run, start};
