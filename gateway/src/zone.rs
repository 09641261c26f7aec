//! Network zones for `GET /v1/gateway`: which gateways a caller's address
//! can reach.

use std::net::IpAddr;

use crate::config::ZoneConfig;

/// An IPv4 or IPv6 network, "10.1.0.0/16".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not ADDR/PREFIX"))?;
        let net: IpAddr = ip.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let prefix: u8 = prefix.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!("{s:?}: prefix longer than {max}"));
        }
        Ok(Self { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> (u128, u32) {
            match a {
                IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        };
        let ip = match ip {
            IpAddr::V6(v) => v.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let ((n, nw), (a, aw)) = (bits(self.net), bits(ip));
        if nw != aw {
            return false;
        }
        if self.prefix == 0 {
            return true;
        }
        let mask = u128::MAX << (128 - u32::from(self.prefix));
        n & mask == a & mask
    }
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

    #[test]
    fn cidr_matching() {
        let c = Cidr::parse("10.1.0.0/16").expect("parse");
        assert!(c.contains("10.1.200.3".parse().expect("ip")));
        assert!(!c.contains("10.2.0.1".parse().expect("ip")));
        assert!(c.contains("::ffff:10.1.0.9".parse().expect("ip")));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .expect("parse")
                .contains("1.2.3.4".parse().expect("ip"))
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0.0").is_err());
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
