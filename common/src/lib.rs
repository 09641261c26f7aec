//! What every Confab process shares: tracing set-up, the shutdown signal, and
//! the Prometheus text endpoint.
//!
//! What belongs here: process plumbing with no knowledge of routers, gateways
//! or persistence. Domain code lives in its own crate.

pub mod config;
pub mod ids;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
