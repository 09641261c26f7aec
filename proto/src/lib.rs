//! The wire schema of Confab: every `.proto` of the project and the Rust code
//! tonic/prost generate from it.
//!
//! What belongs here: message and service definitions only. Conversions
//! between these wire types and domain types live in the consuming crate.

#![allow(clippy::all, missing_docs, rust_2018_idioms)]

include!(concat!(env!("OUT_DIR"), "/confab.rs"));

pub use confab::client::v1 as client;
pub use confab::gateway::v1 as gateway;
pub use confab::persist::v1 as persist;
pub use confab::router::v1 as router;
