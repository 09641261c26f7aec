//! Test clusters: routers in this process (`InProc`) or as real processes
//! (`Procs`), on 127.0.0.1 port 0 and temp dirs, stopped by the test.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;
use std::time::Instant;

use confab_router::RouterConfig;
use confab_router::Running;
use confab_router::sm::GroupData;
use confab_router_client::ClientConfig;
use confab_router_client::RouterClient;
use confab_router_client::Session;
use confab_testkit::Processes;
pub use confab_testkit::eventually;
use confab_testkit::free_addr;
use confab_testkit::http_get;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Fast timings for tests; the layout is small so a cluster starts quickly.
pub fn test_config(
    id: u64,
    dir: &std::path::Path,
    peers: &BTreeMap<u64, String>,
    shards: u32,
) -> RouterConfig {
    let mut c = RouterConfig {
        id,
        data_dir: dir.join(format!("router-{id}")),
        bootstrap: true,
        peers: peers.clone(),
        lease_ms: 1500,
        ..Default::default()
    };
    c.cluster.slots = 256;
    c.cluster.shards = shards;
    c.raft.heartbeat_ms = 50;
    c.raft.election_min_ms = 250;
    c.raft.election_max_ms = 500;
    c.raft.snapshot_after_logs = 500;
    c.raft.logs_kept_after_snapshot = 100;
    c
}

pub fn session(session_id: u64, gateway_id: u64, incarnation: u64, device: &str) -> Session {
    Session {
        session_id,
        gateway_id,
        gateway_incarnation: incarnation,
        device_kind: confab_router_client::DeviceKind::Mobile as i32,
        device_id: device.to_string(),
        login_at_ms: 1,
    }
}

pub async fn client(addrs: Vec<String>) -> RouterClient {
    let config = ClientConfig {
        deadline: Duration::from_secs(10),
        ..Default::default()
    };
    RouterClient::new(addrs, config).expect("client")
}

/// Logs in one session per uid of `uids`, 32 at a time; each uid's result.
pub async fn login_many(
    client: &RouterClient,
    uids: std::ops::RangeInclusive<u64>,
) -> Vec<confab_router_client::Result<u64>> {
    use futures::StreamExt;
    futures::stream::iter(uids)
        .map(|uid| {
            let client = client.clone();
            async move {
                client
                    .login(
                        uid,
                        session(uid, 1, 1, "d"),
                        confab_router_client::MultiDevicePolicy::AllowAll,
                    )
                    .await
                    .map(|_| uid)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await
}

pub struct InProcNode {
    pub running: Running,
    pub stop: CancellationToken,
}

/// Changes a test's router config before a node starts.
pub type Tweak = std::sync::Arc<dyn Fn(&mut RouterConfig) + Send + Sync>;

pub struct InProc {
    pub dir: TempDir,
    pub peers: BTreeMap<u64, String>,
    pub http: BTreeMap<u64, String>,
    pub shards: u32,
    pub nodes: BTreeMap<u64, InProcNode>,
    tweak: Tweak,
}

impl InProc {
    pub async fn start(n: u64, shards: u32) -> Self {
        Self::start_with(n, shards, std::sync::Arc::new(|_| {})).await
    }

    /// [`InProc::start`] with `tweak` applied to every node's config (nodes
    /// added later included).
    pub async fn start_with(n: u64, shards: u32, tweak: Tweak) -> Self {
        confab_common::telemetry::init_with_default("warn");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut grpc = BTreeMap::new();
        let mut http = BTreeMap::new();
        for id in 1..=n {
            grpc.insert(id, TcpListener::bind("127.0.0.1:0").await.expect("bind"));
            http.insert(id, TcpListener::bind("127.0.0.1:0").await.expect("bind"));
        }
        let peers: BTreeMap<u64, String> = grpc
            .iter()
            .map(|(id, l)| (*id, l.local_addr().expect("addr").to_string()))
            .collect();
        let http_addrs = http
            .iter()
            .map(|(id, l)| (*id, l.local_addr().expect("addr").to_string()))
            .collect();
        let mut cluster = InProc {
            dir,
            peers,
            http: http_addrs,
            shards,
            nodes: BTreeMap::new(),
            tweak,
        };
        for id in 1..=n {
            let g = grpc.remove(&id).expect("listener");
            let h = http.remove(&id).expect("listener");
            cluster.launch(id, g, h).await;
        }
        cluster.wait_ready().await;
        cluster
    }

    async fn launch(&mut self, id: u64, grpc: TcpListener, http: TcpListener) {
        let config = test_config(id, self.dir.path(), &self.peers, self.shards);
        self.run_node(config, grpc, http).await;
    }

    /// Starts node `config.id` in this process, the test's tweak applied.
    async fn run_node(&mut self, mut config: RouterConfig, grpc: TcpListener, http: TcpListener) {
        (self.tweak)(&mut config);
        let id = config.id;
        let stop = CancellationToken::new();
        let running = confab_router::start(config, grpc, http, stop.clone())
            .await
            .expect("router starts");
        self.nodes.insert(id, InProcNode { running, stop });
    }

    /// Starts a new node `id` that joins the running cluster through node
    /// `seed` (it bootstraps nothing).
    pub async fn add_node(&mut self, id: u64, seed: u64) {
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        self.peers
            .insert(id, grpc.local_addr().expect("addr").to_string());
        self.http.insert(id, http.local_addr().expect("addr").to_string());
        let mut config = test_config(id, self.dir.path(), &self.peers, self.shards);
        config.bootstrap = false;
        config.join = Some(self.peers[&seed].clone());
        self.run_node(config, grpc, http).await;
    }

    /// Stops node `id` (its data stays on disk).
    pub async fn stop(&mut self, id: u64) {
        let n = self.nodes.remove(&id).expect("node running");
        n.stop.cancel();
        let _ = n.running.task.await;
    }

    /// Restarts node `id` from its data dir on its old addresses.
    pub async fn restart(&mut self, id: u64) {
        let g = bind_retry(&self.peers[&id]).await;
        let h = bind_retry(&self.http[&id]).await;
        self.launch(id, g, h).await;
    }

    pub async fn wait_ready(&self) {
        eventually(
            Duration::from_secs(30),
            "every group has a leader and a map",
            || async {
                self.nodes.values().all(|n| {
                    n.running.node.meta_state().is_ok()
                        && n.running.node.groups().iter().all(|g| g.leader().is_some())
                })
            },
        )
        .await;
    }

    pub async fn client(&self) -> RouterClient {
        client(self.addrs()).await
    }

    /// A client for long admin calls (a drain moves many replicas), as
    /// `confabctl --move-timeout` makes one.
    pub fn admin_client(&self) -> RouterClient {
        let long = Duration::from_secs(120);
        let config = ClientConfig {
            deadline: long,
            attempt_timeout: long,
            ..Default::default()
        };
        RouterClient::new(self.addrs(), config).expect("admin client")
    }

    fn addrs(&self) -> Vec<String> {
        self.nodes
            .values()
            .map(|n| n.running.grpc_addr.to_string())
            .collect()
    }

    /// The node that leads `group`, as the running nodes see it.
    /// Moves `shard`'s replica from node `from` to `to` through the meta
    /// leader (`MoveReplica`, as confabctl does); the shard's descriptor after.
    pub async fn move_replica(
        &self,
        shard: u32,
        from: u64,
        to: u64,
    ) -> confab_proto::router::ShardDescriptor {
        use confab_proto::router::MoveReplicaRequest;
        use confab_proto::router::router_admin_client::RouterAdminClient;
        let meta_leader = self.leader_of(0).expect("meta leader");
        let mut admin = RouterAdminClient::connect(format!("http://{}", self.peers[&meta_leader]))
            .await
            .expect("connect");
        admin
            .move_replica(MoveReplicaRequest {
                shard_id: shard,
                from,
                to,
            })
            .await
            .expect("move")
            .into_inner()
            .shard
            .expect("descriptor")
    }

    pub fn leader_of(&self, group: u32) -> Option<u64> {
        self.nodes
            .iter()
            .find(|(id, n)| n.running.node.group(group).is_some_and(|g| g.is_leader(**id)))
            .map(|(id, _)| *id)
    }

    /// uid -> session ids held by `group` on node `id`, sorted.
    pub fn shard_state(&self, id: u64, group: u32) -> BTreeMap<u64, Vec<u64>> {
        let g = self.nodes[&id].running.node.group(group).expect("group hosted");
        let st = g.sm.read();
        let GroupData::Shard(shard) = &st.data else {
            panic!("group {group} is not a shard");
        };
        shard
            .iter()
            .map(|(uid, list)| {
                let mut ids: Vec<u64> = list.iter().map(|s| s.session_id).collect();
                ids.sort_unstable();
                (*uid, ids)
            })
            .collect()
    }

    pub fn applied(&self, id: u64, group: u32) -> u64 {
        let g = self.nodes[&id].running.node.group(group).expect("group hosted");
        g.sm.read().last_applied.as_ref().map_or(0, |l| l.index())
    }

    pub async fn shutdown(mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

async fn bind_retry(addr: &str) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot rebind {addr}: {e}"),
        }
    }
}

/// The Prometheus text of `/metrics` at `addr`.
pub async fn scrape(addr: &str) -> String {
    let (_, body) = http_get(addr, "/metrics").await.expect("GET /metrics");
    assert!(
        body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
        "{body}"
    );
    body
}

/// The value of sample `name` (with its labels, e.g.
/// `confab_router_redirects_total{kind="tombstone"}`) in `text`; 0 when absent.
pub fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// Router processes, killed on drop (a failed test prints their logs).
pub struct Procs {
    pub peers: BTreeMap<u64, String>,
    pub http: BTreeMap<u64, String>,
    pub shards: u32,
    procs: Processes,
    tls_dir: Option<std::path::PathBuf>,
}

impl Procs {
    pub fn start(n: u64, shards: u32) -> Self {
        let peers = (1..=n).map(|id| (id, free_addr())).collect();
        let http = (1..=n).map(|id| (id, free_addr())).collect();
        let mut p = Procs {
            peers,
            http,
            shards,
            procs: Processes::new(),
            tls_dir: None,
        };
        for id in 1..=n {
            p.spawn(id);
        }
        p
    }

    /// `n` routers with mutual TLS: each with `DIR/router-ID.pem` and
    /// `.key`, every peer checked against `DIR/ca.pem`.
    pub fn start_tls(n: u64, shards: u32, tls_dir: &std::path::Path) -> Self {
        let peers = (1..=n).map(|id| (id, free_addr())).collect();
        let http = (1..=n).map(|id| (id, free_addr())).collect();
        let mut p = Procs {
            peers,
            http,
            shards,
            procs: Processes::new(),
            tls_dir: Some(tls_dir.to_owned()),
        };
        for id in 1..=n {
            p.spawn(id);
        }
        p
    }

    pub fn spawn(&mut self, id: u64) {
        let dir = self.procs.dir();
        let mut config = test_config(id, dir, &self.peers, self.shards);
        config.tls = self
            .tls_dir
            .as_ref()
            .map(|d| confab_tls::TlsFiles::in_dir(d, &format!("router-{id}")));
        let file = dir.join(format!("router-{id}.toml"));
        std::fs::write(&file, toml::to_string(&config).expect("config serializes")).expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab-router"));
        cmd.arg("--config")
            .arg(&file)
            .arg("--listen")
            .arg(&self.peers[&id])
            .arg("--http")
            .arg(&self.http[&id]);
        self.procs.spawn(&format!("router-{id}"), cmd);
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self, id: u64) {
        self.procs.kill(&format!("router-{id}"));
    }

    pub fn addrs(&self) -> Vec<String> {
        self.peers.values().cloned().collect()
    }

    pub fn log(&self, id: u64) -> String {
        self.procs.log(&format!("router-{id}"))
    }
}
