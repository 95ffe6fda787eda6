//! Answering UDP queries at the byte level: the server's fast path.
//!
//! Almost every query a discovery zone receives is the same shape: one
//! question, class IN, maybe an EDNS OPT record, answered by a few TXT
//! records or a negative answer. Going through hickory-server for each one
//! means decoding a `Message` (a heap `Name` per question), building
//! `Record`s (a heap TXT per answer), encoding them with name compression
//! tables, and a task wake-up per request: measured at 12–21 µs of server
//! CPU per query against NSD's 7–10 µs. This module reads such a query in
//! place and writes the answer straight from the [`ServedZone`]: the
//! question is copied from the query, TXT answers point at it (`0xC00C`),
//! and the apex records (SOA, NS, glue) are copied from forms encoded once
//! per zone load.
//!
//! What is decided is not duplicated: [`ServedZone::resolve`] says what
//! the zone holds for a name and type, for this path and for the TCP path
//! alike. Queries of any other shape (several questions, compressed or
//! binary question names, TSIG, unknown opcodes, malformed packets) go to
//! [`answer_other`], which decodes them with hickory-proto and encodes the
//! same decision with hickory's records.

use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};

use crate::answer::{normalize, zone_for, Resolved, ServedZone};

/// The UDP payload size we advertise and the most we send when a client
/// advertises more: 1232 octets fit any path's MTU without fragmentation
/// (the DNS Flag Day 2020 value). Larger answers are truncated (TC) and
/// the client retries over TCP.
pub(crate) const MAX_UDP_PAYLOAD: u16 = 1232;
/// The most a client without EDNS accepts (RFC 1035 §4.2.1).
const PLAIN_UDP_PAYLOAD: u16 = 512;

const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const CD: u16 = 0x0010;
const TYPE_OPT: u16 = 41;
const TYPE_TXT: u16 = 16;
const CLASS_IN: u16 = 1;
const HEADER_LEN: usize = 12;
/// BADVERS (16): 1 in the OPT record's extended RCODE, 0 in the header.
const BADVERS_HIGH: u8 = 1;
/// DO bit in the OPT record's flags (RFC 3225).
const EDNS_DO: u16 = 0x8000;

/// The EDNS OPT record of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct QueryEdns {
    payload: u16,
    version: u8,
    dnssec_ok: bool,
}

/// A query of the common shape, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PlainQuery {
    id: u16,
    flags: u16,
    /// Where the question ends (the question is `packet[12..question_end]`).
    question_end: usize,
    qtype: u16,
    qclass: u16,
    edns: Option<QueryEdns>,
}

/// What [`read_plain`] made of a packet.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// A query of the common shape; the name is in the caller's buffer.
    Plain(PlainQuery),
    /// Not a query (a response, or too short to have a header): no answer,
    /// so that the server cannot be used to reflect packets.
    Drop,
    /// Some other shape: decode it in full.
    Other,
}

fn u16_at(packet: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]))
}

/// Reads a query with one question whose name is uncompressed printable
/// ASCII, and at most an OPT record besides; the lowercase name, without the
/// trailing dot, goes to `qname` (the spelling of the zone index).
fn read_plain(packet: &[u8], qname: &mut String) -> Read {
    if packet.len() < HEADER_LEN {
        return Read::Drop;
    }
    let word = |at| u16::from_be_bytes([packet[at], packet[at + 1]]);
    let (id, flags) = (word(0), word(2));
    if flags & QR != 0 {
        return Read::Drop;
    }
    let opcode = (flags >> 11) & 0xf;
    let (qd, an, ns, ar) = (word(4), word(6), word(8), word(10));
    if opcode != 0 || qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return Read::Other;
    }
    qname.clear();
    let mut pos = HEADER_LEN;
    loop {
        let Some(&len) = packet.get(pos) else {
            return Read::Other;
        };
        pos += 1;
        if len == 0 {
            break;
        }
        // Compression pointers (and the reserved label types) are rare in
        // questions: the full decoder handles them.
        if len > 63 || pos - HEADER_LEN > 255 {
            return Read::Other;
        }
        let Some(label) = packet.get(pos..pos + len as usize) else {
            return Read::Other;
        };
        if !qname.is_empty() {
            qname.push('.');
        }
        for &b in label {
            if !b.is_ascii_graphic() || b == b'.' || b == b'\\' {
                return Read::Other;
            }
            qname.push(b.to_ascii_lowercase() as char);
        }
        pos += len as usize;
    }
    let (Some(qtype), Some(qclass)) = (u16_at(packet, pos), u16_at(packet, pos + 2)) else {
        return Read::Other;
    };
    pos += 4;
    let question_end = pos;
    let mut edns = None;
    if ar == 1 {
        // An OPT record: root owner, type 41, class = payload size, TTL =
        // extended RCODE, version, flags; then its options, ignored.
        if packet.get(pos) != Some(&0) || u16_at(packet, pos + 1) != Some(TYPE_OPT) {
            return Read::Other;
        }
        let (Some(payload), Some(version), Some(eflags), Some(rdlen)) = (
            u16_at(packet, pos + 3),
            packet.get(pos + 6),
            u16_at(packet, pos + 7),
            u16_at(packet, pos + 9),
        ) else {
            return Read::Other;
        };
        pos += 11 + rdlen as usize;
        edns = Some(QueryEdns {
            payload,
            version: *version,
            dnssec_ok: eflags & EDNS_DO != 0,
        });
    }
    if pos != packet.len() {
        return Read::Other;
    }
    Read::Plain(PlainQuery {
        id,
        flags,
        question_end,
        qtype,
        qclass,
        edns,
    })
}

/// Writes the answer to the UDP query `packet` into `out` (cleared first),
/// using `scratch` for the query name; returns whether there is an answer
/// to send.
pub(crate) fn answer_udp(
    zones: &[Arc<ServedZone>],
    packet: &[u8],
    out: &mut Vec<u8>,
    scratch: &mut String,
) -> bool {
    out.clear();
    match read_plain(packet, scratch) {
        Read::Plain(query) => {
            write_plain(zones, &query, packet, scratch, out);
            true
        }
        Read::Drop => false,
        Read::Other => answer_other(zones, packet, out),
    }
}

/// The response's flags: QR, opcode QUERY, RD and CD copied (RFC 1035
/// §4.1.1, RFC 4035 §3.1.6), RA clear.
fn response_flags(query_flags: u16) -> u16 {
    QR | (query_flags & (RD | CD))
}

/// Appends our OPT record (RFC 6891 §6.1.2): our payload size, the high
/// bits of the RCODE, version 0, the DO bit copied (RFC 3225 §3).
fn push_opt(out: &mut Vec<u8>, rcode_high: u8, dnssec_ok: bool) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&MAX_UDP_PAYLOAD.to_be_bytes());
    out.extend_from_slice(&[rcode_high, 0]);
    out.extend_from_slice(&(if dnssec_ok { EDNS_DO } else { 0 }).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
}

/// Appends a TXT record owned by the question name (a pointer to offset
/// 12), its text split into ≤255-octet character-strings (SPEC §4).
fn push_txt(out: &mut Vec<u8>, ttl: u32, text: &str) {
    out.extend_from_slice(&[0xc0, HEADER_LEN as u8]);
    out.extend_from_slice(&TYPE_TXT.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    let chunks = text.len().div_ceil(255).max(1);
    let rdlen = text.len() + chunks;
    out.extend_from_slice(&(rdlen as u16).to_be_bytes());
    if text.is_empty() {
        out.push(0);
    }
    for chunk in text.as_bytes().chunks(255) {
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
}

fn write_header(out: &mut [u8], id: u16, flags: u16, counts: [u16; 4]) {
    out[0..2].copy_from_slice(&id.to_be_bytes());
    out[2..4].copy_from_slice(&flags.to_be_bytes());
    for (i, c) in counts.iter().enumerate() {
        out[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
}

/// Writes the answer to a [`PlainQuery`].
fn write_plain(
    zones: &[Arc<ServedZone>],
    query: &PlainQuery,
    packet: &[u8],
    qname: &str,
    out: &mut Vec<u8>,
) {
    let limit = query.edns.map_or(PLAIN_UDP_PAYLOAD, |e| {
        e.payload.clamp(PLAIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD)
    }) as usize;
    let flags = response_flags(query.flags);
    let dnssec_ok = query.edns.is_some_and(|e| e.dnssec_ok);
    let ar_opt = u16::from(query.edns.is_some());
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.extend_from_slice(&packet[HEADER_LEN..query.question_end]);
    let rcode_only = |out: &mut Vec<u8>, rcode: u16, high: u8| {
        if query.edns.is_some() {
            push_opt(out, high, dnssec_ok);
        }
        write_header(out, query.id, flags | rcode, [1, 0, 0, ar_opt]);
    };
    if query.edns.is_some_and(|e| e.version != 0) {
        return rcode_only(out, 0, BADVERS_HIGH);
    }
    let qtype = RecordType::from(query.qtype);
    if query.qclass != CLASS_IN || matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        // Other classes are not served; transfers run over TCP only.
        return rcode_only(out, u16::from(ResponseCode::Refused.low()), 0);
    }
    let Some(zone) = zone_for(zones, qname) else {
        return rcode_only(out, u16::from(ResponseCode::Refused.low()), 0);
    };
    let resolved = zone.resolve(qname, qtype);
    let (an, ns, ar) = write_sections(zone, &resolved, out);
    let rcode = if resolved.exists {
        ResponseCode::NoError
    } else {
        ResponseCode::NXDomain
    };
    let flags = flags | AA | u16::from(rcode.low());
    if query.edns.is_some() {
        push_opt(out, 0, dnssec_ok);
    }
    if out.len() > limit {
        // Too large for the client: TC with the question only, and the
        // client asks again over TCP (RFC 7766 §5).
        out.truncate(query.question_end);
        if query.edns.is_some() {
            push_opt(out, 0, dnssec_ok);
        }
        write_header(out, query.id, flags | TC, [1, 0, 0, ar_opt]);
    } else {
        write_header(out, query.id, flags, [1, an, ns, ar + ar_opt]);
    }
}

/// Appends the answer, authority and additional records of `resolved`;
/// returns their counts.
fn write_sections(
    zone: &ServedZone,
    resolved: &Resolved<'_>,
    out: &mut Vec<u8>,
) -> (u16, u16, u16) {
    let wire = zone.wire();
    let mut an = 0u16;
    if resolved.soa {
        out.extend_from_slice(&wire.soa);
        an += 1;
    }
    if resolved.ns {
        for r in &wire.ns {
            out.extend_from_slice(r);
            an += 1;
        }
    }
    for &i in &resolved.glue {
        out.extend_from_slice(&wire.glue[i]);
        an += 1;
    }
    for r in resolved.txt {
        push_txt(out, r.ttl, &r.text);
        an += 1;
    }
    let mut ns = 0u16;
    if resolved.is_negative() {
        out.extend_from_slice(&wire.negative_soa);
        ns += 1;
    }
    let mut ar = 0u16;
    if resolved.ns {
        for r in &wire.glue {
            out.extend_from_slice(r);
            ar += 1;
        }
    }
    (an, ns, ar)
}

/// Answers a query of any other shape by decoding it in full with
/// hickory-proto; returns whether there is an answer to send.
pub(crate) fn answer_other(zones: &[Arc<ServedZone>], packet: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    if packet.len() < HEADER_LEN || packet[2] & 0x80 != 0 {
        return false;
    }
    let request = match Message::from_vec(packet) {
        Ok(m) => m,
        Err(_) => {
            // The header is readable: FORMERR, header only.
            let flags = u16::from_be_bytes([packet[2], packet[3]]);
            out.extend_from_slice(&[0; HEADER_LEN]);
            let rcode = u16::from(ResponseCode::FormErr.low());
            let id = u16::from_be_bytes([packet[0], packet[1]]);
            write_header(
                out,
                id,
                response_flags(flags) | (flags & 0x7800) | rcode,
                [0; 4],
            );
            return true;
        }
    };
    let mut response = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    response.queries = request.queries.clone();
    let limit = request.edns.as_ref().map_or(PLAIN_UDP_PAYLOAD, |e| {
        e.max_payload().clamp(PLAIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD)
    });
    if let Some(req) = &request.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        edns.set_version(0);
        edns.set_dnssec_ok(req.flags().dnssec_ok);
        response.edns = Some(edns);
    }
    let rcode = if request.metadata.op_code != OpCode::Query {
        Some(ResponseCode::NotImp)
    } else if request.queries.len() != 1 {
        Some(ResponseCode::FormErr)
    } else if request.edns.as_ref().is_some_and(|e| e.version() != 0) {
        Some(ResponseCode::BADVERS)
    } else {
        let q = &request.queries[0];
        let qname = normalize(&q.name().into());
        match zone_for(zones, &qname) {
            _ if q.query_class() != DNSClass::IN => Some(ResponseCode::Refused),
            _ if matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR) => {
                Some(ResponseCode::Refused)
            }
            None => Some(ResponseCode::Refused),
            Some(zone) => {
                let resolved = zone.resolve(&qname, q.query_type());
                let (answers, additionals) = zone.records(&resolved, q.name());
                response.metadata.authoritative = true;
                response.metadata.response_code = if resolved.exists {
                    ResponseCode::NoError
                } else {
                    ResponseCode::NXDomain
                };
                if resolved.is_negative() {
                    response.authorities.push(zone.negative_soa());
                }
                response.answers = answers;
                response.additionals = additionals;
                None
            }
        }
    };
    if let Some(rcode) = rcode {
        response.metadata.response_code = rcode;
    }
    let Ok(mut bytes) = response.to_vec() else {
        return false;
    };
    if bytes.len() > limit as usize {
        response.answers.clear();
        response.authorities.clear();
        response.additionals.clear();
        response.metadata.truncation = true;
        let Ok(truncated) = response.to_vec() else {
            return false;
        };
        bytes = truncated;
    }
    out.extend_from_slice(&bytes);
    true
}

#[cfg(test)]
mod tests;
