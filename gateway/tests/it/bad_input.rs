//! Bad input: each gets a clear error frame (or a clean close where the
//! stream cannot be trusted), nothing panics, other clients are undisturbed.

use std::time::Duration;

use confab_client::proto::frame::Body;
use confab_client::proto::{self as pb, ErrorCode, Frame};
use confab_client::{Client, DeviceKind, Error};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Cluster, login, register};

async fn raw(addr: &str) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

fn framed(f: &Frame) -> Vec<u8> {
    let body = f.encode_to_vec();
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// Reads one frame; None on close.
async fn read_frame(s: &mut TcpStream) -> Option<Frame> {
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.ok()?;
    Frame::decode(buf.as_slice()).ok()
}

async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

fn error_code(f: &Frame) -> ErrorCode {
    match &f.body {
        Some(Body::Error(e)) => ErrorCode::try_from(e.code).expect("known code"),
        other => panic!("expected an error frame, got {other:?}"),
    }
}

fn hello() -> Frame {
    Frame {
        request_id: 1,
        body: Some(Body::Hello(pb::Hello {
            version: pb::ProtocolVersion::ProtocolVersion1 as i32,
            client: "test".into(),
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_disturbs_nobody() {
    let cluster = Cluster::start(1).await;
    let g = cluster.gw(1).to_owned();
    register(&g, "dave").await;
    register(&g, "erin").await;
    cluster.befriend("dave", "erin").await;
    let mut bystander = login(&g, "erin", "e1", DeviceKind::Desktop).await;

    // Garbage bytes: a length prefix and bytes that are no Frame.
    let mut s = raw(&g).await;
    s.write_all(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff])
        .await
        .expect("write");
    let f = read_frame(&mut s).await.expect("an error frame");
    assert_eq!(error_code(&f), ErrorCode::BadFrame);
    assert!(closed(&mut s).await, "closed after garbage");

    // A frame over the limit (65536 by default): refused, then closed.
    let mut s = raw(&g).await;
    s.write_all(&framed(&hello())).await.expect("write");
    read_frame(&mut s).await.expect("hello ok");
    s.write_all(&(1u32 << 20).to_be_bytes()).await.expect("write");
    let f = read_frame(&mut s).await.expect("an error frame");
    assert_eq!(error_code(&f), ErrorCode::FrameTooLarge);
    assert!(closed(&mut s).await);

    // No Hello first: handshake required, closed.
    let mut s = raw(&g).await;
    s.write_all(&framed(&Frame {
        request_id: 3,
        body: Some(Body::Ping(pb::Ping {})),
    }))
    .await
    .expect("write");
    let f = read_frame(&mut s).await.expect("an error frame");
    assert_eq!((f.request_id, error_code(&f)), (3, ErrorCode::HandshakeRequired));
    assert!(closed(&mut s).await);

    // An unknown request kind (a field number this gateway does not know),
    // then a response kind sent as a request: errors, the connection stays.
    let mut s = raw(&g).await;
    s.write_all(&framed(&hello())).await.expect("write");
    read_frame(&mut s).await.expect("hello ok");
    let mut unknown = Frame {
        request_id: 7,
        body: None,
    }
    .encode_to_vec();
    unknown.extend([0xfa, 0x3e, 0x00]); // field 999, length-delimited, empty
    let mut bytes = (unknown.len() as u32).to_be_bytes().to_vec();
    bytes.extend(unknown);
    s.write_all(&bytes).await.expect("write");
    let f = read_frame(&mut s).await.expect("an error frame");
    assert_eq!((f.request_id, error_code(&f)), (7, ErrorCode::UnknownRequest));
    let pong = Frame {
        request_id: 8,
        body: Some(Body::Pong(pb::Pong {})),
    };
    s.write_all(&framed(&pong)).await.expect("write");
    let f = read_frame(&mut s).await.expect("an error frame");
    assert_eq!((f.request_id, error_code(&f)), (8, ErrorCode::UnknownRequest));
    let ping = Frame {
        request_id: 9,
        body: Some(Body::Ping(pb::Ping {})),
    };
    s.write_all(&framed(&ping)).await.expect("write");
    let f = read_frame(&mut s).await.expect("pong");
    assert!(matches!(f.body, Some(Body::Pong(_))), "still open: {f:?}");

    // Requests before login.
    let mut c = Client::connect(&g).await.expect("connect");
    let e = c.send_to_name("erin", "hi", "").await.expect_err("not logged in");
    assert_eq!(e.code(), Some(ErrorCode::NotLoggedIn));
    let e = c.sync().await.expect_err("not logged in");
    assert_eq!(e.code(), Some(ErrorCode::NotLoggedIn));

    // Wrong password, unknown user: bad credentials; the connection stays.
    let e = c
        .login("dave", "nope", "d1", DeviceKind::Mobile)
        .await
        .expect_err("wrong password");
    assert_eq!(e.code(), Some(ErrorCode::BadCredentials));
    let e = c
        .login("nobody", "pw", "d1", DeviceKind::Mobile)
        .await
        .expect_err("no such user");
    assert_eq!(e.code(), Some(ErrorCode::BadCredentials));
    let e = c.register("dave", "pw").await.expect_err("taken");
    assert_eq!(e.code(), Some(ErrorCode::NameTaken));

    // Sending to a user that does not exist; an empty body; a bad token.
    c.login("dave", "pw", "d1", DeviceKind::Mobile)
        .await
        .expect("login");
    let e = c
        .send_to_name("nobody", "hi", "")
        .await
        .expect_err("no such user");
    assert_eq!(e.code(), Some(ErrorCode::UserNotFound));
    let e = c.send_to(987_654_321, "hi", "").await.expect_err("no such user");
    assert_eq!(e.code(), Some(ErrorCode::UserNotFound));
    let e = c.send_to_name("erin", "", "").await.expect_err("empty");
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument));
    let e = c
        .history("d:999998:999999", 0, 10)
        .await
        .expect_err("not a participant");
    assert!(
        matches!(
            e,
            Error::Server {
                code: ErrorCode::Forbidden,
                ..
            }
        ),
        "{e:?}"
    );
    let mut r = Client::connect(&g).await.expect("connect");
    let e = r
        .resume("00ff", "d2", DeviceKind::Web)
        .await
        .expect_err("bad token");
    assert_eq!(e.code(), Some(ErrorCode::BadToken));

    // Nobody else was disturbed: the bystander still chats.
    c.send_to_name("erin", "still fine?", "").await.expect("send");
    let got = crate::harness::receive(&mut bystander, 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert!(
        !cluster.log("gateway-1").contains("panicked"),
        "no panic in the gateway"
    );
}
