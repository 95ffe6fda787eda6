use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use super::*;
use crate::zone::served::ZoneTable;

fn zones() -> ZoneTable {
    ZoneTable::new([Arc::new(crate::zone::served::tests::zone())])
}

fn query(name: &str, qtype: RecordType, edns: Option<(u16, u8, bool)>) -> Message {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some((payload, version, dnssec_ok)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        e.set_version(version);
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    m
}

/// The answer over `transport` through the normal path (the fast reader
/// first), as bytes.
fn bytes(zones: &ZoneTable, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut scratch = Scratch::default();
    (answer(zones, packet, transport, &mut out, &mut scratch) == Answer::Reply).then_some(out)
}

/// The answer over `transport` through the full reader only.
fn full_bytes(zones: &ZoneTable, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut scratch = Scratch::default();
    let read = read_full(packet, &mut scratch);
    (respond(zones, packet, read, transport, &mut out, &scratch) == Answer::Reply).then_some(out)
}

fn decode(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).expect("answer decodes")
}

fn fast(zones: &ZoneTable, packet: &[u8]) -> Option<Message> {
    bytes(zones, packet, Transport::Udp).map(|b| decode(&b))
}

/// For every query shape the fast reader takes, the fast reader and the
/// full reader give the same bytes, over UDP and over TCP; and UDP and TCP
/// give the same bytes unless the UDP answer is truncated.
#[test]
fn fast_full_udp_and_tcp_give_the_same_bytes() {
    let zones = zones();
    let names = [
        "aaa._mimi.example.com.",
        "AaA._MIMI.Example.COM.",
        "bbb._mimi.example.com.",
        "zzz._mimi.example.com.",
        "abcd.ab._mimi.example.com.",
        "ab._mimi.example.com.",
        "zz._mimi.example.com.",
        "_mimi.example.com.",
        "9.3.e164.example.com.",
        "example.com.",
        "EXAMPLE.com.",
        "ns1.example.com.",
        "big._mimi.example.com.",
        "example.org.",
        ".",
    ];
    let types = [
        RecordType::TXT,
        RecordType::A,
        RecordType::AAAA,
        RecordType::SOA,
        RecordType::NS,
        RecordType::ANY,
        RecordType::AXFR,
        RecordType::IXFR,
        RecordType::Unknown(65280),
    ];
    let edns = [
        None,
        Some((0, 0, false)),
        Some((512, 0, false)),
        Some((1232, 0, true)),
        Some((4096, 0, false)),
        Some((1232, 1, false)),
        Some((1232, 255, true)),
    ];
    // RD; none; RD+CD; AD; the Z bit; RA set by a confused client.
    let flags = [0x0100u16, 0x0000, 0x0110, 0x0020, 0x0040, 0x0080];
    let mut compared = 0;
    let mut truncated = 0;
    for name in names {
        for qtype in types {
            for e in edns {
                for f in flags {
                    let what = format!("{name} {qtype} {e:?} {f:#06x}");
                    let mut packet = query(name, qtype, e).to_vec().unwrap();
                    packet[2..4].copy_from_slice(&f.to_be_bytes());
                    let mut scratch = Scratch::default();
                    assert!(
                        matches!(read_plain(&packet, &mut scratch), Read::Query(_)),
                        "{what} takes the fast path"
                    );
                    if qtype == RecordType::IXFR && e.is_none_or(|e| e.1 == 0) {
                        // IXFR over UDP goes to crate::transfer::ixfr.
                        assert_eq!(
                            answer(
                                &zones,
                                &packet,
                                Transport::Udp,
                                &mut Vec::new(),
                                &mut scratch
                            ),
                            Answer::Transfer,
                            "{what}"
                        );
                        assert_eq!(
                            answer_with_full_reader(
                                &zones,
                                &packet,
                                Transport::Udp,
                                &mut Vec::new()
                            ),
                            Answer::Transfer,
                            "{what}"
                        );
                        assert_eq!(
                            answer(
                                &zones,
                                &packet,
                                Transport::Tcp,
                                &mut Vec::new(),
                                &mut scratch
                            ),
                            Answer::Transfer,
                            "{what}"
                        );
                        compared += 1;
                        continue;
                    }
                    let udp = bytes(&zones, &packet, Transport::Udp).unwrap();
                    let udp_full = full_bytes(&zones, &packet, Transport::Udp).unwrap();
                    assert_eq!(udp, udp_full, "{what}: UDP fast and full");
                    let transfer = matches!(qtype, RecordType::AXFR | RecordType::IXFR)
                        && e.is_none_or(|e| e.1 == 0);
                    if transfer {
                        assert_eq!(
                            answer(
                                &zones,
                                &packet,
                                Transport::Tcp,
                                &mut Vec::new(),
                                &mut scratch
                            ),
                            Answer::Transfer,
                            "{what}"
                        );
                        compared += 1;
                        continue;
                    }
                    let tcp = bytes(&zones, &packet, Transport::Tcp).unwrap();
                    let tcp_full = full_bytes(&zones, &packet, Transport::Tcp).unwrap();
                    assert_eq!(tcp, tcp_full, "{what}: TCP fast and full");
                    let u = decode(&udp);
                    let t = decode(&tcp);
                    assert!(
                        !t.metadata.truncation,
                        "{what}: TCP is never truncated here"
                    );
                    if u.metadata.truncation {
                        truncated += 1;
                        let mut m = t.metadata;
                        m.truncation = true;
                        assert_eq!(u.metadata, m, "{what}");
                        assert_eq!(u.queries, t.queries, "{what}");
                        assert!(u.answers.is_empty() && u.authorities.is_empty(), "{what}");
                        assert_eq!(u.edns, t.edns, "{what}");
                    } else {
                        assert_eq!(udp, tcp, "{what}: UDP and TCP");
                    }
                    // Flags: QR, RD and CD copied, nothing else from the query.
                    let response_flags = u16::from_be_bytes([udp[2], udp[3]]);
                    assert_eq!(response_flags & 0x79f0, f & 0x0110, "{what}: flags");
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(
        compared,
        names.len() * types.len() * edns.len() * flags.len()
    );
    assert!(truncated > 0, "some answers exceed 512 octets");
}

/// Raw packet building, for shapes hickory will not encode.
fn header(flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut h = vec![0xab, 0xcd];
    h.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        h.extend_from_slice(&c.to_be_bytes());
    }
    h
}

fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in name.split('.').filter(|l| !l.is_empty()) {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}

fn question(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = wire_name(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

fn opt(owner: &[u8], version: u8, rdata: &[u8]) -> Vec<u8> {
    let mut o = owner.to_vec();
    o.extend_from_slice(&41u16.to_be_bytes());
    o.extend_from_slice(&4096u16.to_be_bytes());
    o.extend_from_slice(&[0, version, 0, 0]);
    o.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    o.extend_from_slice(rdata);
    o
}

fn txt_rr(owner: &str) -> Vec<u8> {
    let mut r = wire_name(owner);
    r.extend_from_slice(&[0, 16, 0, 1, 0, 0, 1, 44, 0, 2, 1, b'x']);
    r
}

fn packet(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Each malformed shape gets what NSD 4.6 answers (probed with the same
/// packets, see docs/PROTOCOL.md): FORMERR, header only, RD kept; the same
/// over UDP and TCP and from both readers.
#[test]
fn malformed_queries_get_formerr_like_nsd() {
    let zones = zones();
    let q = question("aaa._mimi.example.com", 16);
    let long: Vec<u8> = packet(&[
        &[63; 1],
        &[b'a'; 63],
        &[63],
        &[b'a'; 63],
        &[63],
        &[b'a'; 63],
        &[63],
        &[b'a'; 63],
        &[0, 0, 16, 0, 1],
    ]);
    let bad_option = opt(&[0], 0, &[0, 10, 0, 8, b'a', b'b', b'c']);
    let option_overrun = opt(&[0], 0, &[0, 10, 0, 2, b'a', b'b', b'c']);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "option length overruns the OPT",
            packet(&[&header(0x0100, [1, 0, 0, 1]), &q, &bad_option]),
            1,
        ),
        (
            "bytes after the last option",
            packet(&[&header(0x0100, [1, 0, 0, 1]), &q, &option_overrun]),
            1,
        ),
        (
            "two OPT records",
            packet(&[
                &header(0x0100, [1, 0, 0, 2]),
                &q,
                &opt(&[0], 0, &[]),
                &opt(&[0], 0, &[]),
            ]),
            1,
        ),
        (
            "OPT not owned by the root",
            packet(&[
                &header(0x0100, [1, 0, 0, 1]),
                &q,
                &opt(&wire_name("example.com"), 0, &[]),
            ]),
            1,
        ),
        (
            "an answer record",
            packet(&[
                &header(0x0100, [1, 1, 0, 0]),
                &q,
                &txt_rr("aaa._mimi.example.com"),
            ]),
            1,
        ),
        (
            "an authority record",
            packet(&[
                &header(0x0100, [1, 0, 1, 0]),
                &q,
                &txt_rr("aaa._mimi.example.com"),
            ]),
            1,
        ),
        (
            "ANCOUNT without records",
            packet(&[&header(0x0100, [1, 1, 0, 0]), &q]),
            1,
        ),
        (
            "two questions",
            packet(&[&header(0x0100, [2, 0, 0, 0]), &q, &q]),
            1,
        ),
        ("no question", header(0x0100, [0, 0, 0, 0]), 1),
        (
            "QDCOUNT 65535",
            packet(&[&header(0x0100, [65535, 0, 0, 0]), &q]),
            1,
        ),
        (
            "ANCOUNT 65535",
            packet(&[&header(0x0100, [1, 65535, 0, 0]), &q]),
            1,
        ),
        (
            "NSCOUNT 65535",
            packet(&[&header(0x0100, [1, 0, 65535, 0]), &q]),
            1,
        ),
        (
            "ARCOUNT 65535, one OPT",
            packet(&[&header(0x0100, [1, 0, 0, 65535]), &q, &opt(&[0], 0, &[])]),
            1,
        ),
        (
            "a TXT record in the additional section",
            packet(&[&header(0x0100, [1, 0, 0, 1]), &q, &txt_rr("x.example.com")]),
            1,
        ),
        (
            "a question name of 256 octets",
            packet(&[&header(0x0100, [1, 0, 0, 0]), &long]),
            1,
        ),
        (
            "a question cut short",
            packet(&[&header(0x0100, [1, 0, 0, 0]), &q[..q.len() - 1]]),
            1,
        ),
        (
            "a pointer loop",
            packet(&[
                &header(0x0100, [1, 0, 0, 0]),
                &[1, b'a', 0xc0, 12, 0, 16, 0, 1],
            ]),
            1,
        ),
        (
            "a forward pointer",
            packet(&[&header(0x0100, [1, 0, 0, 0]), &[0xc0, 14, 0, 0, 16, 0, 1]]),
            1,
        ),
        ("opcode 3", packet(&[&header(0x1900, [1, 0, 0, 0]), &q]), 4),
    ];
    for (what, p, rcode) in cases {
        for transport in [Transport::Udp, Transport::Tcp] {
            let b = bytes(&zones, &p, transport).unwrap_or_else(|| panic!("{what}: answered"));
            assert_eq!(b, full_bytes(&zones, &p, transport).unwrap(), "{what}");
            assert_eq!(b.len(), 12, "{what}: header only");
            assert_eq!(&b[..2], &[0xab, 0xcd], "{what}: ID");
            let flags = u16::from_be_bytes([b[2], b[3]]);
            assert_eq!(flags & 0xf, rcode, "{what}: RCODE");
            assert_eq!(flags & 0x8100, 0x8100, "{what}: QR and RD");
            assert_eq!(
                flags & 0x7800,
                u16::from_be_bytes([p[2], p[3]]) & 0x7800,
                "{what}: opcode"
            );
        }
    }
    // A name of exactly 255 octets is fine (REFUSED: not ours).
    let mut ok = long.clone();
    ok[3 * 64] = 61;
    ok.drain(3 * 64 + 62..3 * 64 + 64);
    let p = packet(&[&header(0x0100, [1, 0, 0, 0]), &ok]);
    let mut scratch = Scratch::default();
    assert!(
        matches!(read_plain(&p, &mut scratch), Read::Query(_)),
        "fast path"
    );
    assert_eq!(
        bytes(&zones, &p, Transport::Udp),
        full_bytes(&zones, &p, Transport::Udp)
    );
    let r = decode(&bytes(&zones, &p, Transport::Udp).unwrap());
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert_eq!(r.queries.len(), 1);
}

/// Shapes only the full reader takes give the bytes the fast reader gives
/// for the equivalent common shape.
#[test]
fn full_reader_shapes_answer_like_the_common_shape() {
    let zones = zones();
    let q = question("aaa._mimi.example.com", 16);
    let plain = packet(&[&header(0x0100, [1, 0, 0, 1]), &q, &opt(&[0], 0, &[])]);
    let expected = bytes(&zones, &plain, Transport::Udp).unwrap();
    // Trailing bytes are ignored, as NSD does.
    let trailing = packet(&[&plain, b"abc"]);
    // EDNS options (well-formed) are ignored.
    let options = packet(&[
        &header(0x0100, [1, 0, 0, 1]),
        &q,
        &opt(&[0], 0, &[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]),
    ]);
    // A TSIG as the last record: queries are answered unsigned.
    let mut tsig = wire_name("key");
    tsig.extend_from_slice(&[0, 250, 0, 255, 0, 0, 0, 0, 0, 1, 0]);
    let signed = packet(&[&header(0x0100, [1, 0, 0, 2]), &q, &opt(&[0], 0, &[]), &tsig]);
    for (what, p) in [
        ("trailing", trailing),
        ("options", options),
        ("tsig", signed),
    ] {
        let mut scratch = Scratch::default();
        if what != "options" {
            assert_eq!(read_plain(&p, &mut scratch), Read::Other, "{what}");
        }
        assert_eq!(
            bytes(&zones, &p, Transport::Udp).unwrap(),
            expected,
            "{what}"
        );
        assert_eq!(
            bytes(&zones, &p, Transport::Tcp).unwrap(),
            expected,
            "{what}"
        );
    }
    // A compressed question name: `aaa` and a pointer to offset 5 of the
    // header, which reads as a one-octet binary label (QDCOUNT's low octet
    // is its length, ANCOUNT's high octet its content) and the root. The
    // answer repeats the question uncompressed: the bytes are those of the
    // uncompressed query.
    let compressed = packet(&[
        &header(0x0100, [1, 0, 0, 0]),
        &[3, b'a', b'a', b'a', 0xc0, 5, 0, 16, 0, 1],
    ]);
    let uncompressed = packet(&[
        &header(0x0100, [1, 0, 0, 0]),
        &[3, b'a', b'a', b'a', 1, 0, 0, 0, 16, 0, 1],
    ]);
    let mut scratch = Scratch::default();
    assert!(matches!(
        read_full(&compressed, &mut scratch),
        Read::Query(_)
    ));
    assert_eq!(scratch.qname(), "aaa.\\#00");
    let a = bytes(&zones, &compressed, Transport::Udp).unwrap();
    assert_eq!(a, bytes(&zones, &uncompressed, Transport::Udp).unwrap());
    assert_eq!(decode(&a).metadata.response_code, ResponseCode::Refused);
    // A TSIG that is not last.
    let misplaced = packet(&[&header(0x0100, [1, 0, 0, 2]), &q, &tsig, &opt(&[0], 0, &[])]);
    let r = bytes(&zones, &misplaced, Transport::Udp).unwrap();
    assert_eq!(r[3] & 0xf, 1, "FORMERR");
}

/// The apex records' names are compressed against the apex in the
/// question: an NS answer with glue and a negative answer are as small as
/// NSD's, and decode to the zone's records.
#[test]
fn apex_records_are_name_compressed() {
    let zones = zones();
    let ns = bytes(
        &zones,
        &query("EXAMPLE.com.", RecordType::NS, None)
            .to_vec()
            .unwrap(),
        Transport::Udp,
    )
    .unwrap();
    // Header 12, question 17, NS: pointer 2 + 10 + "ns1" 4 + pointer 2,
    // glue A: "ns1" 4 + pointer 2 + 10 + 4.
    assert_eq!(ns.len(), 12 + 17 + 18 + 20);
    let m = decode(&ns);
    assert_eq!(m.answers[0].name.to_string(), "EXAMPLE.com.");
    match &m.answers[0].data {
        RData::NS(n) => assert_eq!(n.0.to_string().to_lowercase(), "ns1.example.com."),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        m.additionals[0].name.to_string().to_lowercase(),
        "ns1.example.com."
    );
    let nx = bytes(
        &zones,
        &query("nope._mimi.example.com.", RecordType::TXT, None)
            .to_vec()
            .unwrap(),
        Transport::Tcp,
    )
    .unwrap();
    let m = decode(&nx);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let soa = &m.authorities[0];
    assert_eq!(soa.name.to_string(), "example.com.");
    assert_eq!(soa.ttl, 60, "negative-caching TTL");
    match &soa.data {
        RData::SOA(s) => {
            assert_eq!(s.mname.to_string(), "ns1.example.com.");
            assert_eq!(s.rname.to_string(), "h.example.com.");
            assert_eq!(s.serial, 7);
        }
        other => panic!("{other:?}"),
    }
    // SOA: pointer 2 + 10 + mname 4+2 + rname 2+2 + 20.
    assert_eq!(nx.len(), 12 + 28 + 42);
}

#[test]
fn answers_positive_negative_and_refused() {
    let zones = zones();
    let ask = |name: &str, qtype, edns| {
        fast(&zones, &query(name, qtype, edns).to_vec().unwrap()).unwrap()
    };
    let a = ask("AAA._mimi.example.com.", RecordType::TXT, None);
    assert_eq!(a.metadata.id, 0x1234);
    assert_eq!(a.metadata.message_type, MessageType::Response);
    assert!(a.metadata.authoritative && a.metadata.recursion_desired);
    assert!(!a.metadata.recursion_available);
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a.answers.len(), 2);
    // The owner is the name as asked.
    assert_eq!(a.answers[0].name.to_string(), "AAA._mimi.example.com.");
    assert!(a.authorities.is_empty());

    let nx = ask("nope._mimi.example.com.", RecordType::TXT, None);
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.answers.is_empty());
    assert_eq!(nx.authorities.len(), 1);
    assert_eq!(nx.authorities[0].ttl, 60, "negative-caching TTL");

    for ent in ["_mimi.example.com.", "ab._mimi.example.com."] {
        let ent = ask(ent, RecordType::TXT, None);
        assert_eq!(ent.metadata.response_code, ResponseCode::NoError);
        assert!(ent.answers.is_empty() && ent.authorities.len() == 1);
    }

    let ns = ask("example.com.", RecordType::NS, None);
    assert_eq!((ns.answers.len(), ns.additionals.len()), (1, 1));

    // ANY: one RRset (RFC 8482 §4.2).
    let any = ask("example.com.", RecordType::ANY, None);
    assert_eq!(any.answers.len(), 1);
    assert_eq!(any.answers[0].record_type(), RecordType::SOA);
    assert_eq!(
        ask("aaa._mimi.example.com.", RecordType::ANY, None)
            .answers
            .len(),
        2
    );

    let out = ask("example.org.", RecordType::TXT, None);
    assert_eq!(out.metadata.response_code, ResponseCode::Refused);
    assert!(!out.metadata.authoritative);

    let axfr = ask("example.com.", RecordType::AXFR, None);
    assert_eq!(axfr.metadata.response_code, ResponseCode::Refused);

    for transport in [Transport::Udp, Transport::Tcp] {
        let packet = query(
            "aaa._mimi.example.com.",
            RecordType::TXT,
            Some((1232, 1, true)),
        )
        .to_vec()
        .unwrap();
        let badvers = decode(&bytes(&zones, &packet, transport).unwrap());
        // BADVERS and BADSIG share the value 16; the decoder names it BADSIG.
        assert_eq!(
            u16::from(badvers.metadata.response_code),
            16,
            "{transport:?}"
        );
        let edns = badvers.edns.as_ref().unwrap();
        assert_eq!(edns.rcode_high(), 1);
        assert_eq!(edns.version(), 0);
        assert!(edns.flags().dnssec_ok, "{transport:?}: DO is copied");
        assert!(badvers.answers.is_empty() && !badvers.metadata.authoritative);

        let packet = query(
            "aaa._mimi.example.com.",
            RecordType::TXT,
            Some((4096, 0, true)),
        )
        .to_vec()
        .unwrap();
        let edns = decode(&bytes(&zones, &packet, transport).unwrap())
            .edns
            .unwrap();
        assert_eq!(
            edns.max_payload(),
            MAX_UDP_PAYLOAD,
            "our size, not the client's"
        );
        assert!(
            edns.flags().dnssec_ok,
            "{transport:?}: DO is copied (RFC 3225)"
        );
    }
}

#[test]
fn large_answers_are_truncated_to_the_clients_size() {
    let zones = zones();
    let packet = query("big._mimi.example.com.", RecordType::TXT, None)
        .to_vec()
        .unwrap();
    let small = fast(&zones, &packet).unwrap();
    assert!(small.metadata.truncation);
    assert!(small.answers.is_empty());
    let tcp = decode(&bytes(&zones, &packet, Transport::Tcp).unwrap());
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 3);
    let packet = query(
        "big._mimi.example.com.",
        RecordType::TXT,
        Some((1232, 0, false)),
    )
    .to_vec()
    .unwrap();
    let large = fast(&zones, &packet).unwrap();
    assert!(!large.metadata.truncation);
    assert_eq!(large.answers.len(), 3);
}

#[test]
fn other_shapes_are_decoded_in_full() {
    let zones = zones();
    let mut scratch = Scratch::default();
    // NOTIFY or UPDATE: not implemented here.
    let mut notify = query("example.com.", RecordType::SOA, None);
    notify.metadata.op_code = OpCode::Notify;
    let r = fast(&zones, &notify.to_vec().unwrap()).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);

    // Class CH: refused.
    let mut chaos = Message::new(7, MessageType::Query, OpCode::Query);
    let mut q = Query::query(
        Name::from_ascii("aaa._mimi.example.com.").unwrap(),
        RecordType::TXT,
    );
    q.set_query_class(DNSClass::CH);
    chaos.add_query(q);
    let r = fast(&zones, &chaos.to_vec().unwrap()).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);

    // Mixed case stays on the fast path (it lowercases for the lookup).
    let plain = query("aaa._mimi.example.com.", RecordType::TXT, None)
        .to_vec()
        .unwrap();
    let expected = fast(&zones, &plain).unwrap();
    let mut mixed = plain.clone();
    mixed[HEADER_LEN + 1] = b'A';
    assert!(matches!(read_plain(&mixed, &mut scratch), Read::Query(_)));
    assert_eq!(scratch.qname(), "aaa._mimi.example.com");
    assert_eq!(
        fast(&zones, &mixed).unwrap().answers.len(),
        expected.answers.len()
    );

    // A label with a byte that is not printable ASCII: decoded in full,
    // matches nothing in the zone.
    let mut binary = plain.clone();
    binary[HEADER_LEN + 1] = 0xff;
    assert_eq!(read_plain(&binary, &mut scratch), Read::Other);
    let r = fast(&zones, &binary).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(matches!(read_full(&binary, &mut scratch), Read::Query(_)));
    assert_eq!(scratch.qname(), "\\#ff6161._mimi.example.com");
}

#[test]
fn non_queries_get_no_answer() {
    let zones = zones();
    let mut out = Vec::new();
    let mut scratch = Scratch::default();
    // Too short for a header.
    assert!(!answer_udp(&zones, &[1, 2, 3], &mut out, &mut scratch));
    // A response: never answered (no reflection).
    let mut response = query("aaa._mimi.example.com.", RecordType::TXT, None);
    response.metadata.message_type = MessageType::Response;
    assert!(!answer_udp(
        &zones,
        &response.to_vec().unwrap(),
        &mut out,
        &mut scratch
    ));
}

/// Header counts never drive allocations: the largest single allocation
/// while answering hostile counts stays far below what 65,535 decoded
/// questions or records would take.
#[test]
fn header_counts_do_not_drive_allocations() {
    let zones = zones();
    let q = question("aaa._mimi.example.com", 16);
    let mut out = Vec::with_capacity(4096);
    let mut scratch = Scratch::default();
    // Grow the buffers first.
    answer_udp(
        &zones,
        &packet(&[&header(0x0100, [1, 0, 0, 0]), &q]),
        &mut out,
        &mut scratch,
    );
    for counts in [
        [65535, 0, 0, 0],
        [1, 65535, 0, 0],
        [1, 0, 65535, 0],
        [1, 0, 0, 65535],
        [65535; 4],
    ] {
        let p = packet(&[&header(0x0100, counts), &q, &q, &q]);
        let (answered, largest) =
            alloc::largest_during(|| answer(&zones, &p, Transport::Tcp, &mut out, &mut scratch));
        assert_eq!(answered, Answer::Reply, "{counts:?}");
        assert!(
            largest < 4096,
            "{counts:?}: allocated {largest} octets at once"
        );
    }
}

/// A global allocator that records, per thread, the largest allocation.
mod alloc {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    struct Recording;

    thread_local! {
        static LARGEST: Cell<usize> = const { Cell::new(0) };
    }

    // SAFETY: forwards to the system allocator; only records sizes.
    unsafe impl GlobalAlloc for Recording {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Recording = Recording;

    /// Runs `f` and returns its result and the largest allocation it made.
    pub(super) fn largest_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
        LARGEST.with(|l| l.set(0));
        let r = f();
        (r, LARGEST.with(Cell::get))
    }
}

/// Referrals on the wire, through both readers and both transports:
/// NOERROR without AA, the cut's NS records in the authority section
/// (owned by the cut), the addresses of its in-zone name servers in the
/// additional section; DS at the cut is NODATA with the SOA; the apex NS
/// answer carries only the apex name servers' addresses.
#[test]
fn delegations_get_referrals() {
    let zones = ZoneTable::new([Arc::new(crate::zone::served::tests::delegated_zone())]);
    let ask = |name: &str, qtype: RecordType| {
        let q = query(name, qtype, Some((1232, 0, false))).to_vec().unwrap();
        let udp = bytes(&zones, &q, Transport::Udp).unwrap();
        assert_eq!(full_bytes(&zones, &q, Transport::Udp).unwrap(), udp);
        assert_eq!(bytes(&zones, &q, Transport::Tcp).unwrap(), udp);
        decode(&udp)
    };
    for (name, qtype) in [
        ("a3._mimi.example.com.", RecordType::TXT),
        ("a3._mimi.example.com.", RecordType::NS),
        ("A3._mimi.example.com.", RecordType::ANY),
        ("a3xyz.a3._mimi.example.com.", RecordType::TXT),
        ("a3xyz.a3._mimi.example.com.", RecordType::DS),
        ("q.r.a3._mimi.example.com.", RecordType::A),
    ] {
        let m = ask(name, qtype);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(
            !m.metadata.authoritative,
            "{name} {qtype}: a referral has no AA"
        );
        assert!(m.answers.is_empty(), "{name}");
        let ns: Vec<String> = m
            .authorities
            .iter()
            .map(|r| {
                assert_eq!(r.name.to_string(), "a3._mimi.example.com.");
                match &r.data {
                    RData::NS(n) => n.0.to_string(),
                    other => panic!("{name}: {other:?} in a referral"),
                }
            })
            .collect();
        assert_eq!(ns, ["ns1.shards.example.com.", "ns.other.net."], "{name}");
        let glue: Vec<String> = m
            .additionals
            .iter()
            .map(|r| format!("{} {}", r.name, r.data))
            .collect();
        assert_eq!(glue, ["ns1.shards.example.com. 192.0.2.7"], "{name}");
    }
    // Glue below the cut, both families.
    let m = ask("ns.b0._mimi.example.com.", RecordType::A);
    assert!(!m.metadata.authoritative && m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(m.additionals.len(), 2);
    // DS at the cut: the parent's NODATA.
    let m = ask("a3._mimi.example.com.", RecordType::DS);
    assert!(m.metadata.authoritative && m.answers.is_empty());
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    // The apex NS answer: apex glue only.
    let m = ask("example.com.", RecordType::NS);
    assert_eq!(m.answers.len(), 1);
    let glue: Vec<String> = m.additionals.iter().map(|r| r.name.to_string()).collect();
    assert_eq!(glue, ["ns1.example.com."]);
    // A name beside the cuts is answered as before.
    let m = ask("aaa._mimi.example.com.", RecordType::TXT);
    assert!(m.metadata.authoritative && m.answers.len() == 2);
    let m = ask("a4._mimi.example.com.", RecordType::TXT);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

/// A secondary's TSIG-signed SOA query (BIND signs the query before each
/// refresh and rejects an unsigned answer) gets an answer signed with the
/// zone's transfer key, which the query's verifier accepts; a query signed
/// with another key gets an unsigned answer.
#[test]
fn signed_queries_get_signed_answers() {
    use crate::input::config::TransferPolicy;
    use crate::input::tsig::TsigKey;
    let key = |name: &str, secret: &str| {
        TsigKey::parse(&format!(
            "key \"{name}\" {{ algorithm hmac-sha256; secret \"{secret}\"; }};"
        ))
        .unwrap()
    };
    let ours = key(
        "transfer-key",
        "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=",
    );
    let other = key("other-key", "b3RoZXJvdGhlcm90aGVyb3RoZXJvdGhlcm90aGVyMTI=");
    let mut zone = (*crate::zone::served::tests::zone().zone).clone();
    zone.transfer = Some(Arc::new(TransferPolicy {
        allow: vec![],
        notify: vec![],
        key: Some(ours.clone()),
        journal: Default::default(),
    }));
    let zones = ZoneTable::new([Arc::new(ServedZone::new(Arc::new(zone)).unwrap())]);
    let now = mimi_proto::UnixTime::now().0;
    let signed_query = |k: &TsigKey| {
        let mut m = query("example.com.", RecordType::SOA, None);
        let verifier = m.finalize(&k.signer(), now).unwrap().unwrap();
        (m.to_vec().unwrap(), verifier)
    };
    for transport in [Transport::Udp, Transport::Tcp] {
        let (packet, mut verifier) = signed_query(&ours);
        let answer = bytes(&zones, &packet, transport).unwrap();
        let m = decode(&answer);
        assert_eq!(m.answers.len(), 1);
        assert!(
            m.signature().is_some(),
            "{transport:?}: the answer is not signed"
        );
        verifier.verify(&answer).expect("the signature verifies");
        // The full reader (the fuzz target's other side) signs too.
        let (packet, mut verifier) = signed_query(&ours);
        let mut full = Vec::new();
        answer_with_full_reader(&zones, &packet, transport, &mut full);
        verifier
            .verify(&full)
            .expect("the full reader's answer verifies");
    }
    let (packet, _) = signed_query(&other);
    let m = decode(&bytes(&zones, &packet, Transport::Udp).unwrap());
    assert_eq!(m.answers.len(), 1);
    assert!(m.signature().is_none());
}

/// The Padding option of a decoded answer's OPT record, if any.
fn padding_of(m: &Message) -> Option<Vec<u8>> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    m.edns
        .as_ref()?
        .options()
        .as_ref()
        .iter()
        .find_map(|(code, opt)| match (code, opt) {
            (EdnsCode::Padding, EdnsOption::Unknown(_, data)) => Some(data.clone()),
            (EdnsCode::Padding, _) => Some(Vec::new()),
            _ => None,
        })
}

/// Over the encrypted transports, the answer to an EDNS query is padded
/// to a multiple of 468 octets (RFC 8467 §4.1) with a well-formed Padding
/// option of zeros (RFC 7830 §3): for a found name, a missing name, a
/// large answer, a refused zone and BADVERS, through both readers; the
/// padded answer decodes (hickory) to the same records as over TCP.
#[test]
fn encrypted_answers_to_edns_queries_are_padded_to_468() {
    let zones = zones();
    let cases = [
        ("aaa._mimi.example.com.", RecordType::TXT, 0),
        ("nope._mimi.example.com.", RecordType::TXT, 0),
        ("big._mimi.example.com.", RecordType::TXT, 0),
        ("example.com.", RecordType::NS, 0),
        ("example.org.", RecordType::TXT, 0),
        ("example.com.", RecordType::SOA, 1),
    ];
    let mut sizes = std::collections::BTreeSet::new();
    for (name, qtype, version) in cases {
        for dnssec_ok in [false, true] {
            let packet = query(name, qtype, Some((1232, version, dnssec_ok)))
                .to_vec()
                .unwrap();
            let tcp = decode(&bytes(&zones, &packet, Transport::Tcp).unwrap());
            for transport in [Transport::Tls, Transport::Message] {
                let out = bytes(&zones, &packet, transport).unwrap();
                assert_eq!(
                    out,
                    full_bytes(&zones, &packet, transport).unwrap(),
                    "{name}: both readers pad alike"
                );
                assert_eq!(
                    out.len() % RESPONSE_PADDING_BLOCK,
                    0,
                    "{name} {qtype}: {}",
                    out.len()
                );
                sizes.insert((name, out.len()));
                let m = decode(&out);
                let pad = padding_of(&m).expect("a Padding option");
                assert!(pad.iter().all(|&b| b == 0), "padding is zeros");
                assert_eq!(m.answers, tcp.answers, "{name}");
                assert_eq!(m.authorities, tcp.authorities, "{name}");
                assert_eq!(m.metadata.response_code, tcp.metadata.response_code);
                assert_eq!(
                    m.edns.as_ref().unwrap().flags().dnssec_ok,
                    dnssec_ok,
                    "DO still copied"
                );
            }
        }
    }
    let found = sizes.iter().find(|(n, _)| n.starts_with("aaa")).unwrap().1;
    let missing = sizes.iter().find(|(n, _)| n.starts_with("nope")).unwrap().1;
    assert_eq!(found, RESPONSE_PADDING_BLOCK);
    assert_eq!(found, missing, "a found and a missing name look alike");
    let big = sizes.iter().find(|(n, _)| n.starts_with("big")).unwrap().1;
    assert!(big > RESPONSE_PADDING_BLOCK, "{big}");
}

/// Plain UDP and TCP are never padded, and queries without EDNS are not
/// padded on any transport (there is no OPT record to carry the option).
#[test]
fn plain_transports_and_queries_without_edns_are_not_padded() {
    let zones = zones();
    for name in ["aaa._mimi.example.com.", "nope._mimi.example.com."] {
        let edns = query(name, RecordType::TXT, Some((1232, 0, false)))
            .to_vec()
            .unwrap();
        for transport in [Transport::Udp, Transport::Tcp] {
            let m = decode(&bytes(&zones, &edns, transport).unwrap());
            assert!(padding_of(&m).is_none(), "{transport:?}");
        }
        let plain = query(name, RecordType::TXT, None).to_vec().unwrap();
        for transport in [Transport::Tls, Transport::Message] {
            let out = bytes(&zones, &plain, transport).unwrap();
            assert_eq!(out, bytes(&zones, &plain, Transport::Tcp).unwrap());
        }
    }
}

/// Zone transfers are handed on over DNS over TLS as over TCP, and
/// REFUSED over DNS over HTTPS and QUIC.
#[test]
fn transfers_over_tls_only() {
    let zones = zones();
    for qtype in [RecordType::AXFR, RecordType::IXFR] {
        let packet = query("example.com.", qtype, None).to_vec().unwrap();
        let mut out = Vec::new();
        let mut scratch = Scratch::default();
        assert_eq!(
            answer(&zones, &packet, Transport::Tls, &mut out, &mut scratch),
            Answer::Transfer
        );
        assert_eq!(
            answer(&zones, &packet, Transport::Message, &mut out, &mut scratch),
            Answer::Reply
        );
        assert_eq!(decode(&out).metadata.response_code, ResponseCode::Refused);
    }
}

/// `min_ttl` reads the smallest TTL of the answer and authority records:
/// the records' TTL for a found name, the negative SOA's for a missing
/// one, none for a refused zone.
#[test]
fn min_ttl_of_answers() {
    let zones = zones();
    let ttl = |name: &str| {
        let packet = query(name, RecordType::TXT, Some((1232, 0, false)))
            .to_vec()
            .unwrap();
        let out = bytes(&zones, &packet, Transport::Message).unwrap();
        let m = decode(&out);
        let expected = m.answers.iter().chain(&m.authorities).map(|r| r.ttl).min();
        assert_eq!(min_ttl(&out), expected, "{name}");
        min_ttl(&out)
    };
    assert_eq!(ttl("aaa._mimi.example.com."), Some(300));
    assert!(ttl("nope._mimi.example.com.").is_some());
    assert_eq!(ttl("example.org."), None);
    assert_eq!(min_ttl(&[0; 5]), None);
}
