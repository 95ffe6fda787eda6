//! Reading DNS queries and writing their answers at the byte level: the
//! one answer encoder of the server, for UDP and TCP alike.
//!
//! Almost every query a discovery zone receives is the same shape: one
//! question, class IN, maybe an EDNS OPT record, answered by a few TXT
//! records or a negative answer. Going through hickory for each one means
//! decoding a `Message` (a heap `Name` per question), building `Record`s
//! (a heap TXT per answer) and encoding them with name compression tables:
//! measured at 12–21 µs of server CPU per query against NSD's 7–10 µs.
//! This module reads a query in place and writes the answer straight from
//! the [`ServedZone`]: the question is copied from the query, TXT answers
//! point at it (`0xC00C`), and the apex records (SOA, NS, glue) are copied
//! from forms encoded once per zone load, their names compressed against
//! the zone apex inside the question ([`crate::zone::served::Template`]).
//!
//! Two readers produce the same [`Query`]: [`read_plain`] takes the common
//! shape (uncompressed printable question name, at most one OPT) in one
//! pass; [`read_full`] takes everything else (compressed question names,
//! binary labels, TSIG, several additional records) and rejects what is
//! malformed. One writer ([`write_answer`]) turns a [`Query`] and the one
//! decision of [`ServedZone::resolve`] into bytes; the transport only sets
//! the size limit (the client's EDNS size, at least 512 and at most 1232,
//! with TC beyond it, on UDP; 65,535 on TCP). Referrals from delegated
//! shards are written by the same writer (AA clear, the cut's NS records
//! in the authority section, their glue in the additional section), as are
//! PTR answers from a catalog zone. Zone transfers are recognised here and
//! handed to [`crate::transfer`] by the TCP path (and IXFR by the UDP path
//! too); answers to TSIG-signed queries are signed by [`crate::transfer`]
//! with the zone's key.
//!
//! Nothing in a header drives an allocation: counts are only loop bounds
//! over the bytes actually present, and the only buffers are the caller's,
//! reused from query to query. What is rejected, and how, follows NSD 4.6
//! (checked with the same packets, see `docs/PROTOCOL.md`): FORMERR with the
//! header only (RD kept) for a question count other than one, answer or
//! authority records in a query (authority is allowed for IXFR), a second
//! OPT, an OPT not owned by the root, EDNS options overrunning their record,
//! additional records other than OPT and TSIG, a TSIG not last, question
//! names over 255 octets, and truncated records; NOTIMP with the header only
//! for opcodes other than QUERY; bytes after the last record are ignored.

use hickory_proto::rr::RecordType;

use crate::zone::served::{Resolved, ServedZone, ZoneTable};

/// The UDP payload size we advertise and the most we send when a client
/// advertises more: 1232 octets fit any path's MTU without fragmentation
/// (the DNS Flag Day 2020 value). Larger answers are truncated (TC) and
/// the client retries over TCP.
pub(crate) const MAX_UDP_PAYLOAD: u16 = 1232;
/// The most a client without EDNS accepts (RFC 1035 §4.2.1).
const PLAIN_UDP_PAYLOAD: u16 = 512;
/// The largest DNS message over TCP (its length prefix is 16 bits).
pub(crate) const MAX_TCP_MESSAGE: usize = 65_535;
/// The longest domain name in wire form, root label included (RFC 1035
/// §2.3.4).
const MAX_NAME: usize = 255;

const QR: u16 = 0x8000;
const OPCODE_MASK: u16 = 0x7800;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const CD: u16 = 0x0010;
const TYPE_OPT: u16 = 41;
const TYPE_TXT: u16 = 16;
const TYPE_PTR: u16 = 12;
const TYPE_TSIG: u16 = 250;
const TYPE_IXFR: u16 = 251;
const TYPE_AXFR: u16 = 252;
const CLASS_IN: u16 = 1;
const HEADER_LEN: usize = 12;
const RCODE_FORMERR: u16 = 1;
const RCODE_NXDOMAIN: u16 = 3;
const RCODE_NOTIMP: u16 = 4;
const RCODE_REFUSED: u16 = 5;
/// BADVERS (16): 1 in the OPT record's extended RCODE, 0 in the header.
const BADVERS_HIGH: u8 = 1;
/// DO bit in the OPT record's flags (RFC 3225).
const EDNS_DO: u16 = 0x8000;

/// The transport a query came over: it sets the answer's size limit,
/// whether zone transfers are handed on, and whether the answer is padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// The client's EDNS size (512 without EDNS, at most 1232); TC beyond.
    Udp,
    /// 65,535 octets.
    Tcp,
    /// DNS over TLS (RFC 7858): as TCP (zone transfers included, RFC
    /// 9103), and answers to EDNS queries padded (RFC 7830, RFC 8467).
    Tls,
    /// DNS over HTTPS or QUIC (RFC 8484, RFC 9250): one message per
    /// request or stream, 65,535 octets, padded as over TLS; zone
    /// transfers are REFUSED.
    Message,
}

impl Transport {
    /// Whether answers to EDNS queries carry the Padding option to a
    /// multiple of [`RESPONSE_PADDING_BLOCK`]: on the encrypted transports
    /// only, where the size is all an observer sees.
    fn padded(self) -> bool {
        matches!(self, Transport::Tls | Transport::Message)
    }

    /// Whether AXFR is handed to [`crate::transfer`] (a stream that can
    /// carry many messages).
    fn streams_axfr(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }

    /// Whether IXFR is handed to [`crate::transfer`] (over UDP it answers
    /// with one message, or asks for TCP).
    fn serves_ixfr(self) -> bool {
        !matches!(self, Transport::Message)
    }
}

/// The block length responses are padded to (RFC 8467 §4.1, the
/// Block-Length Padding policy's recommended response block): a found and
/// a missing name give answers of the same size unless the answer is
/// larger than a block.
pub(crate) const RESPONSE_PADDING_BLOCK: usize = 468;
/// The EDNS Padding option (RFC 7830).
const EDNS_PADDING: u16 = 12;
/// The OPT record without options: root owner, type, class, TTL, RDLENGTH.
const OPT_LEN: usize = 11;

/// Buffers reused from query to query by one serving thread or
/// connection, so that answering allocates nothing once they have grown.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// The query name as the zone index spells it: lowercase, no trailing
    /// dot; labels that are not printable ASCII as `\#` and hex, so that
    /// they match nothing.
    qname: String,
    /// The question in wire form with an uncompressed name: what the
    /// answer repeats.
    question: Vec<u8>,
}

impl Scratch {
    /// The last query's name, normalised (see the field).
    pub(crate) fn qname(&self) -> &str {
        &self.qname
    }
}

/// The EDNS OPT record of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct QueryEdns {
    payload: u16,
    version: u8,
    dnssec_ok: bool,
}

/// A well-formed query; its question is in the [`Scratch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Query {
    id: u16,
    flags: u16,
    /// The question name's length in wire form (uncompressed).
    name_len: usize,
    qtype: u16,
    qclass: u16,
    edns: Option<QueryEdns>,
    /// The query carries a TSIG record (verified, if at all, by
    /// [`crate::transfer`]).
    signed: bool,
}

/// What a reader made of a packet.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// A query; the question is in the scratch buffers.
    Query(Query),
    /// Not a query (a response, or too short to have a header): no answer,
    /// so that the server cannot be used to reflect packets.
    Drop,
    /// Answered with the header only and this RCODE.
    Reject { id: u16, flags: u16, rcode: u16 },
    /// Not the common shape: [`read_full`] decides ([`read_plain`] only).
    Other,
}

/// What [`answer`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Nothing to send.
    None,
    /// The answer is in the output buffer.
    Reply,
    /// A zone transfer request (class IN; AXFR over TCP only, IXFR over
    /// both): [`crate::transfer`] answers it; the query name is in the
    /// [`Scratch`].
    Transfer,
}

fn u16_at(packet: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]))
}

/// Whether the options of an OPT record fill its RDATA exactly (RFC 6891
/// §6.1.2: each is code, length, data).
fn options_well_formed(rdata: &[u8]) -> bool {
    let mut at = 0;
    while at < rdata.len() {
        let Some(len) = u16_at(rdata, at + 2) else {
            return false;
        };
        at += 4 + len as usize;
    }
    at == rdata.len()
}

/// Reads the OPT record at `pos` whose owner (the root, one zero octet) is
/// already checked; returns it and where it ends, or `None` if it is
/// truncated or its options are malformed.
fn read_opt(packet: &[u8], pos: usize) -> Option<(QueryEdns, usize)> {
    let payload = u16_at(packet, pos + 2)?;
    let version = *packet.get(pos + 5)?;
    let eflags = u16_at(packet, pos + 6)?;
    let rdlen = u16_at(packet, pos + 8)? as usize;
    let rdata = packet.get(pos + 10..pos + 10 + rdlen)?;
    options_well_formed(rdata).then_some((
        QueryEdns {
            payload,
            version,
            dnssec_ok: eflags & EDNS_DO != 0,
        },
        pos + 10 + rdlen,
    ))
}

/// Appends a label to the normalised query name.
fn push_label(qname: &mut String, label: &[u8]) {
    if !qname.is_empty() {
        qname.push('.');
    }
    if label
        .iter()
        .all(|&b| b.is_ascii_graphic() && b != b'.' && b != b'\\')
    {
        qname.extend(label.iter().map(|b| b.to_ascii_lowercase() as char));
    } else {
        qname.push_str("\\#");
        qname.push_str(&data_encoding::HEXLOWER.encode(label));
    }
}

/// Reads a query with one question whose name is uncompressed printable
/// ASCII, and at most an OPT record besides, in one pass.
fn read_plain(packet: &[u8], scratch: &mut Scratch) -> Read {
    if packet.len() < HEADER_LEN {
        return Read::Drop;
    }
    let word = |at| u16::from_be_bytes([packet[at], packet[at + 1]]);
    let (id, flags) = (word(0), word(2));
    if flags & QR != 0 {
        return Read::Drop;
    }
    let (qd, an, ns, ar) = (word(4), word(6), word(8), word(10));
    if flags & OPCODE_MASK != 0 || qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return Read::Other;
    }
    scratch.qname.clear();
    let mut pos = HEADER_LEN;
    loop {
        let Some(&len) = packet.get(pos) else {
            return Read::Other;
        };
        pos += 1;
        if len == 0 {
            break;
        }
        // Compression pointers, reserved label types and names over 255
        // octets (this label and the root must fit) go to the full reader.
        if len > 63 || pos - HEADER_LEN + len as usize + 1 > MAX_NAME {
            return Read::Other;
        }
        let Some(label) = packet.get(pos..pos + len as usize) else {
            return Read::Other;
        };
        if !label
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b'.' && b != b'\\')
        {
            return Read::Other;
        }
        if !scratch.qname.is_empty() {
            scratch.qname.push('.');
        }
        scratch
            .qname
            .extend(label.iter().map(|b| b.to_ascii_lowercase() as char));
        pos += len as usize;
    }
    let name_len = pos - HEADER_LEN;
    let (Some(qtype), Some(qclass)) = (u16_at(packet, pos), u16_at(packet, pos + 2)) else {
        return Read::Other;
    };
    pos += 4;
    scratch.question.clear();
    scratch.question.extend_from_slice(&packet[HEADER_LEN..pos]);
    let mut edns = None;
    if ar == 1 {
        if packet.get(pos) != Some(&0) || u16_at(packet, pos + 1) != Some(TYPE_OPT) {
            return Read::Other;
        }
        let Some((e, end)) = read_opt(packet, pos + 1) else {
            return Read::Other;
        };
        edns = Some(e);
        pos = end;
    }
    if pos != packet.len() {
        return Read::Other;
    }
    Read::Query(Query {
        id,
        flags,
        name_len,
        qtype,
        qclass,
        edns,
        signed: false,
    })
}

/// Reads the question name at `start`, following compression pointers
/// (each must point before itself, so there are no loops), into the
/// scratch buffers; returns where the name ends in the packet, or `None`
/// if it is malformed or longer than 255 octets.
fn read_question_name(packet: &[u8], start: usize, scratch: &mut Scratch) -> Option<usize> {
    scratch.qname.clear();
    scratch.question.clear();
    let mut pos = start;
    let mut end = None;
    loop {
        let len = *packet.get(pos)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                scratch.question.push(0);
                return Some(end.unwrap_or(pos + 1));
            }
            0x00 => {
                let label = packet.get(pos + 1..pos + 1 + len as usize)?;
                if scratch.question.len() + 1 + label.len() + 1 > MAX_NAME {
                    return None;
                }
                scratch.question.push(len);
                scratch.question.extend_from_slice(label);
                push_label(&mut scratch.qname, label);
                pos += 1 + len as usize;
            }
            0xc0 => {
                let target = usize::from(u16_at(packet, pos)? & 0x3fff);
                if target >= pos {
                    return None;
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return None,
        }
    }
}

/// Skips a record's owner name (labels ending in the root or a pointer);
/// returns where it ends and whether it is the root.
fn skip_name(packet: &[u8], mut pos: usize) -> Option<(usize, bool)> {
    let start = pos;
    loop {
        let len = *packet.get(pos)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some((pos + 1, pos == start)),
            0x00 => pos += 1 + len as usize,
            0xc0 => {
                packet.get(pos + 1)?;
                return Some((pos + 2, false));
            }
            _ => return None,
        }
    }
}

/// Reads any query, or rejects it.
fn read_full(packet: &[u8], scratch: &mut Scratch) -> Read {
    if packet.len() < HEADER_LEN {
        return Read::Drop;
    }
    let word = |at| u16::from_be_bytes([packet[at], packet[at + 1]]);
    let (id, flags) = (word(0), word(2));
    if flags & QR != 0 {
        return Read::Drop;
    }
    let reject = |rcode| Read::Reject { id, flags, rcode };
    if flags & OPCODE_MASK != 0 {
        return reject(RCODE_NOTIMP);
    }
    let (qd, an, ns, ar) = (word(4), word(6), word(8), word(10));
    if qd != 1 || an != 0 {
        return reject(RCODE_FORMERR);
    }
    let Some(mut pos) = read_question_name(packet, HEADER_LEN, scratch) else {
        return reject(RCODE_FORMERR);
    };
    let name_len = scratch.question.len();
    let (Some(qtype), Some(qclass)) = (u16_at(packet, pos), u16_at(packet, pos + 2)) else {
        return reject(RCODE_FORMERR);
    };
    scratch.question.extend_from_slice(&packet[pos..pos + 4]);
    pos += 4;
    // An IXFR request carries the client's SOA in the authority section
    // (RFC 1995 §3); no other query has authority records.
    if ns != 0 && qtype != TYPE_IXFR {
        return reject(RCODE_FORMERR);
    }
    let mut edns = None;
    let mut signed = false;
    for i in 0..u32::from(ns) + u32::from(ar) {
        let additional = i >= u32::from(ns);
        let Some((owner_end, root)) = skip_name(packet, pos) else {
            return reject(RCODE_FORMERR);
        };
        let (Some(rtype), Some(rdlen)) = (u16_at(packet, owner_end), u16_at(packet, owner_end + 8))
        else {
            return reject(RCODE_FORMERR);
        };
        let end = owner_end + 10 + rdlen as usize;
        if end > packet.len() {
            return reject(RCODE_FORMERR);
        }
        match rtype {
            _ if !additional => {}
            TYPE_OPT if root && edns.is_none() => match read_opt(packet, owner_end) {
                Some((e, _)) => edns = Some(e),
                None => return reject(RCODE_FORMERR),
            },
            // RFC 8945 §5.1: the TSIG is the last record. Its signature
            // matters for transfers only, which verify it themselves.
            TYPE_TSIG if i + 1 == u32::from(ns) + u32::from(ar) => signed = true,
            _ => return reject(RCODE_FORMERR),
        }
        pos = end;
    }
    Read::Query(Query {
        id,
        flags,
        name_len,
        qtype,
        qclass,
        edns,
        signed,
    })
}

/// Writes the answer to the query `packet`, which arrived over
/// `transport`, into `out` (cleared first), using `scratch` for the
/// question.
pub(crate) fn answer(
    zones: &ZoneTable,
    packet: &[u8],
    transport: Transport,
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
) -> Answer {
    let read = match read_plain(packet, scratch) {
        Read::Other => read_full(packet, scratch),
        read => read,
    };
    respond(zones, packet, read, transport, out, scratch)
}

/// [`answer`] with the full reader only, whatever the query's shape: the
/// fuzz target compares it with [`answer`], whose one-pass reader must
/// agree with it on every shape both read.
pub(crate) fn answer_with_full_reader(
    zones: &ZoneTable,
    packet: &[u8],
    transport: Transport,
    out: &mut Vec<u8>,
) -> Answer {
    let mut scratch = Scratch::default();
    let read = read_full(packet, &mut scratch);
    respond(zones, packet, read, transport, out, &scratch)
}

/// [`answer`] for a UDP query; returns whether there is an answer to send.
pub(crate) fn answer_udp(
    zones: &ZoneTable,
    packet: &[u8],
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
) -> bool {
    answer(zones, packet, Transport::Udp, out, scratch) == Answer::Reply
}

fn respond(
    zones: &ZoneTable,
    packet: &[u8],
    read: Read,
    transport: Transport,
    out: &mut Vec<u8>,
    scratch: &Scratch,
) -> Answer {
    out.clear();
    match read {
        Read::Drop | Read::Other => Answer::None,
        Read::Reject { id, flags, rcode } => {
            out.extend_from_slice(&[0; HEADER_LEN]);
            write_header(out, id, QR | (flags & (OPCODE_MASK | RD)) | rcode, [0; 4]);
            Answer::Reply
        }
        Read::Query(q)
            if ((q.qtype == TYPE_IXFR && transport.serves_ixfr())
                || (q.qtype == TYPE_AXFR && transport.streams_axfr()))
                && q.qclass == CLASS_IN
                && q.edns.is_none_or(|e| e.version == 0) =>
        {
            Answer::Transfer
        }
        Read::Query(q) => {
            write_answer(zones, &q, scratch, transport, out);
            if q.signed {
                let zone = zones.get(&scratch.qname);
                crate::transfer::signed_query::sign_answer(zone.map(|z| &**z), packet, out);
            }
            Answer::Reply
        }
    }
}

/// The response's flags: QR, opcode QUERY, RD and CD copied (RFC 1035
/// §4.1.1, RFC 4035 §3.1.6), RA clear.
fn response_flags(query_flags: u16) -> u16 {
    QR | (query_flags & (RD | CD))
}

/// Appends our OPT record (RFC 6891 §6.1.2): our payload size (never the
/// client's), the high bits of the RCODE, version 0, the DO bit copied
/// (RFC 3225 §3). With `pad`, the record carries a Padding option (RFC
/// 7830) that brings the whole message to the next multiple of
/// [`RESPONSE_PADDING_BLOCK`], unless that would pass 65,535 octets (then
/// the message goes unpadded: only a zone's largest answers get there).
fn push_opt(out: &mut Vec<u8>, rcode_high: u8, dnssec_ok: bool, pad: bool) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&MAX_UDP_PAYLOAD.to_be_bytes());
    out.extend_from_slice(&[rcode_high, 0]);
    out.extend_from_slice(&(if dnssec_ok { EDNS_DO } else { 0 }).to_be_bytes());
    // The option's own code and length count towards the block.
    let unpadded = out.len() + 2 + 4;
    let padding =
        (RESPONSE_PADDING_BLOCK - unpadded % RESPONSE_PADDING_BLOCK) % RESPONSE_PADDING_BLOCK;
    if pad && unpadded + padding <= MAX_TCP_MESSAGE {
        out.extend_from_slice(&(4 + padding as u16).to_be_bytes());
        out.extend_from_slice(&EDNS_PADDING.to_be_bytes());
        out.extend_from_slice(&(padding as u16).to_be_bytes());
        out.resize(out.len() + padding, 0);
    } else {
        out.extend_from_slice(&0u16.to_be_bytes());
    }
}

/// The smallest TTL of the answer and authority records of the message
/// `msg` (one this module wrote), or `None` if it has none or is
/// malformed: what DoH gives as `cache-control: max-age` (RFC 8484 §5.1;
/// a negative answer's SOA is in the authority section and bounds how
/// long the absence may be cached).
pub(crate) fn min_ttl(msg: &[u8]) -> Option<u32> {
    let qd = u16_at(msg, 4)?;
    let records = u32::from(u16_at(msg, 6)?) + u32::from(u16_at(msg, 8)?);
    let mut pos = HEADER_LEN;
    for _ in 0..qd {
        pos = skip_name(msg, pos)?.0 + 4;
    }
    let mut min: Option<u32> = None;
    for _ in 0..records {
        let (end, _) = skip_name(msg, pos)?;
        let ttl = u32::from_be_bytes(msg.get(end + 4..end + 8)?.try_into().ok()?);
        let rdlen = usize::from(u16_at(msg, end + 8)?);
        pos = end + 10 + rdlen;
        if pos > msg.len() {
            return None;
        }
        min = Some(min.map_or(ttl, |m| m.min(ttl)));
    }
    min
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

/// Appends a PTR record owned by the question name (a pointer to offset
/// 12) pointing at `target` (lowercase, no trailing dot), written out in
/// full.
fn push_ptr(out: &mut Vec<u8>, ttl: u32, target: &str) {
    out.extend_from_slice(&[0xc0, HEADER_LEN as u8]);
    out.extend_from_slice(&TYPE_PTR.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    let rdlen_at = out.len();
    out.extend_from_slice(&[0, 0]);
    for label in target.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    let rdlen = (out.len() - rdlen_at - 2) as u16;
    out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
}

fn write_header(out: &mut [u8], id: u16, flags: u16, counts: [u16; 4]) {
    out[0..2].copy_from_slice(&id.to_be_bytes());
    out[2..4].copy_from_slice(&flags.to_be_bytes());
    for (i, c) in counts.iter().enumerate() {
        out[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
}

/// Writes the answer to a well-formed query.
fn write_answer(
    zones: &ZoneTable,
    query: &Query,
    scratch: &Scratch,
    transport: Transport,
    out: &mut Vec<u8>,
) {
    let limit = match transport {
        Transport::Udp => query.edns.map_or(PLAIN_UDP_PAYLOAD, |e| {
            e.payload.clamp(PLAIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD)
        }) as usize,
        Transport::Tcp | Transport::Tls | Transport::Message => MAX_TCP_MESSAGE,
    };
    let pad = transport.padded();
    let flags = response_flags(query.flags);
    let dnssec_ok = query.edns.is_some_and(|e| e.dnssec_ok);
    let ar_opt = u16::from(query.edns.is_some());
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.extend_from_slice(&scratch.question);
    let question_end = out.len();
    let rcode_only = |out: &mut Vec<u8>, rcode: u16, high: u8| {
        if query.edns.is_some() {
            push_opt(out, high, dnssec_ok, pad);
        }
        write_header(out, query.id, flags | rcode, [1, 0, 0, ar_opt]);
    };
    if query.edns.is_some_and(|e| e.version != 0) {
        return rcode_only(out, 0, BADVERS_HIGH);
    }
    // Other classes are not served; AXFR runs over TCP only (IXFR over
    // UDP is answered by crate::transfer::ixfr).
    if query.qclass != CLASS_IN || matches!(query.qtype, TYPE_AXFR | TYPE_IXFR) {
        return rcode_only(out, RCODE_REFUSED, 0);
    }
    let qname = scratch.qname.as_str();
    let Some(zone) = zones.zone_for(qname) else {
        return rcode_only(out, RCODE_REFUSED, 0);
    };
    let resolved = zone.resolve(qname, RecordType::from(query.qtype));
    // The apex is the question name's suffix: its labels start this far
    // into the message.
    let apex_at = HEADER_LEN + query.name_len - (zone.origin().as_str().len() + 2);
    let apex_pointer = (0xc000 | apex_at as u16).to_be_bytes();
    let (an, ns, ar) = write_sections(zone, &resolved, apex_pointer, out);
    let rcode = if resolved.exists { 0 } else { RCODE_NXDOMAIN };
    // A referral is not an authoritative answer (RFC 1034 §4.3.2).
    let aa = if resolved.referral.is_some() { 0 } else { AA };
    let flags = flags | aa | rcode;
    // The limit applies to the answer without padding: padding never
    // truncates an answer that fits (push_opt leaves out what would not).
    let opt_at = out.len();
    if query.edns.is_some() {
        push_opt(out, 0, dnssec_ok, pad);
    }
    if opt_at + if query.edns.is_some() { OPT_LEN } else { 0 } > limit {
        // Too large for the client: TC with the question only, and the
        // client asks again over TCP (RFC 7766 §5).
        out.truncate(question_end);
        if query.edns.is_some() {
            push_opt(out, 0, dnssec_ok, pad);
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
    apex: [u8; 2],
    out: &mut Vec<u8>,
) -> (u16, u16, u16) {
    let wire = zone.wire();
    let mut an = 0u16;
    if resolved.soa {
        wire.soa.write(out, apex);
        an += 1;
    }
    if resolved.ns {
        for r in &wire.ns {
            r.write(out, apex);
            an += 1;
        }
    }
    for &i in &resolved.glue {
        wire.glue[i].write(out, apex);
        an += 1;
    }
    for r in resolved.txt {
        push_txt(out, r.ttl, &r.text);
        an = an.saturating_add(1);
    }
    for r in resolved.ptr {
        push_ptr(out, r.ttl, r.target.as_str());
        an = an.saturating_add(1);
    }
    let mut ns = 0u16;
    if resolved.is_negative() {
        wire.negative_soa.write(out, apex);
        ns += 1;
    }
    let mut ar = 0u16;
    if let Some(cut) = resolved.referral {
        for r in &wire.cuts[cut] {
            r.write(out, apex);
            ns += 1;
        }
        for &i in zone.cut_glue(cut) {
            wire.glue[i].write(out, apex);
            ar += 1;
        }
    }
    if resolved.ns {
        for &i in zone.apex_glue() {
            wire.glue[i].write(out, apex);
            ar += 1;
        }
    }
    (an, ns, ar)
}

#[cfg(test)]
mod tests;
