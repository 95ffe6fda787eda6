//! Answering DNS queries from served zones.
//!
//! hickory's generic in-memory zone scans every record of the zone to tell
//! NXDOMAIN from NODATA, so a negative answer in a million-record zone
//! costs a million name comparisons (measured: 0.2 s per query at 100,000
//! records), which any client could use to stall the server. mimi zones
//! have a simple shape — SOA, NS and glue at the top, TXT records at
//! discovery and certificate names, nothing delegated, no wildcards — so
//! this module answers from the built [`Zone`] directly:
//!
//! * records are found by binary search in the zone's sorted records;
//! * the names that exist without records of their own (empty
//!   non-terminals such as `_mimi.example.com`) are precomputed, so that they
//!   get NOERROR/NODATA and never NXDOMAIN (RFC 8020: an NXDOMAIN there would
//!   deny the whole subtree);
//! * negative answers carry the SOA with the negative-caching TTL
//!   (RFC 2308);
//! * a query at or below a delegation point ([`crate::zone::Delegation`])
//!   gets a referral (RFC 1034 §4.3.2 step 3b): NOERROR without AA, the
//!   cut's NS records in the authority section and the addresses of those
//!   name servers the zone holds in the additional section; only DS at the
//!   cut itself belongs to the parent (RFC 4035 §3.1.4.1), which, holding
//!   no DS records, answers NODATA with its SOA, as NSD does;
//! * `ANY` is answered minimally (RFC 8482 §4.2): one RRset of the name
//!   (TXT where there are TXT records, else the SOA at the apex, else the
//!   first address RRset of a name server), as NSD does;
//! * the answer is encoded by `crate::serve::wire`, the same bytes for UDP and
//!   TCP; UDP answers too large for the client's buffer are truncated (TC)
//!   and the client retries over TCP.
//!
//! Serving straight from the [`Zone`] also means a reload has nothing to
//! convert, and the zone is held in memory once.

use std::sync::Arc;

use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use mimi_proto::DomainName;

use crate::zone::index::OwnerIndex;
use crate::zone::Zone;

/// A zone ready to answer queries: the zone and what is precomputed from it.
#[derive(Debug)]
pub struct ServedZone {
    /// The zone content.
    pub zone: Arc<Zone>,
    soa: Record,
    ns: Vec<Record>,
    glue: Vec<(String, Record)>,
    /// Where each owner's records are, and which names are empty
    /// non-terminals.
    index: OwnerIndex,
    /// The apex records in wire form.
    wire: WireRecords,
    /// The differences that led to this zone, for IXFR.
    journal: Arc<crate::zone::journal::Journal>,
    /// Indexes into `glue` of the apex name servers' addresses: the
    /// additional section of an NS answer at the apex.
    apex_glue: Vec<usize>,
    /// The delegation points (`zone.delegations`, same order) and the
    /// indexes into `glue` of their name servers' addresses.
    cuts: Vec<Vec<usize>>,
}

fn dns_name(d: &DomainName) -> Result<Name, String> {
    Name::from_ascii(d.fqdn()).map_err(|e| format!("{d}: not a DNS name: {e}"))
}

impl ServedZone {
    /// Precomputes what answering needs. Fails only for names hickory cannot
    /// encode (which checked [`DomainName`]s never are).
    pub fn new(zone: Arc<Zone>) -> Result<Self, String> {
        let apex = dns_name(&zone.origin)?;
        let soa = Record::from_rdata(
            apex.clone(),
            zone.ttl,
            RData::SOA(SOA::new(
                dns_name(&zone.soa.mname)?,
                dns_name(&zone.soa.rname)?,
                zone.soa.serial,
                timer(zone.soa.refresh),
                timer(zone.soa.retry),
                timer(zone.soa.expire),
                zone.soa.minimum,
            )),
        );
        let ns = zone
            .ns
            .iter()
            .map(|n| {
                Ok(Record::from_rdata(
                    apex.clone(),
                    zone.ttl,
                    RData::NS(NS(dns_name(n)?)),
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut glue = Vec::new();
        for (host, ips) in &zone.glue {
            let name = dns_name(host)?;
            for ip in ips {
                glue.push((
                    host.as_str().to_owned(),
                    Record::from_rdata(name.clone(), zone.ttl, glue_rdata(*ip)),
                ));
            }
        }
        let index = OwnerIndex::new(&zone);
        let wire = WireRecords::new(&zone);
        let glue_of = |hosts: &[DomainName]| -> Vec<usize> {
            glue.iter()
                .enumerate()
                .filter(|(_, (h, _))| hosts.iter().any(|n| n.as_str() == h))
                .map(|(i, _)| i)
                .collect()
        };
        let apex_glue = glue_of(&zone.ns);
        let cuts = zone.delegations.iter().map(|d| glue_of(&d.ns)).collect();
        Ok(ServedZone {
            zone,
            soa,
            ns,
            glue,
            index,
            wire,
            journal: Default::default(),
            apex_glue,
            cuts,
        })
    }

    /// This zone with `journal`, the history that ends with its serial
    /// (IXFR answers from it).
    pub(crate) fn with_journal(mut self, journal: Arc<crate::zone::journal::Journal>) -> Self {
        self.journal = journal;
        self
    }

    /// The differences that led to this zone (empty unless the server
    /// journals it).
    pub fn journal(&self) -> &Arc<crate::zone::journal::Journal> {
        &self.journal
    }
    /// The delegation whose subtree holds `qname` (at or below its
    /// owner), as an index into `zone.delegations`: the one closest to the
    /// apex if cuts were nested.
    fn cut_for(&self, qname: &str) -> Option<usize> {
        let cuts = &self.zone.delegations;
        if cuts.is_empty() {
            return None;
        }
        let origin = self.zone.origin.as_str();
        let mut found = None;
        let mut name = qname;
        while name.len() > origin.len() {
            if let Ok(i) = cuts.binary_search_by(|d| d.owner.as_str().cmp(name)) {
                found = Some(i);
            }
            match name.split_once('.') {
                Some((_, parent)) => name = parent,
                None => break,
            }
        }
        found
    }

    /// The PTR records at `owner`.
    fn ptrs_at(&self, owner: &str) -> &[crate::zone::PtrRecord] {
        let ptrs = &self.zone.ptrs;
        if ptrs.is_empty() {
            return &[];
        }
        let start = ptrs.partition_point(|p| p.owner.as_str() < owner);
        let len = ptrs[start..]
            .iter()
            .take_while(|p| p.owner.as_str() == owner)
            .count();
        &ptrs[start..start + len]
    }

    /// The apex records in transfer order: the SOA, then NS and glue.
    pub(crate) fn apex_records(&self) -> (&Record, impl Iterator<Item = &Record>) {
        (
            &self.soa,
            self.ns.iter().chain(self.glue.iter().map(|(_, r)| r)),
        )
    }

    /// The zone's origin.
    pub fn origin(&self) -> &DomainName {
        &self.zone.origin
    }

    /// The TXT records at `owner`.
    fn records_at(&self, owner: &str) -> &[crate::zone::ZoneRecord] {
        self.index.records_at(&self.zone, owner)
    }

    /// What the zone holds for `qtype` at `qname` (lowercase, no trailing
    /// dot, inside the zone). The decision is made here once, and
    /// `crate::serve::wire` turns it into the same bytes for UDP and TCP.
    ///
    /// `ANY` gets one RRset (RFC 8482 §4.2): the TXT records if the name
    /// has any, else the SOA at the apex, else the first glue type.
    ///
    /// At or below a delegation point the answer is a referral, except DS
    /// at the point itself: NODATA, since the parent holds no DS records.
    pub(crate) fn resolve(&self, qname: &str, qtype: RecordType) -> Resolved<'_> {
        let mut r = Resolved {
            exists: false,
            soa: false,
            ns: false,
            glue: Vec::new(),
            txt: &[],
            ptr: &[],
            referral: None,
        };
        if let Some(cut) = self.cut_for(qname) {
            r.exists = true;
            if !(qtype == RecordType::DS && self.zone.delegations[cut].owner.as_str() == qname) {
                r.referral = Some(cut);
            }
            return r;
        }
        let txt = self.records_at(qname);
        let ptr = self.ptrs_at(qname);
        let qtype = if qtype != RecordType::ANY {
            qtype
        } else if !txt.is_empty() {
            RecordType::TXT
        } else if !ptr.is_empty() {
            RecordType::PTR
        } else if qname == self.zone.origin.as_str() {
            RecordType::SOA
        } else {
            self.glue
                .iter()
                .find(|(host, _)| host == qname)
                .map_or(RecordType::TXT, |(_, rec)| rec.record_type())
        };
        if qname == self.zone.origin.as_str() {
            r.exists = true;
            r.soa = qtype == RecordType::SOA;
            r.ns = qtype == RecordType::NS;
        }
        for (i, (host, rec)) in self.glue.iter().enumerate() {
            if host == qname {
                r.exists = true;
                if rec.record_type() == qtype {
                    r.glue.push(i);
                }
            }
        }
        if !txt.is_empty() {
            r.exists = true;
            if qtype == RecordType::TXT {
                r.txt = txt;
            }
        }
        if !ptr.is_empty() {
            r.exists = true;
            if qtype == RecordType::PTR {
                r.ptr = ptr;
            }
        }
        if !r.exists {
            r.exists = self.index.is_empty_non_terminal(qname);
        }
        r
    }

    /// The apex records in wire form, for `crate::serve::wire`.
    pub(crate) fn wire(&self) -> &WireRecords {
        &self.wire
    }

    /// Indexes into [`WireRecords::glue`] of the apex name servers'
    /// addresses.
    pub(crate) fn apex_glue(&self) -> &[usize] {
        &self.apex_glue
    }

    /// Indexes into [`WireRecords::glue`] of the addresses of delegation
    /// `cut`'s name servers.
    pub(crate) fn cut_glue(&self, cut: usize) -> &[usize] {
        &self.cuts[cut]
    }
}

/// What a zone holds for one query (see [`ServedZone::resolve`]).
#[derive(Debug)]
pub(crate) struct Resolved<'z> {
    /// The name exists (NOERROR rather than NXDOMAIN).
    pub(crate) exists: bool,
    /// The answer holds the SOA.
    pub(crate) soa: bool,
    /// The answer holds the NS records, and the additional section the glue.
    pub(crate) ns: bool,
    /// The answer holds these glue records (indexes into the zone's glue).
    pub(crate) glue: Vec<usize>,
    /// The answer holds these TXT records, owned by the query name.
    pub(crate) txt: &'z [crate::zone::ZoneRecord],
    /// The answer holds these PTR records, owned by the query name.
    pub(crate) ptr: &'z [crate::zone::PtrRecord],
    /// The name is at or below this delegation (an index into the zone's
    /// delegations): a referral, not authoritative; every other field is
    /// empty.
    pub(crate) referral: Option<usize>,
}

impl Resolved<'_> {
    /// Whether the answer is NODATA or NXDOMAIN (no answer, no referral),
    /// so that the authority section carries the SOA.
    pub(crate) fn is_negative(&self) -> bool {
        !self.soa
            && !self.ns
            && self.glue.is_empty()
            && self.txt.is_empty()
            && self.ptr.is_empty()
            && self.referral.is_none()
    }
}

/// One record pre-encoded in wire form, with two-octet holes where a
/// compression pointer to the zone apex goes: the apex is a suffix of the
/// question of every in-zone query, so each answer fills the holes with a
/// pointer into its own question ([`Template::write`]).
#[derive(Debug, Clone)]
pub(crate) struct Template {
    bytes: Vec<u8>,
    apex_pointers: Vec<usize>,
}

impl Template {
    /// A record of `rtype` owned by `owner`, with RDATA written by `rdata`.
    fn record(
        apex: &str,
        owner: &str,
        rtype: RecordType,
        ttl: u32,
        rdata: impl FnOnce(&mut Template),
    ) -> Self {
        let mut t = Template {
            bytes: Vec::with_capacity(64),
            apex_pointers: Vec::new(),
        };
        t.name(apex, owner);
        t.bytes.extend_from_slice(&u16::from(rtype).to_be_bytes());
        t.bytes.extend_from_slice(&1u16.to_be_bytes());
        t.bytes.extend_from_slice(&ttl.to_be_bytes());
        let rdlen_at = t.bytes.len();
        t.bytes.extend_from_slice(&[0, 0]);
        rdata(&mut t);
        let rdlen = (t.bytes.len() - rdlen_at - 2) as u16;
        t.bytes[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        t
    }

    /// Appends `name` (lowercase, no trailing dot): its labels up to the
    /// apex and a pointer hole for the apex, or all labels if it is not in
    /// the zone.
    fn name(&mut self, apex: &str, name: &str) {
        let prefix = if name == apex {
            Some("")
        } else {
            name.strip_suffix(apex)
                .and_then(|p| p.strip_suffix('.'))
                .filter(|p| !p.is_empty())
        };
        let labels = prefix.unwrap_or(name);
        for label in labels.split('.').filter(|l| !l.is_empty()) {
            self.bytes.push(label.len() as u8);
            self.bytes.extend_from_slice(label.as_bytes());
        }
        if prefix.is_some() {
            self.apex_pointers.push(self.bytes.len());
            self.bytes.extend_from_slice(&[0, 0]);
        } else {
            self.bytes.push(0);
        }
    }

    /// Appends the record with its holes filled by `apex_pointer` (a
    /// compression pointer to the apex's labels in the message).
    pub(crate) fn write(&self, out: &mut Vec<u8>, apex_pointer: [u8; 2]) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        for &p in &self.apex_pointers {
            out[start + p..start + p + 2].copy_from_slice(&apex_pointer);
        }
    }
}

/// The apex records pre-encoded (see [`Template`]), so that answering
/// copies bytes instead of encoding records.
#[derive(Debug)]
pub(crate) struct WireRecords {
    /// The SOA with the zone's TTL.
    pub(crate) soa: Template,
    /// The SOA with the negative-caching TTL, min(SOA TTL, SOA minimum)
    /// (RFC 2308 §5), for the authority section of negative answers.
    pub(crate) negative_soa: Template,
    /// The NS records.
    pub(crate) ns: Vec<Template>,
    /// The glue records, in the order of the zone's glue.
    pub(crate) glue: Vec<Template>,
    /// The NS records of each delegation, in the order of the zone's
    /// delegations.
    pub(crate) cuts: Vec<Vec<Template>>,
}

impl WireRecords {
    fn new(zone: &Zone) -> Self {
        let apex = zone.origin.as_str();
        let soa = |ttl| {
            Template::record(apex, apex, RecordType::SOA, ttl, |t| {
                t.name(apex, zone.soa.mname.as_str());
                t.name(apex, zone.soa.rname.as_str());
                for v in [
                    zone.soa.serial,
                    timer(zone.soa.refresh) as u32,
                    timer(zone.soa.retry) as u32,
                    timer(zone.soa.expire) as u32,
                    zone.soa.minimum,
                ] {
                    t.bytes.extend_from_slice(&v.to_be_bytes());
                }
            })
        };
        let ns = zone
            .ns
            .iter()
            .map(|n| {
                Template::record(apex, apex, RecordType::NS, zone.ttl, |t| {
                    t.name(apex, n.as_str())
                })
            })
            .collect();
        let mut glue = Vec::new();
        for (host, ips) in &zone.glue {
            for ip in ips {
                let (rtype, octets): (_, Vec<u8>) = match ip {
                    std::net::IpAddr::V4(v4) => (RecordType::A, v4.octets().to_vec()),
                    std::net::IpAddr::V6(v6) => (RecordType::AAAA, v6.octets().to_vec()),
                };
                glue.push(Template::record(
                    apex,
                    host.as_str(),
                    rtype,
                    zone.ttl,
                    |t| t.bytes.extend_from_slice(&octets),
                ));
            }
        }
        let cuts = zone
            .delegations
            .iter()
            .map(|d| {
                d.ns.iter()
                    .map(|n| {
                        Template::record(apex, d.owner.as_str(), RecordType::NS, zone.ttl, |t| {
                            t.name(apex, n.as_str())
                        })
                    })
                    .collect()
            })
            .collect();
        WireRecords {
            soa: soa(zone.ttl),
            negative_soa: soa(zone.ttl.min(zone.soa.minimum)),
            ns,
            glue,
            cuts,
        }
    }
}

/// The A or AAAA record data of an address.
pub fn glue_rdata(ip: std::net::IpAddr) -> RData {
    match ip {
        std::net::IpAddr::V4(v4) => RData::A(v4.into()),
        std::net::IpAddr::V6(v6) => RData::AAAA(v6.into()),
    }
}

fn timer(secs: u32) -> i32 {
    i32::try_from(secs).unwrap_or(i32::MAX)
}

/// The served zone that `qname` (lowercase, no trailing dot) falls in: the
/// one with the longest matching origin.
pub fn zone_for<'a>(zones: &'a [Arc<ServedZone>], qname: &str) -> Option<&'a Arc<ServedZone>> {
    zones
        .iter()
        .filter(|z| {
            let o = z.origin().as_str();
            qname == o
                || (qname.len() > o.len()
                    && qname.ends_with(o)
                    && qname.as_bytes()[qname.len() - o.len() - 1] == b'.')
        })
        .max_by_key(|z| z.origin().as_str().len())
}

/// The zones a server answers from, found by origin: what the query paths
/// read for each query. With thousands of zones (one per customer domain)
/// a linear search per query would dominate, so the zones are kept in a
/// hash map by origin and a query name is looked up suffix by suffix, the
/// whole name first: the first hit is the longest matching origin, the
/// same answer as [`zone_for`] on the list, in at most one lookup per
/// label of the query name.
#[derive(Default)]
pub struct ZoneTable {
    by_origin: std::collections::HashMap<Box<str>, Arc<ServedZone>>,
}

impl ZoneTable {
    /// The table of `zones`; of two zones with the same origin the last
    /// wins (callers refuse duplicates before).
    pub fn new(zones: impl IntoIterator<Item = Arc<ServedZone>>) -> Self {
        ZoneTable {
            by_origin: zones
                .into_iter()
                .map(|z| (Box::from(z.origin().as_str()), z))
                .collect(),
        }
    }

    /// The zone with the longest origin that `qname` (lower case, no
    /// trailing dot) is equal to or below.
    pub fn zone_for(&self, qname: &str) -> Option<&Arc<ServedZone>> {
        let mut name = qname;
        loop {
            if let Some(z) = self.by_origin.get(name) {
                return Some(z);
            }
            name = name.split_once('.')?.1;
        }
    }

    /// The zone whose origin is exactly `origin`.
    pub fn get(&self, origin: &str) -> Option<&Arc<ServedZone>> {
        self.by_origin.get(origin)
    }

    /// Number of zones.
    pub fn len(&self) -> usize {
        self.by_origin.len()
    }

    /// Whether there are no zones.
    pub fn is_empty(&self) -> bool {
        self.by_origin.is_empty()
    }

    /// Every zone, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ServedZone>> {
        self.by_origin.values()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::zone::{Soa, ZoneRecord};

    struct Looked {
        exists: bool,
        answers: usize,
        additionals: usize,
    }

    impl ServedZone {
        fn lookup(&self, qname: &str, _name: &Name, qtype: RecordType) -> Looked {
            let r = self.resolve(qname, qtype);
            let answers = usize::from(r.soa)
                + if r.ns { self.ns.len() } else { 0 }
                + r.glue.len()
                + r.txt.len();
            assert_eq!(r.is_negative(), answers == 0);
            Looked {
                exists: r.exists,
                answers,
                additionals: if r.ns { self.glue.len() } else { 0 },
            }
        }
    }

    pub(crate) fn zone() -> ServedZone {
        let d = |s: &str| DomainName::parse(s).unwrap();
        let rec = |o: &str, t: &str| ZoneRecord::new(d(o), 300, t);
        let mut records = vec![
            rec("aaa._mimi.example.com", "v=mimi1;x"),
            rec("aaa._mimi.example.com", "v=mimi1;y"),
            rec("bbb._mimi.example.com", "v=mimi1;z"),
            rec("_mimi-ma.example.com", "v=mimi1;c"),
            rec("ccc._mimi.9.3.e164.example.com", "v=mimi1;t"),
            rec("abcd.ab._mimi.example.com", "v=mimi1;s"),
        ];
        // Three records of 300 octets at one name: more than 512 octets,
        // less than 1232.
        for i in 0..3 {
            records.push(rec(
                "big._mimi.example.com",
                &format!("v=mimi1;{i}{}", "b".repeat(291)),
            ));
        }
        records.sort();
        ServedZone::new(Arc::new(Zone {
            origin: d("example.com"),
            ttl: 3600,
            soa: Soa {
                mname: d("ns1.example.com"),
                rname: d("h.example.com"),
                serial: 7,
                refresh: 1,
                retry: 1,
                expire: 1,
                minimum: 60,
            },
            ns: vec![d("ns1.example.com")],
            glue: vec![(d("ns1.example.com"), vec!["192.0.2.1".parse().unwrap()])],
            records,
            delegations: Vec::new(),
            ptrs: Vec::new(),
            next_resign: None,
            transfer: None,
            cache: Default::default(),
            ledger: Default::default(),
        }))
        .unwrap()
    }

    /// `example.com` with shards `a3` and `b0` delegated: `a3` to a name
    /// server inside the zone (glue) and one outside, `b0` to one inside
    /// the delegated shard itself (glue below the cut), and a record of an
    /// undelegated shard.
    pub(crate) fn delegated_zone() -> ServedZone {
        let d = |s: &str| DomainName::parse(s).unwrap();
        let mut z = (*zone().zone).clone();
        z.delegations = vec![
            crate::zone::Delegation {
                owner: d("a3._mimi.example.com"),
                ns: vec![d("ns1.shards.example.com"), d("ns.other.net")],
            },
            crate::zone::Delegation {
                owner: d("b0._mimi.example.com"),
                ns: vec![d("ns.b0._mimi.example.com")],
            },
        ];
        z.glue.push((
            d("ns1.shards.example.com"),
            vec!["192.0.2.7".parse().unwrap()],
        ));
        z.glue.push((
            d("ns.b0._mimi.example.com"),
            vec!["192.0.2.8".parse().unwrap(), "2001:db8::8".parse().unwrap()],
        ));
        ServedZone::new(Arc::new(z)).unwrap()
    }

    /// Every query shape at and below a delegation point: a referral, but
    /// DS at the point itself is the parent's (NODATA); names beside and
    /// above are answered as before.
    #[test]
    fn delegations_refer() {
        let z = delegated_zone();
        let all = [
            RecordType::TXT,
            RecordType::NS,
            RecordType::A,
            RecordType::AAAA,
            RecordType::SOA,
            RecordType::ANY,
            RecordType::DS,
        ];
        for q in [
            "a3._mimi.example.com",
            "a3xyz.a3._mimi.example.com",
            "x.y.a3._mimi.example.com",
            "b0._mimi.example.com",
            "ns.b0._mimi.example.com",
            "b0abc.b0._mimi.example.com",
        ] {
            let cut = usize::from(q.contains("b0"));
            for t in all {
                let r = z.resolve(q, t);
                let at_cut = q.starts_with("a3._") || q.starts_with("b0._");
                if t == RecordType::DS && at_cut {
                    assert!(
                        r.exists && r.is_negative() && r.referral.is_none(),
                        "{q} {t}"
                    );
                } else {
                    assert_eq!(r.referral, Some(cut), "{q} {t}");
                    assert!(r.exists && !r.is_negative(), "{q} {t}");
                    assert!(!r.soa && !r.ns && r.glue.is_empty() && r.txt.is_empty());
                }
            }
        }
        // Glue of each cut: a3's in-zone server (its out-of-zone one has
        // none), b0's two addresses below the cut.
        assert_eq!(z.cut_glue(0).len(), 1);
        assert_eq!(z.cut_glue(1).len(), 2);
        // The apex NS answer carries the apex glue only.
        assert_eq!(z.apex_glue().len(), 1);
        // Beside and above the cuts.
        let r = z.resolve("aaa._mimi.example.com", RecordType::TXT);
        assert_eq!((r.txt.len(), r.referral), (2, None));
        let r = z.resolve("_mimi.example.com", RecordType::NS);
        assert!(r.exists && r.is_negative());
        assert!(!z.resolve("a4._mimi.example.com", RecordType::TXT).exists);
        assert!(!z.resolve("a3._mimi.example.co", RecordType::TXT).exists);
        assert!(!z.resolve("xa3._mimi.example.com", RecordType::TXT).exists);
        let r = z.resolve("ns1.shards.example.com", RecordType::A);
        assert_eq!((r.glue.len(), r.referral), (1, None));
        assert!(z.resolve("shards.example.com", RecordType::A).exists);
    }

    #[test]
    fn positive_negative_and_empty_non_terminals() {
        let z = zone();
        let a = z.lookup("aaa._mimi.example.com", &Name::root(), RecordType::TXT);
        assert!(a.exists);
        assert_eq!(a.answers, 2);
        assert_eq!(
            z.lookup("bbb._mimi.example.com", &Name::root(), RecordType::TXT)
                .answers,
            1
        );
        // NODATA: name exists, other type.
        let n = z.lookup("bbb._mimi.example.com", &Name::root(), RecordType::A);
        assert!(n.exists && n.answers == 0);
        // Empty non-terminals exist.
        for ent in [
            "_mimi.example.com",
            "9.3.e164.example.com",
            "3.e164.example.com",
            "e164.example.com",
            "_mimi.9.3.e164.example.com",
        ] {
            let e = z.lookup(ent, &Name::root(), RecordType::TXT);
            assert!(e.exists && e.answers == 0, "{ent}");
        }
        // NXDOMAIN.
        for nx in [
            "zzz._mimi.example.com",
            "x.aaa._mimi.example.com",
            "_mimi.example.co",
            "4.e164.example.com",
        ] {
            assert!(!z.lookup(nx, &Name::root(), RecordType::TXT).exists, "{nx}");
        }
        // Apex and glue.
        assert_eq!(
            z.lookup("example.com", &Name::root(), RecordType::SOA)
                .answers,
            1
        );
        let ns = z.lookup("example.com", &Name::root(), RecordType::NS);
        assert_eq!((ns.answers, ns.additionals), (1, 1));
        assert_eq!(
            z.lookup("ns1.example.com", &Name::root(), RecordType::A)
                .answers,
            1
        );
        assert!(
            z.lookup("ns1.example.com", &Name::root(), RecordType::AAAA)
                .exists
        );
    }

    #[test]
    fn any_gets_one_rrset() {
        let z = zone();
        let any = |q: &str| z.lookup(q, &Name::root(), RecordType::ANY);
        // TXT at a discovery name.
        assert_eq!(any("aaa._mimi.example.com").answers, 2);
        // The SOA alone at the apex (not SOA and NS).
        let apex = z.resolve("example.com", RecordType::ANY);
        assert!(apex.soa && !apex.ns && apex.txt.is_empty());
        // The address RRset at a name server.
        assert_eq!(any("ns1.example.com").answers, 1);
        // NODATA at an empty non-terminal, NXDOMAIN elsewhere.
        let ent = any("_mimi.example.com");
        assert!(ent.exists && ent.answers == 0);
        assert!(!any("zzz._mimi.example.com").exists);
    }

    #[test]
    fn longest_origin_wins() {
        let a = Arc::new(zone());
        let zones = vec![a.clone()];
        assert!(zone_for(&zones, "x.example.com").is_some());
        assert!(zone_for(&zones, "example.com").is_some());
        assert!(zone_for(&zones, "xexample.com").is_none());
        assert!(zone_for(&zones, "com").is_none());
        let table = ZoneTable::new(zones.iter().cloned());
        for q in [
            "x.example.com",
            "example.com",
            "xexample.com",
            "com",
            "a.b.c.example.com",
        ] {
            assert_eq!(
                table.zone_for(q).map(|z| z.origin().as_str()),
                zone_for(&zones, q).map(|z| z.origin().as_str()),
                "{q}"
            );
        }
    }
}
