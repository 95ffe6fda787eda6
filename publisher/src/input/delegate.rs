//! Shard delegations of a zone (`[[delegate]]` in zone.toml).
//!
//! SPEC §3 places every discovery name at `<label>.<shard>._mimi.<zone>`,
//! the shard being the label's first two characters (base32hex, `0-9a-v`,
//! so 1024 shards). A domain too large for one server group is split by
//! shard: the parent zone delegates chosen shards `<shard>._mimi.<domain>`
//! to other name servers, which serve them as zones of their own.
//!
//! ```toml
//! [[delegate]]
//! shards = ["00-7v"]                     # ranges or single shards
//! ns = ["ns1.group-a.example.net", "ns1.shards.example.com"]
//! glue = { "ns1.shards.example.com" = ["192.0.2.7"] }
//! ```
//!
//! The parent then holds NS records at each delegated shard name (and the
//! addresses of name servers inside the parent zone), answers queries at
//! or below them with referrals, and skips mappings and pre-signed
//! assertions whose discovery name falls in a delegated shard: the
//! configuration of the shard zone publishes those.

use std::net::IpAddr;

use mimi_proto::DomainName;

pub use crate::input::shards::{Shard, ShardSet, SHARDS};

/// One `[[delegate]]` entry: shards and the name servers they go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegateConfig {
    /// The delegated shards.
    pub shards: ShardSet,
    /// Name servers of the shard zones.
    pub ns: Vec<DomainName>,
    /// Addresses of those name servers that are inside the parent zone.
    pub glue: Vec<(DomainName, Vec<IpAddr>)>,
}

/// The name under which a zone's shards are (`_mimi.<domain>`): the origin
/// itself if it is a `_mimi` name, else `_mimi.<origin>`.
pub fn shard_parent(origin: &DomainName) -> Option<DomainName> {
    if origin.as_str() == "_mimi" || origin.as_str().starts_with("_mimi.") {
        Some(origin.clone())
    } else {
        // `None` when the origin is too long for `_mimi.` in front: no
        // discovery name fits below it either.
        DomainName::parse(&format!("_mimi.{origin}")).ok()
    }
}

/// The delegation point of `shard` under `parent` (see [`shard_parent`]).
pub fn shard_name(shard: Shard, parent: &DomainName) -> Option<DomainName> {
    // `None` when the name would be too long for DNS.
    DomainName::parse(&format!("{shard}.{parent}")).ok()
}

/// The shard whose subtree holds `name`, if `name` is at or below
/// `<shard>.<parent>`.
pub fn shard_of(name: &DomainName, parent: &DomainName) -> Option<Shard> {
    let rest = name
        .as_str()
        .strip_suffix(parent.as_str())?
        .strip_suffix('.')?;
    Shard::parse(rest.rsplit('.').next()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let d = |s: &str| DomainName::parse(s).unwrap();
        assert_eq!(
            shard_parent(&d("example.com")),
            Some(d("_mimi.example.com"))
        );
        assert_eq!(
            shard_parent(&d("_mimi.example.com")),
            Some(d("_mimi.example.com"))
        );
        // Too long for `_mimi.` or a shard label in front: no name, no panic.
        let long = d(&format!("{}.example", vec!["a".repeat(60); 4].join(".")));
        assert_eq!(shard_parent(&long), None);
        // 252 octets: a valid zone, but no room for "00." in front.
        let edge = d(&format!(
            "_mimi.{}.{}.ex",
            vec!["b".repeat(61); 3].join("."),
            "c".repeat(57)
        ));
        assert_eq!(edge.as_str().len(), 252);
        assert_eq!(shard_name(Shard::parse("00").unwrap(), &edge), None);
        let p = d("_mimi.example.com");
        let a3 = Shard::parse("a3").unwrap();
        assert_eq!(shard_name(a3, &p), Some(d("a3._mimi.example.com")));
        assert_eq!(shard_of(&d("a3xyz.a3._mimi.example.com"), &p), Some(a3));
        assert_eq!(shard_of(&d("a3._mimi.example.com"), &p), Some(a3));
        assert_eq!(shard_of(&d("x.y.a3._mimi.example.com"), &p), Some(a3));
        assert_eq!(shard_of(&d("_mimi.example.com"), &p), None);
        assert_eq!(shard_of(&d("zz._mimi.example.com"), &p), None);
        assert_eq!(shard_of(&d("a3.x_mimi.example.com"), &p), None);
    }
}
