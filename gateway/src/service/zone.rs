//! Network zones for `GET /v1/gateway`: which gateways a caller's address
//! can reach, and [`choose`], the pick among the live ones.

use std::net::IpAddr;

use confab_proto::gateway::LoadReply;
use serde::Serialize;

use crate::cidr::Cidr;
use crate::config::ZoneConfig;

/// The answer of `GET /v1/gateway`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pick {
    pub gateway_id: u64,
    /// Client TCP address of the gateway, as the caller's zone reaches it.
    pub addr: String,
    /// Its WebSocket URL, as the caller's zone reaches it.
    pub ws_url: String,
    pub zone: String,
    pub connections: u32,
}

/// Why there is no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoPick {
    /// Zones are configured and none covers the caller.
    NoZone,
    /// The caller's zone has no live gateway.
    NoLiveGateway { zone: String },
}

/// The zone name used when no zones are configured.
pub const DEFAULT_ZONE: &str = "default";

/// The least-loaded gateway among `live` (their loads) that the zone of
/// `ip` can reach; ties go to the lower gateway id. A zone listing no
/// gateway ids reaches every gateway.
pub fn choose(zones: &[ZoneConfig], ip: IpAddr, live: &[LoadReply]) -> Result<Pick, NoPick> {
    let (zone, allowed): (&str, &[u64]) = match zone_of(zones, ip) {
        Some(z) => (&z.name, &z.gateways),
        None if zones.is_empty() => (DEFAULT_ZONE, &[]),
        None => return Err(NoPick::NoZone),
    };
    live.iter()
        .filter(|l| allowed.is_empty() || allowed.contains(&l.gateway_id))
        .min_by_key(|l| (l.connections, l.gateway_id))
        .map(|l| {
            let here = l.zone_addresses.iter().find(|a| a.zone == zone);
            Pick {
                gateway_id: l.gateway_id,
                addr: here.map_or(&l.client_addr, |a| &a.client_addr).clone(),
                ws_url: here.map_or(&l.ws_url, |a| &a.ws_url).clone(),
                zone: zone.to_owned(),
                connections: l.connections,
            }
        })
        .ok_or_else(|| NoPick::NoLiveGateway {
            zone: zone.to_owned(),
        })
}

/// The zone of `ip`: the first zone with a matching cidr, else the first
/// zone without cidrs (the fallback). `None` when zones are configured and
/// none fits.
pub fn zone_of(zones: &[ZoneConfig], ip: IpAddr) -> Option<&ZoneConfig> {
    zones
        .iter()
        .find(|z| {
            z.cidrs
                .iter()
                .filter_map(|c| Cidr::parse(c).ok())
                .any(|c| c.contains(ip))
        })
        .or_else(|| zones.iter().find(|z| z.cidrs.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(gateway_id: u64, connections: u32) -> LoadReply {
        LoadReply {
            gateway_id,
            connections,
            client_addr: format!("10.0.0.{gateway_id}:7201"),
            ws_url: format!("ws://10.0.0.{gateway_id}:8201/ws"),
            zone_addresses: Vec::new(),
        }
    }

    fn zones() -> Vec<ZoneConfig> {
        let z = |name: &str, cidrs: &[&str], gateways: &[u64]| ZoneConfig {
            name: name.into(),
            cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
            gateways: gateways.to_vec(),
        };
        vec![
            z("subnet-1", &["10.1.0.0/16"], &[1, 2]),
            z("subnet-2", &["10.2.0.0/16", "fd00:2::/32"], &[3]),
            z("public", &[], &[2, 3]),
        ]
    }

    fn pick(zones: &[ZoneConfig], ip: &str, live: &[LoadReply]) -> Result<(String, u64), NoPick> {
        choose(zones, ip.parse().expect("ip"), live).map(|p| (p.zone, p.gateway_id))
    }

    #[test]
    fn the_callers_zone_gets_its_least_loaded_live_gateway() {
        let zones = zones();
        let live = [load(1, 50), load(2, 10), load(3, 0)];
        // Gateway 3 is the least loaded overall, but not in subnet-1.
        assert_eq!(pick(&zones, "10.1.4.5", &live), Ok(("subnet-1".into(), 2)));
        assert_eq!(pick(&zones, "10.2.0.9", &live), Ok(("subnet-2".into(), 3)));
        assert_eq!(pick(&zones, "fd00:2::7", &live), Ok(("subnet-2".into(), 3)));
        // Loads change: the pick follows.
        let live = [load(1, 5), load(2, 10), load(3, 0)];
        assert_eq!(pick(&zones, "10.1.4.5", &live), Ok(("subnet-1".into(), 1)));
        let p = choose(&zones, "10.1.4.5".parse().expect("ip"), &live).expect("pick");
        assert_eq!((p.addr.as_str(), p.connections), ("10.0.0.1:7201", 5));
    }

    #[test]
    fn other_callers_fall_back_to_public() {
        let zones = zones();
        let live = [load(1, 0), load(2, 7), load(3, 3)];
        assert_eq!(pick(&zones, "8.8.8.8", &live), Ok(("public".into(), 3)));
        assert_eq!(pick(&zones, "::ffff:8.8.8.8", &live), Ok(("public".into(), 3)));
        // Ties go to the lower id.
        let live = [load(3, 2), load(2, 2)];
        assert_eq!(pick(&zones, "8.8.8.8", &live), Ok(("public".into(), 2)));
    }

    #[test]
    fn dead_gateways_are_never_picked() {
        let zones = zones();
        // Only live gateways are passed in: gateway 3 is dead.
        let live = [load(1, 100), load(2, 100)];
        assert_eq!(
            pick(&zones, "10.2.1.1", &live),
            Err(NoPick::NoLiveGateway {
                zone: "subnet-2".into()
            })
        );
        // Public reaches 2 and 3: 3 is dead, 2 answers however loaded.
        assert_eq!(pick(&zones, "8.8.8.8", &live), Ok(("public".into(), 2)));
        assert_eq!(
            pick(&zones, "8.8.8.8", &[load(1, 0)]),
            Err(NoPick::NoLiveGateway {
                zone: "public".into()
            })
        );
    }

    #[test]
    fn without_zones_everyone_reaches_every_gateway_and_without_fallback_strangers_get_none() {
        let live = [load(1, 9), load(2, 4)];
        assert_eq!(pick(&[], "192.168.1.1", &live), Ok((DEFAULT_ZONE.into(), 2)));
        let mut zones = zones();
        zones.retain(|z| z.name != "public");
        assert_eq!(pick(&zones, "8.8.8.8", &live), Err(NoPick::NoZone));
        // A zone without gateway ids reaches them all.
        zones[0].gateways.clear();
        assert_eq!(
            pick(&zones, "10.1.0.1", &[load(7, 1), load(8, 0)]),
            Ok(("subnet-1".into(), 8))
        );
    }

    #[test]
    fn each_zone_gets_the_address_it_can_reach() {
        let zones = zones();
        let mut two = load(2, 0);
        two.zone_addresses = vec![confab_proto::gateway::ZoneAddress {
            zone: "subnet-1".into(),
            client_addr: "10.1.0.2:7201".into(),
            ws_url: "ws://10.1.0.2:8201/ws".into(),
        }];
        let live = [load(1, 5), two];
        let p = choose(&zones, "10.1.9.9".parse().expect("ip"), &live).expect("pick");
        assert_eq!(
            (p.gateway_id, p.addr.as_str(), p.ws_url.as_str()),
            (2, "10.1.0.2:7201", "ws://10.1.0.2:8201/ws")
        );
        // Public has no address of its own there: the default ones.
        let p = choose(&zones, "8.8.8.8".parse().expect("ip"), &live).expect("pick");
        assert_eq!(
            (p.gateway_id, p.addr.as_str(), p.ws_url.as_str()),
            (2, "10.0.0.2:7201", "ws://10.0.0.2:8201/ws")
        );
    }

    #[test]
    fn zones_fall_back_to_the_public_one() {
        let z = |name: &str, cidrs: &[&str]| ZoneConfig {
            name: name.into(),
            cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
            gateways: vec![],
        };
        let zones = vec![
            z("subnet-1", &["10.1.0.0/16"]),
            z("subnet-2", &["10.2.0.0/16"]),
            z("public", &[]),
        ];
        let name = |ip: &str| zone_of(&zones, ip.parse().expect("ip")).map(|z| z.name.clone());
        assert_eq!(name("10.1.1.1").as_deref(), Some("subnet-1"));
        assert_eq!(name("10.2.1.1").as_deref(), Some("subnet-2"));
        assert_eq!(name("8.8.8.8").as_deref(), Some("public"));
    }
}
