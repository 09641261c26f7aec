//! Configuration of a gateway: typed, defaulted, validated.
//!
//! Sources, later ones winning: built-in defaults, the TOML file given with
//! `--config`, environment variables `CONFAB_<SECTION>__<KEY>` (top-level keys
//! `CONFAB_<KEY>`), then command-line flags. `etc/gateway.toml` is the
//! commented sample; a test keeps it in sync with these structs.

use std::path::{Path, PathBuf};

use confab_router_client::MultiDevicePolicy;
use confab_tls::TlsFiles;
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
    /// HTTP, public: the web client at /, /healthz, /readyz, /ws
    /// (WebSocket), /v1/gateway; HTTPS
    /// and WSS with `[client_tls]`.
    pub http: String,
    /// HTTP, internal (never TLS, keep it off public networks): /metrics,
    /// /healthz, /readyz.
    pub metrics: String,
    /// Internal gRPC (Deliver from other gateways).
    pub grpc: String,
    /// The internal gRPC address other gateways reach this one at (registered
    /// with the routers); empty = the bound `grpc` address.
    pub advertise_grpc: String,
    /// The client TCP address `/v1/gateway` hands out; empty = the bound
    /// `listen` address.
    pub advertise_client: String,
    /// The WebSocket URL `/v1/gateway` hands out; empty = `ws://` (`wss://`
    /// with `[client_tls]`) and the bound `http` address, path `/ws`.
    pub advertise_ws: String,
    /// Where callers of one zone reach this gateway, when that differs
    /// from `advertise_client` and `advertise_ws` (a gateway on several
    /// networks: each zone gets the address it can route to).
    pub zone_addresses: Vec<ZoneAddressConfig>,
    /// Router seeds (gRPC).
    pub routers: Vec<String>,
    /// Persist processes (gRPC): the gateway subscribes to every one's
    /// commit stream; data access goes to the first whose stream is up.
    pub persist: Vec<String>,
    /// 1:1 messages between users who are not friends (false: refused).
    pub allow_strangers: bool,
    /// The web client at `/` on the public HTTP port (false: only the
    /// protocol endpoints are served there).
    pub web_client: bool,
    /// Log lines as "text" or "json" (CONFAB_LOG_FORMAT and --log-format
    /// override it).
    pub log_format: confab_common::telemetry::LogFormat,
    /// Traces: an OTLP/gRPC endpoint (empty: off) and the sampling ratio.
    pub tracing: confab_common::trace::TraceConfig,
    pub queue: QueueConfig,
    pub limits: LimitsConfig,
    pub session: SessionConfig,
    pub social: SocialConfig,
    /// What one user may do: message rate, resume tokens, read waits.
    pub user_limits: UserLimitsConfig,
    /// Network zones for `/v1/gateway`; empty = one zone with every gateway.
    pub zones: Vec<ZoneConfig>,
    /// Mutual TLS on the internal gRPC port and to routers, persist and
    /// other gateways: the cluster CA, this gateway's certificate (naming
    /// `confab://gateway/ID`) and key. Absent: plain and unauthenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// TLS on the client ports (TCP, and HTTPS/WSS on `http`): the
    /// certificate clients check and its key, read again on SIGHUP.
    /// Absent: both ports plain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_tls: Option<ClientTlsConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// The certificate chain, PEM (leaf first), naming the host names and
    /// addresses clients dial.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// A new connection's TLS handshake must be done within this long.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
}

/// `client_tls.handshake_timeout_ms` when not given.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

fn default_handshake_timeout_ms() -> u64 {
    DEFAULT_HANDSHAKE_TIMEOUT_MS
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
    /// For `amqp`: must match persist's queue settings. `amqps://...` for
    /// TLS (verified against the system's roots and `amqp_ca`).
    pub amqp_url: String,
    /// PEM file of the CA that issued the broker's certificate, trusted
    /// besides the system's roots (`amqps://` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amqp_ca: Option<PathBuf>,
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
    /// Bytes queued for one connection. While they are at this bound the
    /// connection's requests are not read (back pressure); pushes and
    /// answers past twice the bound disconnect it (slow consumer).
    pub send_queue_bytes: usize,
    /// A client that takes nothing of its queue for this long (a write
    /// blocked, or the queue kept full) is disconnected.
    pub send_stall_timeout_ms: u64,
    /// A connection silent this long is closed.
    pub idle_timeout_ms: u64,
    /// How often clients should ping (told in HelloOk).
    pub heartbeat_ms: u64,
    /// Open client connections at most (TCP and WebSocket).
    pub max_connections: usize,
    /// Open client connections from one address at most (an IPv4 address
    /// or an IPv6 /64; TCP and WebSocket together).
    pub max_connections_per_ip: u32,
    /// A new connection must have said Hello and logged in (or resumed)
    /// within this long, else it is closed (LOGIN_TIMEOUT); also after a
    /// logout.
    pub login_timeout_ms: u64,
    /// Login attempts from one address: this many at once, refilled at
    /// `login_per_ip_per_minute`.
    pub login_per_ip_burst: u32,
    pub login_per_ip_per_minute: u32,
    /// Password login attempts at one account from anywhere: this many at
    /// once, refilled at `login_per_account_per_minute`; a successful login
    /// gives its token back and resume is not counted.
    pub login_per_account_burst: u32,
    pub login_per_account_per_minute: u32,
    /// Registrations from one address: this many at once, refilled at
    /// `register_per_ip_per_minute`.
    pub register_per_ip_burst: u32,
    pub register_per_ip_per_minute: u32,
    /// Deadline of one call to another gateway or to persist.
    pub rpc_timeout_ms: u64,
    /// An HTTP request's headers must arrive within this long of the
    /// connection's first byte or of the previous response (slow clients
    /// holding connections open are closed).
    pub http_header_timeout_ms: u64,
    /// Open HTTP connections on the public port at most (a connection that
    /// upgrades to WebSocket leaves this count and counts against
    /// `max_connections` instead).
    pub max_http_connections: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UserLimitsConfig {
    /// Messages (1:1 and group) one user may send per second through this
    /// gateway, over all of its connections here (a token bucket refilled
    /// at this rate); 0 = no limit.
    pub messages_per_s: u32,
    /// How many messages a user may send at once after being quiet (the
    /// bucket's size).
    pub message_burst: u32,
    /// Items of a list answer (friends, members, groups, requests, changed
    /// conversations) when the client does not say.
    pub page_size: u32,
    /// Items of a list answer at most, whatever the client asks.
    pub max_page_size: u32,
    /// Reads (Fetch, History) of one connection that may wait at once for
    /// a message to be written (`min_message_id`, honoured only for the
    /// ids of messages the connection sent or was pushed lately); one more
    /// is BUSY.
    pub max_read_waits: u32,
    /// A sender may recall its message this long after sending it (by the
    /// message's server time); later is RECALL_WINDOW_PASSED.
    pub recall_window_ms: u64,
    /// One typing notice per connection and conversation is forwarded per
    /// this interval; one sooner is RATE_LIMITED.
    pub typing_interval_ms: u64,
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

/// One zone's view of this gateway (`[[zone_addresses]]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ZoneAddressConfig {
    /// The zone's name, as in `[[zones]]`.
    pub zone: String,
    /// The client TCP address callers in the zone connect to.
    pub client: String,
    /// The WebSocket URL for them; empty = the gateway's default.
    pub ws: String,
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
            metrics: "127.0.0.1:9201".into(),
            grpc: "127.0.0.1:7211".into(),
            advertise_grpc: String::new(),
            advertise_client: String::new(),
            advertise_ws: String::new(),
            zone_addresses: Vec::new(),
            routers: vec![
                "127.0.0.1:7101".into(),
                "127.0.0.1:7102".into(),
                "127.0.0.1:7103".into(),
            ],
            persist: vec!["127.0.0.1:7301".into()],
            allow_strangers: false,
            web_client: true,
            log_format: Default::default(),
            tracing: Default::default(),
            queue: QueueConfig::default(),
            limits: LimitsConfig::default(),
            session: SessionConfig::default(),
            social: SocialConfig::default(),
            user_limits: UserLimitsConfig::default(),
            zones: Vec::new(),
            tls: None,
            client_tls: None,
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            backend: QueueBackend::Remote,
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            amqp_ca: None,
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
            send_queue_bytes: 1 << 20,
            send_stall_timeout_ms: 30_000,
            idle_timeout_ms: 90_000,
            heartbeat_ms: 30_000,
            max_connections: 100_000,
            max_connections_per_ip: 256,
            login_timeout_ms: 10_000,
            login_per_ip_burst: 20,
            login_per_ip_per_minute: 30,
            login_per_account_burst: 10,
            login_per_account_per_minute: 10,
            register_per_ip_burst: 5,
            register_per_ip_per_minute: 5,
            rpc_timeout_ms: 5_000,
            http_header_timeout_ms: 10_000,
            max_http_connections: 10_000,
        }
    }
}

/// The longest recall window (7 days): a recall rewrites history for
/// every participant, so it is meant for second thoughts, not archives.
pub const MAX_RECALL_WINDOW_MS: u64 = 7 * 24 * 3600 * 1000;

impl Default for UserLimitsConfig {
    fn default() -> Self {
        Self {
            messages_per_s: 20,
            message_burst: 50,
            page_size: 100,
            max_page_size: 1000,
            max_read_waits: 4,
            recall_window_ms: 120_000,
            typing_interval_ms: 2_000,
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
        self.tracing.validate().map_err(Error::Config)?;
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
        if l.send_queue_bytes < 4 * l.max_frame_bytes as usize {
            return bad("limits.send_queue_bytes must be at least 4 * max_frame_bytes".into());
        }
        if l.send_stall_timeout_ms == 0 || l.login_timeout_ms == 0 {
            return bad("limits.send_stall_timeout_ms and limits.login_timeout_ms must be > 0".into());
        }
        if l.max_connections_per_ip == 0 {
            return bad("limits.max_connections_per_ip must be >= 1".into());
        }
        let rates = [
            l.login_per_ip_burst,
            l.login_per_ip_per_minute,
            l.login_per_account_burst,
            l.login_per_account_per_minute,
            l.register_per_ip_burst,
            l.register_per_ip_per_minute,
        ];
        if rates.contains(&0) {
            return bad("limits.login_* and limits.register_* bursts and rates must be >= 1".into());
        }
        if l.heartbeat_ms == 0 || l.idle_timeout_ms < 2 * l.heartbeat_ms {
            return bad("limits.idle_timeout_ms must be at least twice heartbeat_ms (> 0)".into());
        }
        if l.max_connections == 0 || l.rpc_timeout_ms == 0 {
            return bad("limits.max_connections and limits.rpc_timeout_ms must be > 0".into());
        }
        if l.http_header_timeout_ms == 0 || l.max_http_connections == 0 {
            return bad("limits.http_header_timeout_ms and limits.max_http_connections must be > 0".into());
        }
        if let Some(t) = &self.client_tls
            && t.handshake_timeout_ms == 0
        {
            return bad("client_tls.handshake_timeout_ms must be > 0".into());
        }
        let u = &self.user_limits;
        if u.messages_per_s > 0 && u.message_burst == 0 {
            return bad("user_limits.message_burst must be > 0 when messages_per_s is".into());
        }
        if u.page_size == 0 || u.max_page_size < u.page_size {
            return bad("user_limits.page_size must be > 0 and max_page_size >= page_size".into());
        }
        if u.max_read_waits == 0 {
            return bad("user_limits.max_read_waits must be > 0".into());
        }
        if u.recall_window_ms > MAX_RECALL_WINDOW_MS {
            return bad(format!(
                "user_limits.recall_window_ms must be at most {MAX_RECALL_WINDOW_MS} (7 days)"
            ));
        }
        if u.typing_interval_ms == 0 || u.typing_interval_ms > 60_000 {
            return bad("user_limits.typing_interval_ms must be in 1..=60000".into());
        }
        let s = &self.social;
        if s.cache_ttl_ms == 0 || s.cache_max_entries == 0 || s.gateway_poll_ms == 0 {
            return bad("social.cache_ttl_ms, cache_max_entries and gateway_poll_ms must be > 0".into());
        }
        if self.queue.partitions == 0 {
            return bad("queue.partitions must be > 0".into());
        }
        if self.queue.backend == QueueBackend::Amqp
            && let Some(ca) = &self.queue.amqp_ca
            && !self.queue.amqp_url.to_ascii_lowercase().starts_with("amqps://")
        {
            return bad(format!(
                "queue.amqp_ca ({}) is set but queue.amqp_url is not amqps://",
                ca.display()
            ));
        }
        for z in &self.zones {
            for c in &z.cidrs {
                crate::cidr::Cidr::parse(c).map_err(|e| Error::Config(format!("zone {}: {e}", z.name)))?;
            }
        }
        for (i, a) in self.zone_addresses.iter().enumerate() {
            if a.zone.is_empty() || a.client.is_empty() {
                return bad(format!("zone_addresses[{i}] needs a zone and a client address"));
            }
            if !self.zones.is_empty() && !self.zones.iter().any(|z| z.name == a.zone) {
                return bad(format!(
                    "zone_addresses[{i}]: no zone named {:?} in [[zones]]",
                    a.zone
                ));
            }
            if self.zone_addresses[..i].iter().any(|b| b.zone == a.zone) {
                return bad(format!("zone_addresses: zone {:?} given twice", a.zone));
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
        c.limits.http_header_timeout_ms = 0;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.client_tls = Some(ClientTlsConfig {
            cert: "c.pem".into(),
            key: "c.key".into(),
            handshake_timeout_ms: 0,
        });
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.zones = vec![ZoneConfig {
            name: "x".into(),
            cidrs: vec!["10.0.0.0/99".into()],
            gateways: vec![1],
        }];
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.user_limits.recall_window_ms = MAX_RECALL_WINDOW_MS + 1;
        assert!(c.validate().is_err());
        c.user_limits.recall_window_ms = 0;
        c.validate().expect("no recalls at all is a choice");
        let mut c = ok.clone();
        c.user_limits.typing_interval_ms = 0;
        assert!(c.validate().is_err());
        assert!(toml::from_str::<GatewayConfig>("nonsense = 1").is_err());
    }

    #[test]
    fn a_broker_ca_file_needs_an_amqps_url() {
        let mut c = GatewayConfig::default();
        c.queue.backend = QueueBackend::Amqp;
        c.queue.amqp_ca = Some("/etc/confab/broker-ca.pem".into());
        let e = c.validate().expect_err("a CA file with amqp://").to_string();
        assert!(e.contains("not amqps://"), "{e}");
        c.queue.amqp_url = "amqps://guest:guest@broker.example:5671/%2f".into();
        c.validate().expect("amqps:// with a CA file");
    }

    #[test]
    fn client_tls_section_parses_with_its_default_deadline() {
        let c: GatewayConfig =
            toml::from_str("[client_tls]\ncert = \"gw.pem\"\nkey = \"gw.key\"\n").expect("parse");
        let t = c.client_tls.expect("section");
        assert_eq!(t.cert, PathBuf::from("gw.pem"));
        assert_eq!(t.handshake_timeout_ms, 10_000);
        assert!(toml::from_str::<GatewayConfig>("[client_tls]\ncert = \"gw.pem\"\n").is_err());
    }
}
