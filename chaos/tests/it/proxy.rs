//! The proxy's link modes on an echo server, and how it tells callers apart.

use std::net::SocketAddr;
use std::net::SocketAddrV4;
use std::time::Duration;
use std::time::Instant;

use confab_chaos::origin;
use confab_chaos::origin::Origin;
use confab_chaos::origin::Pids;
use confab_chaos::proxy::LinkMode;
use confab_chaos::proxy::Links;
use confab_chaos::proxy::Proxy;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;

/// An echo server on 127.0.0.1:0.
async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Node 1's proxy in front of an echo server.
async fn proxied() -> (Proxy, Links) {
    let links = Links::new();
    let proxy = Proxy::start(1, echo().await, links.clone(), Pids::default())
        .await
        .expect("proxy");
    (proxy, links)
}

/// Sends `msg` and waits up to `within` for it to come back.
async fn round_trip(conn: &mut TcpStream, msg: &[u8], within: Duration) -> Option<Vec<u8>> {
    conn.write_all(msg).await.ok()?;
    let mut got = vec![0u8; msg.len()];
    match tokio::time::timeout(within, conn.read_exact(&mut got)).await {
        Ok(Ok(_)) => Some(got),
        _ => None,
    }
}

/// Whether the peer closes `conn` within `within`.
async fn closed(conn: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(within, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

const NODE: Origin = Origin::Node(1);
const SEC: Duration = Duration::from_secs(1);

#[tokio::test]
async fn pass_forwards_both_ways() {
    let (proxy, _links) = proxied().await;
    let mut conn = TcpStream::connect(proxy.addr()).await.expect("connect");
    assert_eq!(
        round_trip(&mut conn, b"hello", SEC).await.as_deref(),
        Some(&b"hello"[..])
    );
    let big = vec![7u8; 300_000];
    assert_eq!(round_trip(&mut conn, &big, 5 * SEC).await, Some(big));
    assert_eq!(proxy.counts().accepted.get(&Origin::Client), Some(&1));
}

#[tokio::test]
async fn delay_holds_every_chunk_back_in_order() {
    let (proxy, links) = proxied().await;
    let mut conn = TcpStream::connect(proxy.addr()).await.expect("connect");
    assert!(round_trip(&mut conn, b"warm", SEC).await.is_some());
    links.set(
        Origin::Client,
        NODE,
        LinkMode::Delay {
            fixed_ms: 150,
            jitter_ms: 20,
        },
    );
    links.set(
        NODE,
        Origin::Client,
        LinkMode::Delay {
            fixed_ms: 150,
            jitter_ms: 20,
        },
    );
    let started = Instant::now();
    assert_eq!(
        round_trip(&mut conn, b"slow", 3 * SEC).await.as_deref(),
        Some(&b"slow"[..])
    );
    let rtt = started.elapsed();
    assert!(rtt >= Duration::from_millis(300), "both ways delayed: {rtt:?}");
    // Many small writes arrive intact and in order.
    let msg: Vec<u8> = (0..200u8).collect();
    for chunk in msg.chunks(10) {
        conn.write_all(chunk).await.expect("write");
    }
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(5 * SEC, conn.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(got, msg);
    links.heal();
    let started = Instant::now();
    assert!(round_trip(&mut conn, b"fast", SEC).await.is_some());
    assert!(started.elapsed() < Duration::from_millis(300));
    assert!(proxy.counts().delayed > 0);
}

#[tokio::test]
async fn drop_closes_existing_and_new_connections() {
    let (proxy, links) = proxied().await;
    let mut old = TcpStream::connect(proxy.addr()).await.expect("connect");
    assert!(round_trip(&mut old, b"x", SEC).await.is_some());
    links.set(Origin::Client, NODE, LinkMode::Drop);
    assert!(closed(&mut old, SEC).await, "existing connection closed");
    let mut new = TcpStream::connect(proxy.addr())
        .await
        .expect("the listener still accepts");
    assert!(closed(&mut new, SEC).await, "new connection closed at once");
    links.heal();
    let mut healed = TcpStream::connect(proxy.addr()).await.expect("connect");
    assert!(round_trip(&mut healed, b"back", SEC).await.is_some());
}

#[tokio::test]
async fn blackhole_holds_silently_and_heal_closes_what_it_held() {
    let (proxy, links) = proxied().await;
    let mut old = TcpStream::connect(proxy.addr()).await.expect("connect");
    assert!(round_trip(&mut old, b"x", SEC).await.is_some());
    links.set(Origin::Client, NODE, LinkMode::Blackhole);
    assert!(
        round_trip(&mut old, b"lost", Duration::from_millis(400))
            .await
            .is_none()
    );
    let mut new = TcpStream::connect(proxy.addr())
        .await
        .expect("accepted into the hole");
    assert!(
        round_trip(&mut new, b"lost", Duration::from_millis(400))
            .await
            .is_none()
    );
    assert!(
        !closed(&mut new, Duration::from_millis(200)).await,
        "held open, not closed"
    );
    links.heal();
    assert!(closed(&mut old, SEC).await, "held connection closed on heal");
    assert!(closed(&mut new, SEC).await, "held connection closed on heal");
    let mut healed = TcpStream::connect(proxy.addr()).await.expect("connect");
    assert!(round_trip(&mut healed, b"back", SEC).await.is_some());
    assert!(proxy.counts().held >= 1);
}

#[tokio::test]
async fn links_are_directed_and_apply_only_to_their_origin() {
    let (proxy, links) = proxied().await;
    // A cut between two nodes leaves clients alone.
    links.isolate(1, &[1, 2, 3], LinkMode::Drop);
    let mut conn = TcpStream::connect(proxy.addr()).await.expect("connect");
    assert!(round_trip(&mut conn, b"client", SEC).await.is_some());
    let t = links.table();
    assert_eq!(t.mode(Origin::Node(2), NODE), LinkMode::Drop);
    assert_eq!(t.mode(NODE, Origin::Node(3)), LinkMode::Drop);
    assert_eq!(t.mode(Origin::Node(2), Origin::Node(3)), LinkMode::Pass);
    assert_eq!(t.mode(Origin::Client, NODE), LinkMode::Pass);
    assert_eq!(t.faulty().count(), 4);
}

#[test]
fn proc_net_tcp_addresses_parse() {
    assert_eq!(
        origin::parse_addr("0100007F:1F90"),
        Some(SocketAddrV4::new([127, 0, 0, 1].into(), 8080))
    );
    let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 20 4 30 10 -1\n\
   1: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0 20 4 30 10 -1\n";
    let server: SocketAddrV4 = "127.0.0.1:8080".parse().expect("addr");
    let client: SocketAddrV4 = "127.0.0.1:54321".parse().expect("addr");
    assert_eq!(origin::find_inode(table, client, server), Some(4343));
    assert_eq!(origin::find_inode(table, server, client), Some(4242));
    assert_eq!(origin::find_inode(table, client, client), None);
}

#[tokio::test]
async fn a_connection_is_attributed_to_the_process_that_opened_it() {
    let (proxy, links) = proxied().await;
    let pids = Pids::default();
    // A second proxy that knows the child below as node 2.
    let attributed = Proxy::start(1, echo().await, links.clone(), pids.clone())
        .await
        .expect("proxy");
    let addr = attributed.addr();
    // bash opens a connection to the proxy and holds it.
    let mut child = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "sleep 0.3; exec 3<>/dev/tcp/{}/{}; sleep 5",
            addr.ip(),
            addr.port()
        ))
        .spawn()
        .expect("spawn bash");
    pids.set(2, child.id());
    let deadline = Instant::now() + 5 * SEC;
    while !attributed.counts().accepted.contains_key(&Origin::Node(2)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        attributed.counts().accepted.get(&Origin::Node(2)),
        Some(&1),
        "{:?}",
        attributed.counts()
    );
    // Our own connections are clients.
    let _conn = TcpStream::connect(proxy.addr()).await.expect("connect");
    let deadline = Instant::now() + 5 * SEC;
    while proxy.counts().accepted.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(proxy.counts().accepted.get(&Origin::Client), Some(&1));
}
