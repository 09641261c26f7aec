//! The dead letters of the log: poison payloads set aside with the reason,
//! one record each (reason length, reason, payload) in `dead-letters.log`,
//! appended and synced before the delivery is acked.

use std::fs;
use std::io::{self, Write};

use super::queue::LogQueue;
use super::record::{put_record, records};
use crate::embedded::shared::{DeadLetter, Durable, dead_letter_body, parse_dead_letter};
use crate::error::QueueError;

impl LogQueue {
    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let data = fs::read(self.inner.dir.join("dead-letters.log"))?;
        let (recs, _) = records(&data);
        recs.into_iter()
            .map(|(_, body)| parse_dead_letter(body))
            .collect()
    }

    /// Appends `payload` with `reason` (its first 4 KiB) to the dead
    /// letters and syncs, on a blocking thread.
    pub(super) async fn set_aside(&self, payload: &[u8], reason: &str) -> Result<(), QueueError> {
        let mut buf = Vec::new();
        put_record(&mut buf, |b| dead_letter_body(b, payload, reason));
        let queue = self.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut f = queue.inner.dead.lock().unwrap_or_else(|e| e.into_inner());
            f.write_all(&buf)?;
            f.sync_data()?;
            if let Some(observe) = &queue.inner.shared.durable {
                let path = queue.inner.dir.join("dead-letters.log");
                observe(Durable::File {
                    path: &path,
                    len: f.metadata()?.len(),
                });
            }
            Ok(())
        })
        .await
        .map_err(|_| QueueError::Closed)??;
        Ok(())
    }
}
