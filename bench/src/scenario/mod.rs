//! Benchmark scenarios, one file each.
//!
//! A scenario is a clap `Args` struct (its flags) and an
//! `async fn run(&Args) -> anyhow::Result<Summary>` that drives load through
//! `crate::workers::run_workers` and summarizes it with `crate::report`.
//! To add one (persist, chat, group...): add `scenario/<name>.rs`, a variant
//! of `cli::Scenario`, and its arm in `crate::run`.

pub mod catchup;
pub mod chat;
pub mod connections;
pub mod failover;
pub mod group;
pub mod presence;
pub mod router;
