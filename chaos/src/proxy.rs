//! A user-space TCP proxy in front of each router node, with faults per
//! directed link.
//!
//! Topology: every router advertises its proxy's address (its `--peers`
//! entry), so everything sent to node B — Raft traffic from the other nodes
//! and client calls — enters through B's proxy, which forwards to B's real
//! listener. The proxy learns who opened each connection ([`Origin`], from
//! `/proc`, see `origin`), so a fault is set per directed link `from -> to`:
//! a connection from A to B carries A -> B one way and B -> A back, and each
//! direction obeys its own link's [`LinkMode`]. Isolating B cuts B -> x and
//! x -> B for every other node x: B's proxy refuses the others and the other
//! proxies refuse B, while clients still reach every node (so a deposed
//! leader that still believes in itself can be asked for a read).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::origin::Origin;
use crate::origin::Pids;
use crate::rng::Rng;

/// What a link does to the bytes that travel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LinkMode {
    /// Forward at once.
    Pass,
    /// Forward each chunk `fixed + [0, jitter]` ms after it arrived, in order.
    Delay { fixed_ms: u64, jitter_ms: u64 },
    /// Close existing connections and every new one at once.
    Drop,
    /// Accept and hold connections, forward nothing; when the link heals,
    /// the held connections are closed (their bytes are gone).
    Blackhole,
}

/// The mode of every directed link; a link not listed passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkTable {
    modes: BTreeMap<(Origin, Origin), LinkMode>,
}

impl LinkTable {
    pub fn mode(&self, from: Origin, to: Origin) -> LinkMode {
        if from == to {
            return LinkMode::Pass;
        }
        self.modes.get(&(from, to)).copied().unwrap_or(LinkMode::Pass)
    }

    /// The links that do not pass.
    pub fn faulty(&self) -> impl Iterator<Item = (Origin, Origin, LinkMode)> + '_ {
        self.modes.iter().map(|((f, t), m)| (*f, *t, *m))
    }
}

/// The shared link table; proxies watch it and react to changes at once.
#[derive(Debug, Clone)]
pub struct Links {
    tx: Arc<watch::Sender<LinkTable>>,
}

impl Default for Links {
    fn default() -> Self {
        Self::new()
    }
}

impl Links {
    pub fn new() -> Self {
        Links {
            tx: Arc::new(watch::Sender::new(LinkTable::default())),
        }
    }

    /// Sets the link `from -> to`.
    pub fn set(&self, from: Origin, to: Origin, mode: LinkMode) {
        self.tx.send_modify(|t| {
            if mode == LinkMode::Pass {
                t.modes.remove(&(from, to));
            } else {
                t.modes.insert((from, to), mode);
            }
        });
    }

    /// Cuts `node` from every other node of `nodes`, both ways.
    pub fn isolate(&self, node: u64, nodes: &[u64], mode: LinkMode) {
        self.tx.send_modify(|t| {
            for &other in nodes.iter().filter(|&&n| n != node) {
                t.modes.insert((Origin::Node(node), Origin::Node(other)), mode);
                t.modes.insert((Origin::Node(other), Origin::Node(node)), mode);
            }
        });
    }

    /// Sets every directed link between two nodes of `nodes`.
    pub fn between_nodes(&self, nodes: &[u64], mode: LinkMode) {
        self.tx.send_modify(|t| {
            for &a in nodes {
                for &b in nodes.iter().filter(|&&b| b != a) {
                    t.modes.insert((Origin::Node(a), Origin::Node(b)), mode);
                }
            }
        });
    }

    /// Every link passes again.
    pub fn heal(&self) {
        self.tx.send_modify(|t| t.modes.clear());
    }

    pub fn table(&self) -> LinkTable {
        self.tx.borrow().clone()
    }

    fn subscribe(&self) -> watch::Receiver<LinkTable> {
        self.tx.subscribe()
    }
}

/// What a proxy saw.
#[derive(Debug, Default)]
pub struct ProxyStats {
    accepted: Mutex<BTreeMap<Origin, u64>>,
    /// Connections closed because a link dropped or healed from a blackhole.
    cut: AtomicU64,
    /// Connections accepted into a blackhole.
    held: AtomicU64,
    /// Chunks forwarded late (delay mode).
    delayed: AtomicU64,
}

/// A snapshot of [`ProxyStats`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProxyCounts {
    pub accepted: BTreeMap<Origin, u64>,
    pub cut: u64,
    pub held: u64,
    pub delayed: u64,
}

/// The proxy in front of one node; stops (with its connections) on drop.
#[derive(Debug)]
pub struct Proxy {
    node: u64,
    addr: SocketAddr,
    stats: Arc<ProxyStats>,
    task: JoinHandle<()>,
}

struct Ctx {
    me: Origin,
    target: SocketAddr,
    links: Links,
    pids: Pids,
    stats: Arc<ProxyStats>,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards to `target`, node `node`'s real
    /// listener.
    pub async fn start(node: u64, target: SocketAddr, links: Links, pids: Pids) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(ProxyStats::default());
        let ctx = Arc::new(Ctx {
            me: Origin::Node(node),
            target,
            links,
            pids,
            stats: stats.clone(),
        });
        let task = tokio::spawn(accept_loop(listener, ctx));
        Ok(Proxy {
            node,
            addr,
            stats,
            task,
        })
    }

    pub fn node(&self) -> u64 {
        self.node
    }

    /// Where callers connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn counts(&self) -> ProxyCounts {
        ProxyCounts {
            accepted: self
                .stats
                .accepted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            cut: self.stats.cut.load(Ordering::Relaxed),
            held: self.stats.held.load(Ordering::Relaxed),
            delayed: self.stats.delayed.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, ctx: Arc<Ctx>) {
    // Dropped with this task: aborts every connection.
    let mut conns = JoinSet::new();
    let mut seed = Rng::new(u64::from(ctx.target.port()));
    loop {
        while conns.try_join_next().is_some() {}
        let Ok((conn, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        conns.spawn(serve(conn, peer, ctx.clone(), seed.fork()));
    }
}

async fn serve(conn: TcpStream, peer: SocketAddr, ctx: Arc<Ctx>, mut rng: Rng) {
    let Ok(local) = conn.local_addr() else { return };
    let pids = ctx.pids.clone();
    let origin = tokio::task::spawn_blocking(move || pids.origin_of(peer, local))
        .await
        .unwrap_or(Origin::Client);
    *ctx.stats
        .accepted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(origin)
        .or_default() += 1;
    let rx = ctx.links.subscribe();
    let (up, down) = {
        let t = rx.borrow();
        (t.mode(origin, ctx.me), t.mode(ctx.me, origin))
    };
    if up == LinkMode::Drop || down == LinkMode::Drop {
        ctx.stats.cut.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if up == LinkMode::Blackhole || down == LinkMode::Blackhole {
        ctx.stats.held.fetch_add(1, Ordering::Relaxed);
        hold(conn, origin, &ctx, rx).await;
        ctx.stats.cut.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let server = match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(ctx.target)).await {
        Ok(Ok(s)) => s,
        // The node is down: the caller sees its connection close.
        _ => return,
    };
    let _ = conn.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = conn.into_split();
    let (server_read, server_write) = server.into_split();
    let upstream = Pump {
        from: origin,
        to: ctx.me,
        rx: rx.clone(),
        rng: rng.fork(),
        stats: ctx.stats.clone(),
    };
    let downstream = Pump {
        from: ctx.me,
        to: origin,
        rx,
        rng,
        stats: ctx.stats.clone(),
    };
    let cut = tokio::select! {
        cut = upstream.run(client_read, server_write) => cut,
        cut = downstream.run(server_read, client_write) => cut,
    };
    if cut {
        ctx.stats.cut.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads and discards until the link is no longer a blackhole.
async fn hold(mut conn: TcpStream, origin: Origin, ctx: &Ctx, mut rx: watch::Receiver<LinkTable>) {
    let mut sink = vec![0u8; 16 * 1024];
    let mut open = true;
    loop {
        tokio::select! {
            n = conn.read(&mut sink), if open => {
                // The caller closed its end: keep holding ours until heal.
                if !matches!(n, Ok(n) if n > 0) {
                    open = false;
                }
            }
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                let t = rx.borrow_and_update();
                if t.mode(origin, ctx.me) != LinkMode::Blackhole && t.mode(ctx.me, origin) != LinkMode::Blackhole {
                    return;
                }
            }
        }
    }
}

/// One direction of a connection.
struct Pump {
    from: Origin,
    to: Origin,
    rx: watch::Receiver<LinkTable>,
    rng: Rng,
    stats: Arc<ProxyStats>,
}

impl Pump {
    /// Forwards until EOF (false) or until a fault cuts the connection (true).
    async fn run(
        mut self,
        mut reader: tokio::net::tcp::OwnedReadHalf,
        mut writer: tokio::net::tcp::OwnedWriteHalf,
    ) -> bool {
        let (queue, mut queued) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
        let write = async move {
            while let Some((at, chunk)) = queued.recv().await {
                tokio::time::sleep_until(at).await;
                if writer.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = writer.shutdown().await;
        };
        tokio::pin!(write);
        let mut buf = vec![0u8; 16 * 1024];
        let mut last = Instant::now();
        let mut tainted = self.rx.borrow().mode(self.from, self.to) == LinkMode::Blackhole;
        let cut = loop {
            tokio::select! {
                n = reader.read(&mut buf) => {
                    let n = match n {
                        Ok(0) | Err(_) => break false,
                        Ok(n) => n,
                    };
                    let now = Instant::now();
                    let at = match self.rx.borrow().mode(self.from, self.to) {
                        LinkMode::Pass => now,
                        LinkMode::Delay { fixed_ms, jitter_ms } => {
                            self.stats.delayed.fetch_add(1, Ordering::Relaxed);
                            now + Duration::from_millis(fixed_ms + self.rng.below(jitter_ms + 1))
                        }
                        LinkMode::Blackhole => {
                            tainted = true;
                            continue;
                        }
                        LinkMode::Drop => break true,
                    };
                    last = last.max(at);
                    if queue.send((last, buf[..n].to_vec())).is_err() {
                        break true;
                    }
                }
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        break true;
                    }
                    match self.rx.borrow_and_update().mode(self.from, self.to) {
                        LinkMode::Drop => break true,
                        LinkMode::Blackhole => tainted = true,
                        _ if tainted => break true,
                        _ => {}
                    }
                }
                () = &mut write => break true,
            }
        };
        if !cut {
            // EOF: deliver what is queued, then pass the EOF on.
            drop(queue);
            write.await;
        }
        cut
    }
}
