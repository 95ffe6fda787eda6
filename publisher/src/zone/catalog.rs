//! Catalog zones (RFC 9432, schema version 2): a zone that lists other
//! zones, so that secondaries which consume it (Knot ≥ 3.2, BIND ≥ 9.18,
//! PowerDNS) provision and drop member zones by themselves when the
//! catalog changes, with no change to their configuration.
//!
//! A catalog built here holds:
//!
//! * the SOA, and one NS record `invalid.` (RFC 9432 §4: a catalog is not
//!   meant to be resolved, the NS only makes it a valid zone);
//! * `version.<catalog> TXT "2"` (§4.2.1);
//! * one `<id>.zones.<catalog> PTR <member>.` per member zone (§4.2.2),
//!   where `<id>` is [`member_id`]: a hash of the member's name, so that a
//!   member keeps its id across rebuilds and restarts, and an id never
//!   moves to another member (which consumers would read as the old member
//!   removed and its data reset, §5.4).
//!
//! The serial stays when the member set is unchanged and otherwise
//! increases, to at least the current Unix time, so that even a server
//! restarted without its previous catalog moves forward.

use std::sync::Arc;

use mimi_proto::{DomainName, UnixTime};
use sha2::{Digest, Sha256};

use crate::input::config::TransferPolicy;
use crate::zone::{next_serial, PtrRecord, Soa, Zone, ZoneRecord};

/// The catalog schema version published (RFC 9432 §4.2.1).
pub const VERSION: &str = "2";

/// Everything about a catalog zone but its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogSettings {
    /// The catalog's origin (a name of its own, e.g.
    /// `catalog.example.net`; consumers never resolve it).
    pub origin: DomainName,
    /// TTL of every record.
    pub ttl: u32,
    /// SOA refresh, seconds: how often consumers poll besides NOTIFY.
    pub refresh: u32,
    /// SOA retry, seconds.
    pub retry: u32,
    /// SOA expire, seconds.
    pub expire: u32,
    /// SOA minimum, seconds.
    pub minimum: u32,
    /// Who may transfer the catalog and whom to NOTIFY of changes.
    pub transfer: Option<Arc<TransferPolicy>>,
}

impl CatalogSettings {
    /// Settings for a catalog at `origin` with the SOA timers BIND's and
    /// Knot's documentation use for catalogs, no TTL worth caching, and no
    /// transfer policy.
    pub fn new(origin: DomainName) -> Self {
        CatalogSettings {
            origin,
            ttl: 0,
            refresh: 3600,
            retry: 600,
            expire: 2_419_200,
            minimum: 60,
            transfer: None,
        }
    }
}

/// The member label of the zone `member`: the first 16 octets of the
/// SHA-256 of its name in DNS wire form (lowercase), in lowercase hex.
/// Stable, and the same from every publisher that lists the zone.
pub fn member_id(member: &DomainName) -> String {
    let mut h = Sha256::new();
    for label in member.as_str().split('.') {
        h.update([label.len() as u8]);
        h.update(label.as_bytes());
    }
    h.update([0u8]);
    data_encoding::HEXLOWER.encode(&h.finalize()[..16])
}

/// Builds the catalog of `members` (duplicates and order do not matter).
///
/// With the previous catalog, the serial is kept if the content is the
/// same and otherwise increased (to at least `now`); without it, the serial
/// is `now`.
pub fn build<'a>(
    settings: &CatalogSettings,
    members: impl Iterator<Item = &'a DomainName>,
    previous: Option<&Zone>,
    now: UnixTime,
) -> Zone {
    let origin = &settings.origin;
    let zones = format!("zones.{origin}");
    let name = |s: &str| DomainName::parse(s).expect("a hex label under a valid name");
    let mut ptrs: Vec<PtrRecord> = members
        .map(|m| PtrRecord {
            owner: name(&format!("{}.{zones}", member_id(m))),
            ttl: settings.ttl,
            target: m.clone(),
        })
        .collect();
    ptrs.sort();
    ptrs.dedup();
    let invalid = name("invalid");
    let floor = u32::try_from(now.0).unwrap_or(u32::MAX).max(1);
    let mut zone = Zone {
        origin: origin.clone(),
        ttl: settings.ttl,
        soa: Soa {
            mname: invalid.clone(),
            rname: invalid.clone(),
            serial: floor,
            refresh: settings.refresh,
            retry: settings.retry,
            expire: settings.expire,
            minimum: settings.minimum,
        },
        ns: vec![invalid],
        glue: Vec::new(),
        records: vec![ZoneRecord::new(
            name(&format!("version.{origin}")),
            settings.ttl,
            VERSION,
        )],
        delegations: Vec::new(),
        ptrs,
        next_resign: None,
        transfer: settings.transfer.clone(),
        cache: Default::default(),
        ledger: Default::default(),
    };
    if let Some(prev) = previous {
        zone.soa.serial = if zone.same_content(prev) {
            prev.soa.serial
        } else {
            next_serial(prev.soa.serial, floor)
        };
    }
    zone
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    #[test]
    fn members_ids_and_serials() {
        let s = CatalogSettings::new(d("catalog.example.net"));
        let a = d("_mimi.a.example");
        let b = d("_mimi.b.example");
        let t = UnixTime(1_000_000);
        let one = build(&s, [&a, &b, &a].into_iter(), None, t);
        assert_eq!(one.soa.serial, 1_000_000);
        assert_eq!(one.ns, vec![d("invalid")]);
        assert_eq!(one.records.len(), 1);
        assert_eq!(one.records[0].owner, d("version.catalog.example.net"));
        assert_eq!(one.records[0].text, "2");
        assert_eq!(one.ptrs.len(), 2);
        let ida = member_id(&a);
        assert_eq!(ida.len(), 32);
        assert_eq!(ida, member_id(&d("_mimi.a.example")));
        assert_ne!(ida, member_id(&b));
        let pa = one.ptrs.iter().find(|p| p.target == a).unwrap();
        assert_eq!(
            pa.owner.as_str(),
            format!("{ida}.zones.catalog.example.net")
        );
        // Same members in another order: same serial. One more: a larger
        // serial, and the old members keep their ids.
        let same = build(&s, [&b, &a].into_iter(), Some(&one), UnixTime(2_000_000));
        assert_eq!(same.soa.serial, one.soa.serial);
        assert_eq!(same, one);
        let c = d("_mimi.c.example");
        let more = build(&s, [&a, &b, &c].into_iter(), Some(&one), t);
        assert_eq!(more.soa.serial, 1_000_001);
        assert!(more
            .ptrs
            .iter()
            .any(|p| p.owner == pa.owner && p.target == a));
        let later = build(&s, [&a].into_iter(), Some(&more), UnixTime(3_000_000));
        assert_eq!(later.soa.serial, 3_000_000);
        assert_eq!(later.ptrs.len(), 1);
    }

    /// The id is the hash of the wire form, so it does not depend on how
    /// the name was spelled.
    #[test]
    fn id_of_wire_form() {
        let mut h = Sha256::new();
        h.update(b"\x05_mimi\x01a\x07example\x00");
        assert_eq!(
            member_id(&d("_mimi.A.example.")),
            data_encoding::HEXLOWER.encode(&h.finalize()[..16])
        );
    }
}
