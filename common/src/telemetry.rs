//! Tracing set-up: `RUST_LOG`-style filter (default `info`), to stderr,
//! coloured only when stderr is a terminal (a log file or a collector gets
//! plain text) and `NO_COLOR` is not set.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init() {
    init_with_default("info");
}

/// Like [`init`], with another default level (tests use "warn").
pub fn init_with_default(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .try_init();
}
