//! confab-chat's interactive console against a real cluster, with commands
//! piped into stdin (rustyline reads plain lines when stdin is no terminal)
//! and its stdout read line by line.

use std::process::Stdio;
use std::time::Duration;

use confab_client::DeviceKind;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::harness::{Cluster, befriend, login, receive, register, workspace_bin};

const WAIT: Duration = Duration::from_secs(15);

/// Reads stdout lines until one contains `want`; returns the lines read.
async fn until(out: &mut Lines<BufReader<ChildStdout>>, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, out.next_line()).await {
            Ok(Ok(Some(l))) => {
                let done = l.contains(want);
                seen.push(l);
                if done {
                    return seen;
                }
            }
            other => panic!("no line with {want:?} (got {other:?}); so far: {seen:#?}"),
        }
    }
}

/// confab-chat's console as `user` on gateway `gw`, its stdin, stdout and
/// stderr piped.
fn console(gw: &str, user: &str) -> Child {
    console_with(&["--gateway", gw], user)
}

/// confab-chat's console as `user`, reaching its gateway as `how` says.
fn console_with(how: &[&str], user: &str) -> Child {
    Command::new(workspace_bin("confab-chat"))
        .args(how)
        .args(["--user", user, "--password", "pw"])
        .env_remove("CONFAB_BIN_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run confab-chat")
}

/// `/quit`, and the console ends with success.
async fn quit(child: &mut Child) {
    type_line(child, "/quit").await;
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the console quits")
        .expect("wait");
    assert!(status.success(), "exit status {status}");
}

async fn type_line(child: &mut Child, line: &str) {
    let stdin = child.stdin.as_mut().expect("stdin");
    stdin
        .write_all(format!("{line}\n").as_bytes())
        .await
        .expect("write a line");
    stdin.flush().await.expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sends_receives_shows_history_and_quits() {
    let cluster = Cluster::start(2).await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    register(&g1, "carol").await;
    register(&g2, "dave").await;
    befriend(&g1, "carol", "dave").await;
    let mut dave = login(&g2, "dave", "phone", DeviceKind::Mobile).await;

    let mut child = console(&g1, "carol");
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    until(&mut out, "connected to").await;

    type_line(&mut child, "/help").await;
    let help = until(&mut out, "/quit").await.join("\n");
    for cmd in ["@USER TEXT", "/to USER", "/history USER", "/help"] {
        assert!(help.contains(cmd), "help lists {cmd}: {help}");
    }

    // Incoming: printed with the sender's name while the console waits.
    dave.send_to_name("carol", "hello carol", "")
        .await
        .expect("dave sends");
    until(&mut out, "dave: hello carol").await;

    // @user sends once; /to makes plain lines go to that user.
    type_line(&mut child, "@dave first from the console").await;
    type_line(&mut child, "/to dave").await;
    until(&mut out, "talking to dave").await;
    type_line(&mut child, "second, a plain line").await;
    let got = receive(&mut dave, 2, WAIT).await;
    let bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["first from the console", "second, a plain line"]);

    // History, oldest first, with names (its first line is the only
    // message from dave; lines about our own sends may come before it).
    type_line(&mut child, "/history dave 10").await;
    until(&mut out, "dave: hello carol").await;
    let mut rest = Vec::new();
    for _ in 0..2 {
        rest.extend(until(&mut out, "me -> dave").await);
    }
    assert_eq!(
        rest,
        [
            "me -> dave: first from the console",
            "me -> dave: second, a plain line"
        ]
    );

    quit(&mut child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_reports_bad_commands_on_stderr_and_ends_at_eof() {
    let cluster = Cluster::start(1).await;
    let g = cluster.gw(1).to_owned();
    register(&g, "erin").await;
    let mut child = console(&g, "erin");
    type_line(&mut child, "/nonsense").await;
    type_line(&mut child, "a line with nobody to talk to").await;
    type_line(&mut child, "@nobody-here hi").await;
    drop(child.stdin.take());
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the console ends at EOF")
        .expect("output");
    assert!(out.status.success(), "EOF is a normal end");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown command /nonsense"), "{err}");
    assert!(err.contains("/to USER"), "{err}");
    assert!(err.contains("UserNotFound"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_reads_types_recalls_and_shows_them_as_they_arrive() {
    use confab_client::{Event, Peer, Update};

    use crate::friends::wait_for;
    let cluster = Cluster::start(1).await;
    let g = cluster.gw(1).to_owned();
    register(&g, "carol").await;
    let dave_id = register(&g, "dave").await;
    befriend(&g, "carol", "dave").await;
    let mut dave = login(&g, "dave", "phone", DeviceKind::Mobile).await;
    let mut child = console(&g, "carol");
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    until(&mut out, "connected to").await;

    // Pushes from dave: a message, typing, its recall.
    let ack = dave.send_to_name("carol", "hello carol", "").await.expect("send");
    until(&mut out, "dave: hello carol").await;
    dave.typing(&Peer::Name("carol".into())).await.expect("typing");
    until(&mut out, "dave is typing").await;
    dave.recall(ack.message_id).await.expect("recall");
    until(&mut out, &format!("dave recalled message {}", ack.message_id)).await;

    // Commands: carol writes, dave reads (carol sees the receipt), carol
    // reads (dave gets hers), types, and recalls her message.
    type_line(&mut child, "@dave back at you").await;
    let got = receive(&mut dave, 1, WAIT).await;
    let mine = got[0].message_id;
    let r = dave
        .mark_read(&Peer::Name("carol".into()), 0)
        .await
        .expect("dave reads");
    until(&mut out, &format!("dave read up to {}", r.read_seq)).await;
    type_line(&mut child, "/read dave").await;
    until(&mut out, "read dave up to").await;
    let receipt = wait_for(&mut dave, WAIT, "carol's receipt", |u| match u {
        Update::Receipt(r) => Some(r),
        _ => None,
    })
    .await;
    assert_ne!(receipt.reader, dave_id);
    type_line(&mut child, "/typing dave").await;
    wait_for(&mut dave, WAIT, "carol typing", |u| match u {
        Update::Typing(t) => Some(t),
        _ => None,
    })
    .await;
    type_line(&mut child, &format!("/recall {mine}")).await;
    until(&mut out, &format!("recalled message {mine}")).await;
    let recalled = wait_for(&mut dave, WAIT, "carol's recall", |u| match u {
        Update::Event(Event::Recalled(r)) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(recalled.message_id, mine);

    quit(&mut child).await;
}

/// Friends and groups from the console, as a person uses it: requests,
/// presence and join requests printed as they arrive with names, and the
/// answers typed as the notices suggest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_does_friends_and_groups_and_shows_their_pushes() {
    use confab_client::proto::{FriendEventKind, GroupEventKind};

    use crate::friends::{friend_event, group_event};
    let cluster = Cluster::start(2).await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    for name in ["carol", "dave", "erin"] {
        register(&g1, name).await;
    }
    let mut dave = login(&g2, "dave", "phone", DeviceKind::Mobile).await;
    let mut erin = login(&g1, "erin", "laptop", DeviceKind::Desktop).await;
    let mut child = console(&g1, "carol");
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    until(&mut out, "connected to").await;

    type_line(&mut child, "/help").await;
    let help = until(&mut out, "/group-send").await.join("\n");
    for cmd in [
        "/friends",
        "/add-friend USER",
        "/accept USER",
        "/create-group",
        "/approve GROUP USER",
    ] {
        assert!(help.contains(cmd), "help lists {cmd}: {help}");
    }

    // Friends: carol asks dave (with a quoted note); erin asks carol, who
    // is told and declines; dave accepts and carol is told.
    type_line(&mut child, "/add-friend dave --note 'it is carol'").await;
    until(&mut out, "asked dave for friendship").await;
    let asked = friend_event(&mut dave, FriendEventKind::Requested).await;
    assert_eq!(asked.note, "it is carol");
    erin.add_friend("carol", "hello").await.expect("erin asks");
    until(
        &mut out,
        "erin asks to be your friend (hello): /accept erin or /decline erin",
    )
    .await;
    type_line(&mut child, "/decline erin").await;
    until(&mut out, "declined erin").await;
    friend_event(&mut erin, FriendEventKind::Declined).await;
    dave.accept_friend("carol").await.expect("dave accepts");
    until(&mut out, "dave accepted: you are friends").await;

    // Presence: dave's second device comes and goes.
    let mut tablet = login(&g2, "dave", "tablet", DeviceKind::Tablet).await;
    until(&mut out, "dave is online (2 devices)").await;
    type_line(&mut child, "/friends").await;
    until(&mut out, "dave (online on 2 device(s))").await;
    tablet.logout().await.expect("logout");
    drop(tablet);
    until(&mut out, "dave is online").await;

    // A group by name: created, a join request pushed and approved, one
    // denied, messages both ways, its history.
    type_line(&mut child, "/create-group team").await;
    let created = until(&mut out, "created #team").await;
    let gid: u64 = created
        .last()
        .and_then(|l| l.split("(id ").nth(1))
        .and_then(|r| r.trim_end_matches(')').parse().ok())
        .expect("group id");
    dave.join_group(gid, "let me in")
        .await
        .expect("dave asks to join");
    until(
        &mut out,
        "dave asks to join #team (let me in): /approve team dave or /deny team dave",
    )
    .await;
    type_line(&mut child, "/approve team dave").await;
    until(&mut out, "dave joined #team").await;
    group_event(&mut dave, GroupEventKind::JoinApproved).await;
    erin.join_group(gid, "").await.expect("erin asks to join");
    until(&mut out, "erin asks to join #team").await;
    type_line(&mut child, "/deny team erin").await;
    until(&mut out, "denied erin in #team").await;
    group_event(&mut erin, GroupEventKind::JoinDenied).await;

    dave.group_send(gid, "hi team", "").await.expect("group send");
    until(&mut out, "[#team] dave: hi team").await;
    type_line(&mut child, "/to #team").await;
    until(&mut out, "talking to #team").await;
    type_line(&mut child, "hello from the console").await;
    let got = receive(&mut dave, 1, WAIT).await;
    assert_eq!(
        (got[0].body.as_str(), got[0].conversation_id.as_str()),
        ("hello from the console", format!("g:{gid}").as_str())
    );
    type_line(&mut child, "/group-send team and one more").await;
    until(&mut out, "sent to #team").await;
    type_line(&mut child, "/history #team").await;
    until(&mut out, "[#team] dave: hi team").await;
    until(&mut out, "[#team] me: hello from the console").await;
    until(&mut out, "[#team] me: and one more").await;
    type_line(&mut child, "/members team").await;
    until(&mut out, "dave (member)").await;

    // A mistake in a subcommand's arguments: one line on stderr, the
    // console goes on.
    type_line(&mut child, "/approve team").await;
    type_line(&mut child, "/login").await;
    quit(&mut child).await;
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .await
        .expect("stderr");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("/approve: ") && lines[0].contains("USER"),
        "{err}"
    );
    assert!(lines[1].contains("/login is for the command line"), "{err}");
}

/// The console started from the directory (both gateways' HTTP ports):
/// when its gateway is SIGKILLed it asks the directory again, resumes at
/// the other gateway, shows what was sent to it meanwhile, and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_from_the_directory_moves_to_the_other_gateway_when_its_own_dies() {
    let mut cluster = Cluster::start(2).await;
    let (g1, g2) = (cluster.gw(1).to_owned(), cluster.gw(2).to_owned());
    register(&g1, "gina").await;
    register(&g2, "hal").await;
    befriend(&g1, "gina", "hal").await;
    let urls = format!(
        "http://{},http://{}",
        cluster.gateways[&1].http, cluster.gateways[&2].http
    );
    let mut child = console_with(&["--directory", &urls], "gina");
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = until(&mut out, "connected to").await.join("\n");
    // Ready: the console answers a command.
    type_line(&mut child, "/help").await;
    until(&mut out, "/quit").await;
    let (at, other) = if first.contains(&g1) {
        (1, 2)
    } else {
        assert!(first.contains(&g2), "connected to one of the gateways: {first}");
        (2, 1)
    };

    cluster.kill(&format!("gateway-{at}"));
    let other_addr = cluster.gw(other).to_owned();
    let mut hal = login(&other_addr, "hal", "hal-phone", DeviceKind::Mobile).await;
    hal.send_to_name("gina", "while you were away", "")
        .await
        .expect("hal sends");
    let back = until(&mut out, "reconnected to").await.join("\n");
    assert!(back.contains(&other_addr), "resumed at gateway {other}: {back}");
    until(&mut out, "hal: while you were away").await;

    // Live again, both ways.
    hal.send_to_name("gina", "and now", "").await.expect("hal sends");
    until(&mut out, "hal: and now").await;
    type_line(&mut child, "@hal back on gateway two").await;
    let got = receive(&mut hal, 1, WAIT).await;
    assert_eq!(got.first().map(|m| m.body.as_str()), Some("back on gateway two"));
    quit(&mut child).await;
}
