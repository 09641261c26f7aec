//! What every Confab process shares: tracing set-up, the shutdown signal,
//! the Prometheus text endpoint, the configuration loader, binding
//! listeners, and a command-line tool's `main`.
//!
//! What belongs here: process plumbing with no knowledge of routers, gateways
//! or persistence. Domain code lives in its own crate; test-only helpers live
//! in confab-testkit.

pub mod config;
pub mod error;
pub mod ids;
pub mod listener;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
pub mod tool;
pub mod trace;

pub use error::Error;
