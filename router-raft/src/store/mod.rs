//! Durable storage of a router node: one RocksDB for every group's Raft log,
//! vote, committed id and snapshot, keys prefixed by the group id.
//!
//! - [`NodeDb`] opens the database and owns the WAL syncer.
//! - [`LogStore`] is one group's view, implementing openraft's `RaftLogStorage`.
//! - [`WalSyncer`] turns many groups' appends into one fsync (group commit).

pub(crate) mod db;
mod log;
mod syncer;

pub use db::NodeDb;
pub use log::LogStore;
pub use syncer::WalSyncer;

use std::io;

pub(crate) fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

pub(crate) use confab_router_state::codec::{decode, encode};
