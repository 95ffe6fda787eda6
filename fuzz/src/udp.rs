//! The UDP fast path (`publisher/src/serve/wire.rs`) on a fixed served zone.
//!
//! Input: one UDP datagram. Properties:
//!
//! * the fast path and the full decoder agree on whether to answer;
//! * an answer is a DNS response that hickory-proto decodes, carries the
//!   query's id, and fits the size the client allows (512 octets without
//!   EDNS, the advertised size clamped to 512–1232 with it);
//! * for every query that hickory-proto decodes — the shapes both paths
//!   handle — the fast path's answer equals the full decoder's, section by
//!   section.

use std::sync::{Arc, OnceLock};

use hickory_proto::op::{Message, MessageType};
use mimi_proto::{DomainName, Sii};
use mimi_publisher::zone::served::ServedZone;
use mimi_publisher::{Soa, Zone, ZoneRecord};

/// The served zones: `example.com` and `e164.mimi.example`, shaped like
/// the demo zones (`zones/`): SOA, NS with glue, assertions at discovery
/// names (two at one name), a certificate, a record longer than one TXT
/// string, and a name whose answer exceeds 512 octets.
pub fn zones() -> &'static [Arc<ServedZone>] {
    static ZONES: OnceLock<Vec<Arc<ServedZone>>> = OnceLock::new();
    ZONES.get_or_init(|| {
        [example_com(), e164()]
            .into_iter()
            .map(|z| Arc::new(ServedZone::new(Arc::new(z)).expect("served zone")))
            .collect()
    })
}

fn d(s: &str) -> DomainName {
    DomainName::parse(s).expect("name")
}

fn discovery(sii: &str, zone: &str) -> DomainName {
    let sii = Sii::parse(sii, None).expect("SII");
    mimi_proto::name::discovery_name(&sii.label(), &d(zone)).expect("discovery name")
}

fn zone(origin: &str, mut records: Vec<ZoneRecord>) -> Zone {
    records.sort();
    Zone {
        origin: d(origin),
        ttl: 3600,
        soa: Soa {
            mname: d(&format!("ns1.{origin}")),
            rname: d(&format!("hostmaster.{origin}")),
            serial: 2025120101,
            refresh: 3600,
            retry: 600,
            expire: 1209600,
            minimum: 60,
        },
        ns: vec![d(&format!("ns1.{origin}")), d("ns.example.net")],
        glue: vec![(
            d(&format!("ns1.{origin}")),
            vec![
                "192.0.2.53".parse().expect("ip"),
                "2001:db8::53".parse().expect("ip"),
            ],
        )],
        records,
        delegations: Vec::new(),
        ptrs: Vec::new(),
        next_resign: None,
        transfer: None,
        cache: Default::default(),
        ledger: Default::default(),
    }
}

/// The `example.com` zone.
pub fn example_com() -> Zone {
    let rec = |o: DomainName, t: String| ZoneRecord::new(o, 300, t);
    let alice = discovery("alice@example.com", "example.com");
    let bob = discovery("bob@example.com", "example.com");
    let carol = discovery("carol@example.com", "example.com");
    let mut records = vec![
        rec(alice.clone(), "v=mimi1;a=example.com;k=aaaaaaaaaaaaaaaa;s=mimi://chat.example.com/u/alice;t=1764547200;x=1765756800;sig=A".into()),
        rec(alice, "v=mimi1;a=ma.example.net;k=77rh7k568giju12i;s=mimi://chat.example.com/u/alice;t=1764547200;x=1765756800;sig=B".into()),
        rec(bob, "v=mimi1;a=example.com;k=aaaaaaaaaaaaaaaa;s=mimi://chat.example.com/u/bob;t=1764547200;x=1765756800;sig=C".into()),
        rec(d("_mimi-ma.example.com"), "v=mimi1;a=example.com;k=aaaaaaaaaaaaaaaa;pk=PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw;r=47v33nt1aih62ojb;t=1764547200;x=1780099200;sig=D".into()),
        rec(carol, format!("v=mimi1;a=example.com;e={};sig=E", "c".repeat(600))),
    ];
    for i in 0..3 {
        records.push(rec(
            d("big._mimi.example.com"),
            format!("v=mimi1;{i}{}", "b".repeat(291)),
        ));
    }
    let mut z = zone("example.com", records);
    // Two delegated shards (referrals): one to a name server with glue
    // below its cut, one to an outside name server.
    z.delegations = vec![
        mimi_publisher::zone::Delegation {
            owner: d("vu._mimi.example.com"),
            ns: vec![d("ns.example.net")],
        },
        mimi_publisher::zone::Delegation {
            owner: d("vv._mimi.example.com"),
            ns: vec![d("ns.vv._mimi.example.com"), d("ns1.example.com")],
        },
    ];
    z.glue.push((
        d("ns.vv._mimi.example.com"),
        vec!["192.0.2.54".parse().expect("ip")],
    ));
    z
}

/// The `e164.mimi.example` zone.
pub fn e164() -> Zone {
    let bob = discovery("tel:+390612345678", "9.3.e164.mimi.example");
    zone(
        "e164.mimi.example",
        vec![ZoneRecord::new(
            bob,
            300,
            "v=mimi1;a=ma.example.net;k=77rh7k568giju12i;s=im:bob@talk.example.net;t=1764547200;x=1765756800;sig=F",
        )],
    )
}

/// The target body.
pub fn run(packet: &[u8]) {
    let zones = zones();
    let mut fast = Vec::new();
    let mut full = Vec::new();
    let fast_answered = mimi_publisher::fuzzing::answer_udp(zones, packet, &mut fast);
    let full_answered = mimi_publisher::fuzzing::answer_full(zones, packet, &mut full);
    assert_eq!(
        fast_answered, full_answered,
        "the fast path and the full decoder disagree on answering"
    );
    if !fast_answered {
        return;
    }
    let response = Message::from_vec(&fast)
        .unwrap_or_else(|e| panic!("the fast path's answer does not decode: {e}"));
    assert_eq!(response.metadata.message_type, MessageType::Response);
    assert_eq!(
        response.metadata.id,
        u16::from_be_bytes([packet[0], packet[1]])
    );
    let Ok(query) = Message::from_vec(packet) else {
        // Only the full decoder's FORMERR applies; the fast path may have
        // read a shape hickory rejects (reported by `fuzz/run.sh` stats,
        // not a property).
        assert!(fast.len() <= 1232, "answer of {} octets", fast.len());
        return;
    };
    let limit = query
        .edns
        .as_ref()
        .map_or(512, |e| e.max_payload().clamp(512, 1232)) as usize;
    assert!(
        fast.len() <= limit,
        "answer of {} octets, the client allows {limit}",
        fast.len()
    );
    let other = Message::from_vec(&full).expect("the full decoder's answer decodes");
    assert_eq!(response.metadata, other.metadata, "header");
    assert_eq!(response.queries, other.queries, "question");
    assert_eq!(response.answers, other.answers, "answer section");
    assert_eq!(response.authorities, other.authorities, "authority section");
    assert_eq!(
        response.additionals, other.additionals,
        "additional section"
    );
    assert_eq!(response.edns, other.edns, "EDNS");
}
