//! RabbitMQ over TLS (`amqps://`): a second RabbitMQ node each test starts
//! for itself (its own node name, ports, temp dirs and a configuration
//! with only a TLS listener, certificates from a test CA), and a plain TLS
//! listener in the test for what needs no broker.

use std::path::PathBuf;
use std::time::Duration;

use confab_queue::amqp::{AmqpConsumer, AmqpProducer, AmqpSettings, check_trust, delete_queues};
use confab_queue::{Consumer, Producer, QueueError};
use confab_testkit::{ServerCerts, TlsRabbit, missing, other_ca, server_certs, unique};
use confab_tls::ServerTls;
use tokio::io::AsyncWriteExt;

use crate::helpers::{qmsg, take};

/// A RabbitMQ node of this test's own (see `confab_testkit::TlsRabbit`)
/// presenting a certificate from a test CA.
struct TlsBroker {
    node: TlsRabbit,
    /// The CA that issued the node's certificate.
    ca: PathBuf,
    _certs: tempfile::TempDir,
}

impl TlsBroker {
    /// `None` when RabbitMQ is not installed (a failure under CI).
    async fn start() -> Option<Self> {
        let certs = tempfile::tempdir().expect("temp dir");
        let ServerCerts { ca, cert, key } = server_certs(certs.path(), "confab test broker CA");
        match TlsRabbit::start(&cert, &key, &ca).await {
            Ok(node) => Some(TlsBroker {
                node,
                ca,
                _certs: certs,
            }),
            Err(why) => {
                missing("RabbitMQ server", &why);
                None
            }
        }
    }

    fn settings(&self, prefix: &str, ca_file: Option<PathBuf>) -> AmqpSettings {
        AmqpSettings {
            url: format!("amqps://guest:guest@localhost:{}/%2f", self.node.port),
            prefix: prefix.into(),
            partitions: 2,
            prefetch: 16,
            max_body_bytes: 1024,
            max_backoff: Duration::from_millis(200),
            connection_name: "confab-queue amqps test".into(),
            ca_file,
        }
    }
}

fn assert_unknown_issuer(err: QueueError) {
    assert!(matches!(err, QueueError::Tls(_)), "{err:?}");
    assert_unknown_issuer_message(&err.to_string());
}

fn assert_unknown_issuer_message(msg: &str) {
    assert!(
        msg.contains("broker TLS")
            && msg.contains("certificate did not verify")
            && msg.contains("UnknownIssuer"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_round_trip_and_a_broker_that_does_not_verify() {
    let Some(broker) = TlsBroker::start().await else {
        return;
    };
    let prefix = unique("confab.amqps");
    let s = broker.settings(&prefix, Some(broker.ca.clone()));
    check_trust(&s, Duration::from_secs(10))
        .await
        .expect("the broker's certificate verifies");

    // Publish with confirms and consume, over TLS (the node has no plain
    // listener).
    let producer = AmqpProducer::connect(s.clone()).await.expect("producer");
    let msgs: Vec<_> = (1..=3)
        .map(|i| qmsg(500 + i, "d:1:2", 1, &format!("over tls {i}")))
        .collect();
    producer.enqueue(&msgs).await.expect("confirmed");
    let mut consumer = AmqpConsumer::start(s.clone(), vec![0, 1]);
    let (mut bodies, tokens) = take(&mut consumer, 3).await;
    bodies.sort();
    assert_eq!(bodies, ["over tls 1", "over tls 2", "over tls 3"]);
    consumer.ack(tokens).await.expect("ack");
    drop(consumer);
    producer.close().await;
    delete_queues(&s).await;

    // Another CA, and no CA file at all (the system's roots do not know the
    // test CA): refused, saying why, at once.
    let dir = tempfile::tempdir().expect("dir");
    let wrong = broker.settings(&prefix, Some(other_ca(dir.path())));
    let started = tokio::time::Instant::now();
    assert_unknown_issuer(
        check_trust(&wrong, Duration::from_secs(10))
            .await
            .expect_err("wrong CA"),
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A producer answers its callers with the same reason, without retrying.
    let started = tokio::time::Instant::now();
    let err = AmqpProducer::connect(wrong)
        .await
        .err()
        .expect("a producer cannot connect");
    assert_unknown_issuer_message(&err.to_string());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let no_ca = broker.settings(&prefix, None);
    assert_unknown_issuer(
        check_trust(&no_ca, Duration::from_secs(10))
            .await
            .expect_err("system roots"),
    );

    // A plain amqp:// URL against the TLS port does not get through.
    let plain = AmqpSettings {
        url: format!("amqp://guest:guest@localhost:{}/%2f", broker.node.port),
        ca_file: None,
        ..broker.settings(&prefix, None)
    };
    let plain = tokio::time::timeout(Duration::from_secs(15), AmqpProducer::connect(plain)).await;
    assert!(!matches!(plain, Ok(Ok(_))), "a plain connection to a TLS port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_tls_listener_with_another_ca_is_refused_clearly() {
    // No broker needed to see the client refuse a certificate: a TLS
    // listener that would speak AMQP after the handshake.
    let dir = tempfile::tempdir().expect("dir");
    let ServerCerts { ca, cert, key } = server_certs(dir.path(), "confab test broker CA");
    let tls = ServerTls::public(cert, key, Vec::new()).expect("server TLS");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let acceptor = tls.acceptor();
    let server = tokio::spawn(async move {
        let mut handshakes = 0u32;
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(mut s) = acceptor.accept(tcp).await {
                handshakes += 1;
                // Not a broker: close after the handshake.
                let _ = s.shutdown().await;
            }
        }
        handshakes
    });
    let settings = |ca_file: Option<PathBuf>| AmqpSettings {
        url: format!("amqps://guest:guest@127.0.0.1:{port}/%2f"),
        prefix: "confab.unused".into(),
        partitions: 1,
        prefetch: 1,
        max_body_bytes: 1024,
        max_backoff: Duration::from_millis(100),
        connection_name: "confab-queue tls test".into(),
        ca_file,
    };
    // The wrong CA: a certificate error.
    assert_unknown_issuer(
        check_trust(&settings(Some(other_ca(dir.path()))), Duration::from_secs(10))
            .await
            .expect_err("wrong CA"),
    );
    // The right CA: the handshake passes; what follows is no AMQP, which is
    // no TLS error (a broker that misbehaves is retried, not fatal).
    let right = settings(Some(ca));
    check_trust(&right, Duration::from_secs(10))
        .await
        .expect("past the handshake, not a TLS failure");
    server.abort();
}

#[test]
fn a_ca_file_needs_an_amqps_url_and_a_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let base = AmqpSettings {
        url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
        prefix: "confab.unused".into(),
        partitions: 1,
        prefetch: 1,
        max_body_bytes: 1024,
        max_backoff: Duration::from_millis(100),
        connection_name: String::new(),
        ca_file: Some(other_ca(dir.path())),
    };
    let e = base.validate().expect_err("a CA file with amqp://").to_string();
    assert!(e.contains("not amqps://"), "{e}");

    let missing = AmqpSettings {
        url: "amqps://guest:guest@127.0.0.1:5671/%2f".into(),
        ca_file: Some(dir.path().join("nowhere.pem")),
        ..base.clone()
    };
    let e = missing.validate().expect_err("missing file").to_string();
    assert!(e.contains("nowhere.pem"), "{e}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "no certificate here\n").expect("write");
    let empty = AmqpSettings {
        ca_file: Some(garbage),
        ..missing.clone()
    };
    let e = empty.validate().expect_err("no certificate").to_string();
    assert!(e.contains("no certificate"), "{e}");

    let fine = AmqpSettings {
        ca_file: Some(other_ca(dir.path())),
        ..missing
    };
    fine.validate().expect("amqps:// with a CA file");
    assert!(fine.tls() && !base.tls());
}
