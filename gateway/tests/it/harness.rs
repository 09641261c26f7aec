//! A local cluster of real processes, killed on drop: routers and persist
//! from `workspace_bin` (CONFAB_BIN_DIR, else next to the test binary's
//! target dir), gateways from this crate's binary.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use confab_client::{Client, DeviceKind, Event};
use confab_testkit::{Processes, free_addr};
pub use confab_testkit::{eventually, workspace_bin};

pub mod backends;
pub mod chat_load;
mod persists;
pub use persists::PersistProc;

#[derive(Clone)]
pub struct Gw {
    pub client: String,
    pub http: String,
    /// The internal HTTP port: /metrics, /readyz.
    pub metrics: String,
    pub grpc: String,
}

pub struct Cluster {
    procs: Processes,
    pub routers: Vec<String>,
    /// The routers' HTTP addresses (/metrics, /readyz, /sd), by index.
    pub router_http: Vec<String>,
    pub persist: String,
    pub persist_http: String,
    /// The gRPC addresses of the persist processes started beside the first
    /// ([`Cluster::add_persist`]); gateways list them after it.
    more_persist: Vec<String>,
    pub gateways: BTreeMap<u64, Gw>,
    /// With mutual TLS: the directory of the cluster CA and every
    /// process' certificate (`router-N`, `persist`, `gateway-N`, `admin`).
    pub tls: Option<std::path::PathBuf>,
    /// Configuration every process of the cluster gets from its
    /// environment (`CONFAB_<SECTION>__<KEY>`).
    env: Vec<(String, String)>,
    /// The backends of the run (`CONFAB_IT_BACKEND`), dropped after the
    /// processes (fields drop in order).
    backend: backends::SuiteBackend,
}

pub const LEASE_MS: u64 = 1500;

/// Every test client comes from 127.0.0.1: the per-address limits are
/// lifted for the tests that do not measure them (a test's own `env`
/// comes after these and wins).
pub const UNLIMITED: &[(&str, &str)] = &[
    ("CONFAB_LIMITS__MAX_CONNECTIONS_PER_IP", "100000"),
    ("CONFAB_LIMITS__LOGIN_PER_IP_BURST", "1000000"),
    ("CONFAB_LIMITS__LOGIN_PER_IP_PER_MINUTE", "1000000"),
    ("CONFAB_LIMITS__LOGIN_PER_ACCOUNT_BURST", "1000000"),
    ("CONFAB_LIMITS__LOGIN_PER_ACCOUNT_PER_MINUTE", "1000000"),
    ("CONFAB_LIMITS__REGISTER_PER_IP_BURST", "1000000"),
    ("CONFAB_LIMITS__REGISTER_PER_IP_PER_MINUTE", "1000000"),
];

impl Cluster {
    /// Whether the gateways publish messages straight to RabbitMQ (the
    /// run's `CONFAB_IT_BACKEND=pg-amqp`), not through persist's embedded
    /// queue: sends are then taken while no persist process runs, and no
    /// enqueue hop happens at persist.
    pub fn publishes_to_broker(&self) -> bool {
        matches!(self.backend, backends::SuiteBackend::PgAmqp(_))
    }

    /// 3 routers, 1 persist, `gateways` gateways; waits until all are ready.
    pub async fn start(gateways: u64) -> Self {
        Self::start_with(gateways, false, &[]).await
    }

    /// [`Cluster::start`] with `env` in every process' environment.
    pub async fn start_with_env(gateways: u64, env: &[(&str, &str)]) -> Self {
        Self::start_with(gateways, false, env).await
    }

    /// [`Cluster::start`] with mutual TLS between every process: a test CA
    /// and one certificate per process (gateways 1..=9) under the cluster's
    /// directory.
    pub async fn start_tls(gateways: u64) -> Self {
        Self::start_with(gateways, true, &[]).await
    }

    async fn start_with(gateways: u64, tls: bool, env: &[(&str, &str)]) -> Self {
        let router_bin = workspace_bin("confab-router");
        let persist_bin = workspace_bin("confab-persist");
        let mut c = Cluster {
            procs: Processes::new(),
            routers: Vec::new(),
            router_http: Vec::new(),
            persist: free_addr(),
            persist_http: free_addr(),
            more_persist: Vec::new(),
            gateways: BTreeMap::new(),
            tls: None,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            backend: backends::SuiteBackend::for_cluster(),
        };
        if tls {
            c.tls = Some(issue_certificates(&c.procs.dir().join("tls")));
        }
        c.start_routers(&router_bin).await;
        // A port picked free may be taken by another process before persist
        // binds it: then it starts again on other ports.
        let mut tries = 0;
        loop {
            c.spawn_persist(&persist_bin, &[]);
            let http = c.persist_http.clone();
            if c.wait_up("persist", &http).await {
                break;
            }
            tries += 1;
            if tries == 3 || !c.log("persist").contains("Address already in use") {
                panic!(
                    "persist not ready at {}; the logs:\n{}",
                    c.persist_http,
                    c.every_log()
                );
            }
            c.kill("persist");
            c.persist = free_addr();
            c.persist_http = free_addr();
        }
        for id in 1..=gateways {
            c.start_gateway(id).await;
        }
        c
    }

    /// 3 routers bootstrapping one cluster. A port picked free may be
    /// taken by another process before its router binds it: then all three
    /// start again on other ports, with new data directories (the others
    /// bootstrapped with the lost address).
    async fn start_routers(&mut self, bin: &std::path::Path) {
        for attempt in 1.. {
            let peers: Vec<(String, String)> = (0..3).map(|_| (free_addr(), free_addr())).collect();
            for (i, (grpc, http)) in peers.iter().enumerate() {
                let id = i + 1;
                let mut toml = format!(
                    "id = {id}\nlisten = \"{grpc}\"\nhttp = \"{http}\"\ndata_dir = \"{}\"\nbootstrap = true\nlease_ms = {LEASE_MS}\n",
                    self.procs.dir().join(format!("router-{id}.{attempt}")).display()
                );
                toml.push_str("[peers]\n");
                for (j, (g, _)) in peers.iter().enumerate() {
                    toml.push_str(&format!("\"{}\" = \"{g}\"\n", j + 1));
                }
                toml.push_str("[cluster]\nslots = 256\nshards = 4\n[raft]\nheartbeat_ms = 50\nelection_min_ms = 250\nelection_max_ms = 500\n");
                toml.push_str(&self.router_tls(id as u64));
                let file = self.procs.dir().join(format!("router-{id}.toml"));
                std::fs::write(&file, toml).expect("write router config");
                let mut cmd = Command::new(bin);
                cmd.arg("--config").arg(&file).envs(self.env.iter().cloned());
                self.procs.spawn(&format!("router-{id}"), cmd);
            }
            let mut not_ready = None;
            for (i, (_, http)) in peers.iter().enumerate() {
                if !self.wait_up(&format!("router-{}", i + 1), http).await {
                    not_ready = Some((i + 1, http.clone()));
                    break;
                }
            }
            let Some((id, http)) = not_ready else {
                self.router_http = peers.iter().map(|(_, http)| http.clone()).collect();
                self.routers = peers.into_iter().map(|(grpc, _)| grpc).collect();
                return;
            };
            let lost_port = (1..=3).any(|i| {
                self.log(&format!("router-{i}"))
                    .contains("Address already in use")
            });
            if attempt == 3 || !lost_port {
                panic!("router-{id} not ready at {http}; the logs:\n{}", self.every_log());
            }
            for i in 1..=3 {
                self.kill(&format!("router-{i}"));
            }
        }
    }

    /// The `[tls]` section of router `id`'s configuration, when the cluster
    /// runs with TLS ("" otherwise).
    fn router_tls(&self, id: u64) -> String {
        let Some(dir) = &self.tls else {
            return String::new();
        };
        let files = confab_tls::TlsFiles::in_dir(dir, &format!("router-{id}"));
        format!(
            "[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            files.ca.display(),
            files.cert.display(),
            files.key.display()
        )
    }

    /// Starts router `id` (4 or 5; with the cluster's TLS if any) joining
    /// the cluster through router 1 and waits until it is ready; returns its
    /// HTTP address.
    pub async fn add_router(&mut self, id: u64) -> String {
        let (grpc, http) = (free_addr(), free_addr());
        let mut toml = format!(
            "id = {id}\nlisten = \"{grpc}\"\nhttp = \"{http}\"\ndata_dir = \"{}\"\njoin = \"{}\"\nlease_ms = {LEASE_MS}\n[peers]\n\"{id}\" = \"{grpc}\"\n[cluster]\nslots = 256\nshards = 4\n[raft]\nheartbeat_ms = 50\nelection_min_ms = 250\nelection_max_ms = 500\n",
            self.procs.dir().join(format!("router-{id}")).display(),
            self.routers[0]
        );
        toml.push_str(&self.router_tls(id));
        let file = self.procs.dir().join(format!("router-{id}.toml"));
        std::fs::write(&file, toml).expect("write router config");
        let mut cmd = Command::new(workspace_bin("confab-router"));
        cmd.arg("--config").arg(&file).envs(self.env.iter().cloned());
        let name = format!("router-{id}");
        self.procs.spawn(&name, cmd);
        if !self.wait_up(&name, &http).await {
            panic!("{name} not ready; its log:\n{}", self.log(&name));
        }
        self.routers.push(grpc);
        self.router_http.push(http.clone());
        http
    }

    /// Persist on the cluster's addresses and data directory.
    fn spawn_persist(&mut self, bin: &std::path::Path, env: &[(&str, &str)]) {
        let mut cmd = Command::new(bin);
        cmd.args([
            "--listen",
            &self.persist,
            "--http",
            &self.persist_http,
            "--data-dir",
        ])
        .arg(self.procs.dir().join("persist"))
        .args(["--router", &self.routers.join(",")])
        .args(self.tls_args("persist"))
        .env("CONFAB_DATABASE__ARGON2_MEMORY_KIB", "64")
        .envs(self.backend.persist_env())
        .envs(self.env.iter().cloned())
        .envs(env.iter().copied());
        self.procs.spawn("persist", cmd);
    }

    /// Starts persist again (after [`Cluster::kill`]) on the same addresses
    /// and data, with extra configuration from the environment
    /// (`CONFAB_<SECTION>__<KEY>`); waits until it is ready.
    pub async fn restart_persist(&mut self, env: &[(&str, &str)]) {
        self.spawn_persist(&workspace_bin("confab-persist"), env);
        let http = self.persist_http.clone();
        if !self.wait_up("persist", &http).await {
            panic!("persist not ready again; its log:\n{}", self.log("persist"));
        }
    }

    pub async fn start_gateway(&mut self, id: u64) {
        self.start_gateway_with_env(id, &[]).await;
    }

    /// A gateway with extra configuration from the environment
    /// (`CONFAB_<KEY>`).
    pub async fn start_gateway_with_env(&mut self, id: u64, env: &[(&str, &str)]) {
        self.start_gateway_full(id, env, None).await;
    }

    /// A gateway reading `toml` as its configuration file (addresses, ids
    /// and peers still come from the command line).
    pub async fn start_gateway_with_config(&mut self, id: u64, toml: &str) {
        self.start_gateway_full(id, &[], Some(toml)).await;
    }

    /// A gateway with extra command-line flags and environment.
    pub async fn start_gateway_with_args(&mut self, id: u64, args: &[&str], env: &[(&str, &str)]) {
        self.start_gateway_inner(id, env, None, args).await;
    }

    async fn start_gateway_full(&mut self, id: u64, env: &[(&str, &str)], toml: Option<&str>) {
        self.start_gateway_inner(id, env, toml, &[]).await;
    }

    async fn start_gateway_inner(
        &mut self,
        id: u64,
        env: &[(&str, &str)],
        toml: Option<&str>,
        args: &[&str],
    ) {
        let name = format!("gateway-{id}");
        let config = toml.map(|t| {
            let file = self.procs.dir().join(format!("{name}.toml"));
            std::fs::write(&file, t).expect("write gateway config");
            file
        });
        // Ports picked free may be taken before the gateway binds them: then
        // it starts again on other ports.
        let mut tries = 0;
        let gw = loop {
            let gw = Gw {
                client: free_addr(),
                http: free_addr(),
                metrics: free_addr(),
                grpc: free_addr(),
            };
            let cmd = self.gateway_command(&name, id, &gw, config.as_deref(), args, env);
            self.procs.spawn(&name, cmd);
            // Ready on the internal port (the public one may speak TLS).
            if self.wait_up(&name, &gw.metrics).await {
                break gw;
            }
            tries += 1;
            if tries == 3 || !self.log(&name).contains("Address already in use") {
                panic!("gateway {id} not ready; its log:\n{}", self.log(&name));
            }
            self.kill(&name);
        };
        self.gateways.insert(id, gw);
    }

    /// The command line of gateway `id` on the addresses of `gw`, under the
    /// process name `name` (its certificate's).
    fn gateway_command(
        &self,
        name: &str,
        id: u64,
        gw: &Gw,
        config: Option<&std::path::Path>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab-gateway"));
        if let Some(file) = config {
            cmd.arg("--config").arg(file);
        }
        cmd.args([
            "--id",
            &id.to_string(),
            "--listen",
            &gw.client,
            "--http",
            &gw.http,
            "--metrics",
            &gw.metrics,
            "--grpc",
            &gw.grpc,
        ])
        .args(["--router", &self.routers.join(",")])
        .args(["--persist", &self.persist_list()])
        .args(self.tls_args(name))
        .args(args)
        .envs(UNLIMITED.iter().copied())
        .envs(self.backend.gateway_env())
        .envs(self.env.iter().cloned())
        .envs(env.iter().copied());
        cmd
    }

    /// Starts a second gateway process named `name` with the id of gateway
    /// `id`, on fresh addresses, without waiting for it; returns them.
    pub fn spawn_gateway_twin(&mut self, name: &str, id: u64) -> Gw {
        let gw = Gw {
            client: free_addr(),
            http: free_addr(),
            metrics: free_addr(),
            grpc: free_addr(),
        };
        let cmd = self.gateway_command(&format!("gateway-{id}"), id, &gw, None, &[], &[]);
        self.procs.spawn(name, cmd);
        gw
    }

    /// Whether process `name` answers ready on `http` within `within`.
    pub async fn ready_within(&mut self, name: &str, http: &str, within: Duration) -> bool {
        self.procs.wait_ready(name, http, within).await
    }

    /// Until `name` answers ready on `http` (true), or has exited, or 30 s
    /// passed (false).
    async fn wait_up(&mut self, name: &str, http: &str) -> bool {
        self.procs.wait_ready(name, http, Duration::from_secs(30)).await
    }

    /// SIGKILL.
    pub fn kill(&mut self, name: &str) {
        self.procs.kill(name);
    }

    /// Starts `name` again with the command line it last ran with (same
    /// addresses, data and configuration) and waits until it answers ready
    /// on `http` (false after 30 s, or when it exited).
    pub async fn respawn(&mut self, name: &str, http: &str) -> bool {
        self.procs.respawn(name);
        self.wait_up(name, http).await
    }

    /// SIGSTOP or SIGCONT to `name`.
    pub fn signal(&mut self, name: &str, signal: confab_testkit::Signal) {
        self.procs.signal(name, signal);
    }

    pub fn gw(&self, id: u64) -> &str {
        &self.gateways[&id].client
    }

    /// Every log file in the cluster's directory (services killed or
    /// restarted during the test included).
    fn every_log(&self) -> String {
        self.procs.every_log()
    }

    pub fn log(&self, name: &str) -> String {
        self.procs.log(name)
    }

    /// The pid of process `name` (e.g. "gateway-1"), which must be running.
    pub fn pid(&self, name: &str) -> u32 {
        self.procs
            .pid(name)
            .unwrap_or_else(|| panic!("no process {name}"))
    }

    /// A router client; with TLS, it calls as the admin.
    pub async fn router_client(&self) -> confab_router_client::RouterClient {
        let config = confab_router_client::ClientConfig {
            tls: self.client_tls("admin"),
            ..Default::default()
        };
        confab_router_client::RouterClient::new(self.routers.clone(), config).expect("router client")
    }

    /// A channel to persist, as gateway 1 when the cluster runs TLS.
    pub fn persist_channel(&self) -> confab_net::Channel {
        let config = confab_net::ChannelConfig::connect_within(Duration::from_secs(2))
            .with_tls(self.client_tls("gateway-1"));
        confab_net::channel(&self.persist, &config).expect("channel to persist")
    }

    /// The `--tls-*` flags of process `name`, none without TLS.
    pub fn tls_args(&self, name: &str) -> Vec<String> {
        let Some(dir) = &self.tls else {
            return Vec::new();
        };
        let files = confab_tls::TlsFiles::in_dir(dir, name);
        vec![
            "--tls-ca".into(),
            files.ca.display().to_string(),
            "--tls-cert".into(),
            files.cert.display().to_string(),
            "--tls-key".into(),
            files.key.display().to_string(),
        ]
    }

    /// The calling side of certificate `name` (`admin`, `router-1`, ...).
    pub fn client_tls(&self, name: &str) -> Option<confab_net::ClientTls> {
        let dir = self.tls.as_ref()?;
        Some(confab_net::ClientTls::load(&confab_tls::TlsFiles::in_dir(dir, name)).expect("client TLS"))
    }
}

/// A test CA in `dir` and a certificate for every process a test cluster
/// may start, each for 127.0.0.1.
fn issue_certificates(dir: &std::path::Path) -> std::path::PathBuf {
    use confab_tls::{Ca, Identity};
    let ca = Ca::new("test cluster CA", 1).expect("CA");
    ca.pem().write(dir, "ca").expect("write CA");
    let hosts = ["127.0.0.1".to_owned(), "localhost".to_owned()];
    let mut all = vec![
        (Identity::persist(), "persist".to_owned()),
        (Identity::admin(), "admin".to_owned()),
    ];
    all.extend((1..=5).map(|id| (Identity::router(id), format!("router-{id}"))));
    all.extend((1..=9).map(|id| (Identity::gateway(id), format!("gateway-{id}"))));
    for (identity, name) in all {
        ca.issue(Some(identity), &hosts, 1)
            .expect("issue")
            .write(dir, &name)
            .expect("write");
    }
    dir.to_owned()
}

/// Registers `name` (password "pw") through gateway `addr`.
pub async fn register(addr: &str, name: &str) -> u64 {
    let c = Client::connect(addr).await.expect("connect");
    c.register(name, "pw").await.expect("register").user_id
}

pub async fn login(addr: &str, name: &str, device: &str, kind: DeviceKind) -> Client {
    let mut c = Client::connect(addr).await.expect("connect");
    c.login(name, "pw", device, kind).await.expect("login");
    c
}

/// Messages from events until `n` arrived (or `within` passed).
pub async fn receive(c: &mut Client, n: usize, within: Duration) -> Vec<confab_client::proto::Message> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while out.len() < n {
        match tokio::time::timeout_at(deadline, c.next_event()).await {
            Ok(Some(Event::Message(m))) => out.push(m),
            Ok(Some(other)) => panic!("unexpected event {other:?}"),
            Ok(None) | Err(_) => break,
        }
    }
    out
}

/// No further message arrives within `quiet`.
pub async fn assert_quiet(c: &mut Client, quiet: Duration) {
    if let Ok(Some(e)) = tokio::time::timeout(quiet, c.next_event()).await {
        panic!("expected nothing more, got {e:?}");
    }
}

impl Cluster {
    /// Makes users `a` and `b` friends (1:1 messages need it): `a` asks and
    /// `b` accepts, straight through persist, so that no session (and no
    /// presence push) is involved. Call it before either caches its friends.
    pub async fn befriend(&self, a: &str, b: &str) {
        use confab_proto::persist::{self as db, get_user_request::Key};
        let mut data = db::data_service_client::DataServiceClient::new(self.persist_channel());
        let mut id = async |name: &str| {
            data.get_user(db::GetUserRequest {
                key: Some(Key::Name(name.into())),
            })
            .await
            .expect("user")
            .into_inner()
            .id
        };
        let (a, b) = (id(a).await, id(b).await);
        data.send_friend_request(db::SendFriendRequestRequest {
            from_user: a,
            to_user: b,
            note: String::new(),
        })
        .await
        .expect("friend request");
        data.respond_friend_request(db::RespondFriendRequestRequest {
            user: b,
            from_user: a,
            accept: true,
        })
        .await
        .expect("accept the friend request");
    }
}

/// Makes `a` and `b` friends through gateway `addr`: `a` asks, `b`
/// accepts, each from a short-lived session (their friends may see these
/// sessions come and go; [`Cluster::befriend`] goes around the gateways).
pub async fn befriend(addr: &str, a: &str, b: &str) {
    let ca = login(addr, a, &format!("{a}-befriend"), DeviceKind::Bot).await;
    ca.add_friend(b, "").await.expect("friend request");
    let cb = login(addr, b, &format!("{b}-befriend"), DeviceKind::Bot).await;
    cb.accept_friend(a).await.expect("accept the friend request");
}
