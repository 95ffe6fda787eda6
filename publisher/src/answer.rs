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
//! * UDP answers too large for the client's buffer are truncated (TC) by
//!   the encoder, and the client retries over TCP.
//!
//! Serving straight from the [`Zone`] also means a reload has nothing to
//! convert, and the zone is held in memory once.

use std::sync::Arc;

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{NS, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use mimi_proto::text::split_txt;
use mimi_proto::DomainName;

use crate::index::OwnerIndex;
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
                    Record::from_rdata(name.clone(), zone.ttl, crate::transfer::glue_rdata(*ip)),
                ));
            }
        }
        let index = OwnerIndex::new(&zone);
        let mut negative_soa = soa.clone();
        negative_soa.ttl = zone.ttl.min(zone.soa.minimum);
        let wire = WireRecords {
            soa: wire_record(&soa)?,
            negative_soa: wire_record(&negative_soa)?,
            ns: ns.iter().map(wire_record).collect::<Result<_, _>>()?,
            glue: glue
                .iter()
                .map(|(_, r)| wire_record(r))
                .collect::<Result<_, _>>()?,
        };
        Ok(ServedZone {
            zone,
            soa,
            ns,
            glue,
            index,
            wire,
        })
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
    /// dot, inside the zone). The decision is made here once; the TCP path
    /// turns it into hickory records ([`ServedZone::records`]) and the UDP
    /// fast path into wire bytes ([`crate::wire`]).
    pub(crate) fn resolve(&self, qname: &str, qtype: RecordType) -> Resolved<'_> {
        let any = qtype == RecordType::ANY;
        let mut r = Resolved {
            exists: false,
            soa: false,
            ns: false,
            glue: Vec::new(),
            txt: &[],
        };
        if qname == self.zone.origin.as_str() {
            r.exists = true;
            r.soa = any || qtype == RecordType::SOA;
            r.ns = any || qtype == RecordType::NS;
        }
        for (i, (host, rec)) in self.glue.iter().enumerate() {
            if host == qname {
                r.exists = true;
                if any || rec.record_type() == qtype {
                    r.glue.push(i);
                }
            }
        }
        let txt = self.records_at(qname);
        if !txt.is_empty() {
            r.exists = true;
            if any || qtype == RecordType::TXT {
                r.txt = txt;
            }
        }
        if !r.exists {
            r.exists = self.index.is_empty_non_terminal(qname);
        }
        r
    }

    /// `resolved` as hickory records for the answer and additional sections;
    /// `name` is the query name as asked, the owner of the TXT answers.
    pub(crate) fn records(
        &self,
        resolved: &Resolved<'_>,
        name: &Name,
    ) -> (Vec<Record>, Vec<Record>) {
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        if resolved.soa {
            answers.push(self.soa.clone());
        }
        if resolved.ns {
            answers.extend(self.ns.iter().cloned());
            additionals.extend(self.glue.iter().map(|(_, r)| r.clone()));
        }
        answers.extend(resolved.glue.iter().map(|&i| self.glue[i].1.clone()));
        for r in resolved.txt {
            let strings: Vec<&[u8]> = split_txt(&r.text).into_iter().map(str::as_bytes).collect();
            answers.push(Record::from_rdata(
                name.clone(),
                r.ttl,
                RData::TXT(TXT::from_bytes(strings)),
            ));
        }
        (answers, additionals)
    }

    /// The apex records in wire form, for the UDP fast path.
    pub(crate) fn wire(&self) -> &WireRecords {
        &self.wire
    }

    /// The SOA for the authority section of a negative answer, with the
    /// negative-caching TTL: min(SOA TTL, SOA minimum) (RFC 2308 §5).
    pub(crate) fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        soa.ttl = self.zone.ttl.min(self.zone.soa.minimum);
        soa
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
}

impl Resolved<'_> {
    /// Whether the answer section is empty (NODATA or NXDOMAIN), so that the
    /// authority section carries the SOA.
    pub(crate) fn is_negative(&self) -> bool {
        !self.soa && !self.ns && self.glue.is_empty() && self.txt.is_empty()
    }
}

/// The apex records pre-encoded in DNS wire form (uncompressed names), so
/// that the UDP fast path copies bytes instead of encoding records.
#[derive(Debug)]
pub(crate) struct WireRecords {
    /// The SOA with the zone's TTL.
    pub(crate) soa: Vec<u8>,
    /// The SOA with the negative-caching TTL, for the authority section.
    pub(crate) negative_soa: Vec<u8>,
    /// The NS records.
    pub(crate) ns: Vec<Vec<u8>>,
    /// The glue records, in the order of the zone's glue.
    pub(crate) glue: Vec<Vec<u8>>,
}

/// One record in wire form with uncompressed names.
fn wire_record(record: &Record) -> Result<Vec<u8>, String> {
    use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
    let mut buf = Vec::new();
    let mut encoder = BinEncoder::new(&mut buf);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    record
        .emit(&mut encoder)
        .map_err(|e| format!("cannot encode {}: {e}", record.name))?;
    Ok(buf)
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

/// A query name as the zone index spells it: lowercase, no trailing dot.
/// Labels that are not printable ASCII cannot be in a zone; they are kept
/// (escaped) so that such a name simply matches nothing.
pub fn normalize(name: &hickory_proto::rr::LowerName) -> String {
    let name: Name = name.clone().into();
    let mut s = String::with_capacity(name.len());
    for label in name.iter() {
        if !s.is_empty() {
            s.push('.');
        }
        match std::str::from_utf8(label) {
            Ok(l)
                if l.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'.' && b != b'\\') =>
            {
                s.push_str(&l.to_ascii_lowercase())
            }
            _ => s.push_str(&format!("\\#{}", data_encoding::HEXLOWER.encode(label))),
        }
    }
    s
}

/// Answers one request (anything but a zone transfer) from `zones`.
pub async fn respond<R: ResponseHandler>(
    request: &Request,
    zones: &[Arc<ServedZone>],
    mut response_handle: R,
) -> ResponseInfo {
    let edns = request.edns.as_ref().map(|req| {
        let mut e = Edns::new();
        e.set_max_payload(req.max_payload().max(512));
        e.set_version(0);
        e
    });
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.recursion_available = false;
    let queries = request.queries.queries();
    let rcode_only = |rcode: ResponseCode| {
        let mut m = metadata;
        m.response_code = rcode;
        m
    };
    if request.metadata.message_type != MessageType::Query {
        return serve_failed(request);
    }
    let outcome = if request.metadata.op_code != OpCode::Query {
        Err(ResponseCode::NotImp)
    } else if queries.len() != 1 {
        Err(ResponseCode::FormErr)
    } else if queries[0].query_class() != DNSClass::IN {
        Err(ResponseCode::Refused)
    } else {
        let q = &queries[0];
        let qname = normalize(q.name());
        match zone_for(zones, &qname) {
            None => Err(ResponseCode::Refused),
            Some(zone) => {
                let resolved = zone.resolve(&qname, q.query_type());
                let (answers, additionals) = zone.records(&resolved, &q.name().clone().into());
                Ok((zone, resolved.exists, answers, additionals))
            }
        }
    };
    let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
    let sent = match outcome {
        Err(rcode) => {
            let response = builder.build(
                rcode_only(rcode),
                std::iter::empty(),
                std::iter::empty(),
                std::iter::empty(),
                std::iter::empty(),
            );
            response_handle.send_response(response).await
        }
        Ok((zone, exists, answers, additionals)) => {
            metadata.authoritative = true;
            let negative = answers.is_empty();
            metadata.response_code = if exists {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            };
            let soa = negative.then(|| zone.negative_soa());
            let response = builder.build(
                metadata,
                answers.iter(),
                std::iter::empty(),
                soa.iter(),
                additionals.iter(),
            );
            response_handle.send_response(response).await
        }
    };
    sent.unwrap_or_else(|_| serve_failed(request))
}

/// The ResponseInfo of a request that could not be answered.
pub(crate) fn serve_failed(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::zone::{Soa, ZoneRecord};

    struct Looked {
        exists: bool,
        answers: Vec<Record>,
        additionals: Vec<Record>,
    }

    impl ServedZone {
        fn lookup(&self, qname: &str, name: &Name, qtype: RecordType) -> Looked {
            let resolved = self.resolve(qname, qtype);
            let (answers, additionals) = self.records(&resolved, name);
            assert_eq!(resolved.is_negative(), answers.is_empty());
            Looked {
                exists: resolved.exists,
                answers,
                additionals,
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
            next_resign: None,
            transfer: None,
            cache: Default::default(),
        }))
        .unwrap()
    }

    #[test]
    fn positive_negative_and_empty_non_terminals() {
        let z = zone();
        let a = z.lookup("aaa._mimi.example.com", &Name::root(), RecordType::TXT);
        assert!(a.exists);
        assert_eq!(a.answers.len(), 2);
        assert_eq!(
            z.lookup("bbb._mimi.example.com", &Name::root(), RecordType::TXT)
                .answers
                .len(),
            1
        );
        // NODATA: name exists, other type.
        let n = z.lookup("bbb._mimi.example.com", &Name::root(), RecordType::A);
        assert!(n.exists && n.answers.is_empty());
        // Empty non-terminals exist.
        for ent in [
            "_mimi.example.com",
            "9.3.e164.example.com",
            "3.e164.example.com",
            "e164.example.com",
            "_mimi.9.3.e164.example.com",
        ] {
            let e = z.lookup(ent, &Name::root(), RecordType::TXT);
            assert!(e.exists && e.answers.is_empty(), "{ent}");
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
                .answers
                .len(),
            1
        );
        let ns = z.lookup("example.com", &Name::root(), RecordType::NS);
        assert_eq!((ns.answers.len(), ns.additionals.len()), (1, 1));
        assert_eq!(
            z.lookup("ns1.example.com", &Name::root(), RecordType::A)
                .answers
                .len(),
            1
        );
        assert!(
            z.lookup("ns1.example.com", &Name::root(), RecordType::AAAA)
                .exists
        );
        assert_eq!(z.negative_soa().ttl, 60);
    }

    #[test]
    fn longest_origin_wins() {
        let a = Arc::new(zone());
        let zones = vec![a.clone()];
        assert!(zone_for(&zones, "x.example.com").is_some());
        assert!(zone_for(&zones, "example.com").is_some());
        assert!(zone_for(&zones, "xexample.com").is_none());
        assert!(zone_for(&zones, "com").is_none());
        let q = hickory_proto::rr::LowerName::from(Name::from_ascii("AbC.Example.COM.").unwrap());
        assert_eq!(normalize(&q), "abc.example.com");
    }
}
