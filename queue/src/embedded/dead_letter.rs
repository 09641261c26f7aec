//! The dead letters of the log: poison payloads set aside with the reason,
//! one record each (reason length, reason, payload) in `dead-letters.log`,
//! appended and synced before the delivery is acked.

use std::fs;
use std::io::{self, Write};

use super::queue::EmbeddedQueue;
use super::record::{HEADER, put_record, records, u32_at};
use crate::error::QueueError;

/// A dead letter: the payload and why it was set aside.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub payload: Vec<u8>,
    pub reason: String,
}

impl EmbeddedQueue {
    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let data = fs::read(self.inner.dir.join("dead-letters.log"))?;
        let (recs, _) = records(&data);
        recs.into_iter()
            .map(|(_, body)| {
                let n = u32_at(body, 0).ok_or_else(|| QueueError::Invalid("truncated dead letter".into()))?;
                let n = (n as usize).min(body.len() - 4);
                Ok(DeadLetter {
                    reason: String::from_utf8_lossy(&body[4..4 + n]).into_owned(),
                    payload: body[4 + n..].to_vec(),
                })
            })
            .collect()
    }

    /// Appends `payload` with `reason` (its first 4 KiB) to the dead
    /// letters and syncs, on a blocking thread.
    pub(super) async fn set_aside(&self, payload: &[u8], reason: &str) -> Result<(), QueueError> {
        let reason = &reason.as_bytes()[..reason.len().min(4096)];
        let mut buf = Vec::with_capacity(HEADER + 4 + reason.len() + payload.len());
        put_record(&mut buf, |b| {
            b.extend_from_slice(&(reason.len() as u32).to_le_bytes());
            b.extend_from_slice(reason);
            b.extend_from_slice(payload);
        });
        let queue = self.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut f = queue.inner.dead.lock().unwrap_or_else(|e| e.into_inner());
            f.write_all(&buf)?;
            f.sync_data()
        })
        .await
        .map_err(|_| QueueError::Closed)??;
        Ok(())
    }
}
