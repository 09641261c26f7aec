//! Persist scaled out on RabbitMQ: two persist processes consume the same
//! partitions (single active consumer) into one fresh PostgreSQL database,
//! and two gateways publish straight to the broker. A chat load runs over
//! three 1:1 conversations (one of them both ways) and a group with two
//! senders; once a third of it is acknowledged, the persist process that
//! holds the partitions is killed with SIGKILL and the load goes on (no
//! sender sends the last third of its messages before the kill).
//!
//! Every sender abandons one send after the kill (its answer lost, as when
//! a connection breaks) and carries on over the other gateway, where the
//! client library sends its outbox again as resends; a send refused for
//! now (UNAVAILABLE) goes the same way. Then, per acknowledged message:
//! stored exactly once in PostgreSQL under its acknowledged id, in its
//! sender's order; received exactly once by every receiving device of the
//! conversation (live, by commit notice or by sync), in its sender's order.
//! The surviving persist took the partitions over: it writes the messages
//! after the kill, and (where `rabbitmqctl` may be run) the broker lists it
//! as the single active consumer of every partition.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use confab_client::proto::{self as pb};
use confab_client::{Client, DeviceKind, Event};
use confab_testkit::{http_get, missing, unique};

use crate::harness::backends::{Backends, PARTITIONS, psql};
use crate::harness::chat_load::{Sender, To, sender_of};
use crate::harness::{Cluster, PersistProc, login, register};

/// Messages each sender sends.
const PER_SENDER: usize = 60;
/// The pause between two sends of one sender.
const PACE: Duration = Duration::from_millis(15);
/// How long one message may take to be acknowledged, retries included.
const SEND_WITHIN: Duration = Duration::from_secs(20);
/// How long receivers may take to have everything once the load is done.
const RECEIVE_WITHIN: Duration = Duration::from_secs(20);

/// The messages `sender` sends, in order.
fn bodies(sender: &str) -> Vec<String> {
    (0..PER_SENDER).map(|k| format!("{sender}-{k}")).collect()
}

/// One receiving device and the messages it must get: every sender's of
/// the conversations its user is in (its own other device's included).
struct Receiver {
    name: String,
    client: Client,
    expected: HashSet<String>,
}

/// What a receiver got, in arrival order.
type Got = Arc<std::sync::Mutex<Vec<pb::Message>>>;

impl Receiver {
    /// Takes events until every expected message is in, then a sync finds
    /// nothing it lacks (or brings what never came), then a quiet second
    /// shows nothing more comes. `sync_after`: sync early when nothing has
    /// come for this long (what was never pushed is delivered by sync).
    async fn run(mut self, got: Got, sync_after: Duration) {
        let have = |got: &Got, expected: &HashSet<String>| {
            let got = got.lock().unwrap();
            let bodies: HashSet<&str> = got.iter().map(|m| m.body.as_str()).collect();
            expected.iter().all(|b| bodies.contains(b.as_str()))
        };
        let mut synced = false;
        while !have(&got, &self.expected) {
            match tokio::time::timeout(sync_after, self.client.next_event()).await {
                Ok(Some(Event::Message(m))) => got.lock().unwrap().push(m),
                Ok(other) => panic!("{}: unexpected {other:?}", self.name),
                Err(_) if !synced => {
                    synced = true;
                    let msgs = self.client.sync().await.expect("sync");
                    got.lock().unwrap().extend(msgs);
                }
                Err(_) => return,
            }
        }
        let msgs = self.client.sync().await.expect("sync");
        got.lock().unwrap().extend(msgs);
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(1), self.client.next_event()).await {
            match e {
                Event::Message(m) => got.lock().unwrap().push(m),
                other => panic!("{}: unexpected {other:?}", self.name),
            }
        }
    }
}

/// `confab_persist_writer_messages_total` of the persist at `http`.
async fn writes(http: &str) -> u64 {
    let (_, body) = http_get(http, "/metrics").await.unwrap_or_default();
    body.lines()
        .find_map(|l| l.strip_prefix("confab_persist_writer_messages_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// The broker's active consumer tag of each of our partition queues, when
/// `rabbitmqctl` may be run here (None otherwise).
fn active_consumers(prefix: &str) -> Option<BTreeMap<String, String>> {
    let out = Command::new("rabbitmqctl")
        .args([
            "-q",
            "--no-table-headers",
            "list_consumers",
            "queue_name",
            "consumer_tag",
            "active",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut active = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() == 3 && f[0].starts_with(&format!("{prefix}.p")) && f[2].trim() == "true" {
            active.insert(f[0].to_owned(), f[1].to_owned());
        }
    }
    Some(active)
}

/// `name`'s device got every message of `from` once, under its
/// acknowledged id, in each sender's order (and nothing else).
fn check_received(name: &str, from: &[&str], got: &[pb::Message], ack_of: &HashMap<&str, u64>) {
    let mut seen = HashSet::new();
    for m in got {
        assert!(seen.insert(m.body.as_str()), "{name} got {} twice", m.body);
        assert_eq!(
            ack_of.get(m.body.as_str()),
            Some(&m.message_id),
            "{name} got {} under an id that is not its ack's",
            m.body
        );
        assert!(from.contains(&sender_of(&m.body)), "{name} got {}", m.body);
    }
    for sender in from {
        let order: Vec<&str> = got
            .iter()
            .map(|m| m.body.as_str())
            .filter(|b| sender_of(b) == *sender)
            .collect();
        assert_eq!(
            order,
            bodies(sender),
            "{name}: {sender}'s messages, each once, in order"
        );
    }
}

/// A row of the messages table.
struct Row {
    seq: u64,
    sender: u64,
    key: String,
    body: String,
    id: u64,
}

/// The messages stored in `db`, by conversation, in sequence order.
fn stored(db: &str) -> BTreeMap<String, Vec<Row>> {
    let rows = psql(
        db,
        "SELECT conversation_id, seq, sender_id, client_msg_id, body, message_id \
         FROM messages ORDER BY conversation_id, seq",
    )
    .expect("read the messages table");
    let mut by_conv: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for line in rows.lines() {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 6, "row {line}");
        by_conv.entry(f[0].to_owned()).or_default().push(Row {
            seq: f[1].parse().expect("seq"),
            sender: f[2].parse().expect("sender"),
            key: f[3].to_owned(),
            body: f[4].to_owned(),
            id: f[5].parse().expect("id"),
        });
    }
    by_conv
}

/// Until the broker lists persist process `pid` as the active consumer of
/// every partition (10 s at most).
async fn broker_moves_partitions_to(prefix: &str, pid: u32) {
    let want = format!("writer-{pid}-");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = prefix.to_owned();
        let now = tokio::task::spawn_blocking(move || active_consumers(&p))
            .await
            .expect("rabbitmqctl")
            .unwrap_or_default();
        let all = (0..PARTITIONS).all(|p| {
            now.get(&format!("{prefix}.p{p}"))
                .is_some_and(|t| t.starts_with(&want))
        });
        if all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} is not the active consumer of every partition: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_of_two_persist_processes_loses_and_repeats_nothing() {
    let Some(backends) = Backends::create(unique("confab_scale"), unique("confab.scale")) else {
        missing("PostgreSQL", "psql could not create a database at 127.0.0.1:5432");
        return;
    };
    if std::net::TcpStream::connect("127.0.0.1:5672").is_err() {
        missing("RabbitMQ", "nothing listens on 127.0.0.1:5672");
        return;
    }
    let started = Instant::now();
    let url = backends.url();
    let persist_env = backends.persist_env(&url);
    let mut cluster = Cluster::start(0).await;
    cluster.kill("persist");
    cluster.restart_persist(&persist_env).await;
    let first = PersistProc {
        name: "persist".into(),
        grpc: cluster.persist.clone(),
        http: cluster.persist_http.clone(),
    };
    let second = cluster.add_persist("persist-2", 2, &persist_env).await;
    let queue = backends.gateway_env();
    for id in [1, 2] {
        cluster.start_gateway_with_env(id, &queue).await;
    }
    let gw = [cluster.gw(1).to_owned(), cluster.gw(2).to_owned()];

    // Users: a1 -> b1, a2 -> b2, a3 <-> b3, and g1, g2 sending to a group
    // with g3. Senders on one gateway, their receivers on the other.
    let mut uid = HashMap::new();
    for (i, name) in ["a1", "b1", "a2", "b2", "a3", "b3", "g1", "g2", "g3"]
        .iter()
        .enumerate()
    {
        uid.insert(*name, register(&gw[i % 2], name).await);
    }
    for (a, b) in [("a1", "b1"), ("a2", "b2"), ("a3", "b3")] {
        cluster.befriend(a, b).await;
    }
    let owner = login(&gw[0], "g1", "g1-admin", DeviceKind::Bot).await;
    let gid = owner.create_group("scaled").await.expect("group").group_id;
    for m in ["g2", "g3"] {
        let c = login(&gw[1], m, &format!("{m}-join"), DeviceKind::Bot).await;
        c.join_group(gid, "").await.expect("ask to join");
        owner.approve(gid, uid[m]).await.expect("approve");
    }
    drop(owner);

    let sends: [(&str, To, usize); 6] = [
        ("a1", To::User(uid["b1"]), 0),
        ("a2", To::User(uid["b2"]), 0),
        ("a3", To::User(uid["b3"]), 0),
        ("b3", To::User(uid["a3"]), 1),
        ("g1", To::Group(gid), 0),
        ("g2", To::Group(gid), 1),
    ];
    // Who receives what: the conversation's senders' messages.
    let receives: [(&str, &[&str], usize); 6] = [
        ("b1", &["a1"], 1),
        ("b2", &["a2"], 1),
        ("b3", &["a3", "b3"], 0),
        ("a3", &["a3", "b3"], 1),
        ("g3", &["g1", "g2"], 0),
        ("g1", &["g1", "g2"], 1),
    ];
    let mut receivers = Vec::new();
    for (name, from, at) in receives {
        let client = login(&gw[at], name, &format!("{name}-r"), DeviceKind::Desktop).await;
        let expected = from.iter().flat_map(|s| bodies(s)).collect();
        let got: Got = Arc::default();
        let r = Receiver {
            name: name.to_owned(),
            client,
            expected,
        };
        let task = tokio::spawn(r.run(got.clone(), Duration::from_secs(8)));
        receivers.push((name, from, got, task));
    }

    let acked = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for (i, (name, to, at)) in sends.into_iter().enumerate() {
        let mut s = Sender::login(name, to, &gw, at, SEND_WITHIN).await;
        let (acked, killed) = (acked.clone(), killed.clone());
        senders.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            let mut abandoned = false;
            for k in 0..PER_SENDER {
                // The last third is sent after the kill, however long the
                // steps before it take (rabbitmqctl may take seconds).
                while k == PER_SENDER * 2 / 3 && !killed.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // After the kill, one send each is abandoned after 0-2 ms.
                let abandon = (!abandoned && killed.load(Ordering::SeqCst)).then(|| {
                    abandoned = true;
                    Duration::from_millis(i as u64 % 3)
                });
                acks.push(s.send(k, abandon).await);
                acked.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(PACE).await;
            }
            (name, acks, s.reconnects)
        }));
    }

    // A third acknowledged and written: the persist that wrote (holds the
    // partitions) is killed.
    let total = sends.len() * PER_SENDER;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (victim, survivor) = loop {
        assert!(Instant::now() < deadline, "no third of the load within 20 s");
        let (w1, w2) = (writes(&first.http).await, writes(&second.http).await);
        if acked.load(Ordering::SeqCst) >= total / 3 && w1 + w2 > 0 {
            break if w1 >= w2 {
                (first.clone(), second.clone())
            } else {
                (second.clone(), first.clone())
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let prefix = backends.prefix.clone();
    let before = tokio::task::spawn_blocking(move || active_consumers(&prefix))
        .await
        .expect("rabbitmqctl");
    let victim_pid = cluster.pid(&victim.name);
    let survivor_pid = cluster.pid(&survivor.name);
    let survivor_writes_at_kill = writes(&survivor.http).await;
    cluster.kill(&victim.name);
    killed.store(true, Ordering::SeqCst);
    let acked_at_kill = acked.load(Ordering::SeqCst);
    eprintln!(
        "killed {} (pid {victim_pid}) at {acked_at_kill} of {total} acknowledged, {:?} in; \
         {} had written {survivor_writes_at_kill}",
        victim.name,
        started.elapsed(),
        survivor.name
    );

    // The broker moves every partition to the survivor.
    match before {
        Some(before) => {
            let victim_tag = format!("writer-{victim_pid}-");
            assert!(
                before.values().any(|t| t.starts_with(&victim_tag)),
                "the victim held partitions: {before:?}"
            );
            broker_moves_partitions_to(&backends.prefix, survivor_pid).await;
            eprintln!(
                "the broker lists {} as the active consumer of every partition",
                survivor.name
            );
        }
        None => {
            eprintln!("rabbitmqctl cannot be run here: the takeover is checked by persist's metrics only")
        }
    }

    let mut acks: HashMap<&str, Vec<pb::SendAck>> = HashMap::new();
    let mut reconnects = 0;
    for s in senders {
        let (name, a, r) = s.await.expect("sender");
        acks.insert(name, a);
        reconnects += r;
    }
    eprintln!(
        "load done, {:?} in; {reconnects} reconnects with resends",
        started.elapsed()
    );
    for (name, a) in &acks {
        let keys: Vec<&str> = a.iter().map(|a| a.client_msg_id.as_str()).collect();
        let want = bodies(name);
        assert_eq!(keys, want, "{name}: an ack per message, in order");
    }
    let ack_of: HashMap<&str, u64> = acks
        .values()
        .flatten()
        .map(|a| (a.client_msg_id.as_str(), a.message_id))
        .collect();

    // Received once each, in each sender's order, by every receiver.
    let wait = tokio::time::timeout(RECEIVE_WITHIN, async {
        for (name, _, _, task) in &mut receivers {
            task.await.unwrap_or_else(|e| panic!("receiver {name}: {e}"));
        }
    })
    .await;
    for (name, from, got, _) in &receivers {
        check_received(name, from, &got.lock().unwrap(), &ack_of);
    }
    assert!(wait.is_ok(), "receivers did not finish within {RECEIVE_WITHIN:?}");

    // Stored once each in PostgreSQL, under the acknowledged id, in each
    // sender's order, sequences without gaps.
    let by_conv = stored(&backends.db);
    let mut n = 0;
    for (conv, rows) in &by_conv {
        let seqs: Vec<u64> = rows.iter().map(|r| r.seq).collect();
        assert_eq!(
            seqs,
            (1..=rows.len() as u64).collect::<Vec<_>>(),
            "{conv}: sequences without gaps"
        );
        for r in rows {
            assert_eq!(r.key, r.body);
            assert_eq!(
                ack_of.get(r.body.as_str()),
                Some(&r.id),
                "{conv}: {} stored under its ack's id",
                r.body
            );
            assert_eq!(
                uid.get(sender_of(&r.body)),
                Some(&r.sender),
                "{}: its sender",
                r.body
            );
        }
        n += rows.len();
    }
    assert_eq!(n, total, "every acknowledged message stored, none twice");
    for name in acks.keys() {
        let in_order: Vec<&str> = by_conv
            .values()
            .flatten()
            .map(|r| r.body.as_str())
            .filter(|b| sender_of(b) == *name)
            .collect();
        assert_eq!(in_order, bodies(name), "{name}'s messages stored in send order");
    }

    // The survivor wrote what came after the kill.
    let survivor_writes = writes(&survivor.http).await;
    assert!(
        survivor_writes > survivor_writes_at_kill,
        "{} wrote nothing after the kill ({survivor_writes})",
        survivor.name
    );
    eprintln!(
        "{} wrote {} after the kill; done in {:?}",
        survivor.name,
        survivor_writes - survivor_writes_at_kill,
        started.elapsed()
    );
    drop(cluster);
    drop(backends);
}
