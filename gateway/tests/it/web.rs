//! The web client in a real browser against real processes: the gateway
//! serves the page at `/`, and web/tests/chat.test.mjs (Playwright driving
//! Debian's chromium) runs its story against it: register, befriend,
//! presence, chat both ways, sync after reopening with the server's unread
//! count, scroll-back, read receipts, typing, recall, a second device whose
//! unread count follows the first one's reads, a group with a join request
//! and approval.
//!
//! Needs Node.js, chromium and web/node_modules (`scripts/ensure-web.sh`,
//! which `make test` runs first). CONFAB_SCREENSHOTS names where the
//! screenshots go (`make web-screenshots` writes docs/screenshots).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use confab_testkit::missing;

use crate::harness::Cluster;

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

/// What the browser test needs that may be missing on this machine.
fn prerequisites() -> Result<(), String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!(
            "{chromium} not found (scripts/ensure-web.sh installs it)"
        ));
    }
    if !web_dir().join("node_modules/playwright-core").exists() {
        return Err("web/node_modules is not installed (scripts/ensure-web.sh)".into());
    }
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("node not found (scripts/ensure-web.sh installs it)".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_served_by_the_gateway_chats_in_a_browser() {
    if let Err(why) = prerequisites() {
        missing("the browser test's Node.js and chromium", &why);
        return;
    }
    // Two tabs of one user are two web devices: the default policy
    // (one_per_kind) would sign the first out when the second logs in.
    let cluster = Cluster::start_with_env(2, &[("CONFAB_SESSION__MULTI_DEVICE_POLICY", "allow_all")]).await;
    let page = format!("http://{}/", cluster.gateways[&1].http);

    // The page and its assets come from the gateway itself.
    let index = http_get(&cluster.gateways[&1].http, "/").await;
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    assert!(index.contains("text/html"), "{index}");
    assert!(index.contains("<title>Confab</title>"), "{index}");

    let shots = std::env::var("CONFAB_SCREENSHOTS").unwrap_or_else(|_| {
        std::env::temp_dir()
            .join(format!("confab-web-{}", std::process::id()))
            .display()
            .to_string()
    });
    let web = web_dir();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(["--test", "--test-concurrency=1", "tests/chat.test.mjs"])
            .current_dir(web)
            .env("CONFAB_WEB_URL", &page)
            .env("CONFAB_SCREENSHOTS", &shots)
            .output()
            .expect("run node")
    });
    let out = tokio::time::timeout(Duration::from_secs(300), out)
        .await
        .expect("browser test within 5 min")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- gateway-1\n{}",
        cluster.log("gateway-1")
    );
    // node --test's summary: every step passed, none skipped.
    assert!(stdout.contains("# fail 0"), "{stdout}");
    assert!(stdout.contains("# skipped 0"), "{stdout}");
    assert!(!stdout.contains("# pass 0\n"), "{stdout}");
}

/// One plain HTTP/1.1 GET over a TCP stream; the whole response as text.
async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("answer")
        .unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}
