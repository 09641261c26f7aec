//! Service discovery's shared facts: how often a process announces where
//! its metrics are to the routers, how long they keep it, and the address
//! to announce (the announcing itself is the router client's).

use std::net::SocketAddr;
use std::time::Duration;

/// How often a process announces itself to every router.
pub const EVERY: Duration = Duration::from_secs(5);
/// How long a router keeps a target without a new announcement.
pub const TTL: Duration = Duration::from_secs(15);

/// The address others reach `bound` at: itself, or with an unspecified IP
/// (`0.0.0.0`, `::`), the host of `advertised` (an address the process
/// already gives out, e.g. its advertised gRPC address) with `bound`'s port.
pub fn reachable(bound: SocketAddr, advertised: &str) -> String {
    if !bound.ip().is_unspecified() {
        return bound.to_string();
    }
    let host = advertised
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .rsplit_once(':')
        .map_or(advertised, |(h, _)| h);
    format!("{host}:{}", bound.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_bind_takes_the_advertised_host() {
        let bound: SocketAddr = "0.0.0.0:9201".parse().expect("addr");
        assert_eq!(reachable(bound, "gw1.example:7211"), "gw1.example:9201");
        assert_eq!(reachable(bound, "http://10.0.0.1:7211"), "10.0.0.1:9201");
        let local: SocketAddr = "127.0.0.1:9201".parse().expect("addr");
        assert_eq!(reachable(local, "elsewhere:1"), "127.0.0.1:9201");
    }
}
