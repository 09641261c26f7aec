//! confab-chat's one-shot subcommands against a real cluster.

use std::process::Command;

use crate::harness::{Cluster, workspace_bin};

fn chat(gw: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(workspace_bin("confab-chat"))
        .args(["--gateway", gw])
        .args(args)
        .env_remove("CONFAB_BIN_DIR")
        .output()
        .expect("run confab-chat");
    let s = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.success(), s(out.stdout), s(out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_register_send_history_json() {
    let cluster = Cluster::start(1).await;
    let g = cluster.gw(1).to_owned();
    let mut ids = Vec::new();
    for name in ["hank", "ivy"] {
        let (ok, out, err) = chat(&g, &["--json", "register", name, "--password", "pw"]);
        assert!(ok, "register {name}: {err}");
        let doc: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON document");
        assert_eq!(doc["name"], name);
        ids.push(doc["user_id"].clone());
    }
    cluster.befriend("hank", "ivy").await;
    let (ok, _, err) = chat(&g, &["register", "hank", "--password", "x"]);
    assert!(!ok && err.contains("NameTaken"), "a taken name fails: {err}");
    let me = ["--user", "hank", "--password", "pw"];
    for text in ["one", "two", "three"] {
        let (ok, _, err) = chat(&g, &[&me[..], &["send", "ivy", text]].concat());
        assert!(ok, "send: {err}");
    }
    let (ok, _, err) = chat(&g, &[&me[..], &["send", "nobody", "x"]].concat());
    assert!(
        !ok && err.contains("UserNotFound"),
        "{err}\n{}\n{}",
        cluster.log("gateway-1"),
        cluster.log("persist")
    );
    let ivy = ["--user", "ivy", "--password", "pw", "--json"];
    let (ok, out, err) = chat(
        &g,
        &[&ivy[..], &["listen", "--count", "3", "--timeout", "10"]].concat(),
    );
    assert!(ok, "listen: {err}");
    let docs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(
        docs.iter().all(|d| d["sender"] != docs[0]["conversation_id"]),
        "sent by hank"
    );
    let bodies: Vec<String> = docs.iter().map(|d| d["body"].to_string()).collect();
    assert_eq!(bodies, vec!["\"one\"", "\"two\"", "\"three\""]);
    let (ok, out, err) = chat(&g, &[&ivy[..], &["history", "hank"]].concat());
    assert!(ok, "history: {err}");
    assert_eq!(out.lines().count(), 3, "{out}");
}
