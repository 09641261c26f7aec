//! Whole-stack chaos: a 1:1 and group chat load over two gateways while a
//! seeded schedule faults every kind of process of the stack, one fault at
//! a time: SIGKILL and a restart on the same addresses and data, or
//! SIGSTOP and SIGCONT, of a gateway, a persist process or a router; on
//! PostgreSQL + RabbitMQ also a network cut of the database or the broker
//! (a proxy in front of each that drops every connection and refuses new
//! ones). The devices behave like applications of the client library:
//! senders reconnect to the other gateway when an answer is lost and the
//! library resends its outbox; receivers resume on the other gateway when
//! their connection closes and catch up by sync.
//!
//! At the end, per message acknowledged to its sender: stored exactly once
//! (read back through the gateway's history, every conversation's
//! sequences without gaps), under its acknowledged id, in its sender's
//! order; and received exactly once by every device of every member of its
//! conversation (live or by sync), in its sender's order.
//!
//! Two shapes: the embedded defaults (one persist with the embedded queue),
//! and PostgreSQL + RabbitMQ with the gateways publishing straight to the
//! broker and two persist processes consuming. `make test` runs a short
//! seeded run of each; `make chaos-chat` runs both for `CONFAB_CHAOS_SECS`
//! (`CONFAB_CHAOS_SEED` replays a printed seed).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use confab_client::DeviceKind;
use confab_client::proto::{self as pb};
use confab_testkit::{Proxy, Signal, missing, unique};
use tokio::sync::watch;

use crate::harness::backends::Backends;
use crate::harness::chat_load::{Got, Roamer, Sender, To, number_of, sender_of};
use crate::harness::{Cluster, login, register};

/// The pause between two sends of one sender.
const PACE: Duration = Duration::from_millis(25);
/// A send whose answer has not come after this long is taken as lost (the
/// gateway may be frozen): the sender reconnects and resends.
const ABANDON: Duration = Duration::from_secs(3);
/// How long one message may take to be acknowledged, retries included.
const SEND_WITHIN: Duration = Duration::from_secs(60);
/// How long a device may take to have everything once the load is done.
const RECEIVE_WITHIN: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// One persist with the embedded queue.
    Embedded,
    /// Gateways publish to RabbitMQ; two persist processes write to
    /// PostgreSQL.
    PgAmqp,
}

/// A seeded generator (splitmix64): the schedule replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn between(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(lo_ms + self.next() % (hi_ms - lo_ms + 1))
    }
}

/// A process the schedule may fault, and the address it answers ready on.
struct Target {
    name: String,
    http: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// SIGKILL, then the same command line again.
    Kill(usize),
    /// SIGSTOP, then SIGCONT.
    Freeze(usize),
    /// Every connection to PostgreSQL dropped, new ones refused.
    CutDatabase,
    /// Every connection to RabbitMQ dropped, new ones refused.
    CutBroker,
}

/// The seed: `CONFAB_CHAOS_SEED`, else `default`.
fn seed_or(default: u64) -> u64 {
    std::env::var("CONFAB_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The load's length: `CONFAB_CHAOS_SECS`, else `default`.
fn secs_or(default: u64) -> Duration {
    Duration::from_secs(
        std::env::var("CONFAB_CHAOS_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_run_on_the_embedded_defaults() {
    run(Shape::Embedded, seed_or(20261207), Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_run_on_postgres_and_rabbitmq() {
    run(Shape::PgAmqp, seed_or(20261208), Duration::from_secs(20)).await;
}

/// The seed of a long run: `CONFAB_CHAOS_SEED`, else the clock's.
fn long_seed() -> u64 {
    seed_or(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs()),
    )
}

/// `make chaos-chat` (with the next one, at once): `CONFAB_CHAOS_SECS`
/// (default 300) on the embedded defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: make chaos-chat"]
async fn long_run_on_the_embedded_defaults() {
    run(Shape::Embedded, long_seed(), secs_or(300)).await;
}

/// `make chaos-chat`: `CONFAB_CHAOS_SECS` on PostgreSQL + RabbitMQ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: make chaos-chat"]
async fn long_run_on_postgres_and_rabbitmq() {
    run(Shape::PgAmqp, long_seed() + 1, secs_or(300)).await;
}

/// The senders (each on a mobile device), and the receiving devices (user,
/// device, kind, gateway index): one session per kind of device per user.
const SENDERS: [&str; 5] = ["a1", "a2", "b2", "g1", "g2"];
const DEVICES: [(&str, &str, DeviceKind, usize); 8] = [
    ("b1", "b1-desk", DeviceKind::Desktop, 0),
    ("b1", "b1-web", DeviceKind::Web, 1),
    ("a1", "a1-desk", DeviceKind::Desktop, 1),
    ("a2", "a2-desk", DeviceKind::Desktop, 1),
    ("b2", "b2-desk", DeviceKind::Desktop, 0),
    ("g1", "g1-desk", DeviceKind::Desktop, 1),
    ("g3", "g3-desk", DeviceKind::Desktop, 0),
    ("g3", "g3-tab", DeviceKind::Tablet, 1),
];

/// The senders of the conversations `user` is in.
fn senders_to(user: &str) -> &'static [&'static str] {
    match user {
        "a1" | "b1" => &["a1"],
        "a2" | "b2" => &["a2", "b2"],
        _ => &["g1", "g2"],
    }
}

async fn run(shape: Shape, seed: u64, load: Duration) {
    let started = Instant::now();
    eprintln!("chat chaos {shape:?}: seed {seed}, load {load:?} (CONFAB_CHAOS_SEED={seed} replays it)");
    let mut rng = Rng(seed);

    // The stack, and what the schedule may fault.
    let mut backends = None;
    let mut proxies = None;
    let mut second = None;
    let mut cluster = match shape {
        Shape::Embedded => Cluster::start(2).await,
        Shape::PgAmqp => {
            let Some(b) = Backends::create(unique("confab_cchaos"), unique("confab.cchaos")) else {
                missing("PostgreSQL", "psql could not create a database at 127.0.0.1:5432");
                return;
            };
            if std::net::TcpStream::connect("127.0.0.1:5672").is_err() {
                missing("RabbitMQ", "nothing listens on 127.0.0.1:5672");
                return;
            }
            let db = Proxy::start("127.0.0.1:5432".parse().expect("addr")).await;
            let mq = Proxy::start("127.0.0.1:5672".parse().expect("addr")).await;
            let url = format!("postgres://postgres@{}/{}", db.addr, b.db);
            let amqp = format!("amqp://guest:guest@{}/%2f", mq.addr);
            let persist_env = [
                ("DATABASE_URL", url.as_str()),
                ("AMQP_URL", amqp.as_str()),
                ("CONFAB_QUEUE__PREFIX", b.prefix.as_str()),
            ];
            let gateway_env = [
                ("CONFAB_QUEUE__BACKEND", "amqp"),
                ("CONFAB_QUEUE__AMQP_URL", amqp.as_str()),
                ("CONFAB_QUEUE__PREFIX", b.prefix.as_str()),
            ];
            let mut c = Cluster::start(0).await;
            c.kill("persist");
            c.restart_persist(&persist_env).await;
            second = Some(c.add_persist("persist-2", 2, &persist_env).await);
            for id in [1, 2] {
                c.start_gateway_with_env(id, &gateway_env).await;
            }
            backends = Some(b);
            proxies = Some((db, mq));
            c
        }
    };
    let mut targets: Vec<Target> = (0..3)
        .map(|i| Target {
            name: format!("router-{}", i + 1),
            http: cluster.router_http[i].clone(),
        })
        .collect();
    for id in [1, 2] {
        targets.push(Target {
            name: format!("gateway-{id}"),
            http: cluster.gateways[&id].metrics.clone(),
        });
    }
    targets.push(Target {
        name: "persist".into(),
        http: cluster.persist_http.clone(),
    });
    if let Some(p) = second {
        targets.push(Target {
            name: p.name,
            http: p.http,
        });
    }
    let gw = [cluster.gw(1).to_owned(), cluster.gw(2).to_owned()];

    // Users, friends, the group.
    let mut uid = HashMap::new();
    for (i, name) in ["a1", "b1", "a2", "b2", "g1", "g2", "g3"].iter().enumerate() {
        uid.insert(*name, register(&gw[i % 2], name).await);
    }
    cluster.befriend("a1", "b1").await;
    cluster.befriend("a2", "b2").await;
    let owner = login(&gw[0], "g1", "g1-admin", DeviceKind::Bot).await;
    let gid = owner.create_group("chaos").await.expect("group").group_id;
    for m in ["g2", "g3"] {
        let c = login(&gw[1], m, &format!("{m}-join"), DeviceKind::Bot).await;
        c.join_group(gid, "").await.expect("ask to join");
        owner.approve(gid, uid[m]).await.expect("approve");
    }
    drop(owner);

    // Receiving devices first, so they see every message.
    let mut devices = Vec::new();
    for (user, device, kind, at) in DEVICES {
        let client = login(&gw[at], user, device, kind).await;
        let roamer = Roamer {
            name: device.to_owned(),
            client,
            gateways: gw.clone(),
            at,
            reconnects: 0,
            replaced: 0,
        };
        let got: Got = Default::default();
        let (tell, expected) = watch::channel(None);
        let task = tokio::spawn(roamer.run(got.clone(), expected, RECEIVE_WITHIN));
        devices.push((user, device, got, tell, task));
    }

    let (stop_tx, stop) = watch::channel(false);
    let mut senders = Vec::new();
    for (i, name) in SENDERS.into_iter().enumerate() {
        let to = match name {
            "a1" => To::User(uid["b1"]),
            "a2" => To::User(uid["b2"]),
            "b2" => To::User(uid["a2"]),
            _ => To::Group(gid),
        };
        let mut s = Sender::login(name, to, &gw, i % 2, SEND_WITHIN).await;
        let stop = stop.clone();
        senders.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            while !*stop.borrow() {
                acks.push(s.send(acks.len(), Some(ABANDON)).await);
                tokio::time::sleep(PACE).await;
            }
            (name, acks, s.reconnects)
        }));
    }

    // The schedule: one fault at a time, each healed before the next.
    let mut faults: Vec<Fault> = (0..targets.len())
        .flat_map(|i| [Fault::Kill(i), Fault::Freeze(i)])
        .collect();
    if proxies.is_some() {
        faults.extend([Fault::CutDatabase, Fault::CutBroker]);
    }
    let mut done: BTreeMap<String, usize> = BTreeMap::new();
    let end = Instant::now() + load;
    while Instant::now() < end {
        tokio::time::sleep(rng.between(200, 1000)).await;
        let fault = faults[rng.below(faults.len())];
        let hold = rng.between(300, 2500);
        let what = match fault {
            Fault::Kill(i) => {
                let t = &targets[i];
                cluster.kill(&t.name);
                tokio::time::sleep(hold).await;
                assert!(
                    cluster.respawn(&t.name, &t.http).await,
                    "{} did not start again: {}",
                    t.name,
                    cluster.log(&t.name)
                );
                format!("kill {}", t.name)
            }
            Fault::Freeze(i) => {
                let t = &targets[i];
                cluster.signal(&t.name, Signal::Stop);
                tokio::time::sleep(hold).await;
                cluster.signal(&t.name, Signal::Cont);
                format!("freeze {}", t.name)
            }
            Fault::CutDatabase | Fault::CutBroker => {
                let (db, mq) = proxies.as_ref().expect("proxies");
                let p = if fault == Fault::CutDatabase { db } else { mq };
                p.cut();
                tokio::time::sleep(hold).await;
                p.restore();
                if fault == Fault::CutDatabase {
                    "cut PostgreSQL".to_owned()
                } else {
                    "cut RabbitMQ".to_owned()
                }
            }
        };
        *done.entry(what).or_default() += 1;
    }
    stop_tx.send_replace(true);
    eprintln!("faults done, {:?} in: {done:?}", started.elapsed());

    // Every sender's messages acknowledged, in order.
    let mut acks: HashMap<&str, Vec<pb::SendAck>> = HashMap::new();
    let mut reconnects = 0;
    for s in senders {
        let (name, a, r) = s.await.expect("sender");
        reconnects += r;
        acks.insert(name, a);
    }
    let total: usize = acks.values().map(Vec::len).sum();
    eprintln!(
        "load done, {:?} in: {total} messages acknowledged, {reconnects} sender reconnects",
        started.elapsed()
    );
    for (name, a) in &acks {
        assert!(!a.is_empty(), "{name} had no message acknowledged");
        for (k, ack) in a.iter().enumerate() {
            assert_eq!(
                ack.client_msg_id,
                format!("{name}-{k}"),
                "{name}: an ack per message, in order"
            );
        }
    }
    let ack_of: HashMap<&str, &pb::SendAck> = acks
        .values()
        .flatten()
        .map(|a| (a.client_msg_id.as_str(), a))
        .collect();
    let ids: HashSet<u64> = ack_of.values().map(|a| a.message_id).collect();
    assert_eq!(ids.len(), total, "every acknowledged message has its own id");

    // Received once each, in each sender's order, by every device.
    for (user, _, _, tell, _) in &devices {
        let want: HashSet<String> = senders_to(user)
            .iter()
            .flat_map(|s| (0..acks[s].len()).map(move |k| format!("{s}-{k}")))
            .collect();
        tell.send_replace(Some(want));
    }
    let (mut roamed, mut replaced) = (0, 0);
    for (user, device, got, _, task) in devices {
        let r = task.await.unwrap_or_else(|e| panic!("device {device}: {e}"));
        roamed += r.reconnects;
        replaced += r.replaced;
        let got = got.lock().unwrap().clone();
        check_received(device, senders_to(user), &got, &acks, &ack_of);
    }
    eprintln!(
        "every device has every message once, in order ({roamed} device reconnects, \
         {replaced} pushed copies replaced by the stored one), {:?} in",
        started.elapsed()
    );

    // Stored exactly once, read back through a gateway's history.
    let mut by_conv: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, a) in &acks {
        for ack in a {
            by_conv
                .entry(ack.conversation_id.as_str())
                .or_default()
                .push(name);
        }
    }
    for (conv, senders) in &by_conv {
        let member = senders[0];
        let auditor = login(&gw[0], member, "audit", DeviceKind::Bot).await;
        let stored = history(&auditor, conv).await;
        check_stored(conv, &stored, &acks, &ack_of);
    }
    eprintln!(
        "{total} messages stored once each in {} conversations; seed {seed}, {:?} in all",
        by_conv.len(),
        started.elapsed()
    );
    drop(cluster);
    drop(proxies);
    drop(backends);
}

/// Every message of `conv`, oldest first, from its history pages.
async fn history(client: &confab_client::Client, conv: &str) -> Vec<pb::Message> {
    let mut all = Vec::new();
    let mut before = 0;
    loop {
        let page = client.history(conv, before, 200).await.expect("history");
        let Some(oldest) = page.iter().map(|m| m.seq).min() else {
            break;
        };
        all.extend(page);
        if oldest <= 1 {
            break;
        }
        before = oldest;
    }
    all.sort_by_key(|m| m.seq);
    all
}

/// `device` got every acknowledged message of `from` once, under its
/// acknowledged id, in each sender's order, and nothing else.
fn check_received(
    device: &str,
    from: &[&str],
    got: &[pb::Message],
    acks: &HashMap<&str, Vec<pb::SendAck>>,
    ack_of: &HashMap<&str, &pb::SendAck>,
) {
    let mut seen = HashSet::new();
    for m in got {
        assert!(seen.insert(m.body.as_str()), "{device} got {} twice", m.body);
        assert_eq!(
            ack_of.get(m.body.as_str()).map(|a| a.message_id),
            Some(m.message_id),
            "{device} got {} under an id that is not its ack's",
            m.body
        );
        assert!(from.contains(&sender_of(&m.body)), "{device} got {}", m.body);
    }
    for sender in from {
        let order: Vec<usize> = got
            .iter()
            .filter(|m| sender_of(&m.body) == *sender)
            .map(|m| number_of(&m.body))
            .collect();
        assert_eq!(
            order,
            (0..acks[sender].len()).collect::<Vec<_>>(),
            "{device}: {sender}'s messages, each once, in order"
        );
    }
}

/// `conv` holds each acknowledged message of its senders once, under its
/// ack's id, in each sender's order, sequences without gaps.
fn check_stored(
    conv: &str,
    stored: &[pb::Message],
    acks: &HashMap<&str, Vec<pb::SendAck>>,
    ack_of: &HashMap<&str, &pb::SendAck>,
) {
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "{conv}: sequences without gaps"
    );
    let mut per_sender: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for m in stored {
        let ack = ack_of
            .get(m.body.as_str())
            .unwrap_or_else(|| panic!("{conv}: {} stored but never acknowledged", m.body));
        assert_eq!(
            (ack.message_id, ack.conversation_id.as_str()),
            (m.message_id, conv),
            "{conv}: {} stored as acknowledged",
            m.body
        );
        per_sender
            .entry(sender_of(&m.body))
            .or_default()
            .push(number_of(&m.body));
    }
    for (sender, sent) in acks {
        let want: Vec<usize> = sent
            .iter()
            .enumerate()
            .filter(|(_, a)| a.conversation_id == conv)
            .map(|(k, _)| k)
            .collect();
        let order = per_sender.remove(sender).unwrap_or_default();
        assert_eq!(
            order, want,
            "{conv}: {sender}'s messages stored once each, in order"
        );
    }
    assert!(
        per_sender.is_empty(),
        "{conv}: stored from unknown senders: {per_sender:?}"
    );
}

/// The checks fail on what they are there to catch.
mod checks {
    use super::*;

    fn ack(body: &str, id: u64, conv: &str) -> pb::SendAck {
        pb::SendAck {
            message_id: id,
            conversation_id: conv.into(),
            client_msg_id: body.into(),
            ..Default::default()
        }
    }

    fn msg(body: &str, id: u64, seq: u64) -> pb::Message {
        pb::Message {
            message_id: id,
            conversation_id: "c".into(),
            seq,
            body: body.into(),
            ..Default::default()
        }
    }

    /// Two messages of sender `s`, acknowledged as ids 1 and 2.
    fn two() -> HashMap<&'static str, Vec<pb::SendAck>> {
        HashMap::from([("s", vec![ack("s-0", 1, "c"), ack("s-1", 2, "c")])])
    }

    fn passes(f: impl FnOnce() + std::panic::UnwindSafe) -> bool {
        std::panic::catch_unwind(f).is_ok()
    }

    #[test]
    fn a_device_missing_repeating_or_reordering_a_message_fails() {
        let acks = two();
        let ack_of: HashMap<&str, &pb::SendAck> =
            acks["s"].iter().map(|a| (a.client_msg_id.as_str(), a)).collect();
        let check = |got: Vec<pb::Message>| {
            let (acks, ack_of) = (&acks, &ack_of);
            passes(move || check_received("d", &["s"], &got, acks, ack_of))
        };
        assert!(check(vec![msg("s-0", 1, 1), msg("s-1", 2, 2)]));
        assert!(!check(vec![msg("s-0", 1, 1)]), "one missing");
        assert!(
            !check(vec![msg("s-0", 1, 1), msg("s-0", 1, 1), msg("s-1", 2, 2)]),
            "one twice"
        );
        assert!(!check(vec![msg("s-1", 2, 2), msg("s-0", 1, 1)]), "out of order");
        assert!(
            !check(vec![msg("s-0", 1, 1), msg("s-1", 3, 2)]),
            "not under its ack's id"
        );
    }

    #[test]
    fn a_store_with_a_gap_a_copy_or_a_stranger_fails() {
        let acks = two();
        let ack_of: HashMap<&str, &pb::SendAck> =
            acks["s"].iter().map(|a| (a.client_msg_id.as_str(), a)).collect();
        let check = |stored: Vec<pb::Message>| {
            let (acks, ack_of) = (&acks, &ack_of);
            passes(move || check_stored("c", &stored, acks, ack_of))
        };
        assert!(check(vec![msg("s-0", 1, 1), msg("s-1", 2, 2)]));
        assert!(!check(vec![msg("s-0", 1, 1)]), "one lost");
        assert!(!check(vec![]), "all lost");
        assert!(!check(vec![msg("s-0", 1, 1), msg("s-1", 2, 3)]), "a gap");
        assert!(
            !check(vec![msg("s-0", 1, 1), msg("s-0", 1, 2), msg("s-1", 2, 3)]),
            "a copy"
        );
        assert!(!check(vec![msg("s-1", 2, 1), msg("s-0", 1, 2)]), "out of order");
        assert!(
            !check(vec![msg("s-0", 1, 1), msg("s-1", 2, 2), msg("x-0", 9, 3)]),
            "never acknowledged"
        );
    }
}
