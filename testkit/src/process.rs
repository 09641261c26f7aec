//! Service processes started by a test: each one's stderr in a log file of
//! a temp dir, a wait until it answers ready (or has exited), its log
//! printed when the test fails, every one killed when the set is dropped.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::Instant;

use crate::http::http_get;

/// Named child processes sharing one temp dir (their logs `NAME.log`, and
/// whatever data the test puts there), killed on drop. A failed test (one
/// panicking while this is dropped) prints every log and which processes
/// had exited by themselves.
pub struct Processes {
    dir: TempDir,
    children: BTreeMap<String, Child>,
    /// How each name was last started, to start it again ([`Processes::respawn`]).
    recipes: BTreeMap<String, Recipe>,
}

/// A command line as started: program, arguments, environment changes and
/// working directory (a `Command` cannot be cloned).
struct Recipe {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    dir: Option<PathBuf>,
}

impl Recipe {
    fn of(cmd: &Command) -> Self {
        Recipe {
            program: cmd.get_program().to_owned(),
            args: cmd.get_args().map(ToOwned::to_owned).collect(),
            envs: cmd
                .get_envs()
                .map(|(k, v)| (k.to_owned(), v.map(ToOwned::to_owned)))
                .collect(),
            dir: cmd.get_current_dir().map(ToOwned::to_owned),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(d) = &self.dir {
            cmd.current_dir(d);
        }
        cmd
    }
}

/// The signals a test sends its processes besides SIGKILL ([`Processes::kill`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Freeze (SIGSTOP): the process holds its sockets and answers nothing.
    Stop,
    /// Thaw a frozen process (SIGCONT).
    Cont,
}

impl Processes {
    /// An empty set with a new temp dir.
    pub fn new() -> Self {
        Processes {
            dir: tempfile::tempdir().expect("temp dir"),
            children: BTreeMap::new(),
            recipes: BTreeMap::new(),
        }
    }

    /// The temp dir: logs, configuration files, data directories.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts `cmd` as process `name`, its stderr in `NAME.log` (a new log
    /// each start), `RUST_LOG=warn` (or the test run's `CONFAB_TEST_LOG`,
    /// to see more of one run) unless `cmd` sets its own. `CONFAB_BIN_DIR` is removed: services
    /// read `CONFAB_*` as their configuration, and that one is not theirs.
    pub fn spawn(&mut self, name: &str, cmd: Command) {
        let log = std::fs::File::create(self.log_path(name)).expect("log file");
        self.start(name, cmd, log);
    }

    /// Starts `name` again with the command line of its last
    /// [`Processes::spawn`] (after [`Processes::kill`], or after it exited),
    /// its stderr appended to the same log.
    pub fn respawn(&mut self, name: &str) {
        let cmd = self
            .recipes
            .get(name)
            .unwrap_or_else(|| panic!("{name} was never started"))
            .command();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.log_path(name))
            .expect("log file");
        self.start(name, cmd, log);
    }

    /// Sends `signal` to `name`; nothing when it is not running.
    pub fn signal(&mut self, name: &str, signal: Signal) {
        let Some(pid) = self.pid(name) else {
            return;
        };
        let sig = match signal {
            Signal::Stop => nix::sys::signal::Signal::SIGSTOP,
            Signal::Cont => nix::sys::signal::Signal::SIGCONT,
        };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
    }

    fn start(&mut self, name: &str, mut cmd: Command, log: std::fs::File) {
        self.recipes.insert(name.to_owned(), Recipe::of(&cmd));
        if !cmd.get_envs().any(|(k, _)| k == "RUST_LOG") {
            cmd.env(
                "RUST_LOG",
                std::env::var("CONFAB_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            );
        }
        let child = cmd
            .env_remove("CONFAB_BIN_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        self.children.insert(name.to_owned(), child);
    }

    /// Until `name` answers 200 on `GET http://{http}/readyz` (true), or
    /// has exited, or `within` passed (false).
    pub async fn wait_ready(&mut self, name: &str, http: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if matches!(http_get(http, "/readyz").await, Some((200, _))) {
                return true;
            }
            if self.has_exited(name) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Whether `name` is not running: exited by itself, killed, or never
    /// started.
    pub fn has_exited(&mut self, name: &str) -> bool {
        self.children
            .get_mut(name)
            .is_none_or(|c| !matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, then reap; nothing when `name` is not running.
    pub fn kill(&mut self, name: &str) {
        if let Some(mut c) = self.children.remove(name) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The process id of `name`, while it runs.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children.get(name).map(Child::id)
    }

    /// `name`'s log of its last start so far ("" when none).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// Every log file in the dir, processes killed or restarted during the
    /// test included: the cause of one not being ready, or of a failed
    /// test, is often another process.
    pub fn every_log(&self) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "log"));
        files.sort();
        files
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                format!("--- {}:\n{text}\n", p.display())
            })
            .collect()
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }
}

impl Default for Processes {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        // Which children exited on their own (a crash) is known only
        // before they are killed here.
        let exited: Vec<String> = self
            .children
            .iter_mut()
            .filter_map(|(n, c)| match c.try_wait() {
                Ok(Some(status)) => Some(format!("{n}: {status}")),
                _ => None,
            })
            .collect();
        let names: Vec<String> = self.children.keys().cloned().collect();
        for n in names {
            self.kill(&n);
        }
        if std::thread::panicking() {
            eprintln!("--- the failed test's processes; exited before the end: {exited:?}");
            eprintln!("{}", self.every_log());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_process_that_exits_is_not_ready_and_its_log_is_kept() {
        let mut procs = Processes::new();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo bound elsewhere >&2; exit 3"]);
        procs.spawn("svc", cmd);
        let unused = crate::free_addr();
        assert!(!procs.wait_ready("svc", &unused, Duration::from_secs(10)).await);
        assert!(procs.has_exited("svc"));
        assert_eq!(procs.log("svc"), "bound elsewhere\n");
        assert!(procs.every_log().contains("svc.log"));
    }

    #[test]
    fn kill_stops_a_running_process() {
        let mut procs = Processes::new();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        procs.spawn("sleeper", cmd);
        assert!(procs.pid("sleeper").is_some());
        assert!(!procs.has_exited("sleeper"));
        procs.kill("sleeper");
        assert!(procs.has_exited("sleeper"));
        assert_eq!(procs.pid("sleeper"), None);
    }

    #[tokio::test]
    async fn respawn_runs_the_same_command_again_and_keeps_the_log() {
        let mut procs = Processes::new();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo \"started $WHO\" >&2; exec sleep 30"])
            .env("WHO", "me");
        procs.spawn("svc", cmd);
        let first = procs.pid("svc").expect("running");
        let logged = |procs: &Processes, want: &'static str| {
            let log = procs.log("svc");
            async move { log == want }
        };
        crate::eventually(Duration::from_secs(10), "the first start logged", || {
            logged(&procs, "started me\n")
        })
        .await;
        procs.signal("svc", Signal::Stop);
        procs.signal("svc", Signal::Cont);
        assert!(!procs.has_exited("svc"));
        procs.kill("svc");
        procs.respawn("svc");
        let second = procs.pid("svc").expect("running again");
        assert_ne!(first, second);
        crate::eventually(Duration::from_secs(10), "both starts logged", || {
            logged(&procs, "started me\nstarted me\n")
        })
        .await;
    }
}
