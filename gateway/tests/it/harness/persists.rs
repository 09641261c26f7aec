//! Persist processes beside the cluster's first: each on addresses and a
//! data directory of its own, announced to the routers under its own id,
//! and named to the gateways started after it (their `--persist` list, the
//! cluster's first persist first).

use std::process::Command;

use confab_testkit::free_addr;

use super::{Cluster, workspace_bin};

/// A persist process started by [`Cluster::add_persist`].
#[derive(Clone, Debug)]
pub struct PersistProc {
    /// Its process name in the cluster (for `kill`, `pid`, `log`).
    pub name: String,
    pub grpc: String,
    /// /metrics, /readyz.
    pub http: String,
}

impl Cluster {
    /// Starts persist process `name` with id `id` (the cluster's first
    /// persist is 1) and `env` on top of the cluster's environment, and
    /// waits until it is ready. Gateways started from now on list it after
    /// the persist processes before it.
    pub async fn add_persist(&mut self, name: &str, id: u64, env: &[(&str, &str)]) -> PersistProc {
        for tries in 1..=3 {
            let p = PersistProc {
                name: name.to_owned(),
                grpc: free_addr(),
                http: free_addr(),
            };
            let mut cmd = Command::new(workspace_bin("confab-persist"));
            cmd.args(["--listen", &p.grpc, "--http", &p.http, "--data-dir"])
                .arg(self.procs.dir().join(name))
                .args(["--router", &self.routers.join(",")])
                .args(self.tls_args("persist"))
                .env("CONFAB_DATABASE__ARGON2_MEMORY_KIB", "64")
                .env("CONFAB_SERVER__ID", id.to_string())
                .envs(self.backend.persist_env())
                .envs(self.env.iter().cloned())
                .envs(env.iter().copied());
            self.procs.spawn(name, cmd);
            if self.wait_up(name, &p.http).await {
                self.more_persist.push(p.grpc.clone());
                return p;
            }
            // A port picked free may be taken before persist binds it.
            if tries == 3 || !self.log(name).contains("Address already in use") {
                break;
            }
            self.kill(name);
        }
        panic!("{name} not ready; the logs:\n{}", self.every_log());
    }

    /// The gateways' `--persist` list: the first persist, then the others
    /// in the order they were added.
    pub(super) fn persist_list(&self) -> String {
        std::iter::once(self.persist.as_str())
            .chain(self.more_persist.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(",")
    }
}
