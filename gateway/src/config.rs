//! Configuration of a gateway: typed, defaulted, validated.
//!
//! Sources, later ones winning: built-in defaults, the TOML file given with
//! `--config`, environment variables `CONFAB_<SECTION>__<KEY>` (top-level keys
//! `CONFAB_<KEY>`), then command-line flags. `etc/gateway.toml` is the
//! commented sample; a test keeps it in sync with these structs.

use std::path::Path;

use confab_router_client::MultiDevicePolicy;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use confab_common::ids::MAX_WORKER;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Gateway id: unique among live gateways, 1..=1023 (the worker id of
    /// the message ids this gateway assigns).
    pub id: u64,
    /// Client protocol over TCP.
    pub listen: String,
    /// HTTP: /metrics, /healthz, /readyz, /ws (WebSocket), /v1/gateway.
    pub http: String,
    /// Internal gRPC (Deliver from other gateways).
    pub grpc: String,
    /// The internal gRPC address other gateways reach this one at (registered
    /// with the routers); empty = the bound `grpc` address.
    pub advertise_grpc: String,
    /// The client TCP address `/v1/gateway` hands out; empty = the bound
    /// `listen` address.
    pub advertise_client: String,
    /// Router seeds (gRPC).
    pub routers: Vec<String>,
    /// Persist processes (gRPC): the first serves data access; the gateway
    /// subscribes to every one's commit stream.
    pub persist: Vec<String>,
    /// 1:1 messages between users who are not friends (false: refused).
    pub allow_strangers: bool,
    pub queue: QueueConfig,
    pub limits: LimitsConfig,
    pub session: SessionConfig,
    pub social: SocialConfig,
    /// Network zones for `/v1/gateway`; empty = one zone with every gateway.
    pub zones: Vec<ZoneConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueBackend {
    /// The embedded queue of the first persist process, over gRPC.
    Remote,
    /// RabbitMQ, publisher-confirmed.
    Amqp,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub backend: QueueBackend,
    /// For `amqp`: must match persist's queue settings.
    pub amqp_url: String,
    pub prefix: String,
    pub partitions: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest client frame (bytes, without the length prefix).
    pub max_frame_bytes: u32,
    /// Longest message body (bytes); persist's limit must not be lower.
    pub max_body_bytes: usize,
    /// Frames queued for one connection; a client that lets it fill is
    /// disconnected (slow consumer).
    pub send_queue_frames: usize,
    /// A connection silent this long is closed.
    pub idle_timeout_ms: u64,
    /// How often clients should ping (told in HelloOk).
    pub heartbeat_ms: u64,
    /// Open client connections at most (TCP and WebSocket).
    pub max_connections: usize,
    /// Deadline of one call to another gateway or to persist.
    pub rpc_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    AllowAll,
    OnePerKind,
    OneInAll,
}

impl Policy {
    pub fn to_wire(self) -> MultiDevicePolicy {
        match self {
            Policy::AllowAll => MultiDevicePolicy::AllowAll,
            Policy::OnePerKind => MultiDevicePolicy::OnePerKind,
            Policy::OneInAll => MultiDevicePolicy::OneInAll,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Which sessions a new login kicks (decided by the router).
    pub multi_device_policy: Policy,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SocialConfig {
    /// Friend lists and group member lists cached here live at most this
    /// long (changes made through any gateway invalidate them at once; the
    /// age bounds the damage of a lost invalidation).
    pub cache_ttl_ms: u64,
    /// Cached friend lists plus member lists at most (cleared when full).
    pub cache_max_entries: usize,
    /// How often the live gateway list is read from the routers: a gateway
    /// leaving it (dead, lease expired) turns its users offline for their
    /// friends here.
    pub gateway_poll_ms: u64,
    /// Friend lists with presence are answered from this gateway's copy of
    /// the friends' sessions (one batch router lookup, then kept current by
    /// presence pushes and the dead-gateway watch); a list finding the copy
    /// older than this re-reads the routers in the background. 0 = every
    /// list reads the routers itself.
    pub presence_max_age_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ZoneConfig {
    pub name: String,
    /// Caller networks of this zone ("10.1.0.0/16"); a zone without any is
    /// the fallback (e.g. "public").
    pub cidrs: Vec<String>,
    /// Gateway ids reachable from this zone.
    pub gateways: Vec<u64>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            id: 1,
            listen: "127.0.0.1:7201".into(),
            http: "127.0.0.1:8201".into(),
            grpc: "127.0.0.1:7211".into(),
            advertise_grpc: String::new(),
            advertise_client: String::new(),
            routers: vec![
                "127.0.0.1:7101".into(),
                "127.0.0.1:7102".into(),
                "127.0.0.1:7103".into(),
            ],
            persist: vec!["127.0.0.1:7301".into()],
            allow_strangers: false,
            queue: QueueConfig::default(),
            limits: LimitsConfig::default(),
            session: SessionConfig::default(),
            social: SocialConfig::default(),
            zones: Vec::new(),
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            backend: QueueBackend::Remote,
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            prefix: "confab.messages".into(),
            partitions: 16,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 65_536,
            max_body_bytes: 4096,
            send_queue_frames: 256,
            idle_timeout_ms: 90_000,
            heartbeat_ms: 30_000,
            max_connections: 100_000,
            rpc_timeout_ms: 5_000,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            multi_device_policy: Policy::OnePerKind,
        }
    }
}

impl Default for SocialConfig {
    fn default() -> Self {
        Self {
            cache_ttl_ms: 60_000,
            cache_max_entries: 100_000,
            gateway_poll_ms: 500,
            presence_max_age_ms: 1000,
        }
    }
}

impl GatewayConfig {
    /// Defaults, then `file`, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        confab_common::config::load(file).map_err(|e| {
            Error::Config(match e {
                confab_common::Error::Config(invalid) => {
                    format!("invalid gateway configuration: {invalid}")
                }
                other => other.to_string(),
            })
        })
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.id == 0 || self.id > MAX_WORKER {
            return bad(format!("id must be in 1..={MAX_WORKER} (it is {})", self.id));
        }
        if self.routers.is_empty() {
            return bad("routers: at least one router address is needed".into());
        }
        if self.persist.is_empty() {
            return bad("persist: at least one persist address is needed".into());
        }
        let l = &self.limits;
        if l.max_frame_bytes < 1024 {
            return bad("limits.max_frame_bytes must be at least 1024".into());
        }
        if l.max_body_bytes == 0 || l.max_body_bytes + 1024 > l.max_frame_bytes as usize {
            return bad("limits.max_body_bytes must be > 0 and leave 1 KiB of the frame limit".into());
        }
        if l.send_queue_frames < 8 {
            return bad("limits.send_queue_frames must be at least 8".into());
        }
        if l.heartbeat_ms == 0 || l.idle_timeout_ms < 2 * l.heartbeat_ms {
            return bad("limits.idle_timeout_ms must be at least twice heartbeat_ms (> 0)".into());
        }
        if l.max_connections == 0 || l.rpc_timeout_ms == 0 {
            return bad("limits.max_connections and limits.rpc_timeout_ms must be > 0".into());
        }
        let s = &self.social;
        if s.cache_ttl_ms == 0 || s.cache_max_entries == 0 || s.gateway_poll_ms == 0 {
            return bad("social.cache_ttl_ms, cache_max_entries and gateway_poll_ms must be > 0".into());
        }
        if self.queue.partitions == 0 {
            return bad("queue.partitions must be > 0".into());
        }
        for z in &self.zones {
            for c in &z.cidrs {
                crate::cidr::Cidr::parse(c).map_err(|e| Error::Config(format!("zone {}: {e}", z.name)))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_config_parses_strictly_and_validates() {
        let text = include_str!("../../etc/gateway.toml");
        let c: GatewayConfig = toml::from_str(text).expect("etc/gateway.toml matches GatewayConfig");
        c.validate().expect("sample is valid");
        let d = GatewayConfig {
            zones: c.zones.clone(),
            ..Default::default()
        };
        assert_eq!(c, d, "etc/gateway.toml lists the defaults");
    }

    #[test]
    fn validate_rejects_nonsense() {
        let ok = GatewayConfig::default();
        ok.validate().expect("defaults are valid");
        let mut c = ok.clone();
        c.id = 0;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.id = 1024;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.limits.idle_timeout_ms = c.limits.heartbeat_ms;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.zones = vec![ZoneConfig {
            name: "x".into(),
            cidrs: vec!["10.0.0.0/99".into()],
            gateways: vec![1],
        }];
        assert!(c.validate().is_err());
        assert!(toml::from_str::<GatewayConfig>("nonsense = 1").is_err());
    }
}
