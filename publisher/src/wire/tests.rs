use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use super::*;
use crate::answer::ServedZone;

fn zones() -> Vec<Arc<ServedZone>> {
    vec![Arc::new(crate::answer::tests::zone())]
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

fn fast(zones: &[Arc<ServedZone>], packet: &[u8]) -> Option<Message> {
    let mut out = Vec::new();
    let mut scratch = String::new();
    answer_udp(zones, packet, &mut out, &mut scratch)
        .then(|| Message::from_vec(&out).expect("fast path answer decodes"))
}

fn full(zones: &[Arc<ServedZone>], packet: &[u8]) -> Option<Message> {
    let mut out = Vec::new();
    answer_other(zones, packet, &mut out).then(|| Message::from_vec(&out).expect("answer decodes"))
}

/// The fast path and the full decoder give the same answer for every
/// query shape the fast path takes.
#[test]
fn fast_path_agrees_with_the_full_decoder() {
    let zones = zones();
    let names = [
        "aaa._mimi.example.com.",
        "AaA._MIMI.Example.COM.",
        "bbb._mimi.example.com.",
        "zzz._mimi.example.com.",
        "_mimi.example.com.",
        "9.3.e164.example.com.",
        "example.com.",
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
    ];
    let edns = [
        None,
        Some((512, 0, false)),
        Some((1232, 0, true)),
        Some((4096, 0, false)),
        Some((1232, 1, false)),
    ];
    let mut compared = 0;
    for name in names {
        for qtype in types {
            for e in edns {
                let packet = query(name, qtype, e).to_vec().unwrap();
                let mut scratch = String::new();
                assert!(
                    matches!(read_plain(&packet, &mut scratch), Read::Plain(_)),
                    "{name} {qtype} {e:?} takes the fast path"
                );
                let a = fast(&zones, &packet).unwrap();
                let b = full(&zones, &packet).unwrap();
                assert_eq!(a.metadata, b.metadata, "{name} {qtype} {e:?}");
                assert_eq!(a.queries, b.queries, "{name} {qtype} {e:?}");
                assert_eq!(a.answers, b.answers, "{name} {qtype} {e:?}");
                assert_eq!(a.authorities, b.authorities, "{name} {qtype} {e:?}");
                assert_eq!(a.additionals, b.additionals, "{name} {qtype} {e:?}");
                assert_eq!(a.edns, b.edns, "{name} {qtype} {e:?}");
                compared += 1;
            }
        }
    }
    assert_eq!(compared, names.len() * types.len() * edns.len());
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

    let ent = ask("_mimi.example.com.", RecordType::TXT, None);
    assert_eq!(ent.metadata.response_code, ResponseCode::NoError);
    assert!(ent.answers.is_empty() && ent.authorities.len() == 1);

    let ns = ask("example.com.", RecordType::NS, None);
    assert_eq!((ns.answers.len(), ns.additionals.len()), (1, 1));

    let out = ask("example.org.", RecordType::TXT, None);
    assert_eq!(out.metadata.response_code, ResponseCode::Refused);
    assert!(!out.metadata.authoritative);

    let axfr = ask("example.com.", RecordType::AXFR, None);
    assert_eq!(axfr.metadata.response_code, ResponseCode::Refused);

    let badvers = ask(
        "aaa._mimi.example.com.",
        RecordType::TXT,
        Some((1232, 1, false)),
    );
    // BADVERS and BADSIG share the value 16; the decoder names it BADSIG.
    assert_eq!(u16::from(badvers.metadata.response_code), 16);
    assert_eq!(badvers.edns.as_ref().unwrap().rcode_high(), 1);
    assert!(badvers.answers.is_empty());

    let dnssec = ask(
        "aaa._mimi.example.com.",
        RecordType::TXT,
        Some((4096, 0, true)),
    );
    let edns = dnssec.edns.unwrap();
    assert_eq!(edns.max_payload(), MAX_UDP_PAYLOAD);
    assert!(edns.flags().dnssec_ok, "DO is copied (RFC 3225)");
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
    let mut scratch = String::new();
    // Two questions: FORMERR.
    let mut two = query("aaa._mimi.example.com.", RecordType::TXT, None);
    two.add_query(Query::query(
        Name::from_ascii("example.com.").unwrap(),
        RecordType::SOA,
    ));
    let packet = two.to_vec().unwrap();
    assert_eq!(read_plain(&packet, &mut scratch), Read::Other);
    let r = fast(&zones, &packet).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);

    // NOTIFY or UPDATE: not implemented over UDP here.
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
    assert!(matches!(read_plain(&mixed, &mut scratch), Read::Plain(_)));
    assert_eq!(scratch, "aaa._mimi.example.com");
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

    // Trailing garbage after a valid query: decoded in full.
    let mut trailing = plain.clone();
    trailing.extend_from_slice(&[1, 2, 3]);
    assert_eq!(read_plain(&trailing, &mut scratch), Read::Other);
}

#[test]
fn non_queries_get_no_answer_and_garbage_gets_formerr() {
    let zones = zones();
    let mut out = Vec::new();
    let mut scratch = String::new();
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
    // A header claiming a question that is not there: FORMERR.
    let mut garbage = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0xc0]);
    assert!(answer_udp(&zones, &garbage, &mut out, &mut scratch));
    let r = Message::from_vec(&out).unwrap();
    assert_eq!(r.metadata.id, 0xabcd);
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    assert!(r.metadata.recursion_desired);
}
