//! Opening a log directory: the lock (one process per directory), the
//! `partitions` file (the count is fixed at creation), the replay of the
//! segments, the removal of drained ones, a fresh segment to write, and
//! the writer thread.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use super::index::{Shared, State};
use super::queue::{Inner, LogQueue, Submit};
use super::record::records;
use super::replay::{invalid, replay};
use super::segment::{Segment, create_segment, segment_id, sync_dir};
use super::writer::Writer;
use crate::embedded::shared::{Durable, DurableObserver};
use crate::error::QueueError;

impl LogQueue {
    /// Opens (or creates) the log in `dir`, starting a new segment past
    /// `segment_bytes`. The partition count is fixed at creation: reopening
    /// with another count fails, as does opening a directory another
    /// process holds open. `durable` is told what each sync made durable.
    pub fn open(
        dir: &Path,
        partitions: u32,
        segment_bytes: u64,
        durable: Option<DurableObserver>,
    ) -> Result<Self, QueueError> {
        if partitions == 0 {
            return Err(invalid(dir, "the partition count must be at least 1".into()));
        }
        fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        if lock.try_lock().is_err() {
            return Err(invalid(dir, "open in another process".into()));
        }
        if dir.join("conf").exists() && dir.join("db").exists() {
            return Err(invalid(
                dir,
                "holds a queue of the earlier sled format: let that version drain it, or move it away".into(),
            ));
        }
        check_partitions(dir, partitions, durable.as_ref())?;

        let mut state = State::new(partitions);
        let mut next = vec![1u64; partitions as usize];
        let mut ids: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok()?.file_name().to_str().and_then(segment_id))
            .collect();
        ids.sort_unstable();
        for (i, &id) in ids.iter().enumerate() {
            replay(
                dir,
                id,
                i + 1 == ids.len(),
                &mut state,
                &mut next,
                durable.as_ref(),
            )?;
        }
        // Drained segments go (see `take_drained`); writing starts afresh.
        for s in state.take_drained() {
            fs::remove_file(&s.path)?;
        }
        // Before the new segment, whose directory sync makes its name
        // durable (the sync of a dead letter covers only its data).
        let dead = open_dead_letters(dir, durable.as_ref())?;
        let active = ids.last().map_or(1, |id| id + 1);
        let (file, path) = create_segment(dir, active)?;
        if let Some(observe) = &durable {
            observe(Durable::Dir { path: dir });
        }
        state.active = active;
        state.segments.insert(
            active,
            Segment {
                file: Arc::new(file.try_clone()?),
                path,
                live: 0,
            },
        );
        let waiting = state
            .parts
            .iter()
            .flat_map(|p| p.values())
            .map(|e| u64::from(e.messages))
            .sum();
        let shared = Arc::new(Shared::new(state, waiting, durable));
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(dir, shared.clone(), file, active, segment_bytes.max(1));
        let writer = std::thread::Builder::new()
            .name("queue-log".into())
            .spawn(move || writer.run(rx))?;
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                shared,
                submit: Mutex::new(Submit { next, tx }),
                dead: Mutex::new(dead),
                partitions,
                writer: Some(writer),
                _lock: lock,
            }),
        })
    }
}

/// Opens (creates) `dead-letters.log` to append to, its torn tail (a crash
/// while a dead letter was written, never acknowledged) cut off and the cut
/// synced: records appended after torn bytes could not be read back.
fn open_dead_letters(dir: &Path, durable: Option<&DurableObserver>) -> Result<File, QueueError> {
    let path = dir.join("dead-letters.log");
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)?;
    let data = fs::read(&path)?;
    let (_, good) = records(&data);
    if good < data.len() {
        tracing::warn!(file = %path.display(), at = good, "cutting off a torn record at the end of the dead letters");
        file.set_len(good as u64)?;
        file.sync_data()?;
        if let Some(observe) = durable {
            observe(Durable::File {
                path: &path,
                len: good as u64,
            });
        }
    }
    Ok(file)
}

/// Checks the partition count against the `partitions` file; writes the
/// file (durably: written, synced, renamed into place) on first open.
fn check_partitions(
    dir: &Path,
    partitions: u32,
    durable: Option<&DurableObserver>,
) -> Result<(), QueueError> {
    let path = dir.join("partitions");
    match fs::read_to_string(&path) {
        Ok(s) => {
            let stored: u32 = s
                .trim()
                .parse()
                .map_err(|_| invalid(dir, format!("unreadable partition count {s:?}")))?;
            if stored != partitions {
                return Err(invalid(
                    dir,
                    format!("has {stored} partitions, config says {partitions}"),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let tmp = dir.join("partitions.tmp");
            let mut f = File::create(&tmp)?;
            writeln!(f, "{partitions}")?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            sync_dir(dir)?;
            if let Some(observe) = durable {
                observe(Durable::File {
                    path: &path,
                    len: f.metadata()?.len(),
                });
                observe(Durable::Dir { path: dir });
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
