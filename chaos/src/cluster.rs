//! Router processes behind proxies: start, SIGKILL, SIGTERM, SIGSTOP and
//! SIGCONT, restart on the same data dir and addresses; add a node that
//! joins the running cluster, and retire one the cluster removed.
//!
//! Node `id` listens on a real address of its own, and advertises its
//! proxy's address (`--peers id=PROXY`): the Raft membership and the cluster
//! map carry only proxy addresses, so every byte between nodes and from
//! clients crosses a proxy (see `proxy`).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use confab_router_client::ClientConfig;
use confab_router_client::RouterClient;
use nix::sys::signal::Signal;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use tempfile::TempDir;
use tokio::time::Instant;

use crate::error::Error;
use crate::error::Result;
use crate::origin::Pids;
use crate::proxy::Links;
use crate::proxy::Proxy;

/// Where a workspace binary is: `$CONFAB_BIN_DIR/name`, else beside the
/// running executable or one directory up (a test binary lives in
/// `target/<profile>/deps/`, the binaries in `target/<profile>/`).
pub fn workspace_bin(name: &str) -> Result<PathBuf> {
    confab_testkit::find_bin(name).map_err(|path| Error::BinaryNotFound {
        name: name.into(),
        path,
    })
}

/// The cluster's shape and timings.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub nodes: u64,
    pub shards: u32,
    pub slots: u32,
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Leadership hand-off budget on SIGTERM.
    pub handoff_ms: u64,
    /// Snapshot after this many entries: small, so runs cross snapshots.
    pub snapshot_after_logs: u64,
    /// `lease` or `read_index`.
    pub read: &'static str,
    /// The routers' `RUST_LOG`.
    pub log_filter: String,
    pub binary: PathBuf,
    /// More environment for the routers (a test planting a bug).
    pub env: Vec<(String, String)>,
}

impl ClusterSpec {
    /// 4 nodes, 4 shards of 3 replicas (so every shard has a node to move
    /// a replica to), test timings; the router binary from [`workspace_bin`].
    pub fn small() -> Result<Self> {
        Ok(ClusterSpec {
            nodes: 4,
            shards: 4,
            slots: 256,
            heartbeat_ms: 50,
            election_min_ms: 300,
            election_max_ms: 600,
            handoff_ms: 2000,
            snapshot_after_logs: 500,
            read: "lease",
            log_filter: "warn".into(),
            binary: workspace_bin("confab-router")?,
            env: Vec::new(),
        })
    }

    fn config_toml(&self) -> String {
        format!(
            "lease_ms = 3000\n\
             handoff_ms = {handoff}\n\
             read = \"{read}\"\n\n\
             [cluster]\nslots = {slots}\nshards = {shards}\nreplicas = 3\nmeta_voters = 3\n\n\
             [raft]\nheartbeat_ms = {hb}\nelection_min_ms = {emin}\nelection_max_ms = {emax}\n\
             snapshot_after_logs = {snap}\nlogs_kept_after_snapshot = 100\nrpc_timeout_ms = 300\n",
            handoff = self.handoff_ms,
            read = self.read,
            slots = self.slots,
            shards = self.shards,
            hb = self.heartbeat_ms,
            emin = self.election_min_ms,
            emax = self.election_max_ms,
            snap = self.snapshot_after_logs,
        )
    }
}

/// Router processes, each behind its proxy; every process is killed on drop.
pub struct Cluster {
    spec: ClusterSpec,
    dir: TempDir,
    /// Real gRPC listeners, by node id.
    listen: BTreeMap<u64, SocketAddr>,
    http: BTreeMap<u64, SocketAddr>,
    proxies: BTreeMap<u64, Proxy>,
    links: Links,
    pids: Pids,
    children: BTreeMap<u64, Child>,
    paused: BTreeSet<u64>,
    /// The nodes in the cluster: the initial ones, plus added, less retired.
    members: BTreeSet<u64>,
    /// Nodes started with `--join` rather than from the bootstrap list.
    joined: BTreeSet<u64>,
}

/// A free loopback address, never one handed out before in this process.
fn free_addr() -> Result<SocketAddr> {
    confab_testkit::free_socket_addr().map_err(Error::io("finding a free port"))
}

impl Cluster {
    /// Starts the proxies and every node; returns without waiting for
    /// leaders (see [`Cluster::wait_ready`]).
    pub async fn start(spec: ClusterSpec) -> Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("confab-chaos-")
            .tempdir()
            .map_err(Error::io("creating the cluster dir"))?;
        std::fs::write(dir.path().join("router.toml"), spec.config_toml())
            .map_err(Error::io("writing the router config"))?;
        let links = Links::new();
        let pids = Pids::default();
        let mut listen = BTreeMap::new();
        let mut http = BTreeMap::new();
        let mut proxies = BTreeMap::new();
        let spec_nodes = spec.nodes;
        for id in 1..=spec.nodes {
            let real = free_addr()?;
            listen.insert(id, real);
            http.insert(id, free_addr()?);
            let proxy = Proxy::start(id, real, links.clone(), pids.clone())
                .await
                .map_err(Error::io("starting a proxy"))?;
            proxies.insert(id, proxy);
        }
        let mut cluster = Cluster {
            spec,
            dir,
            listen,
            http,
            proxies,
            links,
            pids,
            children: BTreeMap::new(),
            paused: BTreeSet::new(),
            members: (1..=spec_nodes).collect(),
            joined: BTreeSet::new(),
        };
        for id in 1..=cluster.spec.nodes {
            cluster.spawn(id)?;
        }
        Ok(cluster)
    }

    /// The nodes in the cluster now.
    pub fn node_ids(&self) -> Vec<u64> {
        self.members.iter().copied().collect()
    }

    /// Starts node `id` behind a new proxy; it joins the running cluster
    /// through another member (restarts of it join again, which is a no-op
    /// for a member).
    pub async fn add_node(&mut self, id: u64) -> Result<()> {
        if self.members.contains(&id) {
            return Ok(());
        }
        let real = free_addr()?;
        self.listen.insert(id, real);
        self.http.insert(id, free_addr()?);
        let proxy = Proxy::start(id, real, self.links.clone(), self.pids.clone())
            .await
            .map_err(Error::io("starting a proxy"))?;
        self.proxies.insert(id, proxy);
        self.members.insert(id);
        self.joined.insert(id);
        self.spawn(id)
    }

    /// Stops node `id` for good: the cluster removed it.
    pub fn retire(&mut self, id: u64) -> Result<()> {
        if self.children.contains_key(&id) {
            let _ = self.signal(id, Signal::SIGCONT);
            self.kill(id)?;
        }
        self.members.remove(&id);
        Ok(())
    }

    pub fn links(&self) -> &Links {
        &self.links
    }

    pub fn proxies(&self) -> impl Iterator<Item = &Proxy> {
        self.proxies.values()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the cluster dir (data, configs, logs) after the cluster is
    /// dropped; returns its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        self.dir.disable_cleanup(true);
        self.dir.path().to_path_buf()
    }

    /// The advertised (proxy) address of every member: what clients dial.
    pub fn addrs(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|id| self.proxies[id].addr().to_string())
            .collect()
    }

    /// The bootstrap list: the initial nodes.
    fn peers_flag(&self) -> String {
        self.proxies
            .iter()
            .filter(|(id, _)| **id <= self.spec.nodes)
            .map(|(id, p)| format!("{id}={}", p.addr()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts node `id`'s process (fresh, or again on its data dir).
    pub fn spawn(&mut self, id: u64) -> Result<()> {
        if self.children.contains_key(&id) {
            return Ok(());
        }
        let log_path = self.dir.path().join(format!("router-{id}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(Error::io(format!("opening {}", log_path.display())))?;
        let mut command = Command::new(&self.spec.binary);
        command
            .arg("--config")
            .arg(self.dir.path().join("router.toml"))
            .arg("--id")
            .arg(id.to_string())
            .arg("--listen")
            .arg(self.listen[&id].to_string())
            .arg("--http")
            .arg(self.http[&id].to_string())
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("router-{id}")));
        if self.joined.contains(&id) {
            // Advertise the proxy; join through another member's.
            let seed = self
                .members
                .iter()
                .find(|&&m| m != id)
                .map(|m| self.proxies[m].addr().to_string())
                .ok_or(Error::NotRunning(id))?;
            command
                .arg("--peers")
                .arg(format!("{id}={}", self.proxies[&id].addr()))
                .arg("--join")
                .arg(seed);
        } else {
            command.arg("--bootstrap").arg("--peers").arg(self.peers_flag());
        }
        let child = command
            .env("RUST_LOG", &self.spec.log_filter)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(Error::io(format!("spawning {}", self.spec.binary.display())))?;
        self.pids.set(id, child.id());
        self.children.insert(id, child);
        Ok(())
    }

    fn signal(&self, id: u64, signal: Signal) -> Result<()> {
        let child = self.children.get(&id).ok_or(Error::NotRunning(id))?;
        let pid = child.id();
        let raw = i32::try_from(pid).map_err(|_| Error::NotRunning(id))?;
        kill(Pid::from_raw(raw), signal).map_err(|source| Error::Signal {
            node: id,
            pid,
            signal: signal.as_str(),
            source,
        })
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self, id: u64) -> Result<()> {
        self.signal(id, Signal::SIGKILL)?;
        self.reap(id);
        Ok(())
    }

    fn reap(&mut self, id: u64) {
        if let Some(mut child) = self.children.remove(&id) {
            let _ = child.wait();
        }
        self.paused.remove(&id);
        self.pids.remove(id);
    }

    /// SIGTERM (the node hands its leaderships off, then stops); SIGKILL if
    /// it has not exited within `grace`. Returns how long it took to exit by
    /// itself, `None` when it had to be killed.
    pub async fn terminate(&mut self, id: u64, grace: Duration) -> Result<Option<Duration>> {
        if self.paused.contains(&id) {
            self.resume(id)?;
        }
        self.signal(id, Signal::SIGTERM)?;
        let started = Instant::now();
        let deadline = started + grace;
        loop {
            let exited = match self.children.get_mut(&id) {
                Some(child) => child.try_wait().ok().flatten().is_some(),
                None => true,
            };
            if exited {
                self.reap(id);
                return Ok(Some(started.elapsed()));
            }
            if Instant::now() >= deadline {
                self.kill(id)?;
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGSTOP: the process neither sends nor receives until resumed.
    pub fn pause(&mut self, id: u64) -> Result<()> {
        self.signal(id, Signal::SIGSTOP)?;
        self.paused.insert(id);
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self, id: u64) -> Result<()> {
        self.signal(id, Signal::SIGCONT)?;
        self.paused.remove(&id);
        Ok(())
    }

    /// Whether node `id`'s process is running (not killed; maybe paused).
    pub fn is_running(&self, id: u64) -> bool {
        self.children.contains_key(&id)
    }

    /// The pid of node `id`'s process.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.children.get(&id).map(Child::id)
    }

    /// Whether node `id`'s process exited although nothing stopped it.
    pub fn has_exited(&mut self, id: u64) -> bool {
        self.children
            .get_mut(&id)
            .is_some_and(|child| child.try_wait().ok().flatten().is_some())
    }

    /// The node's stderr so far.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("router-{id}.log"))).unwrap_or_default()
    }

    /// A client of this cluster (through the proxies) with `config`.
    pub fn client(&self, config: ClientConfig) -> Result<RouterClient> {
        Ok(RouterClient::new(self.addrs(), config)?)
    }

    /// Waits until every node answers, hosts every group, and all agree on
    /// one leader per group.
    pub async fn wait_ready(&self, within: Duration) -> Result<()> {
        let client = self.client(ClientConfig {
            deadline: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(1),
            ..Default::default()
        })?;
        let deadline = Instant::now() + within;
        let groups = self.spec.shards as usize + 1;
        loop {
            let last = match client.refresh_map().await {
                Err(e) => e.to_string(),
                Ok(_) => match client.all_node_status().await {
                    Err(e) => e.to_string(),
                    Ok(all) => {
                        let mut leaders: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
                        let mut problem = None;
                        for (info, status) in &all {
                            match status {
                                Err(e) => problem = Some(format!("node {}: {e}", info.id)),
                                Ok(st) => {
                                    for g in &st.groups {
                                        leaders.entry(g.group_id).or_default().insert(g.leader);
                                    }
                                }
                            }
                        }
                        if all.len() != self.members.len() {
                            problem = Some(format!("{} nodes in the map", all.len()));
                        }
                        let settled = leaders.len() == groups
                            && leaders.values().all(|l| l.len() == 1 && !l.contains(&0));
                        match problem {
                            Some(p) => p,
                            None if settled => return Ok(()),
                            None => format!("leaders by group: {leaders:?}"),
                        }
                    }
                },
            };
            if Instant::now() >= deadline {
                return Err(Error::NotReady { within, last });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.children.keys().copied().collect();
        for id in ids {
            let _ = self.signal(id, Signal::SIGCONT);
            let _ = self.kill(id);
        }
    }
}
