//! `confab-bench connections`: opens N idle connections to one or more
//! gateways (handshake, then a login for as many as `--logins` say, all by
//! default), holds them, and reports the gateways' resident memory per
//! connection: VmRSS of `/proc/<gateway pid>/status` before and after,
//! divided by the connections still open (per gateway, and over all).
//!
//! One source address has about 28,000 ephemeral ports, so the sockets are
//! bound to 127.0.0.2, 127.0.0.3, ... in turn (`--per-source` each). The
//! connections speak the client protocol directly (a Hello, a Login, then
//! silence); one sweeper task keeps them all alive with pings, so the bench
//! itself holds a socket and nothing else per connection.
//!
//! One process may hold only as many sockets as its open-file limit: past
//! `--per-process` connections the bench spawns copies of itself as
//! workers (`--worker`), each holding its share from source addresses of
//! its own. They speak JSON lines with the parent: a worker registers its
//! users and says `ready`; on `open` it opens its connections and reports
//! them; on `sweep` it pings them and reports how many are still open per
//! gateway; on `close` (or end of input) it lets go and exits.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use clap::Args;
use confab_client::proto::frame::Body;
use confab_client::proto::{self as pb, ErrorCode};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use crate::report::Summary;
use crate::stats::Recorder;
use crate::wire;

#[derive(Debug, Clone, Args)]
pub struct ConnectionsArgs {
    /// Gateway client addresses (TCP; repeatable or comma-separated):
    /// connection i goes to gateway i mod their number.
    #[arg(
        long,
        default_value = "127.0.0.1:7201",
        value_delimiter = ',',
        env = "CONFAB_GATEWAY"
    )]
    pub gateway: Vec<String>,
    /// Pids of the gateway processes, in the order of `--gateway`: their
    /// VmRSS is read before and after. Without them only the connections
    /// are reported.
    #[arg(long, value_delimiter = ',')]
    pub gateway_pid: Vec<u32>,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 50_000)]
    pub connections: usize,
    /// How many of them log in (users PREFIX-0.. are registered first,
    /// existing ones reused); the rest only shake hands. All by default.
    #[arg(long)]
    pub logins: Option<usize>,
    /// Name prefix of the users.
    #[arg(long, default_value = "idle")]
    pub user_prefix: String,
    #[arg(long, default_value = "pw")]
    pub password: String,
    /// Connections per source address (127.0.0.2, 127.0.0.3, ...).
    #[arg(long, default_value_t = 20_000)]
    pub per_source: usize,
    /// Most connections one bench process holds; more are spread over
    /// worker processes (one socket is one open file).
    #[arg(long, default_value_t = 19_000)]
    pub per_process: usize,
    /// Connections being opened (or users registered) at once, per process.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Seconds to hold every connection open before measuring.
    #[arg(long, default_value_t = 5.0)]
    pub hold: f64,
    /// Deadline of one connection's connect, handshake and login, seconds.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Run as a worker of a parent bench: connections `--first` ..
    /// `--first + --connections` of the parent's run.
    #[arg(long, hide = true)]
    pub worker: bool,
    /// (Worker) the index of this worker's first connection.
    #[arg(long, hide = true, default_value_t = 0)]
    pub first: usize,
    /// (Worker) the last octet of this worker's first source address.
    #[arg(long, hide = true, default_value_t = 2)]
    pub source_first: u8,
}

const OPEN: &str = "open";
const REGISTER: &str = "register";

/// How often the sweeper pings every connection (well under the gateway's
/// default idle timeout of 90 s).
const PING_EVERY: Duration = Duration::from_secs(20);

/// Open sockets (with their gateway's index), shared by the openers and
/// the sweeper.
type Held = Arc<Mutex<Vec<(usize, TcpStream)>>>;

fn lock(held: &Held) -> std::sync::MutexGuard<'_, Vec<(usize, TcpStream)>> {
    held.lock().unwrap_or_else(|e| e.into_inner())
}

/// One process's share of the connections: global indexes
/// `first..first + count`, from source addresses 127.0.0.`source_first`...
#[derive(Debug, Clone, Copy)]
struct Share {
    first: usize,
    count: usize,
    source_first: u8,
}

/// What a process reports after opening its share.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Opened {
    opened: u64,
    failed: u64,
    open_s: f64,
    /// Open latencies: (microseconds, count).
    latency: Vec<(u64, u64)>,
    errors: BTreeMap<String, u64>,
}

/// A worker's line to its parent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Report {
    Ready,
    Opened(Opened),
    /// Connections still open, per gateway.
    Alive(Vec<usize>),
}

struct Checked {
    n: usize,
    logins: usize,
    targets: Vec<SocketAddr>,
}

async fn check_args(args: &ConnectionsArgs) -> anyhow::Result<Checked> {
    let n = args.connections;
    let logins = args.logins.unwrap_or(n).min(n);
    ensure!(n >= 1, "--connections must be at least 1");
    ensure!(!args.gateway.is_empty(), "--gateway: at least one address");
    ensure!(
        args.gateway_pid.is_empty() || args.gateway_pid.len() == args.gateway.len(),
        "--gateway-pid: one pid per --gateway address"
    );
    ensure!(args.per_source >= 1, "--per-source must be at least 1");
    ensure!(args.per_process >= 1, "--per-process must be at least 1");
    ensure!(
        (1..=10_000).contains(&args.concurrency),
        "--concurrency must be in 1..=10000"
    );
    ensure!(
        args.hold >= 0.0 && args.timeout > 0.0,
        "--hold and --timeout are seconds"
    );
    let mut targets = Vec::with_capacity(args.gateway.len());
    for g in &args.gateway {
        let addr = tokio::net::lookup_host(g)
            .await
            .with_context(|| format!("resolving {g}"))?
            .next()
            .with_context(|| format!("{g} resolves to nothing"))?;
        targets.push(addr);
    }
    Ok(Checked { n, logins, targets })
}

pub async fn run(args: &ConnectionsArgs) -> anyhow::Result<Summary> {
    ensure!(!args.worker, "--worker runs through `worker`, not `run`");
    let checked = check_args(args).await?;
    let n = checked.n;
    let processes = n.div_ceil(args.per_process);
    let per = n.div_ceil(processes);
    let sources_per = per.div_ceil(args.per_source);
    ensure!(
        2 + processes * sources_per <= 255,
        "--connections / --per-source needs more than 253 source addresses"
    );
    let shares: Vec<Share> = (0..processes)
        .map(|p| Share {
            first: p * per,
            count: per.min(n - p * per),
            source_first: (2 + p * sources_per) as u8,
        })
        .collect();
    // Workers register their own users; only an in-process run reports it.
    let ops: &[(&'static str, bool)] = if processes == 1 {
        &[(OPEN, false), (REGISTER, false)]
    } else {
        &[(OPEN, false)]
    };
    let mut rec = Recorder::new(ops)?;
    let g = checked.targets.len();
    let (before, after, released, alive, opened) = if processes == 1 {
        in_process(args, &checked, shares[0], &mut rec).await?
    } else {
        with_workers(args, &checked, &shares).await?
    };
    let open_time = Duration::from_secs_f64(opened.open_s);
    for (us, count) in &opened.latency {
        for _ in 0..*count {
            rec.success(OPEN, Duration::from_micros(*us), 1);
        }
    }
    for (kind, count) in &opened.errors {
        for _ in 0..*count {
            rec.failure(OPEN, kind.clone());
        }
    }
    let total_alive: usize = alive.iter().sum();
    let mut summary = Summary::build(
        "connections",
        BTreeMap::from([
            ("connections".to_owned(), json!(n)),
            ("logins".to_owned(), json!(checked.logins)),
            ("gateways".to_owned(), json!(args.gateway)),
            ("per_source".to_owned(), json!(args.per_source)),
            ("processes".to_owned(), json!(processes)),
        ]),
        args.concurrency * processes,
        &rec,
        open_time,
    )?;
    let r = &mut summary.results;
    r.insert("opened".into(), json!(opened.opened));
    r.insert("failed".into(), json!(opened.failed));
    r.insert("alive".into(), json!(total_alive));
    r.insert(
        "closed_by_gateway".into(),
        json!(opened.opened as usize - total_alive.min(opened.opened as usize)),
    );
    r.insert("open_s".into(), json!(opened.open_s));
    if before.len() == g && after.len() == g {
        let mut per_gateway = Vec::with_capacity(g);
        for i in 0..g {
            let grown = after[i] as f64 - before[i] as f64;
            per_gateway.push(json!({
                "gateway": args.gateway[i],
                "pid": args.gateway_pid[i],
                "alive": alive[i],
                "rss_before_bytes": before[i],
                "rss_after_bytes": after[i],
                "rss_after_close_bytes": released.get(i),
                "bytes_per_conn": (alive[i] > 0).then(|| grown / alive[i] as f64),
            }));
        }
        let b: u64 = before.iter().sum();
        let a: u64 = after.iter().sum();
        r.insert("rss_before_bytes".into(), json!(b));
        r.insert("rss_after_bytes".into(), json!(a));
        if released.len() == g {
            r.insert(
                "rss_after_close_bytes".into(),
                json!(released.iter().sum::<u64>()),
            );
        }
        if total_alive > 0 {
            r.insert(
                "bytes_per_conn".into(),
                json!((a as f64 - b as f64) / total_alive as f64),
            );
        }
        r.insert("per_gateway".into(), json!(per_gateway));
    }
    if total_alive < n {
        bail_on_loss(n, total_alive, &summary)?;
    }
    Ok(summary)
}

type Measured = (Vec<u64>, Vec<u64>, Vec<u64>, Vec<usize>, Opened);

/// Every connection held by this process.
async fn in_process(
    args: &ConnectionsArgs,
    checked: &Checked,
    share: Share,
    rec: &mut Recorder,
) -> anyhow::Result<Measured> {
    let nofile = raise_open_files(share.count as u64 + 1024);
    ensure!(
        nofile > share.count as u64,
        "the open-file limit is {nofile}, below --connections {} (run as root, or lower --per-process)",
        share.count
    );
    register_share(args, checked, share, rec).await?;
    // Let the gateways settle after the registrations before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_all(&args.gateway_pid)?;
    let held: Held = Arc::new(Mutex::new(Vec::with_capacity(share.count)));
    let sweeper = tokio::spawn(sweep_forever(held.clone(), checked.targets.len()));
    let opened = open_share(args, checked, share, &held).await?;
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let alive = sweep(&held, checked.targets.len());
    let after = rss_all(&args.gateway_pid)?;
    sweeper.abort();
    lock(&held).clear();
    // How much comes back once they are gone (allocators keep some).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let released = rss_all(&args.gateway_pid)?;
    Ok((before, after, released, alive, opened))
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
async fn with_workers(
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

/// How many of `share`'s connections log in.
fn logins_in(checked: &Checked, share: Share) -> usize {
    checked.logins.saturating_sub(share.first).min(share.count)
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

/// Opens `share`'s connections into `held`.
async fn open_share(
    args: &ConnectionsArgs,
    checked: &Checked,
    share: Share,
    held: &Held,
) -> anyhow::Result<Opened> {
    let g = checked.targets.len();
    let logins = checked.logins.min(share.count);
    let started = Instant::now();
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut opens = futures::stream::iter(0..share.count)
        .map(|k| {
            let i = share.first + k;
            let src = Ipv4Addr::new(127, 0, 0, share.source_first + (k / args.per_source) as u8);
            let login = (k < logins).then(|| format!("{}-{i}", args.user_prefix));
            let password = args.password.clone();
            let (gw, target) = (i % g, checked.targets[i % g]);
            async move {
                let t = Instant::now();
                let r = tokio::time::timeout(timeout, open(src, target, login, &password)).await;
                (gw, t.elapsed(), r)
            }
        })
        .buffer_unordered(args.concurrency);
    let mut out = Opened::default();
    let mut hist = crate::stats::histogram()?;
    while let Some((gw, took, r)) = opens.next().await {
        match r {
            Ok(Ok(stream)) => {
                out.opened += 1;
                hist.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
                lock(held).push((gw, stream));
            }
            Ok(Err(error)) => {
                out.failed += 1;
                if out.failed <= 5 {
                    eprintln!("warning: a connection failed: {error:#}");
                }
                *out.errors.entry(kind_of(&error)).or_default() += 1;
            }
            Err(_) => {
                out.failed += 1;
                *out.errors.entry("timeout".into()).or_default() += 1;
            }
        }
    }
    out.open_s = started.elapsed().as_secs_f64();
    out.latency = hist
        .iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect();
    Ok(out)
}

/// A run where connections did not survive still prints its figures, on
/// stderr, before failing.
fn bail_on_loss(n: usize, alive: usize, summary: &Summary) -> anyhow::Result<()> {
    eprint!("{}", summary.render_text());
    bail!("only {alive} of {n} connections were open at the end")
}

/// Raises this process's open-file limit to at least `want` (the hard limit
/// too, which only root may); returns the soft limit in force.
fn raise_open_files(want: u64) -> u64 {
    use rlimit::Resource;
    if let Ok((soft, hard)) = rlimit::getrlimit(Resource::NOFILE)
        && soft < want
    {
        let _ = rlimit::setrlimit(Resource::NOFILE, want.max(soft), want.max(hard));
    }
    let _ = rlimit::increase_nofile_limit(want);
    rlimit::getrlimit(Resource::NOFILE).map_or(0, |(soft, _)| soft)
}

/// VmRSS of each of `pids` in bytes (empty without pids).
fn rss_all(pids: &[u32]) -> anyhow::Result<Vec<u64>> {
    pids.iter().map(|&pid| rss_of(pid)).collect()
}

/// VmRSS of `pid` in bytes.
fn rss_of(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .with_context(|| format!("no VmRSS in {path}"))?;
    Ok(kib * 1024)
}

/// Registers the users of `share` that log in (PREFIX-i for its global
/// indexes i, each through the gateway its connection will use); a name
/// already taken is reused.
async fn register_share(
    args: &ConnectionsArgs,
    checked: &Checked,
    share: Share,
    rec: &mut Recorder,
) -> anyhow::Result<()> {
    let n = checked.logins.min(share.count);
    if n == 0 {
        return Ok(());
    }
    let workers = args.concurrency.min(64).min(n);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (gateway, prefix, password) = (
            args.gateway[w % args.gateway.len()].clone(),
            args.user_prefix.clone(),
            args.password.clone(),
        );
        let first = share.first;
        let mut r = Recorder::new(&[(REGISTER, false)])?;
        set.spawn(async move {
            let client = confab_client::Client::connect(&gateway).await?;
            for k in (w..n).step_by(workers) {
                let i = first + k;
                let t = Instant::now();
                match client.register(&format!("{prefix}-{i}"), &password).await {
                    Ok(_) => r.success(REGISTER, t.elapsed(), 1),
                    Err(e) if e.code() == Some(ErrorCode::NameTaken) => {}
                    Err(e) => {
                        r.failure(REGISTER, e.code().map_or("io".into(), |c| format!("{c:?}")));
                        anyhow::bail!("registering {prefix}-{i}: {e}");
                    }
                }
            }
            anyhow::Ok(r)
        });
    }
    while let Some(joined) = set.join_next().await {
        rec.merge(joined.context("a registering task panicked")??)?;
    }
    eprintln!("{n} users ready in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

fn kind_of(error: &anyhow::Error) -> String {
    match error.downcast_ref::<std::io::Error>() {
        Some(e) => format!("io_{:?}", e.kind()),
        None => "protocol".into(),
    }
}

/// Connects from `src`, shakes hands and logs in as `login` (if given).
async fn open(
    src: Ipv4Addr,
    target: SocketAddr,
    login: Option<String>,
    password: &str,
) -> anyhow::Result<TcpStream> {
    let mut s = wire::connect(Some(src), target).await?;
    wire::hello(&mut s).await?;
    if let Some(name) = login {
        wire::login(&mut s, &name, password, "idle").await?;
    }
    Ok(s)
}

async fn sweep_forever(held: Held, gateways: usize) {
    loop {
        tokio::time::sleep(PING_EVERY).await;
        sweep(&held, gateways);
    }
}

/// Pings every held connection and drains what it was sent (pongs,
/// pushes); returns how many are still open, per gateway.
fn sweep(held: &Held, gateways: usize) -> Vec<usize> {
    let ping = wire::encode(u64::MAX, Body::Ping(pb::Ping {}));
    let mut scratch = [0u8; 512];
    let mut alive = vec![0; gateways];
    for (gw, s) in lock(held).iter() {
        let mut open = true;
        loop {
            match s.try_read(&mut scratch) {
                Ok(0) => {
                    open = false;
                    break;
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    open = false;
                    break;
                }
            }
        }
        if open && s.try_write(&ping).is_ok() {
            alive[*gw] += 1;
        }
    }
    alive
}
