//! Reading the log back at open: each segment's entries go into the index,
//! its acks take entries out again (from whichever segment holds them), so
//! what is left is what was never acked. A torn record at the end of the
//! last segment (a crash mid-write, never acknowledged) is cut off; damage
//! anywhere else is refused, never skipped.

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::sync::Arc;

use super::index::{Entry, State};
use super::record::{ENTRY_PREFIX, KIND_ACKS, KIND_ENTRY, messages_in, records, u32_at, u64_at};
use super::segment::{Segment, segment_path};
use crate::error::QueueError;

/// An error about the queue's directory, naming it.
pub(super) fn invalid(dir: &Path, what: String) -> QueueError {
    QueueError::Invalid(format!("embedded queue in {}: {what}", dir.display()))
}

/// Reads one segment into the index. A torn tail is cut off in the last
/// segment (it was never acknowledged) and refused anywhere else.
pub(super) fn replay(
    dir: &Path,
    id: u64,
    last: bool,
    state: &mut State,
    next: &mut [u64],
) -> Result<(), QueueError> {
    let path = segment_path(dir, id);
    let data = fs::read(&path)?;
    let (recs, good) = records(&data);
    if good < data.len() {
        if !last {
            return Err(invalid(
                dir,
                format!("segment {} is damaged at byte {good}", path.display()),
            ));
        }
        tracing::warn!(segment = %path.display(), at = good, "cutting off a torn record at the end of the queue log");
        OpenOptions::new().write(true).open(&path)?.set_len(good as u64)?;
    }
    let file = Arc::new(File::open(&path)?);
    let parts = state.parts.len();
    let mut live = 0;
    for (at, body) in recs {
        let bad = || {
            invalid(
                dir,
                format!("segment {}: bad record at byte {at}", path.display()),
            )
        };
        match body.first() {
            Some(&KIND_ENTRY) => {
                let p = u32_at(body, 1).ok_or_else(bad)?;
                let key = u64_at(body, 5).ok_or_else(bad)?;
                if p as usize >= parts {
                    return Err(bad());
                }
                let payload = &body[ENTRY_PREFIX..];
                state.parts[p as usize].insert(
                    key,
                    Entry {
                        segment: id,
                        offset: (at + ENTRY_PREFIX) as u64,
                        len: payload.len() as u32,
                        messages: messages_in(payload),
                    },
                );
                next[p as usize] = next[p as usize].max(key + 1);
                live += 1;
            }
            Some(&KIND_ACKS) => {
                for pair in body[1..].chunks_exact(12) {
                    let p = u32_at(pair, 0).ok_or_else(bad)? as usize;
                    let key = u64_at(pair, 4).ok_or_else(bad)?;
                    let Some(e) = state.parts.get_mut(p).and_then(|m| m.remove(&key)) else {
                        continue;
                    };
                    if e.segment == id {
                        live -= 1;
                    } else if let Some(s) = state.segments.get_mut(&e.segment) {
                        s.live -= 1;
                    }
                }
            }
            _ => return Err(bad()),
        }
    }
    state.segments.insert(id, Segment { file, path, live });
    Ok(())
}
