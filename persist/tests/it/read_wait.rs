//! Read your writes: a message is acknowledged once queued and written a
//! moment later; a History or MessagesAfter naming it (`min_message_id`)
//! waits for that write, briefly and only for a recent id.

use std::time::{Duration, Instant};

use confab_common::ids::{EPOCH_MS, IdGen, SEQ_BITS, WORKER_BITS, now_ms};
use confab_proto::persist as pb;
use confab_proto::persist::data_service_client::DataServiceClient;
use confab_queue::Producer;
use confab_queue::remote::RemoteProducer;
use tonic::transport::Channel;

use crate::embedded::qmsg;
use crate::service::{http_get, start_ready, test_config};

/// The writer holds a lone message this long before writing it.
const LINGER: Duration = Duration::from_secs(3);
const READ_WAIT: Duration = Duration::from_secs(6);

async fn user(data: &mut DataServiceClient<Channel>, name: &str) -> u64 {
    data.create_user(pb::CreateUserRequest {
        name: name.into(),
        password: "pw".into(),
    })
    .await
    .expect("create user")
    .into_inner()
    .id
}

async fn history(data: &mut DataServiceClient<Channel>, conv: &str, user: u64, min: u64) -> Vec<u64> {
    data.history(pb::HistoryRequest {
        conversation_id: conv.into(),
        before_seq: 0,
        limit: 10,
        user,
        min_message_id: min,
    })
    .await
    .expect("history")
    .into_inner()
    .messages
    .iter()
    .map(|m| m.message_id)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_wait_for_a_named_recent_message() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(dir.path());
    config.writer.linger_ms = LINGER.as_millis() as u64;
    config.server.read_wait_ms = READ_WAIT.as_millis() as u64;
    let (running, shutdown) = start_ready(config).await;
    let endpoint = format!("http://{}", running.grpc_addr);
    let mut data = DataServiceClient::connect(endpoint.clone()).await.expect("grpc");
    let (alice, bob) = (user(&mut data, "alice").await, user(&mut data, "bob").await);
    let conv = format!("d:{}:{}", alice.min(bob), alice.max(bob));
    let producer = RemoteProducer::new(&endpoint, &confab_net::ChannelConfig::default()).expect("producer");
    let ids = IdGen::new(3);

    // Queued (acknowledged) but not yet written: a plain read lacks it, a
    // read naming it waits for the writer.
    let first = ids.next().expect("id");
    producer
        .enqueue(&[qmsg(first, &conv, alice, "one")])
        .await
        .expect("enqueue");
    assert_eq!(
        history(&mut data, &conv, bob, 0).await,
        Vec::<u64>::new(),
        "the writer lingers {LINGER:?}: the message is not written yet"
    );
    assert_eq!(history(&mut data, &conv, bob, first).await, [first]);

    let second = ids.next().expect("id");
    producer
        .enqueue(&[qmsg(second, &conv, bob, "two")])
        .await
        .expect("enqueue");
    let after = data
        .messages_after(pb::MessagesAfterRequest {
            conversation_id: conv.clone(),
            after_seq: 1,
            limit: 10,
            user: alice,
            min_message_id: second,
        })
        .await
        .expect("messages after")
        .into_inner();
    let got: Vec<(u64, u64)> = after.messages.iter().map(|m| (m.message_id, m.seq)).collect();
    assert_eq!(got, [(second, 2)]);

    // A recent id nobody sent: the read waits its bound, then answers with
    // what is stored (no error).
    let never = ids.next().expect("id");
    let t = Instant::now();
    assert_eq!(history(&mut data, &conv, bob, never).await, [second, first]);
    assert!(
        t.elapsed() >= READ_WAIT - Duration::from_millis(500),
        "waited only {:?}",
        t.elapsed()
    );

    // An id from long ago (or far ahead) names nothing in flight: no wait.
    let old = ((now_ms() - EPOCH_MS - 120_000) << (WORKER_BITS + SEQ_BITS)) | (3 << SEQ_BITS);
    let ahead = ((now_ms() - EPOCH_MS + 3_600_000) << (WORKER_BITS + SEQ_BITS)) | (3 << SEQ_BITS);
    for id in [old, ahead] {
        let t = Instant::now();
        assert_eq!(history(&mut data, &conv, bob, id).await.len(), 2);
        assert!(t.elapsed() < READ_WAIT / 2, "id {id} waited {:?}", t.elapsed());
    }

    let (_, metrics) = http_get(running.http_addr, "/metrics").await;
    for line in [
        "confab_persist_read_waits_total{outcome=\"written\"} 2",
        "confab_persist_read_waits_total{outcome=\"timeout\"} 1",
    ] {
        assert!(metrics.contains(line), "metrics lack {line}:\n{metrics}");
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), running.wait())
        .await
        .expect("stops in time");
}
