//! The disk as a crash would leave it, kept from the queue's durability
//! reports (`OpenOptions::durable`): per file, its bytes as of its last
//! sync; per directory, its names as of its last directory sync. A crash
//! freezes it, and the queue's directory is replaced by it: every write not
//! yet synced is gone, save, when asked, a random prefix of the unsynced
//! tail of an append-only file (a torn write).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use confab_queue::embedded::{Durable, DurableObserver};

/// The durable state of the directory `root`, by path relative to it.
pub struct CrashDisk {
    root: PathBuf,
    /// Bytes on disk as of each file's last sync.
    data: BTreeMap<PathBuf, Vec<u8>>,
    /// Names on disk as of their directory's last sync.
    names: BTreeSet<PathBuf>,
    frozen: bool,
    /// The first failure of the observer (the test fails on it).
    pub error: Option<String>,
    scratch: tempfile::TempDir,
    checkpoints: u64,
}

/// Files whose unsynced tail a crash may keep a prefix of: the log's
/// segments and dead letters, RocksDB's write-ahead log.
fn append_only(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "log")
}

/// Every file under `dir`, by path relative to `base`.
fn files_under(dir: &Path, base: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            files_under(&e.path(), base, out)?;
        } else {
            let rel = e
                .path()
                .strip_prefix(base)
                .map_err(std::io::Error::other)?
                .to_owned();
            out.insert(rel, fs::read(e.path())?);
        }
    }
    Ok(())
}

impl CrashDisk {
    /// The durable state of `root` is what it holds now (an empty or a
    /// restored directory).
    pub fn new(root: &Path) -> Arc<Mutex<Self>> {
        let mut data = BTreeMap::new();
        if root.exists() {
            files_under(root, root, &mut data).expect("read the directory");
        }
        Arc::new(Mutex::new(Self {
            root: root.to_owned(),
            names: data.keys().cloned().collect(),
            data,
            frozen: false,
            error: None,
            scratch: tempfile::tempdir().expect("scratch dir"),
            checkpoints: 0,
        }))
    }

    /// The observer to open the queue with.
    pub fn observer(disk: &Arc<Mutex<Self>>) -> DurableObserver {
        let disk = disk.clone();
        Arc::new(move |event: Durable<'_>| {
            let mut d = disk.lock().unwrap_or_else(|e| e.into_inner());
            if d.frozen || d.error.is_some() {
                return;
            }
            if let Err(e) = d.apply(event) {
                d.error = Some(e);
            }
        })
    }

    fn rel(&self, path: &Path) -> Result<PathBuf, String> {
        path.strip_prefix(&self.root)
            .map(Path::to_owned)
            .map_err(|_| format!("{} is outside the queue's directory", path.display()))
    }

    fn apply(&mut self, event: Durable<'_>) -> Result<(), String> {
        match event {
            Durable::File { path, len } => {
                let mut bytes = fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
                if (bytes.len() as u64) < len {
                    return Err(format!(
                        "{} is shorter than its synced {len} bytes",
                        path.display()
                    ));
                }
                bytes.truncate(len as usize);
                self.data.insert(self.rel(path)?, bytes);
            }
            Durable::Dir { path } => {
                let dir = self.rel(path)?;
                let now: BTreeSet<PathBuf> = fs::read_dir(path)
                    .map_err(|e| format!("read {}: {e}", path.display()))?
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| dir.join(e.file_name()))
                    .collect();
                let gone: Vec<PathBuf> = self
                    .names
                    .iter()
                    .filter(|n| n.parent() == Some(&dir) && !now.contains(*n))
                    .cloned()
                    .collect();
                for n in gone {
                    self.names.remove(&n);
                    self.data.remove(&n);
                }
                self.names.extend(now);
            }
            Durable::Everything { dir, checkpoint } => {
                self.checkpoints += 1;
                let to = self.scratch.path().join(format!("cp-{}", self.checkpoints));
                checkpoint(&to).map_err(|e| format!("checkpoint: {e}"))?;
                let mut files = BTreeMap::new();
                files_under(&to, &to, &mut files).map_err(|e| format!("read checkpoint: {e}"))?;
                fs::remove_dir_all(&to).map_err(|e| format!("remove checkpoint: {e}"))?;
                let under = self.rel(dir)?;
                self.names.retain(|n| !n.starts_with(&under));
                self.data.retain(|n, _| !n.starts_with(&under));
                for (name, bytes) in files {
                    let name = under.join(name);
                    self.names.insert(name.clone());
                    self.data.insert(name, bytes);
                }
            }
        }
        Ok(())
    }

    /// The crash: from now on nothing more becomes durable. Returns the
    /// unsynced tails of append-only files as they stand at this instant.
    pub fn freeze(&mut self) -> BTreeMap<PathBuf, Vec<u8>> {
        self.frozen = true;
        let mut tails = BTreeMap::new();
        for name in self.names.iter().filter(|n| append_only(n)) {
            let synced = self.data.get(name).map_or(&[][..], Vec::as_slice);
            if let Ok(live) = fs::read(self.root.join(name))
                && live.len() > synced.len()
                && live.starts_with(synced)
            {
                tails.insert(name.clone(), live[synced.len()..].to_vec());
            }
        }
        tails
    }

    /// Replaces the directory with the durable state, plus for each file in
    /// `torn` a prefix of its tail of the given length. The queue must be
    /// closed.
    pub fn restore(&self, tails: &BTreeMap<PathBuf, Vec<u8>>, torn: &BTreeMap<PathBuf, usize>) {
        if self.root.exists() {
            fs::remove_dir_all(&self.root).expect("remove the directory");
        }
        fs::create_dir_all(&self.root).expect("create the directory");
        for name in &self.names {
            let path = self.root.join(name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).expect("create a directory");
            }
            let mut bytes = self.data.get(name).cloned().unwrap_or_default();
            if let (Some(tail), Some(&n)) = (tails.get(name), torn.get(name)) {
                bytes.extend_from_slice(&tail[..n.min(tail.len())]);
            }
            fs::write(&path, bytes).expect("write a file");
        }
    }
}
