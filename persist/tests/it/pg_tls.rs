//! TLS to PostgreSQL: a private server this test starts (initdb + pg_ctl in
//! a temp dir, on a free port, `ssl = on` with a certificate for
//! `localhost` from a test CA, plain connections refused by pg_hba), and
//! the shared server on 5432 (whose certificate our CA did not issue).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use confab_persist::db::Db;
use confab_persist::metrics::Metrics;
use confab_persist::{Config, Error};
use confab_tls::Ca;
use tokio_util::sync::CancellationToken;

use confab_testkit::other_ca;

use crate::helpers::{db_config, missing};
use crate::service::{exercise, test_config};

/// A PostgreSQL server of this test's own, stopped (by the pid in its
/// `postmaster.pid`, through `pg_ctl stop`) when dropped, however the test
/// ends.
struct TlsPostgres {
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    /// The CA that issued the server's certificate, PEM.
    ca: PathBuf,
    /// Run the server as `postgres` (it refuses to run as root).
    as_postgres: bool,
    dir: tempfile::TempDir,
}

/// The newest `/usr/lib/postgresql/*/bin` with an `initdb`, else
/// `pg_config --bindir`.
fn pg_bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let bin = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    bin.join("initdb").exists().then_some(bin)
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl TlsPostgres {
    /// Starts a server whose certificate names `localhost` only. `None`
    /// when PostgreSQL's binaries are not installed (a failure under CI).
    fn start() -> Option<Self> {
        let Some(bin) = pg_bin_dir() else {
            missing("PostgreSQL server binaries (initdb, pg_ctl)", "not installed");
            return None;
        };
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("confab-pgtls-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        let ca = Ca::new("confab test database CA", 1).expect("CA");
        let ca_path = ca
            .pem()
            .write(&dir.path().join("client"), "ca")
            .expect("CA file")
            .0;
        let mut pg = TlsPostgres {
            port: 0,
            bin,
            data: data.clone(),
            ca: ca_path,
            as_postgres,
            dir,
        };
        if as_postgres {
            pg.chown(pg.dir.path());
        }
        pg.pg(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        ca.issue(None, &["localhost".into()], 1)
            .expect("server certificate")
            .write(&data, "server")
            .expect("server certificate files");
        // Plain connections over TCP are refused: whatever connects, connects
        // with TLS.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("pg_hba.conf");
        if as_postgres {
            pg.chown(&data);
        }
        // A port can be taken between picking and binding it: try another.
        for _ in 0..3 {
            pg.port = confab_testkit::free_socket_addr().expect("free port").port();
            let conf = format!(
                "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
                 ssl = on\nssl_cert_file = 'server.pem'\nssl_key_file = 'server.key'\n\
                 fsync = off\nmax_connections = 40\nshared_buffers = 16MB\n",
                pg.port,
                pg.dir.path().display()
            );
            std::fs::write(data.join("postgresql.auto.conf"), conf).expect("postgresql.auto.conf");
            let log = pg.dir.path().join("server.log");
            let out = pg.run(
                "pg_ctl",
                &["-D", path(&data), "-l", path(&log), "-w", "-t", "60", "start"],
            );
            if out.status.success() {
                return Some(pg);
            }
            eprintln!(
                "pg_ctl start failed on port {}: {}{}\n{}",
                pg.port,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("the private PostgreSQL did not start (see above)");
    }

    fn chown(&self, p: &Path) {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres", path(p)])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chown {} to postgres", p.display());
    }

    /// Runs a PostgreSQL program (as `postgres` when we are root).
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()))
    }

    /// Like [`Self::run`], failing the test when the program fails.
    fn pg(&self, program: &str, args: &[&str]) {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A URL for this server at `host` with `sslmode` and (if given) a CA.
    fn url(&self, host: &str, sslmode: Option<&str>, ca: Option<&Path>) -> String {
        let mut url = format!("postgres://postgres@{host}:{}/postgres", self.port);
        let mut sep = '?';
        if let Some(mode) = sslmode {
            url.push_str(&format!("{sep}sslmode={mode}"));
            sep = '&';
        }
        if let Some(ca) = ca {
            url.push_str(&format!("{sep}sslrootcert={}", ca.display()));
        }
        url
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        if self.port == 0 {
            return;
        }
        let out = self.run(
            "pg_ctl",
            &["-D", path(&self.data), "-m", "fast", "-w", "-t", "30", "stop"],
        );
        if !out.status.success() {
            // pg_ctl could not stop it: signal the postmaster by its pid.
            let pid = std::fs::read_to_string(self.data.join("postmaster.pid"))
                .ok()
                .and_then(|s| s.lines().next().map(str::to_owned));
            if let Some(pid) = pid {
                let _ = Command::new("kill").args(["-QUIT", &pid]).status();
            }
        }
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

async fn ssl_in_use(db: &Db) -> bool {
    let (ssl,): (bool,) = sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(db.pool())
        .await
        .expect("pg_stat_ssl");
    ssl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_migrates_writes_and_reads_over_verify_full() {
    let Some(pg) = TlsPostgres::start() else {
        return;
    };
    let url = pg.url("localhost", Some("verify-full"), Some(&pg.ca));

    // The whole service: migrations, users, messages through the queue and
    // the writer, history, over a verified TLS connection.
    let dir = tempfile::tempdir().expect("dir");
    let mut c = test_config(dir.path());
    c.database.url = url.clone();
    exercise(c).await;

    let metrics = Arc::new(Metrics::new());
    let db = Db::connect(&url, &db_config(), metrics.clone()).expect("connect");
    let text = metrics.render();
    assert!(
        text.contains("confab_persist_tls_mode{link=\"database\"} 2"),
        "{text}"
    );
    db.check_trust().await.expect("the server's certificate verifies");
    assert!(ssl_in_use(&db).await, "the connection is TLS");
    let (stored,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(stored, 30, "the messages persist wrote over TLS are there");
    db.close().await;

    // verify-ca checks the issuer only: the address is not a name the
    // certificate carries, and that is accepted here (and only here).
    let by_ip = pg.url("127.0.0.1", Some("verify-ca"), Some(&pg.ca));
    let db = Db::connect(&by_ip, &db_config(), Arc::new(Metrics::new())).expect("connect");
    db.check_trust().await.expect("verify-ca ignores the name");
    assert!(ssl_in_use(&db).await);
    db.close().await;

    // A URL that asks for nothing stays plain, and this server refuses
    // plain connections.
    let plain = pg.url("127.0.0.1", None, None);
    let metrics = Arc::new(Metrics::new());
    let db = Db::connect(&plain, &db_config(), metrics.clone()).expect("connect");
    let text = metrics.render();
    assert!(
        text.contains("confab_persist_tls_mode{link=\"database\"} 0"),
        "{text}"
    );
    db.check_trust().await.expect("a plain URL is not checked");
    let err = db.ping().await.expect_err("plain connection refused");
    assert!(err.to_string().contains("no encryption"), "{err}");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_does_not_verify_stops_persist_at_start() {
    let Some(pg) = TlsPostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let wrong_ca = other_ca(dir.path());

    // Another CA: the check at start says so.
    let url = pg.url("localhost", Some("verify-full"), Some(&wrong_ca));
    let db = Db::connect(&url, &db_config(), Arc::new(Metrics::new())).expect("lazy pool");
    let err = db.check_trust().await.expect_err("unknown issuer");
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("certificate did not verify") && msg.contains("UnknownIssuer"),
        "{msg}"
    );
    db.close().await;

    // The right CA but a name the certificate does not carry.
    let url = pg.url("127.0.0.1", Some("verify-full"), Some(&pg.ca));
    let db = Db::connect(&url, &db_config(), Arc::new(Metrics::new())).expect("lazy pool");
    let msg = db.check_trust().await.expect_err("wrong name").to_string();
    assert!(
        msg.contains("certificate did not verify") && msg.contains("not valid for name \"127.0.0.1\""),
        "{msg}"
    );
    db.close().await;

    // persist's start refuses it, and nothing is served.
    let mut c: Config = test_config(&dir.path().join("inproc"));
    c.database.url = pg.url("localhost", Some("verify-full"), Some(&wrong_ca));
    let started = confab_persist::start(c, CancellationToken::new()).await;
    let err = started.err().expect("start refuses an unverifiable database");
    assert!(err.to_string().contains("did not verify"), "{err}");

    // The real binary exits non-zero with that message, promptly.
    let bin = confab_testkit::workspace_bin("confab-persist");
    let data = dir.path().join("bin-data");
    let child = tokio::process::Command::new(bin)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--data-dir",
            path(&data),
        ])
        .env(
            "DATABASE_URL",
            pg.url("localhost", Some("verify-full"), Some(&wrong_ca)),
        )
        .env("RUST_LOG", "warn")
        .env_remove("AMQP_URL")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .expect("exits, not hangs")
        .expect("ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exit status {:?}; stderr: {stderr}",
        out.status
    );
    assert!(
        stderr.contains("certificate did not verify") && stderr.contains("UnknownIssuer"),
        "{stderr}"
    );

    // A CA file that is not there is named before anything connects.
    let missing_ca = dir.path().join("nowhere.pem");
    let url = pg.url("localhost", Some("verify-full"), Some(&missing_ca));
    let err = Db::connect(&url, &db_config(), Arc::new(Metrics::new()))
        .err()
        .expect("missing CA file");
    assert!(err.to_string().contains("nowhere.pem"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_against_the_shared_server_fails_clearly() {
    // The shared server must be up: otherwise this would test nothing.
    let up = tokio::time::timeout(
        Duration::from_secs(5),
        <sqlx::PgConnection as sqlx::Connection>::connect(crate::helpers::PG_ADMIN_URL),
    )
    .await;
    match up {
        Ok(Ok(conn)) => {
            let _ = sqlx::Connection::close(conn).await;
        }
        Ok(Err(e)) => {
            missing("PostgreSQL", &e.to_string());
            return;
        }
        Err(_) => {
            missing("PostgreSQL", "connect timed out");
            return;
        }
    }
    let dir = tempfile::tempdir().expect("dir");
    let ca = other_ca(dir.path());
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        crate::helpers::PG_ADMIN_URL,
        ca.display()
    );
    let db = Db::connect(&url, &db_config(), Arc::new(Metrics::new())).expect("lazy pool");
    let err = db.check_trust().await.expect_err("no certificate of ours there");
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    // With `ssl = off` it offers no TLS; with `ssl = on` its certificate is
    // not one our CA (or the system's roots) vouches for at 127.0.0.1.
    // Either way the message says which.
    let msg = err.to_string();
    assert!(
        msg.contains("does not support TLS") || msg.contains("certificate did not verify"),
        "{msg}"
    );
}
