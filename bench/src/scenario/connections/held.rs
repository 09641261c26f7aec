//! The held connections: opened from their source addresses (handshake,
//! then a login for some), kept alive by one sweeper's pings, counted per
//! gateway while open.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_client::ClientTls;
use confab_client::proto::{self as pb, frame::Body};
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::args::{Checked, ConnectionsArgs, Opened, Share};
use crate::wire;

/// How often the sweeper pings every connection (well under the gateway's
/// default idle timeout of 90 s).
const PING_EVERY: Duration = Duration::from_secs(20);

/// One held connection: a plain socket, or a TLS stream over one.
pub(super) enum Socket {
    Plain(TcpStream),
    Tls(wire::Stream),
}

/// Open sockets (with their gateway's index), shared by the openers and
/// the sweeper.
pub(super) type Held = Arc<Mutex<Vec<(usize, Socket)>>>;

pub(super) fn lock(held: &Held) -> std::sync::MutexGuard<'_, Vec<(usize, Socket)>> {
    held.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens `share`'s connections into `held`.
pub(super) async fn open_share(
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
            let tls = checked.tls.as_ref().map(|t| (t, args.gateway[gw].as_str()));
            async move {
                let t = Instant::now();
                let r = open(src, target, tls, login, &password, t + timeout).await;
                (gw, t.elapsed(), r)
            }
        })
        .buffer_unordered(args.concurrency);
    let mut out = Opened::default();
    let mut hist = crate::stats::histogram()?;
    while let Some((gw, took, r)) = opens.next().await {
        match r {
            Ok(stream) => {
                out.opened += 1;
                hist.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
                lock(held).push((gw, stream));
            }
            Err(error) => {
                out.failed += 1;
                if out.failed <= 5 {
                    eprintln!("warning: a connection failed: {error:#}");
                }
                *out.errors.entry(kind_of(&error)).or_default() += 1;
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

/// Raises this process's open-file limit to at least `want` (the hard limit
/// too, which only root may); returns the soft limit in force.
pub(super) fn raise_open_files(want: u64) -> u64 {
    use rlimit::Resource;
    if let Ok((soft, hard)) = rlimit::getrlimit(Resource::NOFILE)
        && soft < want
    {
        let _ = rlimit::setrlimit(Resource::NOFILE, want.max(soft), want.max(hard));
    }
    let _ = rlimit::increase_nofile_limit(want);
    rlimit::getrlimit(Resource::NOFILE).map_or(0, |(soft, _)| soft)
}

/// An open that missed its deadline, with the step it was in.
#[derive(Debug, thiserror::Error)]
#[error("timed out in the {0} step")]
struct StepTimeout(&'static str);

fn kind_of(error: &anyhow::Error) -> String {
    if let Some(StepTimeout(step)) = error.downcast_ref::<StepTimeout>() {
        return format!("timeout_{step}");
    }
    match error.downcast_ref::<std::io::Error>() {
        Some(e) => format!("io_{:?}", e.kind()),
        None => "protocol".into(),
    }
}

/// `step` if it ends by `deadline`; else a [`StepTimeout`] naming it.
async fn by<T>(
    deadline: Instant,
    step: &'static str,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout_at(deadline, f).await {
        Ok(r) => r,
        Err(_) => Err(StepTimeout(step).into()),
    }
}

/// Connects from `src` (over TLS to the gateway named `addr`, with `tls`),
/// shakes hands and logs in as `login` (if given), all by `deadline`; a
/// timeout names the step that was under way.
async fn open(
    src: Ipv4Addr,
    target: SocketAddr,
    tls: Option<(&ClientTls, &str)>,
    login: Option<String>,
    password: &str,
    deadline: Instant,
) -> anyhow::Result<Socket> {
    let s = by(deadline, "connect", async {
        wire::connect(Some(src), target).await
    })
    .await?;
    match tls {
        None => {
            let mut s = s;
            greet(&mut s, login, password, deadline).await?;
            Ok(Socket::Plain(s))
        }
        Some((tls, addr)) => {
            let s = by(deadline, "tls", async { Ok(tls.connect(addr, s).await?) }).await?;
            let mut s: wire::Stream = Box::new(s);
            greet(&mut s, login, password, deadline).await?;
            Ok(Socket::Tls(s))
        }
    }
}

async fn greet<S: wire::Io>(
    s: &mut S,
    login: Option<String>,
    password: &str,
    deadline: Instant,
) -> anyhow::Result<()> {
    by(deadline, "hello", wire::hello(s)).await?;
    if let Some(name) = login {
        by(deadline, "login", wire::login(s, &name, password, "idle")).await?;
    }
    Ok(())
}

pub(super) async fn sweep_forever(held: Held, gateways: usize) {
    loop {
        tokio::time::sleep(PING_EVERY).await;
        sweep(&held, gateways);
    }
}

/// Pings every held connection and drains what it was sent (pongs,
/// pushes); returns how many are still open, per gateway.
pub(super) fn sweep(held: &Held, gateways: usize) -> Vec<usize> {
    let ping = wire::encode(u64::MAX, Body::Ping(pb::Ping {}));
    let mut scratch = [0u8; 512];
    let mut alive = vec![0; gateways];
    for (gw, s) in lock(held).iter_mut() {
        let open = match s {
            Socket::Plain(s) => sweep_plain(s, &mut scratch, &ping),
            Socket::Tls(s) => sweep_tls(s, &mut scratch, &ping),
        };
        if open {
            alive[*gw] += 1;
        }
    }
    alive
}

/// Drains a plain socket without waiting and pings it; false once closed.
fn sweep_plain(s: &TcpStream, scratch: &mut [u8], ping: &[u8]) -> bool {
    loop {
        match s.try_read(scratch) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(_) => return false,
        }
    }
    s.try_write(ping).is_ok()
}

/// As [`sweep_plain`] through TLS: each read or write is polled once (a
/// pending one is dropped, which loses nothing: nothing was taken yet, and
/// a ping rustls took is sent by a later flush).
fn sweep_tls(s: &mut wire::Stream, scratch: &mut [u8], ping: &[u8]) -> bool {
    loop {
        match s.read(scratch).now_or_never() {
            Some(Ok(0)) | Some(Err(_)) => return false,
            Some(Ok(_)) => continue,
            None => break,
        }
    }
    match s.write_all(ping).now_or_never() {
        Some(Ok(())) => !matches!(s.flush().now_or_never(), Some(Err(_))),
        Some(Err(_)) => false,
        // The socket takes nothing now: still open, pinged next time.
        None => true,
    }
}
