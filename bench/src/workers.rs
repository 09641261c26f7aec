//! The load loop shared by scenarios: N workers run until the window closes;
//! operations that start during warm-up are not recorded.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::stats::Recorder;

/// The time window of a run.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// When recording starts (end of warm-up).
    pub measure_from: Instant,
    /// When workers stop starting new operations.
    pub end: Instant,
}

impl Window {
    /// A window starting now: `warmup`, then `duration` measured.
    pub fn starting_now(warmup: Duration, duration: Duration) -> Self {
        let measure_from = Instant::now() + warmup;
        Window {
            measure_from,
            end: measure_from + duration,
        }
    }

    /// True while workers may start operations.
    pub fn open(&self) -> bool {
        Instant::now() < self.end
    }

    /// True when an operation started at `started` counts.
    pub fn measured(&self, started: Instant) -> bool {
        started >= self.measure_from
    }
}

/// Runs `concurrency` workers made by `worker(index, recorder)` (each gets a
/// clone of the empty `template` to fill) and merges what they return. Returns the measured time: from the end of warm-up
/// to the last worker's end. Workers still running `grace` after the window
/// closes are aborted (and their tallies lost), so a run is always bounded.
pub async fn run_workers<F, Fut>(
    concurrency: usize,
    window: Window,
    grace: Duration,
    template: Recorder,
    worker: F,
) -> anyhow::Result<(Recorder, Duration)>
where
    F: Fn(usize, Recorder) -> Fut,
    Fut: Future<Output = Recorder> + Send + 'static,
{
    let mut set = JoinSet::new();
    for index in 0..concurrency {
        set.spawn(worker(index, template.clone()));
    }
    let mut total = template;
    let hard_stop = window.end + grace;
    loop {
        match tokio::time::timeout_at(hard_stop, set.join_next()).await {
            Ok(Some(joined)) => total.merge(joined.context("a bench worker panicked")?)?,
            Ok(None) => break,
            Err(_) => {
                set.abort_all();
                anyhow::bail!("{} workers still busy {grace:?} after the run ended", set.len());
            }
        }
    }
    let elapsed = Instant::now().saturating_duration_since(window.measure_from);
    Ok((total, elapsed))
}
