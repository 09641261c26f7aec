//! A RabbitMQ node of a test's own with only a TLS listener: its own node
//! name, listener and distribution ports, temp dirs, cookie and
//! configuration, so tests running at once never share one. Stopped by its
//! pid (SIGTERM, then SIGKILL) when dropped, however the test ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::addr::free_socket_addr;

/// Where Debian's package puts the server start script (the one in
/// `/usr/sbin` switches to the `rabbitmq` user).
pub const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// A running node; see the module's note.
pub struct TlsRabbit {
    /// The TLS listener's port on 127.0.0.1.
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl TlsRabbit {
    /// Starts a node whose TLS listener presents `cert`/`key` (PEM) and
    /// waits until it accepts connections. `Err` says why it cannot run
    /// here (not installed); a node that fails to start panics with its log.
    pub async fn start(cert: &Path, key: &Path, ca: &Path) -> Result<Self, String> {
        if !Path::new(RABBITMQ_SERVER).exists() {
            return Err(format!("{RABBITMQ_SERVER} not found"));
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let node = format!(
            "confabtls{}x{}@localhost",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::Builder::new()
            .prefix("confab-rabbit-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        let port = free_socket_addr().map_err(|e| e.to_string())?.port();
        let dist = free_socket_addr().map_err(|e| e.to_string())?.port();
        let write = |name: &str, text: String| std::fs::write(d.join(name), text).expect("node file");
        write(
            "rabbitmq.conf",
            format!(
                "listeners.tcp = none\n\
                 listeners.ssl.default = 127.0.0.1:{port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n",
                ca.display(),
                cert.display(),
                key.display()
            ),
        );
        write("enabled_plugins", "[].\n".into());
        write("rabbitmq-env.conf", String::new());
        for sub in ["home", "mnesia", "log"] {
            std::fs::create_dir_all(d.join(sub)).expect("node dir");
        }
        let log = std::fs::File::create(d.join("node.log")).expect("node log");
        let child = Command::new(RABBITMQ_SERVER)
            .current_dir(d)
            .env("HOME", d.join("home"))
            .env("RABBITMQ_NODENAME", node)
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_PID_FILE", d.join("node.pid"))
            .env("RABBITMQ_LOGS", "-")
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("node log"))
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {RABBITMQ_SERVER}: {e}"))?;
        let mut node = TlsRabbit { port, child, dir };
        node.wait_started().await;
        Ok(node)
    }

    /// The node's log (stdout and stderr of the server).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    /// The node's temp dir.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    async fn wait_started(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let log = self.log();
            if log.contains("Server startup complete") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the test's RabbitMQ node exited ({status}):\n{log}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the test's RabbitMQ node did not start within 120 s:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for TlsRabbit {
    fn drop(&mut self) {
        // The Erlang VM's pid (the start script runs it as a child).
        let pid = std::fs::read_to_string(self.dir.path().join("node.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
        if let Some(pid) = pid {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            for _ in 0..150 {
                if !alive(pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if alive(pid) {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
