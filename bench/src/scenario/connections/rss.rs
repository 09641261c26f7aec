//! The gateways' resident memory, read from `/proc/<pid>/status`.

use anyhow::Context;

/// VmRSS of each of `pids` in bytes (empty without pids).
pub(super) fn rss_all(pids: &[u32]) -> anyhow::Result<Vec<u64>> {
    pids.iter().map(|&pid| rss_of(pid)).collect()
}

/// VmRSS of `pid` in bytes.
fn rss_of(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .with_context(|| format!("no VmRSS in {path}"))?;
    Ok(kib * 1024)
}
