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

/// [`chat`] again until its stdout satisfies `done` (10 s at most): a read
/// right after a send, for acknowledged is not yet written.
fn chat_until(gw: &str, args: &[&str], done: impl Fn(&str) -> bool) -> (bool, String, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (ok, out, err) = chat(gw, args);
        if !ok || done(&out) || std::time::Instant::now() > deadline {
            return (ok, out, err);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
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
    let (ok, out, err) = chat_until(&g, &[&ivy[..], &["history", "hank"]].concat(), |o| {
        o.lines().count() >= 3
    });
    assert!(ok, "history: {err}");
    assert_eq!(out.lines().count(), 3, "{out}");
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_read_typing_recall_and_sync() {
    use crate::harness::register;
    let cluster = Cluster::start(1).await;
    let g = cluster.gw(1).to_owned();
    for name in ["hank", "ivy", "zed"] {
        register(&g, name).await;
    }
    cluster.befriend("hank", "ivy").await;
    let hank = ["--user", "hank", "--password", "pw", "--json"];
    let ivy = ["--user", "ivy", "--password", "pw", "--json"];
    let mut sent = Vec::new();
    for text in ["first", "second"] {
        let (ok, out, err) = chat(&g, &[&hank[..], &["send", "ivy", text]].concat());
        assert!(ok, "send: {err}");
        sent.push(json_lines(&out)[0]["message_id"].as_u64().expect("id"));
    }
    let conv = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (ok, out, err) = chat(&g, &[&ivy[..], &["sync"]].concat());
            assert!(ok, "sync: {err}");
            let docs = json_lines(&out);
            if let Some(d) = docs.iter().find(|d| d["seq"] == 2) {
                assert_eq!(
                    (d["unread_count"].as_u64(), d["read_seq"].as_u64()),
                    (Some(2), Some(0))
                );
                break d["conversation_id"].as_str().expect("id").to_owned();
            }
            assert!(std::time::Instant::now() < deadline, "never synced: {out}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };

    // read: a mark, in JSON and text; sync shows it on both sides.
    let (ok, out, err) = chat(&g, &[&ivy[..], &["read", "hank", "--seq", "1"]].concat());
    assert!(ok, "read: {err}");
    let doc = &json_lines(&out)[0];
    assert_eq!(
        (doc["read_seq"].as_u64(), doc["conversation_id"].as_str()),
        (Some(1), Some(conv.as_str()))
    );
    let (ok, out, _) = chat(&g, &[&ivy[..], &["sync"]].concat());
    assert!(ok);
    assert_eq!(json_lines(&out)[0]["unread_count"], 1);
    let (ok, out, _) = chat(&g, &[&hank[..], &["sync"]].concat());
    assert!(ok);
    assert_eq!(json_lines(&out)[0]["peer_read_seq"], 1);
    let (ok, out, err) = chat(&g, &["--user", "ivy", "--password", "pw", "read", "hank"]);
    assert!(ok && out.contains("up to 2"), "{out}{err}");
    let (ok, out, _) = chat(&g, &["--user", "ivy", "--password", "pw", "sync"]);
    assert!(ok && out.contains("0 unread"), "{out}");
    let (ok, _, err) = chat(&g, &[&ivy[..], &["read", "nobody"]].concat());
    assert!(!ok && err.contains("UserNotFound"), "{err}");
    let (ok, _, _) = chat(&g, &[&ivy[..], &["read"]].concat());
    assert!(!ok, "read needs USER or --group");

    // typing: to a friend, not from a stranger, not to a foreign group.
    let (ok, out, err) = chat(&g, &[&hank[..], &["typing", "ivy"]].concat());
    assert!(ok, "typing: {err}");
    assert_eq!(json_lines(&out)[0]["typing"], true);
    let (ok, _, err) = chat(&g, &["--user", "zed", "--password", "pw", "typing", "ivy"]);
    assert!(!ok && err.contains("Forbidden"), "a stranger: {err}");
    let (ok, _, err) = chat(&g, &[&hank[..], &["typing", "--group", "999"]].concat());
    assert!(!ok && err.contains("Forbidden"), "{err}");

    // recall: hank's second message; history shows it recalled and the
    // entry; ivy cannot recall hank's; an unknown id is not found.
    let second = sent[1].to_string();
    let (ok, out, err) = chat(&g, &[&hank[..], &["recall", &second]].concat());
    assert!(ok, "recall: {err}");
    let doc = &json_lines(&out)[0];
    assert_eq!(
        (doc["message_id"].as_u64(), doc["seq"].as_u64()),
        (Some(sent[1]), Some(3))
    );
    let (ok, out, err) = chat_until(&g, &[&ivy[..], &["history", "hank"]].concat(), |o| {
        o.contains("recall_of")
    });
    assert!(ok, "history: {err}");
    let docs = json_lines(&out);
    let gone = docs.iter().find(|d| d["message_id"] == sent[1]).expect("listed");
    assert_eq!(
        (gone["recalled"].as_bool(), gone["body"].as_str()),
        (Some(true), Some(""))
    );
    assert!(docs.iter().any(|d| d["recall_of"] == sent[1]), "{out}");
    let (ok, out, _) = chat(&g, &["--user", "ivy", "--password", "pw", "history", "hank"]);
    assert!(ok && out.contains("(recalled)") && out.contains("first"), "{out}");
    let (ok, _, err) = chat(&g, &[&ivy[..], &["recall", &sent[0].to_string()]].concat());
    assert!(!ok && err.contains("Forbidden"), "{err}");
    let (ok, _, err) = chat(&g, &[&hank[..], &["recall", "12345"]].concat());
    assert!(!ok && err.contains("NotFound"), "{err}");
}

/// What a person reads: names instead of ids in history and pushes, an
/// error on one line said once, `listen --count N` stopping at N.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_text_names_users_and_groups_and_errors_once() {
    use crate::harness::register;
    let cluster = Cluster::start(1).await;
    let g = cluster.gw(1).to_owned();
    for name in ["kim", "lou"] {
        register(&g, name).await;
    }
    cluster.befriend("kim", "lou").await;
    let kim = ["--user", "kim", "--password", "pw"];
    let lou = ["--user", "lou", "--password", "pw"];
    for text in ["one", "two", "three"] {
        let (ok, _, err) = chat(&g, &[&kim[..], &["send", "lou", text]].concat());
        assert!(ok, "send: {err}");
    }
    // Acknowledged is not yet written: history shows them once stored.
    let (ok, out, err) = chat_until(&g, &[&lou[..], &["history", "kim"]].concat(), |o| {
        o.lines().count() >= 3
    });
    assert!(ok, "history: {err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["kim: one", "kim: two", "kim: three"]
    );
    let (ok, out, _) = chat(&g, &[&kim[..], &["history", "lou", "--limit", "1"]].concat());
    assert!(ok);
    assert_eq!(out.trim(), "me -> lou: three");

    // A group named on the command line by its name; its history and the
    // sync list name it and its members.
    let (ok, out, err) = chat(&g, &[&kim[..], &["create-group", "crew"]].concat());
    assert!(ok && out.starts_with("created #crew"), "{out}{err}");
    let (ok, _, err) = chat(&g, &[&lou[..], &["join", "#crew"]].concat());
    assert!(
        !ok && err.contains("no group crew among mine"),
        "a group I am not in: {err}"
    );
    let gid: String = out
        .split("(id ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("id")
        .to_owned();
    let (ok, _, err) = chat(&g, &[&lou[..], &["join", &gid, "--note", "hi"]].concat());
    assert!(ok, "join: {err}");
    let (ok, out, err) = chat(&g, &[&kim[..], &["approve", "crew", "lou"]].concat());
    assert!(ok && out.trim() == "lou joined #crew", "{out}{err}");
    let (ok, out, err) = chat(&g, &[&lou[..], &["group-send", "crew", "hello crew"]].concat());
    assert!(ok && out.starts_with("sent to #crew"), "{out}{err}");
    let (ok, out, _) = chat_until(&g, &[&kim[..], &["group-history", "crew"]].concat(), |o| {
        !o.trim().is_empty()
    });
    assert!(ok);
    assert_eq!(out.trim(), "[#crew] lou: hello crew");
    let (ok, out, _) = chat(&g, &[&kim[..], &["sync"]].concat());
    assert!(ok);
    assert!(
        out.contains("[lou] 3 messages") && out.contains("[#crew] 1 messages"),
        "{out}"
    );
    assert!(
        !out.contains("d:") && !out.contains("g:"),
        "no conversation ids: {out}"
    );

    // listen --count stops at N though more are waiting.
    let (ok, out, err) = chat(
        &g,
        &[&lou[..], &["listen", "--count", "2", "--timeout", "10"]].concat(),
    );
    assert!(ok, "listen: {err}");
    assert_eq!(out.lines().count(), 2, "{out}");

    // An error: one line, its words once.
    let (ok, _, err) = chat(&g, &[&kim[..], &["send", "nobody", "x"]].concat());
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: UserNotFound"), "{err}");
    let words = err.trim().trim_start_matches("error: UserNotFound: ");
    assert_eq!(err.matches(words).count(), 1, "said once: {err}");
}
