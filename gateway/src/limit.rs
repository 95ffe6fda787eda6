//! Per-client token buckets: how many lookups a client may make.
//!
//! Every client (an API key's name, or for keyless clients its IP address,
//! IPv6 by /64 since one host commonly holds a whole /64) has a bucket of
//! `burst` tokens refilled at `rate` tokens a second. A lookup costs one
//! token, a batch of N costs N; a request whose cost exceeds the tokens
//! left is refused with the time until enough have been refilled, which
//! the gateway sends as `Retry-After`.
//!
//! Memory is bounded: at most `max_clients` buckets are kept, the least
//! recently used evicted first. An evicted bucket that was full loses
//! nothing (a full bucket is what a new client gets); one that was not
//! is forgiven, which only happens when more than `max_clients` clients
//! were seen since that client last asked.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::keys::ClientName;

/// A rate: `per_sec` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_sec: f64,
    burst: u32,
}

/// Why a rate is not usable.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RateError {
    /// The rate is no positive finite number.
    #[error("rate {0:?}: expected a number of lookups per second above 0 and at most 1000000 (e.g. 5 or 0.5)")]
    PerSec(String),
    /// The burst is no positive integer.
    #[error("burst {0:?}: expected a whole number of lookups, at least 1")]
    Burst(String),
}

impl Rate {
    /// A rate from its two settings as text.
    pub fn parse(per_sec: &str, burst: &str) -> Result<Self, RateError> {
        let r: f64 = per_sec
            .parse()
            .map_err(|_| RateError::PerSec(per_sec.into()))?;
        let b: u32 = burst.parse().map_err(|_| RateError::Burst(burst.into()))?;
        Self::new(r, b).ok_or_else(|| {
            if b == 0 {
                RateError::Burst(burst.into())
            } else {
                RateError::PerSec(per_sec.into())
            }
        })
    }

    /// A rate, or `None` unless `per_sec` is finite and above 0 (and at
    /// most a million) and `burst` at least 1.
    pub fn new(per_sec: f64, burst: u32) -> Option<Self> {
        (per_sec.is_finite() && per_sec > 0.0 && per_sec <= 1e6 && burst >= 1)
            .then_some(Rate { per_sec, burst })
    }

    /// Tokens a second.
    pub fn per_sec(&self) -> f64 {
        self.per_sec
    }

    /// The most tokens saved up, and so the largest request ever allowed.
    pub fn burst(&self) -> u32 {
        self.burst
    }
}

/// Whose bucket a request draws on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientId {
    /// A client of the keys file.
    Key(ClientName),
    /// A keyless client: its IPv4 address, or its IPv6 /64.
    Ip(IpAddr),
}

impl ClientId {
    /// The bucket of a keyless client at `ip` (IPv6 addresses by /64;
    /// IPv4-mapped IPv6 addresses as the IPv4 address).
    pub fn of_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => ClientId::Ip(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientId::Ip(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientId::Ip(IpAddr::V6(bits.into()))
                }
            },
        }
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientId::Key(n) => write!(f, "key:{n}"),
            ClientId::Ip(ip) => write!(f, "ip:{ip}"),
        }
    }
}

/// Why a request was refused by its bucket.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// Not enough tokens now: retry after this long.
    RetryAfter(Duration),
    /// The request costs more than the bucket ever holds.
    OverBurst {
        /// Its cost.
        cost: u32,
        /// The bucket's size.
        burst: u32,
    },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The buckets of every recently seen client, at most `max_clients`.
#[derive(Debug)]
pub struct Limiter<K: Hash + Eq = ClientId> {
    buckets: Mutex<LruCache<K, Bucket>>,
}

impl<K: Hash + Eq> Limiter<K> {
    /// A limiter keeping at most `max_clients` buckets.
    pub fn new(max_clients: NonZeroUsize) -> Self {
        Limiter {
            buckets: Mutex::new(LruCache::new(max_clients)),
        }
    }

    /// Takes `cost` tokens from `client`'s bucket (of `rate`) at `now`.
    pub fn take(&self, client: K, rate: Rate, cost: u32, now: Instant) -> Result<(), Refused> {
        if cost > rate.burst {
            return Err(Refused::OverBurst {
                cost,
                burst: rate.burst,
            });
        }
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let full = Bucket {
            tokens: f64::from(rate.burst),
            last: now,
        };
        let b = buckets.get_or_insert_mut(client, || full);
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate.per_sec).min(f64::from(rate.burst));
        b.last = now;
        let cost = f64::from(cost);
        if b.tokens >= cost {
            b.tokens -= cost;
            Ok(())
        } else {
            let wait = (cost - b.tokens) / rate.per_sec;
            Err(Refused::RetryAfter(Duration::from_secs_f64(wait)))
        }
    }

    /// The number of buckets kept.
    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `Retry-After` in whole seconds, rounded up (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    s.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_spends_refills_and_says_when_to_retry() {
        let l: Limiter<u32> = Limiter::new(NonZeroUsize::new(10).unwrap());
        let rate = Rate::new(2.0, 3).unwrap();
        let t0 = Instant::now();
        assert_eq!(l.take(1, rate, 3, t0), Ok(()));
        let Err(Refused::RetryAfter(w)) = l.take(1, rate, 1, t0) else {
            panic!("an empty bucket refuses")
        };
        assert_eq!(w, Duration::from_millis(500));
        assert_eq!(retry_after_secs(w), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        // Another client is not affected.
        assert_eq!(l.take(2, rate, 1, t0), Ok(()));
        assert_eq!(l.take(1, rate, 1, t0 + Duration::from_millis(500)), Ok(()));
        assert_eq!(
            l.take(1, rate, 4, t0),
            Err(Refused::OverBurst { cost: 4, burst: 3 })
        );
    }

    #[test]
    fn a_flood_of_clients_keeps_at_most_max_clients_buckets() {
        let l: Limiter<u32> = Limiter::new(NonZeroUsize::new(100).unwrap());
        let rate = Rate::new(1.0, 1).unwrap();
        let t = Instant::now();
        for ip in 0..10_000 {
            l.take(ip, rate, 1, t).unwrap();
        }
        assert_eq!(l.len(), 100);
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientId::of_ip(a), ClientId::of_ip(b));
        assert_ne!(ClientId::of_ip(a), ClientId::of_ip(c));
        let m: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            ClientId::of_ip(m),
            ClientId::Ip("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn rates_must_be_positive() {
        assert!(Rate::parse("0", "1").is_err());
        assert!(Rate::parse("nan", "1").is_err());
        assert!(Rate::parse("1", "0").is_err());
        assert!(Rate::parse("x", "1").is_err());
        assert!(Rate::parse("0.5", "10").is_ok());
    }
}
