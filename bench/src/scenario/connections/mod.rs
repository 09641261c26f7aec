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

mod args;
mod held;
mod process;
mod rss;
mod users;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure};
use serde_json::json;

use crate::report::Summary;
use crate::stats::Recorder;
pub use args::ConnectionsArgs;
use args::{Checked, Measured, OPEN, REGISTER, Share, check_args};
use held::{Held, lock, open_share, raise_open_files, sweep, sweep_forever};
use process::with_workers;
pub use process::worker;
use rss::rss_all;
use users::register_share;

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
            ("tls".to_owned(), json!(checked.tls.is_some())),
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

/// A run where connections did not survive still prints its figures, on
/// stderr, before failing.
fn bail_on_loss(n: usize, alive: usize, summary: &Summary) -> anyhow::Result<()> {
    eprint!("{}", summary.render_text());
    bail!("only {alive} of {n} connections were open at the end")
}
