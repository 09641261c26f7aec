//! The segment files of the log: `seg-NNNNNNNNNNNNNNNN.log` in the queue's
//! directory, created (and the directory synced) as writing moves on,
//! deleted once every entry in them is acked.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::QueueError;

/// A segment past this size is closed and a new one started.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// A segment of the log, as the index knows it.
pub(super) struct Segment {
    /// A read handle (consumers read payloads through it).
    pub(super) file: Arc<File>,
    pub(super) path: PathBuf,
    /// Entries not yet acked.
    pub(super) live: usize,
}

pub(super) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:016}.log"))
}

pub(super) fn segment_id(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?.strip_suffix(".log")?.parse().ok()
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates (empties) segment `id` for writing, durably named.
pub(super) fn create_segment(dir: &Path, id: u64) -> Result<(File, PathBuf), QueueError> {
    let path = segment_path(dir, id);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// Deletes drained segment files; a failure is logged (the next open
/// deletes what is left).
pub(super) fn unlink(paths: &[PathBuf]) {
    for path in paths {
        if let Err(e) = fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete a drained queue segment");
        }
    }
}
