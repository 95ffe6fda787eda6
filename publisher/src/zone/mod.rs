//! A built zone: the complete, signed content that is written to a zone file
//! or served.

pub mod catalog;
pub mod figures;
pub(crate) mod index;
pub mod journal;
pub mod ledger;
pub mod seal;
pub mod served;
pub mod shrink;
pub(crate) mod state;
pub mod status;
pub mod zonefile;

use mimi_proto::{DomainName, UnixTime};

/// SOA timers and names (RFC 1035 §3.3.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    /// Primary name server.
    pub mname: DomainName,
    /// Responsible person's mailbox, in DNS form (`hostmaster.example.com`).
    pub rname: DomainName,
    /// Serial (RFC 1982).
    pub serial: u32,
    /// Refresh, seconds.
    pub refresh: u32,
    /// Retry, seconds.
    pub retry: u32,
    /// Expire, seconds.
    pub expire: u32,
    /// Negative-caching TTL, seconds.
    pub minimum: u32,
}

/// The content of one TXT record of a zone: an owner and the record text,
/// which the zone file writer and the server split into ≤255-octet
/// character-strings.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordData {
    /// Owner name (inside the zone).
    pub owner: DomainName,
    /// TTL in seconds.
    pub ttl: u32,
    /// The mimi record text (`v=mimi1;…;sig=…`).
    pub text: String,
}

/// One TXT record of a zone, shared: cloning it (from the previous zone
/// into a rebuilt one) copies a pointer, not the strings. Its fields are
/// those of [`RecordData`], reached through `Deref` (`record.owner`).
///
/// It also carries a key for fast comparisons: the first eight octets of
/// the owner, which orders like the owner itself, so sorting, merging and
/// indexing mostly compare integers instead of following pointers.
#[derive(Clone)]
pub struct ZoneRecord {
    key: u64,
    data: std::sync::Arc<RecordData>,
}

impl ZoneRecord {
    /// A record of `text` at `owner`.
    pub fn new(owner: DomainName, ttl: u32, text: impl Into<String>) -> Self {
        ZoneRecord {
            key: owner_key(owner.as_str()),
            data: std::sync::Arc::new(RecordData {
                owner,
                ttl,
                text: text.into(),
            }),
        }
    }

    /// The owner's ordering key (see [`owner_key`]).
    pub fn owner_key(&self) -> u64 {
        self.key
    }

    /// Whether `self` and `other` are the same shared record (not merely
    /// equal content).
    pub fn same(&self, other: &ZoneRecord) -> bool {
        std::sync::Arc::ptr_eq(&self.data, &other.data)
    }
}

/// The first eight octets of `owner`, big-endian, zero-padded: if
/// `a < b` as strings then `owner_key(a) <= owner_key(b)`.
pub fn owner_key(owner: &str) -> u64 {
    let mut b = [0u8; 8];
    let n = owner.len().min(8);
    b[..n].copy_from_slice(&owner.as_bytes()[..n]);
    u64::from_be_bytes(b)
}

impl std::ops::Deref for ZoneRecord {
    type Target = RecordData;
    fn deref(&self) -> &RecordData {
        &self.data
    }
}

impl std::fmt::Debug for ZoneRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.data.fmt(f)
    }
}

impl PartialEq for ZoneRecord {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && (self.same(other) || self.data == other.data)
    }
}

impl Eq for ZoneRecord {}

impl PartialOrd for ZoneRecord {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ZoneRecord {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key).then_with(|| {
            if self.same(other) {
                std::cmp::Ordering::Equal
            } else {
                self.data.cmp(&other.data)
            }
        })
    }
}

impl std::hash::Hash for ZoneRecord {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.data.hash(state);
    }
}

/// A zone cut inside a zone: the NS records at `owner`, a name below the
/// apex (`<shard>._mimi.<domain>` for a shard served by other name
/// servers). Everything at or below `owner` belongs to the delegated zone:
/// the parent answers queries there with a referral, never
/// authoritatively.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Delegation {
    /// The delegation point (below the zone's apex).
    pub owner: DomainName,
    /// The delegated zone's name servers, in configuration order.
    pub ns: Vec<DomainName>,
}

/// One PTR record: a catalog zone's member entry (RFC 9432 §4.1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PtrRecord {
    /// Owner name (inside the zone).
    pub owner: DomainName,
    /// TTL in seconds.
    pub ttl: u32,
    /// The name pointed to.
    pub target: DomainName,
}

/// A complete zone: SOA, NS, certificates and assertions.
///
/// `records` is sorted by owner then text, so equal content always renders
/// to identical bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The zone's origin.
    pub origin: DomainName,
    /// TTL of SOA and NS.
    pub ttl: u32,
    /// SOA.
    pub soa: Soa,
    /// NS targets.
    pub ns: Vec<DomainName>,
    /// A/AAAA records of in-zone name servers.
    pub glue: Vec<(DomainName, Vec<std::net::IpAddr>)>,
    /// Certificates and assertions, sorted.
    pub records: Vec<ZoneRecord>,
    /// Zone cuts: names below the apex whose subtree another server
    /// answers for (shard zones, RFC 1034 §4.2.2), sorted by owner. Their
    /// in-zone name servers' addresses are in [`Zone::glue`].
    pub delegations: Vec<Delegation>,
    /// PTR records (a catalog zone's member list, RFC 9432), sorted by
    /// owner; empty in mimi zones.
    pub ptrs: Vec<PtrRecord>,
    /// The earliest time at which some record must be re-signed (a record's
    /// window rolls over or a certificate or pre-signed record expires).
    /// `None` for a zone without signed content.
    pub next_resign: Option<UnixTime>,
    /// Who may transfer this zone and whom to NOTIFY; `None` refuses every
    /// transfer. Not part of the zone's DNS content, but a change of it is
    /// a change of what is served.
    pub transfer: Option<std::sync::Arc<crate::input::config::TransferPolicy>>,
    /// What the build that made this zone keeps for the next build of the
    /// same configuration (see [`crate::build`]); not part of the content,
    /// ignored by comparisons. `Default::default()` when building a zone by
    /// hand.
    pub cache: BuildCache,
    /// The key rollover's history (see [`ledger`]): not DNS content, but
    /// written into the zone file so that the rollover survives restarts.
    pub ledger: ledger::Ledger,
}

/// State a build leaves in its zone for the next build: lets a rebuild
/// parse and sign only what changed. Opaque to the zone (only
/// [`crate::build`] knows what is inside), so the model does not depend on
/// the builder; always compares equal.
#[derive(Clone, Default)]
pub struct BuildCache(pub(crate) Option<std::sync::Arc<dyn BuildMemory>>);

/// What the zone layer needs from a builder's memory ([`BuildCache`]): the
/// rest stays the builder's own, reached through [`BuildMemory::as_any`].
pub(crate) trait BuildMemory: std::any::Any + Send + Sync {
    /// The parent names of every owner in the zone built with this memory,
    /// so that indexing need not read every owner again.
    fn owner_parents(&self) -> &[String];
    /// The memory itself, for the builder to downcast.
    fn as_any(&self) -> &dyn std::any::Any;
    /// How many records the build that made this memory signed (the
    /// others it reused from the previous zone).
    fn signed(&self) -> usize {
        0
    }
}

impl BuildCache {
    /// How many records the build of this zone signed: what the server
    /// counts as re-signed records. 0 for a zone read from a file.
    pub fn signed(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.signed())
    }
}

impl PartialEq for BuildCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for BuildCache {}

impl std::fmt::Debug for BuildCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "BuildCache(..)"
        } else {
            "BuildCache(None)"
        })
    }
}

impl Zone {
    /// Whether two zones hold the same content apart from the SOA serial:
    /// the test for "did anything change" that decides serial increments.
    pub fn same_content(&self, other: &Zone) -> bool {
        let mut a = self.soa.clone();
        a.serial = other.soa.serial;
        self.origin == other.origin
            && self.ttl == other.ttl
            && a == other.soa
            && self.ns == other.ns
            && self.glue == other.glue
            && self.records.len() == other.records.len()
            && self.records == other.records
            && self.delegations == other.delegations
            && self.ptrs == other.ptrs
            && self.transfer == other.transfer
    }

    /// Number of assertion and certificate records.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }
}

/// The next serial after `prev` for new content: at least `prev + 1`
/// (RFC 1982 arithmetic, wrapping) and at least `floor`, a time-like value,
/// so serials track time when nothing else constrains them.
pub fn next_serial(prev: u32, floor: u32) -> u32 {
    let inc = prev.wrapping_add(1);
    // RFC 1982: floor is "greater" than inc if it is ahead by less than 2^31.
    let ahead = floor.wrapping_sub(inc);
    if ahead != 0 && ahead < (1u32 << 31) {
        floor
    } else {
        inc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_arithmetic() {
        assert_eq!(next_serial(5, 0), 6);
        assert_eq!(next_serial(5, 100), 100);
        assert_eq!(next_serial(100, 100), 101);
        assert_eq!(next_serial(u32::MAX, 3), 3);
        assert_eq!(next_serial(u32::MAX, 0), 0);
        assert_eq!(next_serial(10, 5), 11);
    }
}
