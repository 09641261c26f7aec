//! Worker processes, for runs past one process's open-file limit: the
//! parent starts copies of this binary (`--worker`), each holding a share of
//! the connections, and they speak JSON lines (orders on the worker's
//! stdin, reports on its stdout).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::args::{Checked, ConnectionsArgs, Measured, OPEN, Opened, REGISTER, Share, check_args, logins_in};
use super::held::{Held, lock, open_share, raise_open_files, sweep, sweep_forever};
use super::rss::rss_all;
use super::users::register_share;
use crate::stats::Recorder;

/// A worker's line to its parent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Report {
    Ready,
    Opened(Opened),
    /// Connections still open, per gateway.
    Alive(Vec<usize>),
}

/// A worker process and its lines.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl Worker {
    async fn tell(&mut self, what: &str) -> anyhow::Result<()> {
        self.stdin.write_all(format!("{what}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn report(&mut self) -> anyhow::Result<Report> {
        let line = self
            .lines
            .next_line()
            .await?
            .context("a worker ended early (its errors are above)")?;
        serde_json::from_str(&line).with_context(|| format!("a worker's line {line:?}"))
    }
}

/// The shares held by worker processes (copies of this binary).
pub(super) async fn with_workers(
    args: &ConnectionsArgs,
    checked: &Checked,
    shares: &[Share],
) -> anyhow::Result<Measured> {
    let exe = std::env::current_exe().context("finding this program")?;
    let mut workers = Vec::with_capacity(shares.len());
    for share in shares {
        let mut cmd = Command::new(&exe);
        cmd.arg("connections")
            .arg("--worker")
            .args(["--gateway", &args.gateway.join(",")])
            .args(["--connections", &share.count.to_string()])
            .args(["--first", &share.first.to_string()])
            .args(["--source-first", &share.source_first.to_string()])
            .args(["--logins", &logins_in(checked, *share).to_string()])
            .args(["--user-prefix", &args.user_prefix])
            .args(["--password", &args.password])
            .args(["--per-source", &args.per_source.to_string()])
            .args(["--concurrency", &args.concurrency.to_string()])
            .args(["--timeout", &args.timeout.to_string()])
            .args(
                args.tls_ca
                    .iter()
                    .flat_map(|ca| [std::ffi::OsStr::new("--tls-ca"), ca.as_os_str()]),
            )
            .args(args.tls.then_some("--tls"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting a worker")?;
        let stdin = child.stdin.take().context("a worker's stdin")?;
        let stdout = child.stdout.take().context("a worker's stdout")?;
        workers.push(Worker {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        });
    }
    for w in &mut workers {
        ensure!(matches!(w.report().await?, Report::Ready), "a worker not ready");
    }
    // Registrations are done: let the gateways settle before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_all(&args.gateway_pid)?;
    for w in &mut workers {
        w.tell("open").await?;
    }
    let mut total = Opened::default();
    let mut hist = crate::stats::histogram()?;
    for w in &mut workers {
        let Report::Opened(o) = w.report().await? else {
            bail!("a worker did not report its connections");
        };
        total.opened += o.opened;
        total.failed += o.failed;
        total.open_s = total.open_s.max(o.open_s);
        for (us, count) in o.latency {
            hist.saturating_record_n(us, count);
        }
        for (kind, count) in o.errors {
            *total.errors.entry(kind).or_default() += count;
        }
    }
    total.latency = hist
        .iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let mut alive = vec![0; checked.targets.len()];
    for w in &mut workers {
        w.tell("sweep").await?;
    }
    for w in &mut workers {
        let Report::Alive(a) = w.report().await? else {
            bail!("a worker did not report what is open");
        };
        for (i, n) in a.into_iter().enumerate() {
            if let Some(slot) = alive.get_mut(i) {
                *slot += n;
            }
        }
    }
    let after = rss_all(&args.gateway_pid)?;
    for w in &mut workers {
        w.tell("close").await?;
    }
    for w in &mut workers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w.child.wait()).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let released = rss_all(&args.gateway_pid)?;
    Ok((before, after, released, alive, total))
}

/// A worker process (`--worker`), the other side of [`with_workers`]:
/// JSON lines on stdout, orders on stdin; it prints no summary.
pub async fn worker(args: &ConnectionsArgs) -> anyhow::Result<()> {
    let checked = &check_args(args).await?;
    let share = Share {
        first: args.first,
        count: checked.n,
        source_first: args.source_first,
    };
    let nofile = raise_open_files(share.count as u64 + 256);
    ensure!(
        nofile > share.count as u64,
        "the open-file limit is {nofile}, below this worker's {} connections",
        share.count
    );
    let mut rec = Recorder::new(&[(OPEN, false), (REGISTER, false)])?;
    // Users are named by their global index (PREFIX-first..); the parent's
    // `--logins` is already this worker's count.
    register_share(args, checked, share, &mut rec).await?;
    say(&Report::Ready)?;
    let mut orders = BufReader::new(tokio::io::stdin()).lines();
    let held: Held = Arc::new(Mutex::new(Vec::with_capacity(share.count)));
    let sweeper = tokio::spawn(sweep_forever(held.clone(), checked.targets.len()));
    while let Some(order) = orders.next_line().await? {
        match order.trim() {
            "open" => {
                let opened = open_share(args, checked, share, &held).await?;
                say(&Report::Opened(opened))?;
            }
            "sweep" => say(&Report::Alive(sweep(&held, checked.targets.len())))?,
            "close" => break,
            other => bail!("unknown order {other:?}"),
        }
    }
    sweeper.abort();
    lock(&held).clear();
    Ok(())
}

fn say(report: &Report) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, report)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}
