//! A small local cluster of real processes for confabctl's tests: 3
//! routers bootstrapping one cluster, persist (SQLite and the embedded
//! queue) and one gateway, on free loopback ports, with their data and logs
//! in a temp dir; every process is killed when the cluster is dropped.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use confab_testkit::{Processes, free_addr, workspace_bin};

/// Shards of the test cluster; with the meta group, the Raft groups.
pub const SHARDS: u64 = 4;

pub struct Cluster {
    /// Killed on drop (their logs printed when a test failed).
    _procs: Processes,
    /// The routers' HTTP addresses (/metrics, /readyz, /sd), by node id - 1.
    pub router_http: Vec<String>,
    pub persist_http: String,
    /// The gateway's client port.
    pub gateway: String,
    /// The gateway's internal HTTP port (/metrics).
    pub gateway_metrics: String,
}

/// How often a process whose free port was taken first is started again.
const TRIES: u32 = 3;
const READY_WITHIN: Duration = Duration::from_secs(30);

impl Cluster {
    /// Starts every process and waits until each answers ready.
    pub async fn start() -> Self {
        let mut procs = Processes::new();
        let (routers, router_http) = start_routers(&mut procs).await;
        let peers = routers.join(",");
        let (persist, persist_http) = start(&mut procs, "persist", |dir| {
            let (listen, http) = (free_addr(), free_addr());
            let mut cmd = Command::new(workspace_bin("confab-persist"));
            cmd.args(["--listen", &listen, "--http", &http, "--data-dir"])
                .arg(dir.join("persist"))
                .args(["--router", &peers])
                .env("CONFAB_DATABASE__ARGON2_MEMORY_KIB", "64");
            (cmd, http.clone(), (listen, http))
        })
        .await;
        let (gateway, gateway_metrics) = start(&mut procs, "gateway-1", |_| {
            let (client, http, metrics, grpc) = (free_addr(), free_addr(), free_addr(), free_addr());
            let mut cmd = Command::new(workspace_bin("confab-gateway"));
            cmd.args(["--id", "1", "--listen", &client, "--http", &http])
                .args(["--metrics", &metrics, "--grpc", &grpc])
                .args(["--router", &peers, "--persist", &persist])
                // A connection a test opens stays open while it looks, and
                // a test's user logs in as often as it likes.
                .env("CONFAB_LIMITS__LOGIN_TIMEOUT_MS", "60000")
                .env("CONFAB_LIMITS__LOGIN_PER_ACCOUNT_BURST", "100000")
                .env("CONFAB_LIMITS__LOGIN_PER_IP_BURST", "100000");
            (cmd, metrics.clone(), (client, metrics))
        })
        .await;
        Cluster {
            _procs: procs,
            router_http,
            persist_http,
            gateway,
            gateway_metrics,
        }
    }
}

/// 3 routers bootstrapping one cluster: (gRPC addresses, HTTP addresses).
/// When a port picked free was taken before its router bound it, all
/// three start again on other ports and data directories.
async fn start_routers(procs: &mut Processes) -> (Vec<String>, Vec<String>) {
    for attempt in 1..=TRIES {
        let grpc: Vec<String> = (0..3).map(|_| free_addr()).collect();
        let http: Vec<String> = (0..3).map(|_| free_addr()).collect();
        for id in 1..=3 {
            let config = router_config(
                id,
                &grpc,
                &http[id - 1],
                &procs.dir().join(format!("router-{id}.{attempt}")),
            );
            let file = procs.dir().join(format!("router-{id}.toml"));
            std::fs::write(&file, config).expect("write router config");
            let mut cmd = Command::new(workspace_bin("confab-router"));
            cmd.arg("--config").arg(&file);
            procs.spawn(&format!("router-{id}"), cmd);
        }
        let mut ready = true;
        for (i, addr) in http.iter().enumerate() {
            ready = ready
                && procs
                    .wait_ready(&format!("router-{}", i + 1), addr, READY_WITHIN)
                    .await;
        }
        if ready {
            return (grpc, http);
        }
        let taken = (1..=3).any(|id| {
            procs
                .log(&format!("router-{id}"))
                .contains("Address already in use")
        });
        assert!(
            taken && attempt < TRIES,
            "routers not ready; the logs:\n{}",
            procs.every_log()
        );
        for id in 1..=3 {
            procs.kill(&format!("router-{id}"));
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// Router `id`'s configuration: one of the `grpc` peers, HTTP on `http`.
fn router_config(id: usize, grpc: &[String], http: &str, data_dir: &Path) -> String {
    let mut toml = format!(
        "id = {id}\nlisten = \"{}\"\nhttp = \"{http}\"\ndata_dir = \"{}\"\nbootstrap = true\n[peers]\n",
        grpc[id - 1],
        data_dir.display()
    );
    for (i, addr) in grpc.iter().enumerate() {
        toml.push_str(&format!("\"{}\" = \"{addr}\"\n", i + 1));
    }
    toml.push_str(&format!(
        "[cluster]\nslots = 256\nshards = {SHARDS}\n\
         [raft]\nheartbeat_ms = 50\nelection_min_ms = 250\nelection_max_ms = 500\n"
    ));
    toml
}

/// Starts process `name` from what `make` returns (the command, the
/// address of its /readyz, what the caller keeps) and waits until it is
/// ready; again on other ports when one was taken first.
async fn start<T>(procs: &mut Processes, name: &str, make: impl Fn(&Path) -> (Command, String, T)) -> T {
    for _ in 0..TRIES {
        let (cmd, ready_at, keep) = make(procs.dir());
        procs.spawn(name, cmd);
        if procs.wait_ready(name, &ready_at, READY_WITHIN).await {
            return keep;
        }
        assert!(
            procs.log(name).contains("Address already in use"),
            "{name} not ready; the logs:\n{}",
            procs.every_log()
        );
        procs.kill(name);
    }
    panic!("{name}: no free ports after {TRIES} tries")
}
