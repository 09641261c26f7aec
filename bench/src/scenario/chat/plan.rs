//! The run's parameters and what every sender and receiver task shares.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::ensure;
use clap::Args;
use confab_client::proto::{self as pb, ErrorCode};
use tokio::time::Instant;

use crate::scenario::UserArgs;
use crate::workers::Window;

#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub users: UserArgs,
    /// Sender/receiver pairs.
    #[arg(long, default_value_t = 200)]
    pub pairs: usize,
    /// Measured seconds (after warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of unrecorded load before measuring (its messages are still
    /// checked for loss and duplicates).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Messages per second over all senders; 0 = closed loop.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Sends in flight per sender.
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Longest wait for deliveries after the last send, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 64)]
    pub body_bytes: usize,
    /// Processes (the cluster's, by pid, comma-separated) whose CPU time
    /// over the measured window is reported, in all and per message.
    #[arg(long, value_delimiter = ',', value_name = "PID")]
    pub cpu_pid: Vec<u32>,
    #[command(flatten)]
    pub sweep: SweepArgs,
}

/// `--sweep`: the run again at rising offered rates (see `sweep.rs`).
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// Step the offered rate until p99 passes the target or a message is
    /// lost or refused; report the curve and its knee.
    #[arg(long)]
    pub sweep: bool,
    /// First offered rate of the sweep, messages/s.
    #[arg(long, default_value_t = 2000.0)]
    pub sweep_from: f64,
    /// Added to the offered rate at each step, messages/s.
    #[arg(long, default_value_t = 2000.0)]
    pub sweep_step: f64,
    /// Highest offered rate of the sweep, messages/s.
    #[arg(long, default_value_t = 60000.0)]
    pub sweep_to: f64,
    /// The e2e p99 a step must stay under, milliseconds.
    #[arg(long, default_value_t = 50.0)]
    pub p99_target_ms: f64,
    /// Draw the curve into this SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
}

pub(super) const SEND: &str = "send";
pub(super) const E2E: &str = "e2e";

/// Largest run length accepted, seconds.
const MAX_SECS: f64 = 3600.0;

/// Progress every task reports, to end the drain early.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) acked: AtomicU64,
    pub(super) delivered: AtomicU64,
}

/// What every task shares.
pub(super) struct Plan {
    pub(super) window: Window,
    /// Time zero of the timestamps in message bodies.
    pub(super) epoch: Instant,
    /// Pause between sends of one sender (rate mode).
    pub(super) every: Option<Duration>,
    pub(super) in_flight: usize,
    pub(super) body_bytes: usize,
    pub(super) tally: Tally,
}

impl Plan {
    pub(super) fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

pub(super) fn error_kind(e: &pb::Error) -> String {
    format!(
        "{:?}",
        ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unspecified)
    )
}

pub(super) fn secs(name: &str, v: f64, zero_ok: bool) -> anyhow::Result<Duration> {
    ensure!(
        v.is_finite() && (0.0..=MAX_SECS).contains(&v) && (zero_ok || v > 0.0),
        "--{name} must be seconds in {}..={MAX_SECS}",
        if zero_ok { "0" } else { "(0" }
    );
    Ok(Duration::from_secs_f64(v))
}
