//! persist over `amqps://`: a RabbitMQ node of the test's own with only a
//! TLS listener (certificates from a test CA); the whole service through
//! it, and a broker certificate from another CA stopping persist at start.

use std::path::Path;
use std::time::Duration;

use confab_persist::config::QueueBackend;
use confab_testkit::{ServerCerts, TlsRabbit, other_ca, server_certs};
use tokio_util::sync::CancellationToken;

use crate::helpers::{missing, unique};
use crate::service::{exercise, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_over_amqps_and_a_broker_that_does_not_verify() {
    let dir = tempfile::tempdir().expect("dir");
    let ServerCerts {
        ca: ca_path,
        cert,
        key,
    } = server_certs(dir.path(), "confab test broker CA");
    let other = other_ca(dir.path());
    let node = match TlsRabbit::start(&cert, &key, &ca_path).await {
        Ok(node) => node,
        Err(why) => {
            missing("RabbitMQ server", &why);
            return;
        }
    };
    let url = format!("amqps://guest:guest@localhost:{}/%2f", node.port);

    // Users, messages enqueued, consumed by the writer and read back, with
    // the broker reached over TLS only.
    let mut c = test_config(&dir.path().join("ok"));
    c.queue.backend = QueueBackend::Amqp;
    c.queue.amqp_url = url.clone();
    c.queue.amqp_ca = Some(ca_path.clone());
    c.queue.prefix = unique("confab.tls");
    exercise(c).await;

    // Another CA: start refuses, saying why.
    let mut c = test_config(&dir.path().join("inproc"));
    c.queue.backend = QueueBackend::Amqp;
    c.queue.amqp_url = url.clone();
    c.queue.amqp_ca = Some(other.clone());
    let err = confab_persist::start(c, CancellationToken::new())
        .await
        .err()
        .expect("start refuses an unverifiable broker");
    let msg = err.to_string();
    assert!(
        msg.contains("broker TLS") && msg.contains("did not verify") && msg.contains("UnknownIssuer"),
        "{msg}"
    );

    // The real binary exits non-zero with that message.
    let out = run_persist(&dir.path().join("bin"), &url, &other).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exit status {:?}; stderr: {stderr}",
        out.status
    );
    assert!(
        stderr.contains("broker TLS") && stderr.contains("UnknownIssuer"),
        "{stderr}"
    );
    drop(node);
}

async fn run_persist(data: &Path, amqp_url: &str, amqp_ca: &Path) -> std::process::Output {
    let bin = confab_testkit::workspace_bin("confab-persist");
    let child = tokio::process::Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("AMQP_URL", amqp_url)
        .env("CONFAB_QUEUE__AMQP_CA", amqp_ca)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .expect("exits, not hangs")
        .expect("ran")
}
