//! Connection-level abuse limits: open connections per client address,
//! and token buckets for register and login attempts per address and per
//! account. Everything here is in memory and per gateway; a restart
//! forgets it.
//!
//! An address is the IPv4 address, or the /64 prefix of an IPv6 one (one
//! host usually holds a whole /64).
//!
//! The per-account login bucket cannot lock a user out for good: it only
//! slows password attempts at that account to its refill rate (a refused
//! attempt is told when the next one is possible), a successful login
//! gives its token back, and resuming with a session token is never
//! limited by it, so devices already logged in keep working while someone
//! guesses the password elsewhere. An attempt refused by the address
//! bucket does not touch the account's, so guessing from one address
//! spends that address's budget first.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::LimitsConfig;
use crate::error::Error;
use crate::metrics;

/// Most keys a bucket table holds; past it, full buckets (the ones that
/// say nothing) are dropped, then every bucket if that was not enough.
const MAX_KEYS: usize = 100_000;

/// The key of a client address: IPv4 as is (IPv4-mapped IPv6 too), IPv6
/// by its /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// A token bucket: `burst` attempts at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key.
pub struct Buckets<K> {
    burst: f64,
    per_sec: f64,
    table: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_sec: f64::from(per_minute.max(1)) / 60.0,
            table: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Bucket>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refilled(&self, b: Bucket, now: Instant) -> f64 {
        (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec).min(self.burst)
    }

    /// Takes one token of `key`'s bucket, or says how long until one is
    /// there.
    pub fn take(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut t = self.lock();
        if t.len() >= MAX_KEYS && !t.contains_key(key) {
            t.retain(|_, b| self.refilled(*b, now) < self.burst);
            if t.len() >= MAX_KEYS {
                t.clear();
            }
        }
        let b = t.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = self.refilled(*b, now);
        if tokens >= 1.0 {
            *b = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *b = Bucket { tokens, at: now };
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_sec))
        }
    }

    /// Gives a token back (an attempt that turned out legitimate).
    pub fn give_back(&self, key: &K) {
        let now = Instant::now();
        if let Some(b) = self.lock().get_mut(key) {
            *b = Bucket {
                tokens: (self.refilled(*b, now) + 1.0).min(self.burst),
                at: now,
            };
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The abuse limits of one gateway.
pub struct Guard {
    max_per_address: u32,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
    login_address: Buckets<IpAddr>,
    login_account: Buckets<String>,
    register_address: Buckets<IpAddr>,
}

/// One open connection of an address (counted until dropped).
#[derive(Debug)]
pub struct AddressSlot {
    key: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

fn retry_after_ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

impl Guard {
    pub fn new(l: &LimitsConfig) -> Self {
        Self {
            max_per_address: l.max_connections_per_ip,
            open: Arc::default(),
            login_address: Buckets::new(l.login_per_ip_burst, l.login_per_ip_per_minute),
            login_account: Buckets::new(l.login_per_account_burst, l.login_per_account_per_minute),
            register_address: Buckets::new(l.register_per_ip_burst, l.register_per_ip_per_minute),
        }
    }

    /// A slot for a new connection from `ip`, or the error that refuses it
    /// (counted).
    pub fn open(&self, ip: IpAddr) -> Result<AddressSlot, Error> {
        let key = address_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.max_per_address {
            if *n == 0 {
                open.remove(&key);
            }
            metrics::CONNECTIONS_REFUSED.with_label_values(&["per_ip"]).inc();
            return Err(Error::TooManyConnections(format!(
                "{} connections from your address are open, the most allowed",
                self.max_per_address
            )));
        }
        *n += 1;
        Ok(AddressSlot {
            key,
            open: self.open.clone(),
        })
    }

    /// Open connections of `ip`'s address.
    pub fn open_of(&self, ip: IpAddr) -> u32 {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&address_key(ip)).copied().unwrap_or(0)
    }

    /// A login attempt from `ip` at account `name`: the address's bucket
    /// first, then the account's.
    pub fn login(&self, ip: IpAddr, name: &str) -> Result<(), Error> {
        if let Err(wait) = self.login_address.take(&address_key(ip)) {
            metrics::RATE_LIMITED.with_label_values(&["login_ip"]).inc();
            return Err(Error::RateLimited {
                what: "login attempts from your address",
                retry_after_ms: retry_after_ms(wait),
            });
        }
        if let Err(wait) = self.login_account.take(&name.to_owned()) {
            metrics::RATE_LIMITED.with_label_values(&["login_account"]).inc();
            return Err(Error::RateLimited {
                what: "login attempts at this account",
                retry_after_ms: retry_after_ms(wait),
            });
        }
        Ok(())
    }

    /// The login at `name` succeeded: its account token comes back, so a
    /// user logging in often never drains their own bucket.
    pub fn logged_in(&self, name: &str) {
        self.login_account.give_back(&name.to_owned());
    }

    /// A register attempt from `ip`.
    pub fn register(&self, ip: IpAddr) -> Result<(), Error> {
        self.register_address.take(&address_key(ip)).map_err(|wait| {
            metrics::RATE_LIMITED.with_label_values(&["register_ip"]).inc();
            Error::RateLimited {
                what: "registrations from your address",
                retry_after_ms: retry_after_ms(wait),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_past_its_burst_and_says_when_to_retry() {
        let b = Buckets::new(3, 60);
        for _ in 0..3 {
            assert!(b.take(&1u8).is_ok());
        }
        let wait = b.take(&1u8).expect_err("the fourth is refused");
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "one token a second: {wait:?}"
        );
        assert!(b.take(&2u8).is_ok(), "another key has its own bucket");
        b.give_back(&1u8);
        assert!(b.take(&1u8).is_ok(), "a token given back is taken again");
    }

    #[test]
    fn a_full_table_drops_its_full_buckets_first() {
        let b = Buckets::new(2, 60);
        for k in 0..MAX_KEYS as u32 {
            b.take(&k).expect("first take");
        }
        assert_eq!(b.len(), MAX_KEYS);
        let _ = b.take(&u32::MAX);
        assert!(b.len() <= 1, "every bucket was spent once: all dropped");
    }

    #[test]
    fn addresses_are_counted_per_ipv4_and_per_ipv6_64() {
        let l = LimitsConfig {
            max_connections_per_ip: 2,
            ..LimitsConfig::default()
        };
        let g = Guard::new(&l);
        let a: IpAddr = "2001:db8::1".parse().expect("ip");
        let b: IpAddr = "2001:db8::2".parse().expect("ip");
        let other: IpAddr = "2001:db8:0:1::1".parse().expect("ip");
        let s1 = g.open(a).expect("first");
        let s2 = g.open(b).expect("second, same /64");
        assert!(matches!(g.open(a), Err(Error::TooManyConnections(_))));
        let s3 = g.open(other).expect("another /64");
        assert_eq!(g.open_of(a), 2);
        drop(s1);
        assert_eq!(g.open_of(b), 1);
        let _s4 = g.open(a).expect("a slot freed is reused");
        drop((s2, s3));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(address_key(mapped), "10.0.0.1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn the_address_bucket_is_spent_before_the_account_one() {
        let l = LimitsConfig {
            login_per_ip_burst: 2,
            login_per_account_burst: 3,
            ..LimitsConfig::default()
        };
        let g = Guard::new(&l);
        let one: IpAddr = "192.0.2.1".parse().expect("ip");
        let two: IpAddr = "192.0.2.2".parse().expect("ip");
        assert!(g.login(one, "ann").is_ok());
        assert!(g.login(one, "ann").is_ok());
        let e = g.login(one, "ann").expect_err("address spent");
        assert!(matches!(e, Error::RateLimited { retry_after_ms, .. } if retry_after_ms > 0));
        // The account has one token left, so ann logs in from elsewhere.
        assert!(g.login(two, "ann").is_ok());
        g.logged_in("ann");
        assert!(
            g.login(two, "ann").is_ok(),
            "the successful login gave its token back"
        );
        let three: IpAddr = "192.0.2.3".parse().expect("ip");
        assert!(matches!(
            g.login(three, "ann"),
            Err(Error::RateLimited { what, .. }) if what.contains("account")
        ));
    }
}
