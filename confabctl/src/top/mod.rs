//! `confabctl top`: a live view of every process of the cluster, from the
//! processes' own metrics. A router's `GET /sd` lists every live router,
//! gateway and persist process and its metrics address ([`sd`]); each one's
//! `/metrics` is read over plain HTTP ([`http`]) and parsed ([`samples`]);
//! two scrapes an interval apart give rates and latency quantiles
//! ([`rate`]), gathered per role into the report and its tables ([`view`]).
//!
//! Unlike the other commands, `top` does not call the routers' gRPC API:
//! everything comes from the internal HTTP ports.

pub mod http;
pub mod rate;
pub mod round;
pub mod samples;
pub mod sd;
pub mod view;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::time::MissedTickBehavior;

pub use self::round::{Round, Scrape};
use self::samples::Samples;
use self::sd::Target;
pub use self::view::{TopReport, render_text};
use crate::cli::TopArgs;

/// Clears a terminal and puts the cursor top left.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// Where to look and how often.
struct Top {
    /// The router's HTTP address (host:port).
    http: String,
    interval: Duration,
    /// Deadline of the /sd request.
    timeout: Duration,
    /// Deadline of each /metrics request: the timeout, at most the interval.
    scrape_timeout: Duration,
}

impl Top {
    fn new(args: &TopArgs, timeout: Duration) -> anyhow::Result<Self> {
        let interval = Duration::try_from_secs_f64(args.interval)
            .ok()
            .filter(|d| !d.is_zero())
            .context("--interval must be a positive number of seconds")?;
        Ok(Top {
            http: sd::http_addr(&args.http),
            interval,
            timeout,
            scrape_timeout: timeout.min(interval),
        })
    }

    async fn targets(&self) -> anyhow::Result<Vec<Target>> {
        sd::fetch(&self.http, self.timeout).await
    }

    /// Scrapes every target at once.
    async fn scrape(&self, targets: &[Target]) -> Round {
        let at = Instant::now();
        let scrapes = futures::future::join_all(targets.iter().map(|t| async move {
            let at = Instant::now();
            let samples = http::get(&t.addr, "/metrics", self.scrape_timeout)
                .await
                .map(|text| Samples::parse(&text));
            (t.clone(), Scrape { at, samples })
        }))
        .await;
        Round { at, scrapes }
    }

    fn report(&self, prev: &Round, cur: &Round) -> TopReport {
        view::build(sd::url(&self.http), prev, cur)
    }
}

/// One sample: the processes /sd lists, scraped twice `--interval` apart.
pub async fn sample(args: &TopArgs, timeout: Duration) -> anyhow::Result<TopReport> {
    let top = Top::new(args, timeout)?;
    let targets = top.targets().await?;
    let first = top.scrape(&targets).await;
    tokio::time::sleep_until((first.at + top.interval).into()).await;
    let second = top.scrape(&targets).await;
    Ok(top.report(&first, &second))
}

/// A sample every `--interval` until Ctrl-C: on a terminal each replaces
/// the last; otherwise they follow each other, a blank line apart. The
/// text is written here; nothing is left to print at the end.
pub async fn watch(args: &TopArgs, timeout: Duration) -> anyhow::Result<String> {
    let top = Top::new(args, timeout)?;
    tokio::select! {
        stopped = tokio::signal::ctrl_c() => stopped.context("waiting for Ctrl-C")?,
        done = frames(&top) => done?,
    }
    Ok(String::new())
}

/// Writes a frame per interval; returns when stdout is closed.
async fn frames(top: &Top) -> anyhow::Result<()> {
    let mut targets = top.targets().await?;
    let mut ticks = tokio::time::interval(top.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut prev = top.scrape(&targets).await;
    let terminal = std::io::stdout().is_terminal();
    let mut first = true;
    loop {
        ticks.tick().await;
        // A router that stops answering: the processes it listed last.
        let note = match top.targets().await {
            Ok(now) => {
                targets = now;
                String::new()
            }
            Err(e) => format!("warning: {e:#}; showing the processes listed before\n"),
        };
        let cur = top.scrape(&targets).await;
        let text = format!("{note}{}", render_text(&top.report(&prev, &cur)));
        let frame = match (terminal, first) {
            (true, _) => format!("{CLEAR}{text}"),
            (false, true) => text,
            (false, false) => format!("\n{text}"),
        };
        let mut out = std::io::stdout().lock();
        match out.write_all(frame.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e).context("writing to stdout"),
        }
        prev = cur;
        first = false;
    }
}
