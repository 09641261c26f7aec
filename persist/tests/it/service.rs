//! The persist process in-process on port 0: gRPC data access, enqueue,
//! the Subscribe stream, HTTP metrics and health; SQLite + embedded (the
//! default) and PostgreSQL + RabbitMQ.

use std::time::Duration;

use confab_persist::Config;
use confab_persist::config::QueueBackend;
use confab_proto::persist as pb;
use confab_proto::persist::data_service_client::DataServiceClient;
use confab_proto::persist::queue_service_client::QueueServiceClient;
use confab_queue::Producer;
use confab_queue::remote::RemoteProducer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tonic::Code;

use crate::embedded::qmsg;
use crate::helpers::eventually;

pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect http");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.expect("read");
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, buf)
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().expect("addr");
    c.server.http = "127.0.0.1:0".parse().expect("addr");
    c.server.data_dir = dir.to_path_buf();
    c.database.argon2_memory_kib = 64;
    c.queue.partitions = 4;
    c
}

/// Starts persist in-process and waits until it is ready; cancel the token
/// to stop it.
pub async fn start_ready(config: Config) -> (confab_persist::Running, CancellationToken) {
    let shutdown = CancellationToken::new();
    let running = confab_persist::start(config, shutdown.clone())
        .await
        .expect("start");
    let ready = running.ready.clone();
    eventually(Duration::from_secs(20), "ready", || {
        let r = ready.clone();
        async move { r.load(std::sync::atomic::Ordering::SeqCst) }
    })
    .await;
    (running, shutdown)
}

pub(crate) async fn exercise(config: Config) {
    let config_is_embedded = matches!(config.queue.backend, QueueBackend::Embedded);
    let (running, shutdown) = start_ready(config).await;
    let endpoint = format!("http://{}", running.grpc_addr);
    let mut data = DataServiceClient::connect(endpoint.clone()).await.expect("grpc");
    let mut queue = QueueServiceClient::connect(endpoint.clone()).await.expect("grpc");

    let alice = data
        .create_user(pb::CreateUserRequest {
            name: "alice".into(),
            password: "pw".into(),
        })
        .await
        .expect("create")
        .into_inner();
    let bob = data
        .create_user(pb::CreateUserRequest {
            name: "bob".into(),
            password: "pw".into(),
        })
        .await
        .expect("create")
        .into_inner();
    let dup = data
        .create_user(pb::CreateUserRequest {
            name: "alice".into(),
            password: "x".into(),
        })
        .await;
    assert_eq!(dup.expect_err("duplicate").code(), Code::AlreadyExists);
    let unknown = data
        .get_user(pb::GetUserRequest {
            key: Some(pb::get_user_request::Key::Id(98765)),
        })
        .await;
    let unknown = unknown.expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().contains("98765"), "{}", unknown.message());
    let bad_pw = data
        .authenticate(pb::AuthenticateRequest {
            name: "alice".into(),
            password: "no".into(),
            device: "d".into(),
        })
        .await;
    assert_eq!(bad_pw.expect_err("bad password").code(), Code::Unauthenticated);
    let session = data
        .authenticate(pb::AuthenticateRequest {
            name: "alice".into(),
            password: "pw".into(),
            device: "d".into(),
        })
        .await
        .expect("auth")
        .into_inner();
    let resumed = data
        .resume_session(pb::ResumeSessionRequest {
            token: session.token.clone(),
        })
        .await
        .expect("resume")
        .into_inner();
    assert_eq!(resumed.user.map(|u| u.id), Some(alice.id));
    let fr = data
        .send_friend_request(pb::SendFriendRequestRequest {
            from_user: alice.id,
            to_user: bob.id,
            note: "hi".into(),
        })
        .await
        .expect("friend request")
        .into_inner();
    assert_eq!(
        fr.request.map(|r| r.state),
        Some(pb::RequestState::Pending as i32)
    );
    data.respond_friend_request(pb::RespondFriendRequestRequest {
        user: bob.id,
        from_user: alice.id,
        accept: true,
    })
    .await
    .expect("accept");
    let friends = data
        .list_friends(pb::ListFriendsRequest { user: bob.id })
        .await
        .expect("friends")
        .into_inner();
    assert_eq!(friends.friends.len(), 1);
    let group = data
        .create_group(pb::CreateGroupRequest {
            owner: alice.id,
            name: "g".into(),
        })
        .await
        .expect("group")
        .into_inner();
    assert_eq!(group.conversation_id, format!("g:{}", group.id));
    let join = data
        .request_join(pb::RequestJoinRequest {
            group_id: group.id,
            user: bob.id,
            note: String::new(),
        })
        .await
        .expect("join")
        .into_inner();
    assert_eq!(join.approvers, vec![alice.id]);
    let denied = data
        .respond_join(pb::RespondJoinRequest {
            group_id: group.id,
            user: bob.id,
            by_user: bob.id,
            accept: true,
        })
        .await;
    assert_eq!(denied.expect_err("not an admin").code(), Code::PermissionDenied);

    // Messages: subscribe, enqueue over gRPC, see them move and in history.
    let mut moved = queue
        .subscribe(pb::SubscribeRequest {})
        .await
        .expect("subscribe")
        .into_inner();
    let conv = format!("d:{}:{}", alice.id.min(bob.id), alice.id.max(bob.id));
    let producer =
        RemoteProducer::new(&endpoint, &confab_net::ChannelConfig::default()).expect("remote producer");
    let msgs: Vec<pb::QueuedMessage> = (1..=30)
        .map(|i| qmsg(7000 + i, &conv, alice.id, &format!("hello {i}")))
        .collect();
    producer.enqueue(&msgs).await.expect("enqueue");
    let too_long = queue
        .enqueue(pb::EnqueueRequest {
            messages: vec![qmsg(1, &conv, alice.id, &"x".repeat(5000))],
        })
        .await;
    let too_long = too_long.expect_err("over-long");
    assert_eq!(too_long.code(), Code::InvalidArgument);
    assert!(
        too_long.message().contains("longer than"),
        "{}",
        too_long.message()
    );

    let mut seen = Vec::new();
    while seen.len() < 30 {
        let b = tokio::time::timeout(Duration::from_secs(20), moved.message())
            .await
            .expect("moved in time")
            .expect("stream ok")
            .expect("stream open");
        seen.extend(b.moved.into_iter().map(|m| (m.message_id, m.seq)));
    }
    seen.sort();
    assert_eq!(seen, (1..=30).map(|i| (7000 + i, i)).collect::<Vec<_>>());
    let page = data
        .history(pb::HistoryRequest {
            conversation_id: conv.clone(),
            before_seq: 0,
            limit: 10,
            user: bob.id,
            min_message_id: 0,
        })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(
        page.messages.first().map(|m| (m.seq, m.body.as_str())),
        Some((30, "hello 30"))
    );
    let changed = data
        .changed_conversations(pb::ChangedConversationsRequest {
            user: bob.id,
            since: 0,
        })
        .await
        .expect("changed")
        .into_inner();
    assert_eq!(changed.conversations.len(), 1);
    assert_eq!(changed.conversations[0].seq, 30);
    let bad_conv = data
        .messages_after(pb::MessagesAfterRequest {
            conversation_id: "nope".into(),
            after_seq: 0,
            limit: 0,
            user: bob.id,
            min_message_id: 0,
        })
        .await;
    assert_eq!(
        bad_conv.expect_err("bad conversation").code(),
        Code::InvalidArgument
    );

    // HTTP.
    assert_eq!(http_get(running.http_addr, "/healthz").await.0, 200);
    assert_eq!(http_get(running.http_addr, "/readyz").await.0, 200);
    let (code, body) = http_get(running.http_addr, "/metrics").await;
    assert_eq!(code, 200);
    for name in [
        "confab_persist_db_query_seconds_bucket{op=\"create_user\"",
        "confab_persist_db_pool_connections",
        "confab_persist_db_pool_max",
        "confab_persist_writer_messages_total 30",
        "confab_persist_grpc_requests_total{code=\"NotFound\",method=\"get_user\"} 1",
    ] {
        assert!(body.contains(name), "metrics lack {name}:\n{body}");
    }
    if config_is_embedded {
        for name in [
            "confab_persist_queue_waiting_messages 0",
            "confab_persist_queue_log_segments 1",
            "confab_persist_queue_log_commit_seconds_count",
            "confab_persist_queue_memory_bytes{part=\"block_cache\"}",
        ] {
            assert!(body.contains(name), "metrics lack {name}:\n{body}");
        }
        // Read from RocksDB at the scrape: its memtables hold the entries
        // written (and their deletes).
        let memtables = body
            .lines()
            .find_map(|l| l.strip_prefix("confab_persist_queue_memory_bytes{part=\"memtables\"} "))
            .and_then(|v| v.parse::<f64>().ok());
        assert!(
            memtables.is_some_and(|b| b > 0.0),
            "memtables {memtables:?}:\n{body}"
        );
    }

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), running.wait())
        .await
        .expect("stops in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_embedded_default() {
    let dir = tempfile::tempdir().expect("dir");
    exercise(test_config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_rabbitmq() {
    let Some(url) = crate::helpers::create_pg_database().await else {
        return;
    };
    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
    let _guard = crate::embedded::PgDrop(name);
    let dir = tempfile::tempdir().expect("dir");
    let mut c = test_config(dir.path());
    c.database.url = url;
    c.queue.backend = QueueBackend::Amqp;
    c.queue.amqp_url = crate::helpers::AMQP_URL.into();
    c.queue.prefix = crate::helpers::unique("confab.svc");
    let _cleanup = QueueCleanup(c.queue.prefix.clone(), c.queue.partitions);
    exercise(c).await;
}

/// Deletes a test's queues however the test ends.
struct QueueCleanup(String, u32);

impl Drop for QueueCleanup {
    fn drop(&mut self) {
        crate::amqp::delete_queues(&self.0, self.1);
    }
}
