//! Where the workspace's binaries are, for tests and tools that start them
//! as processes.

use std::path::{Path, PathBuf};

/// Where binary `name` is: `$CONFAB_BIN_DIR/name`; else beside the running
/// executable, or one directory up (a test binary lives in
/// `target/<profile>/deps/`, the binaries in `target/<profile>/`). `Err`
/// holds the path where it was expected.
pub fn find_bin(name: &str) -> Result<PathBuf, PathBuf> {
    if let Some(dir) = std::env::var_os("CONFAB_BIN_DIR") {
        let path = PathBuf::from(dir).join(name);
        return if path.exists() { Ok(path) } else { Err(path) };
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let here = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let beside = here.join(name);
    let above = here
        .parent()
        .map(|p| p.join(name))
        .unwrap_or_else(|| beside.clone());
    [beside, above.clone()]
        .into_iter()
        .find(|p| p.exists())
        .ok_or(above)
}

/// [`find_bin`] for tests: a missing binary fails the test, naming it and
/// how to build it.
pub fn workspace_bin(name: &str) -> PathBuf {
    find_bin(name).unwrap_or_else(|path| {
        panic!(
            "binary {name} not found at {} (build it with `cargo build --workspace --bins` or set CONFAB_BIN_DIR)",
            path.display()
        )
    })
}
