//! Test fixtures: messages, taking deliveries, the log's files, polling.

use std::path::{Path, PathBuf};
use std::time::Duration;

use confab_queue::{Consumer, QueuedMessage};

pub fn qmsg(id: u64, conv: &str, sender: u64, body: &str) -> QueuedMessage {
    QueuedMessage {
        message_id: id,
        conversation_id: conv.into(),
        sender,
        body: body.into(),
        client_msg_id: format!("c{id}"),
        server_time_ms: 0,
        traceparent: String::new(),
    }
}

/// Takes deliveries from `c` until it has `n` messages; returns their
/// bodies and the deliveries' tokens.
pub async fn take<C: Consumer>(c: &mut C, n: usize) -> (Vec<String>, Vec<C::Token>) {
    let (mut bodies, mut tokens) = (Vec::new(), Vec::new());
    while bodies.len() < n {
        let batch = tokio::time::timeout(
            Duration::from_secs(5),
            c.next_batch(n - bodies.len(), Duration::ZERO),
        )
        .await
        .expect("deliveries in time")
        .expect("next_batch");
        for d in batch {
            // One message (the embedded log) or an envelope of several (RabbitMQ).
            let ms = confab_queue::decode_payload(&d.payload, d.encoding, 1024).expect("decodable");
            bodies.extend(ms.into_iter().map(|m| m.body));
            tokens.push(d.token);
        }
    }
    (bodies, tokens)
}

/// The log's segment files in `dir`, oldest first.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("seg-"))
        .collect();
    names.sort();
    names.into_iter().map(|n| dir.join(n)).collect()
}

pub use confab_testkit::eventually;
