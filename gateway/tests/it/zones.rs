//! Zones on separate hosts: every router, persist and gateway process runs
//! in a network namespace of its own, on the network `scripts/hosts-net.sh`
//! builds (a core network, zones subnet-1 and subnet-2 with one gateway
//! each, a public zone both gateways are on; no routes between them).
//! Clients in each zone start from the directory (`GET /v1/gateway` on the
//! gateway address their zone reaches) and get their zone's gateway at the
//! address their zone reaches it at. Three users, one per zone, chat with
//! each other; subnet-1's switch is cut for a few seconds under the load:
//! the other zones keep being served, subnet-1's devices notice the silence,
//! ask the directory again once it heals, resend and sync. Per acknowledged
//! message: received exactly once by its recipient, in its sender's order
//! within its conversation.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use confab_client::proto as pb;
use confab_client::{Client, DeviceKind, Directory, ErrorCode, Event, Unacked, answer_lost};
use confab_testkit::{InNetns, Processes, http_get, missing, workspace_bin};
use tokio::time::Instant;

/// Messages each user sends (alternating between the other two).
const PER_SENDER: usize = 90;
const PACE: Duration = Duration::from_millis(30);
/// How long subnet-1 stays cut.
const CUT_FOR: Duration = Duration::from_secs(10);
/// Gateways' heartbeat: a client hears nothing for three of them and
/// counts its connection as lost.
const HEARTBEAT_MS: u64 = 2000;

const ROUTERS: [&str; 3] = ["198.18.100.11", "198.18.100.12", "198.18.100.13"];
const PERSIST: &str = "198.18.100.21";
/// The gateways' core addresses (scripts/hosts-net.sh).
const GATEWAYS: [&str; 2] = ["198.18.100.31", "198.18.100.32"];
/// (user, client host, directory URLs).
const USERS: [(&str, &str, &str); 3] = [
    ("ann", "c1", "http://198.18.101.1:8201"),
    ("bob", "c2", "http://198.18.102.1:8201"),
    ("cy", "c3", "http://198.18.103.1:8201,http://198.18.103.2:8201"),
];

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/hosts-net.sh")
}

/// The namespaces of one run, deleted on drop.
struct Net {
    prefix: String,
}

impl Net {
    fn up() -> Result<Self, String> {
        let prefix = format!("cz{}", std::process::id() % 1_000_000);
        let net = Net { prefix };
        let out = Command::new(script())
            .args(["up", &net.prefix])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(net)
    }

    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    fn switch(&self, how: &str, zone: &str) {
        let ok = Command::new(script())
            .args([how, &self.prefix, zone])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{how} {zone}");
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["down", &self.prefix]).status();
    }
}

/// Gateway `id`'s configuration on that network (the script's), with a
/// short heartbeat: a silent connection is noticed within seconds.
fn gateway_toml(id: usize) -> String {
    let out = Command::new(script())
        .args(["gateway-toml", &id.to_string()])
        .output()
        .expect("hosts-net.sh gateway-toml");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut toml = String::from_utf8(out.stdout).expect("utf-8");
    toml.push_str(&format!(
        "\n[limits]\nheartbeat_ms = {HEARTBEAT_MS}\nidle_timeout_ms = {}\n",
        HEARTBEAT_MS * 3
    ));
    toml
}

/// Starts every service process in its namespace.
fn start(net: &Net, procs: &mut Processes) {
    let in_ns = |host: &str, bin: &str| {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &net.ns(host)]).arg(workspace_bin(bin));
        cmd
    };
    let peers: Vec<String> = ROUTERS
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{}={r}:7101", i + 1))
        .collect();
    for (i, r) in ROUTERS.iter().enumerate() {
        let id = (i + 1).to_string();
        let mut cmd = in_ns(&format!("r{id}"), "confab-router");
        cmd.args(["--id", &id, "--listen", &format!("{r}:7101"), "--http"])
            .arg(format!("{r}:9101"))
            .arg("--data-dir")
            .arg(procs.dir().join(format!("router-{id}")))
            .args(["--bootstrap", "--peers", &peers.join(",")]);
        procs.spawn(&format!("router-{id}"), cmd);
    }
    let routers: Vec<String> = ROUTERS.iter().map(|r| format!("{r}:7101")).collect();
    let mut cmd = in_ns("p1", "confab-persist");
    cmd.args(["--listen", &format!("{PERSIST}:7301"), "--http"])
        .arg(format!("{PERSIST}:9301"))
        .arg("--data-dir")
        .arg(procs.dir().join("persist"))
        .args(["--router", &routers.join(",")]);
    procs.spawn("persist", cmd);
    for id in 1..=GATEWAYS.len() {
        let file = procs.dir().join(format!("gateway-{id}.toml"));
        std::fs::write(&file, gateway_toml(id)).expect("gateway config");
        let mut cmd = in_ns(&format!("g{id}"), "confab-gateway");
        cmd.arg("--config").arg(&file);
        procs.spawn(&format!("gateway-{id}"), cmd);
    }
}

/// Every process answers ready (asked from the core network).
async fn wait_ready(op: &InNetns, procs: &Processes) {
    let mut http: Vec<(String, String)> = ROUTERS
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("router-{}", i + 1), format!("{r}:9101")))
        .collect();
    http.push(("persist".into(), format!("{PERSIST}:9301")));
    for (i, g) in GATEWAYS.iter().enumerate() {
        http.push((format!("gateway-{}", i + 1), format!("{g}:9201")));
    }
    for (name, addr) in http {
        let ready = op
            .run(async move {
                let deadline = Instant::now() + Duration::from_secs(60);
                while Instant::now() < deadline {
                    if matches!(http_get(&addr, "/readyz").await, Some((200, _))) {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                false
            })
            .await;
        assert!(ready, "{name} not ready; the logs:\n{}", procs.every_log());
    }
}

/// Asks the directory until it names a gateway (the gateways' leases may
/// not be visible yet).
async fn pick(dir: &Directory) -> confab_client::Pick {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match dir.pick(None).await {
            Ok(p) => return p,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the directory never answered: {e}"),
        }
    }
}

/// Logs in through the directory as a device of `kind`; a busy answer
/// (password checks queued) is retried after the pause it names.
async fn login(dir: &Directory, name: &str, device: &str, kind: DeviceKind) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (mut c, _) = Client::connect_via(dir, None)
            .await
            .expect("connect via the directory");
        match c.login(name, "pw", device, kind).await {
            Ok(_) => return c,
            Err(e) if e.retry_after().is_some() && Instant::now() < deadline => {
                tokio::time::sleep(e.retry_after().unwrap_or_default()).await
            }
            Err(e) => panic!("{name} login: {e}"),
        }
    }
}

/// A send the gateway refused for now, or whose answer was lost: a resend
/// settles it.
fn retry(e: &confab_client::Error) -> bool {
    answer_lost(e) || matches!(e.code(), Some(ErrorCode::Unavailable | ErrorCode::Busy))
}

/// Resumes `c` through the directory until it works; returns the acks of
/// the resent outbox and the messages synced.
async fn rejoin(c: &mut Client, dir: &Directory, who: &str, within: Duration) -> confab_client::Reconnected {
    let deadline = Instant::now() + within;
    loop {
        match c.reconnect_via(dir, None).await {
            Ok((back, _)) => return back,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "{who} did not get back within {within:?}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Sends `{name}-{k}` for every k, alternately to `peers`, each until
/// acknowledged (reconnecting through the directory as needed); counts
/// acks in `acked`. Returns the acks in order and the reconnects made.
async fn send_all(
    mut c: Client,
    dir: Directory,
    name: String,
    peers: [u64; 2],
    acked: Arc<AtomicUsize>,
) -> (Vec<pb::SendAck>, usize) {
    let mut acks = Vec::new();
    let mut reconnects = 0;
    for k in 0..PER_SENDER {
        let key = format!("{name}-{k}");
        let req = pb::SendRequest {
            to_user: peers[k % 2],
            body: key.clone(),
            client_msg_id: key.clone(),
            ..Default::default()
        };
        let mut ack = match c.send(req.clone()).await {
            Ok(a) => Some(a),
            Err(e) if retry(&e) => None,
            Err(e) => panic!("{key} refused: {e}"),
        };
        while ack.is_none() {
            if !c.outbox.pending().any(|u| u.client_msg_id() == key) {
                c.outbox.add(Unacked::Direct(req.clone()));
            }
            reconnects += 1;
            let back = rejoin(&mut c, &dir, &name, Duration::from_secs(40)).await;
            ack = back.acks.into_iter().find(|a| a.client_msg_id == key);
        }
        acks.extend(ack);
        acked.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(PACE).await;
    }
    (acks, reconnects)
}

/// Takes messages until every one of `expected` is in, reconnecting
/// through the directory when the connection is lost; then a sync and a
/// quiet second. Returns what came, in order, and the reconnects made.
async fn receive_all(
    mut c: Client,
    dir: Directory,
    name: String,
    expected: Vec<String>,
) -> (Vec<pb::Message>, usize) {
    let mut got: Vec<pb::Message> = Vec::new();
    let mut reconnects = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let have = |got: &[pb::Message]| expected.iter().all(|b| got.iter().any(|m| &m.body == b));
    while !have(&got) {
        assert!(Instant::now() < deadline, "{name}: not everything within 60 s");
        match tokio::time::timeout(Duration::from_secs(2), c.next_event()).await {
            Ok(Some(Event::Message(m))) => got.push(m),
            Ok(Some(Event::Closed(_)) | None) => {
                reconnects += 1;
                got.extend(
                    rejoin(&mut c, &dir, &name, Duration::from_secs(40))
                        .await
                        .messages,
                );
            }
            Ok(other) => panic!("{name}: unexpected {other:?}"),
            Err(_) => got.extend(c.sync().await.unwrap_or_default()),
        }
    }
    got.extend(c.sync().await.expect("sync"));
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(1), c.next_event()).await {
        match e {
            Event::Message(m) => got.push(m),
            other => panic!("{name}: unexpected {other:?}"),
        }
    }
    (got, reconnects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_on_separate_hosts_chat_across_and_a_cut_zone_comes_back() {
    let net = match Net::up() {
        Ok(n) => n,
        Err(why) => return missing("network namespaces (root and iproute2)", why.trim()),
    };
    let mut procs = Processes::new();
    start(&net, &mut procs);
    let op = InNetns::enter(&net.ns("op")).expect("enter op");
    wait_ready(&op, &procs).await;
    let hosts: HashMap<&str, InNetns> = USERS
        .iter()
        .map(|(_, host, _)| (*host, InNetns::enter(&net.ns(host)).expect("enter")))
        .collect();
    let dir = |urls: &str| Directory::new([urls]).expect("directory URLs");

    // The directory, asked from each zone.
    for (user, host, urls) in USERS {
        let d = dir(urls);
        let p = hosts[host].run(async move { pick(&d).await }).await;
        eprintln!("{user} in {host}: {p:?}");
        match host {
            "c1" => assert_eq!(
                (p.gateway_id, p.addr.as_str(), p.ws_url.as_str(), p.zone.as_str()),
                (1, "198.18.101.1:7201", "ws://198.18.101.1:8201/ws", "subnet-1")
            ),
            "c2" => assert_eq!(
                (p.gateway_id, p.addr.as_str(), p.ws_url.as_str(), p.zone.as_str()),
                (2, "198.18.102.1:7201", "ws://198.18.102.1:8201/ws", "subnet-2")
            ),
            _ => {
                assert_eq!(p.zone, "public");
                assert_eq!(p.addr, format!("198.18.103.{}:7201", p.gateway_id));
            }
        }
    }

    // Accounts, and everyone befriends everyone, each from their own zone.
    let mut uid = HashMap::new();
    for (user, host, urls) in USERS {
        let d = dir(urls);
        let id = hosts[host]
            .run(async move {
                // As an application does: an answer lost or "retry" (persist
                // slow on a loaded machine) is tried again, a few times.
                let mut tries = 0;
                loop {
                    tries += 1;
                    let (c, _) = Client::connect_via(&d, None).await.expect("connect");
                    match c.register(user, "pw").await {
                        Ok(ok) => break ok.user_id,
                        Err(e)
                            if tries < 10
                                && (answer_lost(&e) || e.code() == Some(ErrorCode::Unavailable)) =>
                        {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Err(e) => panic!("register {user}: {e}"),
                    }
                }
            })
            .await;
        uid.insert(user, id);
    }
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        let ((ua, ha, da), (ub, hb, db)) = (USERS[a], USERS[b]);
        let (da, db) = (dir(da), dir(db));
        hosts[ha]
            .run(async move {
                let c = login(&da, ua, "befriend", DeviceKind::Bot).await;
                c.add_friend(ub, "").await.expect("friend request");
            })
            .await;
        hosts[hb]
            .run(async move {
                let c = login(&db, ub, "befriend", DeviceKind::Bot).await;
                c.accept_friend(ua).await.expect("accept");
            })
            .await;
    }

    // The load: each user a sending and a receiving device.
    let acked: Vec<Arc<AtomicUsize>> = USERS.iter().map(|_| Arc::default()).collect();
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for (i, (user, host, urls)) in USERS.iter().enumerate() {
        let others: Vec<usize> = (0..USERS.len()).filter(|j| *j != i).collect();
        // What this user's receiving device gets: the keys the others send
        // to it, and every one of its own (from its other device).
        let mut expected: Vec<String> = (0..PER_SENDER).map(|k| format!("{user}-{k}")).collect();
        for &j in &others {
            let their = (0..USERS.len()).filter(|x| *x != j).collect::<Vec<_>>();
            let slot = their.iter().position(|x| *x == i).expect("a peer");
            expected.extend(
                (0..PER_SENDER)
                    .filter(|k| k % 2 == slot)
                    .map(|k| format!("{}-{k}", USERS[j].0)),
            );
        }
        // Every receiving device is logged in before anything is sent: what
        // it gets comes live, in order (or by sync after the cut).
        let (d, name) = (dir(urls), user.to_string());
        let c = hosts[host]
            .run(async move { login(&d, &name, &format!("{name}-r"), DeviceKind::Desktop).await })
            .await;
        let (d, name, n) = (dir(urls), user.to_string(), expected.len());
        let rx = hosts[host].spawn(receive_all(c, d, name, expected));
        receivers.push((*user, rx, n));
    }
    for (i, (user, host, urls)) in USERS.iter().enumerate() {
        let others: Vec<usize> = (0..USERS.len()).filter(|j| *j != i).collect();
        let peers = [uid[USERS[others[0]].0], uid[USERS[others[1]].0]];
        let (d, name, count) = (dir(urls), user.to_string(), acked[i].clone());
        let tx = hosts[host].spawn(async move {
            let c = login(&d, &name, &format!("{name}-s"), DeviceKind::Mobile).await;
            send_all(c, d, name, peers, count).await
        });
        senders.push((*user, tx));
    }

    // A third in, subnet-1 is cut; the others go on while it is.
    let total = || acked.iter().map(|a| a.load(Ordering::SeqCst)).sum::<usize>();
    let deadline = Instant::now() + Duration::from_secs(60);
    while total() < PER_SENDER * USERS.len() / 3 {
        assert!(Instant::now() < deadline, "no third of the load within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let served = |i: usize| acked[i].load(Ordering::SeqCst);
    let before = (served(0), served(1), served(2));
    net.switch("cut", "subnet-1");
    let cut_at = Instant::now();
    tokio::time::sleep(CUT_FOR).await;
    let during = (served(0), served(1), served(2));
    net.switch("heal", "subnet-1");
    eprintln!("acks before the cut {before:?}, at its end {during:?} (ann, bob, cy)");
    assert!(
        during.1 > before.1 + 20 && during.2 > before.2 + 20,
        "bob and cy kept being served while subnet-1 was cut: {before:?} -> {during:?}"
    );

    let mut ack_of = HashMap::new();
    let mut sender_reconnects = HashMap::new();
    for (user, tx) in senders {
        let (acks, reconnects) = tx.await;
        let keys: Vec<&str> = acks.iter().map(|a| a.client_msg_id.as_str()).collect();
        let want: Vec<String> = (0..PER_SENDER).map(|k| format!("{user}-{k}")).collect();
        assert_eq!(keys, want, "{user}: an ack per message, in order");
        for a in acks {
            ack_of.insert(a.client_msg_id.clone(), a.message_id);
        }
        sender_reconnects.insert(user, reconnects);
    }
    for (user, rx, want) in receivers {
        let (got, reconnects) = rx.await;
        let mut seen = HashMap::new();
        let mut last_k: HashMap<(&str, &str), usize> = HashMap::new();
        for m in &got {
            assert!(
                seen.insert(m.message_id, ()).is_none(),
                "{user} got {} twice",
                m.body
            );
            assert_eq!(
                ack_of.get(&m.body),
                Some(&m.message_id),
                "{user}: {} under its ack's id",
                m.body
            );
            // In order within each conversation (one device's messages
            // to two peers are two conversations, each synced apart).
            let (from, k) = m.body.split_once('-').expect("key");
            let k: usize = k.parse().expect("k");
            if let Some(prev) = last_k.insert((from, m.conversation_id.as_str()), k) {
                assert!(
                    k > prev,
                    "{user}: {from}-{k} after {from}-{prev} in {}",
                    m.conversation_id
                );
            }
        }
        assert_eq!(
            got.len(),
            want,
            "{user} got every message of its conversations, once"
        );
        if user == "ann" {
            assert!(reconnects > 0, "ann's receiving device came back after the heal");
        }
        eprintln!("{user}: {} received, {reconnects} reconnects", got.len());
    }
    assert!(
        during.0 <= before.0 + 1,
        "ann was not served while cut off: {before:?} -> {during:?}"
    );
    assert!(
        sender_reconnects["ann"] > 0,
        "ann's sending device came back after the heal"
    );
    eprintln!(
        "senders' reconnects {sender_reconnects:?}; subnet-1 cut {:?}; done",
        cut_at.elapsed()
    );
    drop(hosts);
    drop(op);
    drop(procs);
    drop(net);
}
