//! confab-chaos: fault injection against real router processes, and a
//! linearizability check of what the clients saw.
//!
//! Parts:
//! - [`proxy`]: a TCP proxy in front of each router, with a mode per
//!   directed link (pass, delay, drop, blackhole); [`origin`] tells which
//!   router opened a connection;
//! - [`cluster`]: router processes behind their proxies: start, SIGKILL,
//!   SIGTERM, SIGSTOP/SIGCONT, restart on the same data dir, add a node that
//!   joins, retire one the cluster removed;
//! - [`schedule`]: a seeded, reproducible list of faults and, beside it, of
//!   membership changes (replica moves, node add, drain and remove);
//! - [`workload`]: client tasks doing login/logout/lookup, recording into
//!   the [`history`];
//! - [`checker`]: per-uid Wing-Gong/Lowe linearizability search against the
//!   session-set model, and the lost-write check of the final reads;
//! - [`apply`]: the faults and membership changes applied at their times;
//! - [`run`]: one run end to end (cluster, load, faults and membership
//!   changes, heal, final reads, check); the `confab-chaos` binary and the tests call it.
//!
//! What belongs here: anything that breaks a router cluster on purpose or
//! judges what its clients observed. What does not: router code (the harness
//! drives the router only as processes and through `confab-router-client`).

pub mod apply;
pub mod checker;
pub mod cluster;
pub mod error;
pub mod history;
pub mod origin;
pub mod proxy;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod workload;

pub use error::Error;
pub use error::Result;
