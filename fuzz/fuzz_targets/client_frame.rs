//! A TCP client's bytes through the gateway's decoding path: the length
//! prefix (in chunks, as reads deliver them), the frame decoder, the
//! handshake for the first frame, then for every frame the checks its
//! handler makes on the request's fields before it touches state, and the
//! error frame an error becomes. Every step answers or refuses; none
//! panics. The first byte picks the chunk size.
#![no_main]

use bytes::BytesMut;
use confab_gateway::config::LimitsConfig;
use confab_gateway::connection::handshake;
use confab_gateway::handler::precheck;
use confab_gateway::wire::frame;
use confab_gateway::wire::stream::split_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, wire)) = data.split_first() else {
        return;
    };
    let limits = LimitsConfig {
        max_frame_bytes: 4096,
        max_body_bytes: 256,
        ..LimitsConfig::default()
    };
    let mut buf = BytesMut::new();
    let mut greeted = false;
    for piece in wire.chunks(usize::from(chunk).max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let bytes = match split_frame(&mut buf, limits.max_frame_bytes) {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    let _ = frame::error(0, &e);
                    return;
                }
            };
            assert!(bytes.len() <= limits.max_frame_bytes as usize);
            let f = match frame::decode(&bytes) {
                Ok(f) => f,
                Err(e) => {
                    let _ = frame::error(0, &e);
                    return;
                }
            };
            let Some(body) = f.body else { continue };
            let _ = frame::kind(&body);
            if !greeted {
                match handshake(&limits, 1, body) {
                    Ok(_) => greeted = true,
                    Err(e) => {
                        let _ = frame::error(f.request_id, &e);
                        return;
                    }
                }
                continue;
            }
            if let Err(e) = precheck(&body, &limits, 7) {
                let _ = frame::error(f.request_id, &e);
            }
        }
    }
});
