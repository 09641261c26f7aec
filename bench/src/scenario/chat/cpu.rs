//! CPU time the cluster's processes spend over the measured window
//! (`--cpu-pid`), read from `/proc/<pid>/stat` (user + system time of every
//! thread, exited ones included). Per message it is a steadier figure than
//! a saturated closed loop's throughput, which swings from run to run with
//! scheduling on a small machine.

use anyhow::{Context, bail};
use tokio::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat`'s times: Linux's USER_HZ,
/// fixed at 100 on every architecture Confab builds for.
const USER_HZ: f64 = 100.0;

/// User + system seconds `pid` has used so far.
pub(super) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("--cpu-pid {pid}: reading {path}"))?;
    parse_stat(&text).with_context(|| format!("--cpu-pid {pid}: {path} is not a stat line"))
}

fn parse_stat(text: &str) -> anyhow::Result<f64> {
    // The command name (field 2) is in parentheses and may hold spaces:
    // count fields after its closing one. utime and stime are fields 14
    // and 15, so the 12th and 13th after it.
    let Some((_, rest)) = text.rsplit_once(')') else {
        bail!("no command name");
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (Some(utime), Some(stime)) = (fields.get(11), fields.get(12)) else {
        bail!("too few fields");
    };
    let ticks = utime.parse::<u64>()? + stime.parse::<u64>()?;
    Ok(ticks as f64 / USER_HZ)
}

/// The processes' CPU seconds between `from` and `to`, summed.
pub(super) async fn over_window(pids: Vec<u32>, from: Instant, to: Instant) -> anyhow::Result<f64> {
    tokio::time::sleep_until(from).await;
    let before: Vec<f64> = pids
        .iter()
        .map(|&p| cpu_seconds(p))
        .collect::<anyhow::Result<_>>()?;
    tokio::time::sleep_until(to).await;
    let mut used = 0.0;
    for (pid, b) in pids.iter().zip(before) {
        used += cpu_seconds(*pid)? - b;
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_system_time_past_a_name_with_spaces() {
        let line = "4242 (confab gateway) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 75 0 0 20 0 9 0 1 2 3";
        assert!((parse_stat(line).unwrap() - 3.25).abs() < 1e-9);
        assert!(parse_stat("4242 (x) S 1 2").is_err());
        assert!(parse_stat("no name").is_err());
    }

    #[test]
    fn reads_this_process() {
        assert!(cpu_seconds(std::process::id()).unwrap() >= 0.0);
        assert!(cpu_seconds(u32::MAX).is_err());
    }
}
