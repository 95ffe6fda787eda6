//! Who may look up: the decision made for every lookup request before it
//! costs anything.
//!
//! * A request with `Authorization: Bearer KEY` is the client whose key it
//!   is, or refused (401) when no client has that key — also when the
//!   gateway has no keys file, so that a client never believes it is
//!   authenticated when it is not.
//! * A keyless request is refused with 401 when there is a keys file,
//!   unless `--allow-anonymous` is given; then it draws on its IP's bucket.
//! * Without a keys file the gateway is local-only: keyless requests from
//!   loopback addresses draw on their IP's bucket, others are refused
//!   (403) unless `--allow-anonymous` is given. A gateway is an
//!   enumeration oracle; exposing it must be a decision, not a default.

use std::net::IpAddr;

use crate::keys::KeySet;
use crate::limit::{ClientId, Rate};

/// Who a lookup request is, and the rate it gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// Its bucket (and what the request log shows).
    pub id: ClientId,
    /// Its rate.
    pub rate: Rate,
}

/// Why a request may not look anything up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// 401: no key, or a wrong one.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: a keyless client from outside, and the gateway is local-only.
    #[error("this gateway answers keyless requests from loopback addresses only (start it with --api-keys FILE or --allow-anonymous)")]
    LocalOnly,
}

/// The access policy of a gateway.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Whether keyless requests are allowed from anywhere.
    pub allow_anonymous: bool,
    /// The rate of keyless clients and of keys without their own.
    pub default_rate: Rate,
}

impl Policy {
    /// Decides for a request from `peer` carrying the `Authorization`
    /// header `authorization`, with the keys in service (`None`: no keys
    /// file).
    pub fn decide(
        &self,
        peer: IpAddr,
        authorization: Option<&[u8]>,
        keys: Option<&KeySet>,
    ) -> Result<Caller, Denied> {
        if let Some(value) = authorization {
            let key = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or(Denied::Unauthorized(
                    "the Authorization header must be \"Bearer KEY\"",
                ))?;
            let client = keys
                .and_then(|k| k.find(key))
                .ok_or(Denied::Unauthorized("unknown API key"))?;
            return Ok(Caller {
                id: ClientId::Key(client.name.clone()),
                rate: client.rate.unwrap_or(self.default_rate),
            });
        }
        let anonymous = Caller {
            id: ClientId::of_ip(peer),
            rate: self.default_rate,
        };
        if self.allow_anonymous {
            return Ok(anonymous);
        }
        match keys {
            Some(_) => Err(Denied::Unauthorized(
                "an API key is required (Authorization: Bearer KEY)",
            )),
            None if is_loopback(peer) => Ok(anonymous),
            None => Err(Denied::LocalOnly),
        }
    }
}

/// Loopback, including IPv4-mapped IPv6 loopback.
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn policy(allow_anonymous: bool) -> Policy {
        Policy {
            allow_anonymous,
            default_rate: Rate::new(5.0, 10).unwrap(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_keys_only_loopback_is_served_unless_anonymous_is_allowed() {
        let p = policy(false);
        for local in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            let c = p.decide(ip(local), None, None).unwrap();
            assert_eq!(c.id, ClientId::of_ip(ip(local)));
        }
        for remote in ["192.0.2.7", "10.0.0.1", "2001:db8::1", "::ffff:192.0.2.7"] {
            assert_eq!(p.decide(ip(remote), None, None), Err(Denied::LocalOnly));
            assert!(policy(true).decide(ip(remote), None, None).is_ok());
        }
    }

    #[test]
    fn keys_identify_clients_and_wrong_or_missing_keys_are_401() {
        let keys = KeySet::parse(
            Path::new("k"),
            "web:0123456789abcdef\nslow:fedcba9876543210 rate=1 burst=2\n",
        )
        .unwrap();
        let p = policy(false);
        let web = p
            .decide(
                ip("192.0.2.1"),
                Some(b"Bearer 0123456789abcdef"),
                Some(&keys),
            )
            .unwrap();
        assert_eq!(web.id.to_string(), "key:web");
        assert_eq!(web.rate, p.default_rate);
        let slow = p
            .decide(
                ip("192.0.2.1"),
                Some(b"Bearer fedcba9876543210"),
                Some(&keys),
            )
            .unwrap();
        assert_eq!(slow.rate, Rate::new(1.0, 2).unwrap());
        for bad in [&b"Bearer nope-nope-nope-nope"[..], b"Basic abc", b"\xff"] {
            assert!(matches!(
                p.decide(ip("127.0.0.1"), Some(bad), Some(&keys)),
                Err(Denied::Unauthorized(_))
            ));
        }
        // Keys file: keyless is 401 even from loopback, unless anonymous.
        assert!(matches!(
            p.decide(ip("127.0.0.1"), None, Some(&keys)),
            Err(Denied::Unauthorized(_))
        ));
        assert!(policy(true)
            .decide(ip("192.0.2.1"), None, Some(&keys))
            .is_ok());
        // A key sent to a gateway without keys is refused, not ignored.
        assert!(matches!(
            p.decide(ip("127.0.0.1"), Some(b"Bearer 0123456789abcdef"), None),
            Err(Denied::Unauthorized(_))
        ));
    }
}
