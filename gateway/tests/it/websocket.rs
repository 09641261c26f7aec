//! WebSocket clients take the same handler path as TCP ones: binary frames
//! carry the same protobuf `Frame`s; a text message is refused.

use std::time::Duration;

use confab_client::DeviceKind;
use confab_client::proto::frame::Body;
use confab_client::proto::{self as pb, ErrorCode, Frame};
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Cluster, login, register};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, request_id: u64, body: Body) {
    let frame = Frame {
        request_id,
        body: Some(body),
    };
    ws.send(Message::Binary(frame.encode_to_vec().into()))
        .await
        .expect("ws send");
}

/// The next protobuf frame (pings and pongs skipped); None on close.
async fn next(ws: &mut Ws) -> Option<Frame> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .ok()??
            .ok()?;
        match msg {
            Message::Binary(b) => return Frame::decode(b.as_ref()).ok(),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_log_in_and_receive_pushes() {
    let cluster = Cluster::start(1).await;
    let gw = cluster.gw(1).to_string();
    register(&gw, "wsalice").await;
    let bob_id = register(&gw, "wsbob").await;
    cluster.befriend("wsalice", "wsbob").await;

    let url = format!("ws://{}/ws", cluster.gateways[&1].http);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("websocket upgrade");
    send(
        &mut ws,
        1,
        Body::Hello(pb::Hello {
            version: pb::ProtocolVersion::ProtocolVersion1 as i32,
            client: "ws-test".into(),
        }),
    )
    .await;
    let f = next(&mut ws).await.expect("hello answer");
    assert_eq!(f.request_id, 1);
    assert!(matches!(f.body, Some(Body::HelloOk(_))), "got {f:?}");
    send(
        &mut ws,
        2,
        Body::Login(pb::LoginRequest {
            name: "wsbob".into(),
            password: "pw".into(),
            device_id: "bob-browser".into(),
            device_kind: DeviceKind::Web as i32,
        }),
    )
    .await;
    let f = next(&mut ws).await.expect("login answer");
    assert_eq!(f.request_id, 2);
    match f.body {
        Some(Body::LoginOk(ok)) => assert_eq!(ok.user_id, bob_id),
        other => panic!("expected LoginOk, got {other:?}"),
    }

    // A TCP client's message reaches the WebSocket session as a push.
    let mut alice = login(&gw, "wsalice", "alice-laptop", DeviceKind::Desktop).await;
    alice
        .send_to_name("wsbob", "over the web", "c-1")
        .await
        .expect("send acknowledged");
    let push = loop {
        let f = next(&mut ws).await.expect("a push");
        if let Some(Body::MessagePush(p)) = f.body {
            break p;
        }
    };
    assert_eq!(push.message.expect("message").body, "over the web");

    // Frames are binary: a text message is a protocol error.
    ws.send(Message::Text("hello?".into())).await.expect("ws send");
    loop {
        let f = next(&mut ws).await.expect("an error frame");
        match f.body {
            Some(Body::Error(e)) => {
                assert_eq!(ErrorCode::try_from(e.code), Ok(ErrorCode::BadFrame));
                break;
            }
            // Pushes about the message above (and alice's presence: they
            // are friends) may still be on their way.
            Some(Body::Moved(_) | Body::MessagePush(_) | Body::Presence(_)) => continue,
            other => panic!("expected an error frame, got {other:?}"),
        }
    }
}
