//! A built zone: the complete, signed content that is written to a zone file
//! or served.

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

/// One TXT record of a zone: an owner and the record text, which the zone
/// file writer and the server split into ≤255-octet character-strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ZoneRecord {
    /// Owner name (inside the zone).
    pub owner: DomainName,
    /// TTL in seconds.
    pub ttl: u32,
    /// The mimi record text (`v=mimi1;…;sig=…`).
    pub text: String,
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
    /// The earliest time at which some record must be re-signed (a record's
    /// window rolls over or a certificate or pre-signed record expires).
    /// `None` for a zone without signed content.
    pub next_resign: Option<UnixTime>,
    /// Who may transfer this zone and whom to NOTIFY; `None` refuses every
    /// transfer. Not part of the zone's DNS content, but a change of it is
    /// a change of what is served.
    pub transfer: Option<std::sync::Arc<crate::transfer::TransferPolicy>>,
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
            && self.records == other.records
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
