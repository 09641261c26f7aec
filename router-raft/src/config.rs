//! Configuration of a router node: typed, defaulted, validated.
//!
//! Sources, later ones winning: built-in defaults, the TOML file given with
//! `--config`, environment variables `CONFAB_<SECTION>__<KEY>` (top-level keys
//! `CONFAB_<KEY>`), then command-line flags. `etc/router.toml` is the
//! commented sample; a test keeps it in sync with these structs.

use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;

use anyhow::Context;
use anyhow::bail;
use serde::Deserialize;
use serde::Serialize;

use confab_tls::TlsFiles;

use crate::types::NodeId;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    /// Raft node id of this router; unique for the life of the cluster.
    pub id: NodeId,
    /// gRPC address (client and Raft traffic).
    pub listen: String,
    /// HTTP address for /metrics, /healthz and /readyz.
    pub http: String,
    /// Where the RocksDB of this node lives.
    pub data_dir: PathBuf,
    /// Create a new cluster from `peers` (ignored when the data dir holds one).
    pub bootstrap: bool,
    /// id -> gRPC address of every initial member, for `bootstrap`.
    #[serde(with = "peer_map")]
    pub peers: BTreeMap<NodeId, String>,
    /// gRPC address of a member of an existing cluster to join.
    pub join: Option<String>,
    /// Gateway lease in milliseconds: a gateway silent this long is purged.
    pub lease_ms: u64,
    /// On SIGTERM, how long to wait for this node's leaderships to move to
    /// other voters before stopping anyway, in milliseconds.
    pub handoff_ms: u64,
    /// How long a node that gave a shard replica away keeps a tombstone
    /// naming the shard's new replicas, in milliseconds: while it lasts,
    /// callers with an old map are redirected in one round trip; after it,
    /// they get `ShardNotFound` and re-read the map. 0 keeps none.
    pub tombstone_ms: u64,
    pub read: ReadMode,
    /// Log lines as "text" or "json" (CONFAB_LOG_FORMAT and --log-format
    /// override it).
    pub log_format: confab_common::telemetry::LogFormat,
    /// Traces: an OTLP/gRPC endpoint (empty: off) and the sampling ratio.
    pub tracing: confab_common::trace::TraceConfig,
    pub cluster: ClusterConfig,
    pub raft: RaftConfig,
    /// Mutual TLS on the gRPC port and to every other router: the cluster
    /// CA, this router's certificate (naming `confab://router/ID`) and key.
    /// Absent: plain and unauthenticated (a trusted network only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
}

/// How a linearizable read confirms leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// Leader lease (no round trip while the lease holds), read-index otherwise.
    Lease,
    /// Read-index: a heartbeat round to a quorum for each read.
    ReadIndex,
}

impl ReadMode {
    pub fn policy(self) -> openraft::ReadPolicy {
        match self {
            ReadMode::Lease => openraft::ReadPolicy::LeaseRead,
            ReadMode::ReadIndex => openraft::ReadPolicy::ReadIndex,
        }
    }
}

/// The layout written at bootstrap; fixed afterwards (moves change it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Hash slots of the key space.
    pub slots: u32,
    /// Shards the slots are split into.
    pub shards: u32,
    /// Replicas per shard.
    pub replicas: usize,
    /// Voters of the meta group (the other nodes are learners).
    pub meta_voters: usize,
    /// Mixed with the bootstrap peer list into the cluster id that every
    /// Raft message carries: two clusters bootstrapped from the same peer
    /// list need different names to tell each other's traffic apart.
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Applied entries after which a snapshot is taken and the log purged.
    pub snapshot_after_logs: u64,
    /// Entries kept in the log behind a snapshot, for slow followers.
    pub logs_kept_after_snapshot: u64,
    /// Smallest timeout of one Raft RPC (openraft budgets a heartbeat interval).
    pub rpc_timeout_ms: u64,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            id: 1,
            listen: "127.0.0.1:7101".into(),
            http: "127.0.0.1:9101".into(),
            data_dir: PathBuf::from(".cluster/router-1"),
            bootstrap: false,
            peers: BTreeMap::new(),
            join: None,
            lease_ms: 5000,
            handoff_ms: 3000,
            tombstone_ms: 600_000,
            read: ReadMode::Lease,
            log_format: Default::default(),
            tracing: Default::default(),
            cluster: ClusterConfig::default(),
            raft: RaftConfig::default(),
            tls: None,
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            slots: 4096,
            shards: 16,
            replicas: 3,
            meta_voters: 3,
            name: "confab".into(),
        }
    }
}

impl Default for RaftConfig {
    fn default() -> Self {
        Self {
            heartbeat_ms: 60,
            election_min_ms: 250,
            election_max_ms: 450,
            snapshot_after_logs: 20_000,
            logs_kept_after_snapshot: 5_000,
            rpc_timeout_ms: 300,
        }
    }
}

impl RaftConfig {
    pub fn to_openraft(&self) -> anyhow::Result<openraft::Config> {
        let c = openraft::Config {
            cluster_name: "confab-router".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_min_ms,
            election_timeout_max: self.election_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_after_logs),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            enable_pre_vote: Some(true),
            ..Default::default()
        };
        Ok(c.validate()?)
    }
}

impl RouterConfig {
    /// Defaults, then `file`, then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        confab_common::config::load(file).map_err(|e| match e {
            confab_common::Error::Config(invalid) => {
                anyhow::Error::new(*invalid).context("invalid router configuration")
            }
            other => other.into(),
        })
    }

    pub fn handoff_budget(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.handoff_ms)
    }

    pub fn tombstone_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.tombstone_ms)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.tracing.validate().map_err(anyhow::Error::msg)?;
        if self.id == 0 {
            bail!("id must be > 0 (0 means \"no node\" on the wire)");
        }
        if self.bootstrap && self.join.is_some() {
            bail!("bootstrap and join exclude each other");
        }
        if self.bootstrap && !self.peers.contains_key(&self.id) {
            bail!("bootstrap peers must include this node's id {}", self.id);
        }
        if self.bootstrap && self.peers.contains_key(&0) {
            bail!("peer id 0 is reserved");
        }
        let c = &self.cluster;
        if c.slots == 0 || c.shards == 0 || c.shards > c.slots {
            bail!("need 0 < shards ({}) <= slots ({})", c.shards, c.slots);
        }
        if c.replicas == 0 || c.meta_voters == 0 {
            bail!("replicas and meta_voters must be > 0");
        }
        if self.lease_ms < 3 * self.raft.heartbeat_ms {
            bail!("lease_ms ({}) must be at least 3 heartbeats", self.lease_ms);
        }
        self.raft.to_openraft()?;
        Ok(())
    }
}

/// TOML keys are strings: the peer map is written with string ids and read
/// back into numbers.
mod peer_map {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde::Deserializer;
    use serde::Serializer;
    use serde::de::Error;

    use crate::types::NodeId;

    pub fn serialize<S: Serializer>(peers: &BTreeMap<NodeId, String>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(peers.iter().map(|(id, addr)| (id.to_string(), addr)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<NodeId, String>, D::Error> {
        BTreeMap::<String, String>::deserialize(d)?
            .into_iter()
            .map(|(id, addr)| {
                let id = id
                    .parse::<NodeId>()
                    .map_err(|_| D::Error::custom(format!("peer id `{id}` is not a number")))?;
                Ok((id, addr))
            })
            .collect()
    }
}

/// Parses `1=127.0.0.1:7101,2=...`.
pub fn parse_peers(s: &str) -> anyhow::Result<BTreeMap<NodeId, String>> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .with_context(|| format!("peer `{part}` is not ID=ADDR"))?;
        let id: NodeId = id.trim().parse().with_context(|| format!("peer id `{id}`"))?;
        if out.insert(id, addr.trim().to_string()).is_some() {
            bail!("peer id {id} given twice");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_config_matches_the_structs() {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/router.toml");
        let text = std::fs::read_to_string(&sample).expect("etc/router.toml exists");
        let parsed: RouterConfig = toml::from_str(&text).expect("sample parses with deny_unknown_fields");
        parsed.validate().expect("sample validates");
    }

    #[test]
    fn peers_parse_and_reject_garbage() {
        let p = parse_peers("1=127.0.0.1:7101, 2=127.0.0.1:7102").expect("parses");
        assert_eq!(p.len(), 2);
        assert_eq!(p[&2], "127.0.0.1:7102");
        assert!(parse_peers("1:127.0.0.1").is_err());
        assert!(parse_peers("x=a").is_err());
        assert!(parse_peers("1=a,1=b").is_err());
    }

    #[test]
    fn validation_catches_contradictions() {
        let mut c = RouterConfig {
            bootstrap: true,
            ..Default::default()
        };
        assert!(c.validate().is_err(), "bootstrap without peers");
        c.peers.insert(1, "127.0.0.1:1".into());
        c.validate().expect("valid");
        c.join = Some("x".into());
        assert!(c.validate().is_err());
    }
}
