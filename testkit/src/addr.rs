//! Free loopback addresses for services that must be told their address
//! before they start (a child process, a peer list written in advance).
//! A service that takes its listener should get one bound on port 0
//! instead.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;

/// Every port handed out by this process so far.
static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A 127.0.0.1 address whose port the kernel just gave out as free, never
/// one this process has handed out before: tests run in parallel, and a
/// port released here is free for the kernel to give out again before the
/// service it was picked for binds it. (Another process can still take it
/// first; a caller that cares retries on "Address already in use".)
pub fn free_socket_addr() -> std::io::Result<SocketAddr> {
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    // Hold every candidate until a new one comes: a port just dropped is
    // the kernel's likely next answer.
    let mut held = Vec::new();
    loop {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        if given.insert(addr.port()) {
            return Ok(addr);
        }
        held.push(listener);
    }
}

/// [`free_socket_addr`] as `127.0.0.1:PORT`; panics when no port can be
/// bound.
pub fn free_addr() -> String {
    free_socket_addr().expect("a free loopback port").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_the_same_port_twice() {
        let mut seen = BTreeSet::new();
        for _ in 0..200 {
            let addr = free_addr();
            assert!(addr.starts_with("127.0.0.1:"), "{addr}");
            assert!(seen.insert(addr.clone()), "{addr} handed out twice");
        }
    }
}
