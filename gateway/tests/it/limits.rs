//! Connection-level abuse limits against the real gateway binary: login
//! rate limits per address and per account, the login deadline (idle and
//! slow-loris connections), the per-address connection cap, the WebSocket
//! frame limit and the send queue bounded in bytes. Memory is the
//! gateway process's resident set, read from /proc.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use confab_client::proto::frame::Body;
use confab_client::proto::{self as pb, ErrorCode, Frame};
use confab_client::{Client, DeviceKind};
use confab_testkit::http_get;
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Cluster, register};

/// A TCP connection to `addr` from the local address `from` (any
/// 127.0.0.0/8 address is this machine).
async fn connect_from(addr: &str, from: &str) -> TcpStream {
    let target: SocketAddr = addr.parse().expect("gateway address");
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("local address"))
        .expect("bind");
    socket.connect(target).await.expect("connect")
}

async fn write_frame(s: &mut TcpStream, request_id: u64, body: Body) {
    let f = Frame {
        request_id,
        body: Some(body),
    }
    .encode_to_vec();
    let mut out = (f.len() as u32).to_be_bytes().to_vec();
    out.extend(f);
    s.write_all(&out).await.expect("write");
}

/// Reads one frame (within `within`); None on close or timeout.
async fn read_frame(s: &mut TcpStream, within: Duration) -> Option<Frame> {
    tokio::time::timeout(within, async {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).await.ok()?;
        Frame::decode(buf.as_slice()).ok()
    })
    .await
    .ok()?
}

/// The answer to request `rid`, skipping the pushes (request id 0) a
/// logged-in session may get first, e.g. a ConversationMoved of a commit
/// that lands while the login is under way.
async fn read_answer(s: &mut TcpStream, rid: u64, within: Duration) -> Option<Frame> {
    let deadline = Instant::now() + within;
    loop {
        let f = read_frame(s, deadline.saturating_duration_since(Instant::now())).await?;
        if f.request_id != 0 {
            assert_eq!(f.request_id, rid, "an answer to another request: {f:?}");
            return Some(f);
        }
    }
}

async fn closed(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(within, s.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

fn hello() -> Body {
    Body::Hello(pb::Hello {
        version: pb::ProtocolVersion::ProtocolVersion1 as i32,
        client: "limits-test".into(),
    })
}

fn login_body(name: &str, password: &str, device: &str) -> Body {
    login_as(name, password, device, DeviceKind::Bot)
}

fn login_as(name: &str, password: &str, device: &str, kind: DeviceKind) -> Body {
    Body::Login(pb::LoginRequest {
        name: name.into(),
        password: password.into(),
        device_id: device.into(),
        device_kind: kind as i32,
    })
}

/// The error of an error frame, or None for another body.
fn error_of(f: &Frame) -> Option<&pb::Error> {
    match &f.body {
        Some(Body::Error(e)) => Some(e),
        _ => None,
    }
}

fn code(e: &pb::Error) -> ErrorCode {
    ErrorCode::try_from(e.code).expect("known code")
}

/// A connection from `from` that said Hello.
async fn greeted(addr: &str, from: &str) -> TcpStream {
    let mut s = connect_from(addr, from).await;
    write_frame(&mut s, 1, hello()).await;
    let f = read_frame(&mut s, Duration::from_secs(10))
        .await
        .expect("HelloOk");
    assert!(matches!(f.body, Some(Body::HelloOk(_))), "got {f:?}");
    s
}

/// Logs in on `s`: Ok(()) or the error frame's error.
async fn try_login(s: &mut TcpStream, rid: u64, name: &str, password: &str) -> Result<(), pb::Error> {
    write_frame(s, rid, login_body(name, password, &format!("d{rid}"))).await;
    let f = read_answer(s, rid, Duration::from_secs(10))
        .await
        .expect("an answer");
    match f.body {
        Some(Body::LoginOk(_)) => Ok(()),
        Some(Body::Error(e)) => Err(e),
        other => panic!("unexpected answer {other:?}"),
    }
}

/// The value of the series `name{labels}` in the gateway's /metrics (0 when
/// absent).
async fn metric(http: &str, series: &str) -> f64 {
    let (status, body) = http_get(http, "/metrics").await.expect("GET /metrics");
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// A /proc/PID/status field in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Resets the process's peak resident set (VmHWM) to its current one.
fn reset_peak(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak RSS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brute_force_login_loop_is_limited_per_address_and_per_account() {
    let mut cluster = Cluster::start(0).await;
    // 5 attempts per address at once, then one a second; 8 per account.
    cluster
        .start_gateway_with_env(
            1,
            &[
                ("CONFAB_LIMITS__LOGIN_PER_IP_BURST", "5"),
                ("CONFAB_LIMITS__LOGIN_PER_IP_PER_MINUTE", "60"),
                ("CONFAB_LIMITS__LOGIN_PER_ACCOUNT_BURST", "8"),
                ("CONFAB_LIMITS__LOGIN_PER_ACCOUNT_PER_MINUTE", "6"),
            ],
        )
        .await;
    let g = cluster.gw(1).to_owned();
    let metrics = cluster.gateways[&1].metrics.clone();
    register(&g, "victim").await;

    let mut attacker = greeted(&g, "127.0.0.1").await;
    let (mut wrong, mut limited) = (0, 0);
    let mut last_retry = 0;
    for rid in 2..32 {
        match try_login(&mut attacker, rid, "victim", &format!("guess{rid}")).await {
            Ok(()) => panic!("a wrong password logged in"),
            Err(e) if code(&e) == ErrorCode::BadCredentials => wrong += 1,
            Err(e) => {
                assert_eq!(code(&e), ErrorCode::RateLimited, "{e:?}");
                assert!(
                    e.retry_after_ms > 0 && e.retry_after_ms <= 1000,
                    "a retry-after within the refill: {e:?}"
                );
                assert!(e.message.contains("retry in"), "{e:?}");
                last_retry = e.retry_after_ms;
                limited += 1;
            }
        }
    }
    println!("brute force: 30 attempts, {wrong} checked, {limited} refused");
    assert!(
        (5..=7).contains(&wrong),
        "the burst and at most what refilled meanwhile: {wrong}"
    );
    assert_eq!(wrong + limited, 30);
    let counted = metric(&metrics, "confab_gateway_rate_limited_total{bucket=\"login_ip\"}").await;
    assert_eq!(counted as u32, limited, "every refusal counted");

    // The attacker's address does not lock the user out elsewhere...
    let mut owner = greeted(&g, "127.0.0.2").await;
    write_frame(
        &mut owner,
        2,
        login_as("victim", "pw", "phone", DeviceKind::Mobile),
    )
    .await;
    let f = read_answer(&mut owner, 2, Duration::from_secs(10))
        .await
        .expect("an answer");
    assert!(
        matches!(f.body, Some(Body::LoginOk(_))),
        "the right password from another address: {f:?}"
    );
    // ...nor at the attacker's address once its bucket refilled.
    tokio::time::sleep(Duration::from_millis(u64::from(last_retry) + 50)).await;
    try_login(&mut attacker, 100, "victim", "pw")
        .await
        .expect("the right password after the refill");

    // Guessing from many addresses spends the account's bucket, which
    // slows guessing at it; a refused attempt says when to retry.
    let mut refused_by_account = None;
    for (i, from) in ["127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"]
        .iter()
        .enumerate()
    {
        let mut s = greeted(&g, from).await;
        for rid in 2..7 {
            if let Err(e) = try_login(&mut s, rid, "victim", "nope").await
                && code(&e) == ErrorCode::RateLimited
            {
                assert!(e.message.contains("account"), "{e:?}");
                refused_by_account = Some((i, e.retry_after_ms));
                break;
            }
        }
        if refused_by_account.is_some() {
            break;
        }
    }
    let (_, retry) = refused_by_account.expect("the account's bucket ran out");
    assert!(retry > 0 && retry <= 10_000, "one token per 10 s: {retry}");
    assert!(
        metric(
            &metrics,
            "confab_gateway_rate_limited_total{bucket=\"login_account\"}"
        )
        .await
            >= 1.0
    );
    // A device already logged in is not touched, and resume is not limited.
    write_frame(&mut owner, 3, Body::Ping(pb::Ping {})).await;
    let pong = read_answer(&mut owner, 3, Duration::from_secs(10))
        .await
        .expect("pong");
    assert!(matches!(pong.body, Some(Body::Pong(_))), "{pong:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_loris_connections_are_closed_at_the_login_deadline() {
    let mut cluster = Cluster::start(0).await;
    cluster
        .start_gateway_with_env(1, &[("CONFAB_LIMITS__LOGIN_TIMEOUT_MS", "1500")])
        .await;
    let g = cluster.gw(1).to_owned();
    let metrics = cluster.gateways[&1].metrics.clone();
    register(&g, "patient").await;

    let started = Instant::now();
    // Connects and says nothing.
    let mut idle = connect_from(&g, "127.0.0.1").await;
    // Says Hello, then trickles a login frame a byte every 100 ms.
    let loris = greeted(&g, "127.0.0.1").await;
    let (mut loris_read, mut loris_write) = loris.into_split();
    let trickle = tokio::spawn(async move {
        let f = Frame {
            request_id: 2,
            body: Some(login_body("patient", "pw", "loris")),
        }
        .encode_to_vec();
        let mut out = (f.len() as u32).to_be_bytes().to_vec();
        out.extend(f);
        let mut sent = 0;
        for b in out.iter().take(out.len() - 1) {
            if loris_write.write_all(&[*b]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sent
    });
    // Logs in in time: not affected by the deadline.
    let mut good = Client::connect(&g).await.expect("connect");
    good.login("patient", "pw", "good", DeviceKind::Desktop)
        .await
        .expect("login");

    let f = read_frame(&mut idle, Duration::from_secs(10))
        .await
        .expect("an error frame for the idle connection");
    assert_eq!(code(error_of(&f).expect("an error")), ErrorCode::LoginTimeout);
    assert!(closed(&mut idle, Duration::from_secs(5)).await, "idle closed");
    let idle_after = started.elapsed();

    let mut len = [0u8; 4];
    let f = tokio::time::timeout(Duration::from_secs(10), async {
        loris_read.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0; u32::from_be_bytes(len) as usize];
        loris_read.read_exact(&mut buf).await.ok()?;
        Frame::decode(buf.as_slice()).ok()
    })
    .await
    .expect("in time")
    .expect("an error frame for the slow-loris connection");
    assert_eq!(code(error_of(&f).expect("an error")), ErrorCode::LoginTimeout);
    let loris_after = started.elapsed();
    let sent = trickle.await.expect("trickle task");
    println!(
        "login deadline 1500 ms: idle closed after {idle_after:?}, slow-loris after {loris_after:?} ({sent} bytes trickled)"
    );
    assert!(idle_after >= Duration::from_millis(1400), "{idle_after:?}");
    assert!(idle_after < Duration::from_secs(5), "{idle_after:?}");
    assert!(loris_after < Duration::from_secs(5), "{loris_after:?}");
    assert!(sent < 40, "cut off while still trickling: {sent} bytes");
    drop(loris_read);

    // The logged-in connection outlives the deadline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    good.lookup_user("patient")
        .await
        .expect("a logged-in connection stays");
    assert!(metric(&metrics, "confab_gateway_login_timeouts_total").await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_per_address_refuses_the_next_one_clearly() {
    let mut cluster = Cluster::start(0).await;
    cluster
        .start_gateway_with_env(1, &[("CONFAB_LIMITS__MAX_CONNECTIONS_PER_IP", "3")])
        .await;
    let g = cluster.gw(1).to_owned();
    let http = cluster.gateways[&1].http.clone();
    let metrics = cluster.gateways[&1].metrics.clone();

    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(greeted(&g, "127.0.0.7").await);
    }
    // The fourth from that address: an error frame, then closed.
    let mut fourth = connect_from(&g, "127.0.0.7").await;
    let f = read_frame(&mut fourth, Duration::from_secs(10))
        .await
        .expect("an error frame");
    let e = error_of(&f).expect("an error");
    assert_eq!(code(e), ErrorCode::TooManyConnections, "{e:?}");
    assert!(e.message.contains("3 connections"), "{e:?}");
    assert!(closed(&mut fourth, Duration::from_secs(5)).await);
    // Over WebSocket too, before the upgrade: HTTP 429.
    let url = format!("ws://{http}/ws");
    let from_capped = connect_from(&http, "127.0.0.7").await;
    match tokio_tungstenite::client_async(url.as_str(), from_capped).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status().as_u16(), 429);
        }
        other => panic!(
            "the upgrade over the cap was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    let ws = tokio_tungstenite::connect_async(url.as_str()).await;
    assert!(ws.is_ok(), "127.0.0.1 is another address: {:?}", ws.err());
    let counted = metric(
        &metrics,
        "confab_gateway_connections_refused_total{reason=\"per_ip\"}",
    )
    .await;
    assert_eq!(counted, 2.0, "the TCP and the WebSocket refusal");
    // Another address is not affected; a closed connection frees its place.
    let _other = greeted(&g, "127.0.0.8").await;
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut s = connect_from(&g, "127.0.0.7").await;
        write_frame(&mut s, 1, hello()).await;
        match read_frame(&mut s, Duration::from_secs(10)).await {
            Some(Frame {
                body: Some(Body::HelloOk(_)),
                ..
            }) => {
                again = Some(s);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(again.is_some(), "the freed place is taken again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_16_mib_websocket_frame_is_refused_without_being_buffered() {
    let cluster = Cluster::start(1).await;
    let http = cluster.gateways[&1].http.clone();
    let metrics = cluster.gateways[&1].metrics.clone();
    let pid = cluster.pid("gateway-1");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
        .await
        .expect("websocket upgrade");
    let hello = Frame {
        request_id: 1,
        body: Some(hello()),
    };
    ws.send(Message::Binary(hello.encode_to_vec().into()))
        .await
        .expect("send hello");
    let ok = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("HelloOk in time");
    assert!(matches!(ok, Some(Ok(Message::Binary(_)))), "{ok:?}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = status_kib(pid, "VmRSS");
    reset_peak(pid);
    // One binary frame of 16 MiB: its header says so, and the gateway
    // refuses it there.
    let big = vec![7u8; 16 << 20];
    let sent = tokio::time::timeout(Duration::from_secs(20), ws.send(Message::Binary(big.into()))).await;
    let mut closed_by_gateway = false;
    if let Ok(Ok(())) = sent {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => {
                    closed_by_gateway = true;
                    break;
                }
                Ok(Some(Ok(_))) => continue,
                Err(_) => break,
            }
        }
    } else {
        // The gateway closed while the frame was still being written.
        closed_by_gateway = true;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let peak = status_kib(pid, "VmHWM");
    let after = status_kib(pid, "VmRSS");
    println!(
        "16 MiB WebSocket frame: gateway RSS {before} KiB before, peak {peak} KiB while refusing, {after} KiB after"
    );
    assert!(closed_by_gateway, "the connection was closed");
    assert_eq!(
        metric(&metrics, "confab_gateway_ws_too_large_total").await,
        1.0,
        "the refusal is counted"
    );
    assert!(
        peak.saturating_sub(before) < 4 * 1024,
        "the peak grew by {} KiB: the frame was buffered",
        peak - before
    );
    // The gateway still serves.
    let c = Client::connect(cluster.gw(1)).await.expect("connect");
    c.register("after-big-frame", "pw").await.expect("register");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pipelining_history_without_reading_is_disconnected_with_memory_bounded() {
    let mut cluster = Cluster::start(0).await;
    cluster
        .start_gateway_with_env(
            1,
            &[
                ("CONFAB_LIMITS__SEND_QUEUE_BYTES", "262144"),
                ("CONFAB_LIMITS__SEND_STALL_TIMEOUT_MS", "2000"),
            ],
        )
        .await;
    let g = cluster.gw(1).to_owned();
    let metrics = cluster.gateways[&1].metrics.clone();
    let pid = cluster.pid("gateway-1");
    register(&g, "hoarder").await;
    register(&g, "writer").await;
    cluster.befriend("hoarder", "writer").await;
    // 30 messages of 2000 bytes: a history page of them is ~60 KiB.
    let mut writer = Client::connect(&g).await.expect("connect");
    writer
        .login("writer", "pw", "w", DeviceKind::Desktop)
        .await
        .expect("login");
    let body = "x".repeat(2000);
    let mut conversation = String::new();
    for i in 0..30 {
        let ack = writer
            .send_to_name("hoarder", &body, &format!("m{i}"))
            .await
            .expect("send");
        conversation = ack.conversation_id;
    }

    // A reader with a small receive buffer that pipelines page after page
    // and reads none of them.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut s = socket.connect(g.parse().expect("addr")).await.expect("connect");
    write_frame(&mut s, 1, hello()).await;
    read_frame(&mut s, Duration::from_secs(10))
        .await
        .expect("HelloOk");
    try_login(&mut s, 2, "hoarder", "pw").await.expect("login");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = status_kib(pid, "VmRSS");
    reset_peak(pid);
    let (_read, mut write) = s.into_split();
    let started = Instant::now();
    let pipeline = tokio::spawn(async move {
        let mut sent = 0u64;
        let page = Frame {
            request_id: 0,
            body: Some(Body::History(pb::HistoryRequest {
                conversation_id: conversation,
                before_seq: 0,
                limit: 30,
                min_message_id: 0,
            })),
        };
        for rid in 3..200_003u64 {
            let mut f = page.clone();
            f.request_id = rid;
            let f = f.encode_to_vec();
            let mut out = (f.len() as u32).to_be_bytes().to_vec();
            out.extend(f);
            match tokio::time::timeout(Duration::from_secs(30), write.write_all(&out)).await {
                Ok(Ok(())) => sent += 1,
                // Reset by the gateway, or stuck: it stopped reading us.
                Ok(Err(_)) => return (sent, true),
                Err(_) => return (sent, false),
            }
        }
        (sent, false)
    });
    // Until the gateway counts the connection as a slow consumer.
    let mut gone = false;
    let mut peak_rss = before;
    while started.elapsed() < Duration::from_secs(30) {
        peak_rss = peak_rss.max(status_kib(pid, "VmRSS"));
        if metric(&metrics, "confab_gateway_slow_consumers_total").await >= 1.0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    let (sent, reset) = tokio::time::timeout(Duration::from_secs(40), pipeline)
        .await
        .expect("the pipelining writer ends")
        .expect("writer task");
    let peak = status_kib(pid, "VmHWM").max(peak_rss);
    let after = status_kib(pid, "VmRSS");
    let waits = metric(&metrics, "confab_gateway_send_queue_waits_total").await;
    let read = metric(&metrics, "confab_gateway_frames_in_total{kind=\"history\"}").await as u64;
    println!(
        "pipelined history without reading: {sent} requests written (kernel buffers took what the \
         gateway did not read), {read} read by the gateway, disconnected after {took:?} (reset seen \
         by the client: {reset}); gateway RSS {before} KiB before, peak {peak} KiB, {after} KiB \
         after; the connection waited for its queue {waits} times"
    );
    assert!(gone, "the slow consumer was disconnected");
    assert!(waits >= 1.0, "reads stopped while the queue was full");
    assert!(
        read < 2_000 && read < sent,
        "the gateway stopped reading: {read} of {sent} requests read"
    );
    // Queue bound 256 KiB, then up to 64 pages of ~60 KiB in flight: under
    // 4.5 MiB queued; with what the handlers hold while they run, far
    // under 32 MiB.
    assert!(
        peak.saturating_sub(before) < 32 * 1024,
        "the gateway grew by {} KiB",
        peak - before
    );
    // The gateway still serves.
    let c = Client::connect(&g).await.expect("connect");
    c.register("after-hoarder", "pw").await.expect("register");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_past_persists_hash_bound_are_told_busy_with_a_retry_after() {
    let mut cluster = Cluster::start(1).await;
    let g = cluster.gw(1).to_owned();
    register(&g, "crowd").await;
    // One hash at a time, a slow one (64 MiB), and no wait for a place.
    cluster.kill("persist");
    cluster
        .restart_persist(&[
            ("CONFAB_DATABASE__MAX_CONCURRENT_HASHES", "1"),
            ("CONFAB_DATABASE__HASH_QUEUE_MS", "1"),
            ("CONFAB_DATABASE__ARGON2_MEMORY_KIB", "65536"),
        ])
        .await;
    let metrics = cluster.gateways[&1].metrics.clone();
    // 8 logins at once from 8 connections: one hash runs, the others find
    // no place.
    let attempts = (0..8u64).map(|i| {
        let g = g.clone();
        async move {
            let mut s = greeted(&g, "127.0.0.1").await;
            try_login(&mut s, 2, "crowd", &format!("wrong{i}")).await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let busy: Vec<&pb::Error> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .filter(|e| code(e) == ErrorCode::Busy)
        .collect();
    let checked = results
        .iter()
        .filter(|r| matches!(r, Err(e) if code(e) == ErrorCode::BadCredentials))
        .count();
    println!(
        "8 concurrent logins, 1 hash place: {checked} checked, {} busy",
        busy.len()
    );
    assert!(checked >= 1, "one got a place: {results:?}");
    assert!(!busy.is_empty(), "the others were refused: {results:?}");
    assert_eq!(checked + busy.len(), 8, "{results:?}");
    for e in &busy {
        assert!(e.retry_after_ms > 0, "{e:?}");
        assert!(e.message.contains("busy"), "{e:?}");
    }
    assert!(metric(&metrics, "confab_gateway_errors_total{code=\"ERROR_CODE_BUSY\"}").await >= 1.0);
    let refused = metric(
        &cluster.persist_http,
        "confab_persist_password_hashes_refused_total",
    )
    .await;
    assert_eq!(refused as usize, busy.len(), "persist counted each refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_per_address_are_rate_limited() {
    let mut cluster = Cluster::start(0).await;
    cluster
        .start_gateway_with_env(
            1,
            &[
                ("CONFAB_LIMITS__REGISTER_PER_IP_BURST", "2"),
                ("CONFAB_LIMITS__REGISTER_PER_IP_PER_MINUTE", "1"),
            ],
        )
        .await;
    let g = cluster.gw(1).to_owned();
    let metrics = cluster.gateways[&1].metrics.clone();
    let mut s = greeted(&g, "127.0.0.9").await;
    let mut answers = Vec::new();
    for rid in 2..6u64 {
        let name = format!("newcomer{rid}");
        write_frame(
            &mut s,
            rid,
            Body::Register(pb::RegisterRequest {
                name,
                password: "pw".into(),
            }),
        )
        .await;
        answers.push(
            read_frame(&mut s, Duration::from_secs(10))
                .await
                .expect("an answer"),
        );
    }
    assert!(
        matches!(answers[0].body, Some(Body::RegisterOk(_))),
        "{:?}",
        answers[0]
    );
    assert!(
        matches!(answers[1].body, Some(Body::RegisterOk(_))),
        "{:?}",
        answers[1]
    );
    for f in &answers[2..] {
        let e = error_of(f).expect("an error");
        assert_eq!(code(e), ErrorCode::RateLimited, "{e:?}");
        assert!(e.retry_after_ms > 0 && e.retry_after_ms <= 60_000, "{e:?}");
    }
    // Refused, not registered; another address registers that name.
    let mut other = greeted(&g, "127.0.0.10").await;
    write_frame(
        &mut other,
        2,
        Body::Register(pb::RegisterRequest {
            name: "newcomer4".into(),
            password: "pw".into(),
        }),
    )
    .await;
    let f = read_frame(&mut other, Duration::from_secs(10))
        .await
        .expect("an answer");
    assert!(
        matches!(f.body, Some(Body::RegisterOk(_))),
        "the refused name is free: {f:?}"
    );
    assert_eq!(
        metric(
            &metrics,
            "confab_gateway_rate_limited_total{bucket=\"register_ip\"}"
        )
        .await,
        2.0
    );
}
