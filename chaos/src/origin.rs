//! Which router process opened a TCP connection, from `/proc` (Linux).
//!
//! Every router advertises one address, the same for everyone (the cluster
//! map and the Raft membership carry it), so a proxy cannot be put on a link
//! by giving each node its own address book. Instead one proxy stands in
//! front of each node and tells its callers apart: the kernel lists every
//! TCP socket with its inode in `/proc/net/tcp`, and each process's open
//! sockets appear as `socket:[inode]` links in `/proc/<pid>/fd`. The socket
//! whose local address is the accepted connection's peer address and whose
//! remote address is the proxy belongs to the caller; the router process
//! holding that inode is the caller. Anything else (test clients) is
//! [`Origin::Client`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::RwLock;

use serde::Serialize;

/// One end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Origin {
    /// A router process, by node id.
    Node(u64),
    /// Anything that is not a known router process.
    Client,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Node(id) => write!(f, "node {id}"),
            Origin::Client => f.write_str("client"),
        }
    }
}

/// node id -> pid of its running process, kept current by the cluster.
#[derive(Debug, Clone, Default)]
pub struct Pids(Arc<RwLock<BTreeMap<u64, u32>>>);

impl Pids {
    pub fn set(&self, node: u64, pid: u32) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node, pid);
    }

    pub fn remove(&self, node: u64) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).remove(&node);
    }

    fn all(&self) -> Vec<(u64, u32)> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(n, p)| (*n, *p))
            .collect()
    }

    /// The router process that owns the caller's end of an accepted
    /// connection (`peer` as seen by the acceptor at `local`).
    pub fn origin_of(&self, peer: SocketAddr, local: SocketAddr) -> Origin {
        let (SocketAddr::V4(peer), SocketAddr::V4(local)) = (peer, local) else {
            return Origin::Client;
        };
        let Some(inode) = socket_inode(peer, local) else {
            return Origin::Client;
        };
        let needle = format!("socket:[{inode}]");
        for (node, pid) in self.all() {
            if process_holds(pid, &needle) {
                return Origin::Node(node);
            }
        }
        Origin::Client
    }
}

/// The inode of the IPv4 socket whose local end is `local_end` and whose
/// remote end is `remote_end`.
pub fn socket_inode(local_end: SocketAddrV4, remote_end: SocketAddrV4) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    find_inode(&table, local_end, remote_end)
}

/// [`socket_inode`] over the text of a `/proc/net/tcp` table.
pub fn find_inode(table: &str, local_end: SocketAddrV4, remote_end: SocketAddrV4) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
        if fields.len() < 10 {
            return None;
        }
        let local = parse_addr(fields[1])?;
        let remote = parse_addr(fields[2])?;
        (local == local_end && remote == remote_end)
            .then(|| fields[9].parse().ok())
            .flatten()
    })
}

/// `0100007F:1F90` (the address as the kernel's native-endian u32 in hex,
/// the port in hex) -> 127.0.0.1:8080.
pub fn parse_addr(field: &str) -> Option<SocketAddrV4> {
    let (ip, port) = field.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), port))
}

fn process_holds(pid: u32, needle: &str) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str().to_str() == Some(needle))
    })
}
