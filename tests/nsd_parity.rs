//! `mimi-publisher serve` against NSD, the reference authoritative server,
//! on the same zone: for well-formed and malformed queries alike, over UDP
//! and TCP, both give the same RCODE, flags, question and answer counts,
//! and EDNS record. The intended differences (docs/PROTOCOL.md, "Serving")
//! are left out: NSD adds NS records to the authority section of positive
//! answers, answers class ANY, clears CD, answers NOTIFY as a secondary
//! would, and clears DO in BADVERS responses (we copy it, RFC 3225 §3).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::Message;
use mimi_e2e::{
    eventually, free_port, require, soa_serial, Authority, Daemon, Workspace, ZoneSpec,
};
use mimi_proto::{DomainName, Sii};
use mimi_publisher::serve::{self, ServeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAPPINGS: &str = "alice@example.com,mimi://chat.example.com/u/alice\n";

fn name(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in s.split('.').filter(|l| !l.is_empty()) {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}

fn header(flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut h = vec![0x12, 0x34];
    h.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        h.extend_from_slice(&c.to_be_bytes());
    }
    h
}

fn question(qname: &str, qtype: u16, qclass: u16) -> Vec<u8> {
    let mut q = name(qname);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&qclass.to_be_bytes());
    q
}

fn opt(payload: u16, version: u8, flags: u16, owner: &[u8], rdata: &[u8]) -> Vec<u8> {
    let mut o = owner.to_vec();
    o.extend_from_slice(&41u16.to_be_bytes());
    o.extend_from_slice(&payload.to_be_bytes());
    o.extend_from_slice(&[0, version]);
    o.extend_from_slice(&flags.to_be_bytes());
    o.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    o.extend_from_slice(rdata);
    o
}

fn txt_rr(owner: &str) -> Vec<u8> {
    let mut r = name(owner);
    r.extend_from_slice(&[0, 16, 0, 1, 0, 0, 1, 44, 0, 2, 1, b'x']);
    r
}

async fn udp(server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(packet, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

async fn tcp(server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let mut s = tokio::net::TcpStream::connect(server).await.unwrap();
    let mut frame = (packet.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(packet);
    s.write_all(&frame).await.ok()?;
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

/// What must agree: RCODE (with the extended bits), opcode, QR, AA, TC,
/// the question and answer counts, whether the response is the header
/// alone, and our OPT (payload, version, DO).
fn summary(response: Option<Vec<u8>>) -> String {
    let Some(b) = response else {
        return "no answer".into();
    };
    let m = Message::from_vec(&b).unwrap_or_else(|e| panic!("undecodable response {b:02x?}: {e}"));
    let header_only = b.len() == 12 && b[4..12].iter().all(|&c| c == 0);
    // NSD clears DO in BADVERS responses; we copy it (RFC 3225 §3).
    let badvers = u16::from(m.metadata.response_code) == 16;
    format!(
        "rcode={} opcode={:?} qr={:?} aa={} tc={} qd={} an={} header-only={} opt={:?}",
        u16::from(m.metadata.response_code),
        m.metadata.op_code,
        m.metadata.message_type,
        m.metadata.authoritative,
        m.metadata.truncation,
        m.queries.len(),
        m.answers.len(),
        header_only,
        m.edns.as_ref().map(|e| (
            e.max_payload(),
            e.version(),
            e.flags().dnssec_ok && !badvers
        )),
    )
}

/// Starts NSD as primary for `zone` (written as our zone file), waits
/// until it answers, and returns it, its address and the serial it serves.
async fn start_nsd(ws: &Workspace, zone: &mimi_publisher::Zone) -> (Daemon, SocketAddr, u32) {
    let origin = zone.origin.as_str();
    let nsd_bin = require("nsd", "nsd");
    let dir = ws.path("nsd");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("zone.zone"),
        mimi_publisher::zone::zonefile::render(zone),
    )
    .unwrap();
    let port = free_port();
    let conf = format!(
        r#"server:
    ip-address: 127.0.0.1@{port}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    pidfile: "{d}/nsd.pid"
    xfrdfile: "{d}/xfrd.state"
    zonelistfile: "{d}/zone.list"
    xfrdir: "{d}"
    verbosity: 1
    rrl-ratelimit: 0
    server-count: 1

remote-control:
    control-enable: no

zone:
    name: "{origin}"
    zonefile: "zone.zone"
"#,
        d = dir.display()
    );
    std::fs::write(dir.join("nsd.conf"), conf).unwrap();
    let mut cmd = Command::new(nsd_bin);
    cmd.arg("-d").arg("-c").arg(dir.join("nsd.conf"));
    let nsd = Daemon::spawn("nsd", cmd, dir.join("nsd.log"));
    let nsd_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let serial = eventually(Duration::from_secs(20), "NSD to serve the zone", || async {
        soa_serial(nsd_addr, origin).await
    })
    .await;
    (nsd, nsd_addr, serial)
}

/// Every section of a response, records sorted within each (the order
/// inside a section carries no meaning), OPT left out.
fn sections(response: Option<Vec<u8>>) -> String {
    let Some(b) = response else {
        return "no answer".into();
    };
    let m = Message::from_vec(&b).unwrap_or_else(|e| panic!("undecodable response {b:02x?}: {e}"));
    let list = |rs: &[hickory_proto::rr::Record]| {
        let mut v: Vec<String> = rs
            .iter()
            .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
            .collect();
        v.sort();
        v.join(", ")
    };
    format!(
        "rcode={} aa={} tc={}\n    answer [{}]\n    authority [{}]\n    additional [{}]",
        u16::from(m.metadata.response_code),
        m.metadata.authoritative,
        m.metadata.truncation,
        list(&m.answers),
        list(&m.authorities),
        list(&m.additionals),
    )
}

/// Referrals from a zone with delegated shards (`[[delegate]]`) against
/// NSD serving our zone file of it: at the cut, below it, for every query
/// type, with and without EDNS, over UDP and
/// TCP: the same RCODE, AA, and every section record for record; and DS
/// at the cut (the parent's, unsigned: NODATA with the SOA).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrals_like_nsd() {
    let ws = Workspace::new();
    let provider = Authority::new("example.com");
    ws.write_key("z/signing.pem", &provider.root);
    let alice = Sii::parse("alice@example.com", None).unwrap().label();
    let cut = alice.shard().to_owned();
    // Another SII in another shard, which stays in the parent.
    let bob = (0..)
        .map(|i| format!("bob{i}@example.com"))
        .find(|s| {
            let l = Sii::parse(s, None).unwrap().label();
            l.shard() != cut && l.shard() != "vv"
        })
        .unwrap();
    ws.write(
        "z/mappings.csv",
        &format!("{MAPPINGS}{bob},mimi://chat.example.com/u/bob\n"),
    );
    let config = ws.zone(
        "z/zone.toml",
        &ZoneSpec {
            origin: "example.com",
            role: "home",
            authority: Some("example.com"),
            key: Some("signing.pem"),
            mappings: Some("mappings.csv"),
            ..Default::default()
        },
    );
    let text = std::fs::read_to_string(&config).unwrap();
    ws.write(
        "z/zone.toml",
        &format!(
            "{text}[[delegate]]\nshards = [\"{cut}\"]\nns = [\"ns1.shards.example.com\", \"ns.other.net\"]\nglue = {{ \"ns1.shards.example.com\" = [\"192.0.2.7\"] }}\n[[delegate]]\nshards = [\"vv\"]\nns = [\"ns-vv.example.com\"]\nglue = {{ \"ns-vv.example.com\" = [\"192.0.2.8\", \"2001:db8::8\"] }}\n"
        ),
    );
    let server = serve::start(ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServeOptions::new(vec![config])
    })
    .await
    .unwrap();
    let ours = server.local_addr();
    let origin = DomainName::parse("example.com").unwrap();
    let zone = server.zone(&origin).unwrap();
    assert_eq!(zone.delegations.len(), 2);
    assert_eq!(
        zone.records.len(),
        1,
        "alice's shard is delegated, bob's is not"
    );
    let (mut nsd, nsd_addr, serial) = start_nsd(&ws, &zone).await;
    assert_eq!(serial, zone.soa.serial);

    let at_cut = format!("{cut}._mimi.example.com");
    let alice_name = format!("{alice}.{at_cut}");
    let names = [
        at_cut.as_str(),
        alice_name.as_str(),
        "x.y.vv._mimi.example.com",
        "vv._mimi.example.com",
        "ns.vv._mimi.example.com",
    ];
    // A, NS, SOA, TXT, AAAA, DS, ANY.
    let types = [1u16, 2, 6, 16, 28, 43, 255];
    let root = [0u8];
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for n in names {
        for t in types {
            cases.push((
                format!("{n} type {t}"),
                [header(0, [1, 0, 0, 0]), question(n, t, 1)].concat(),
            ));
            cases.push((
                format!("{n} type {t}, EDNS"),
                [
                    header(0x0100, [1, 0, 0, 1]),
                    question(n, t, 1),
                    opt(1232, 0, 0, &root, &[]),
                ]
                .concat(),
            ));
        }
    }
    // Beside the cuts: the parent's own names. (Positive answers are left
    // out: NSD adds the apex NS records to their authority section.)
    for (n, t) in [
        ("_mimi.example.com", 2u16),
        ("_mimi.example.com", 43),
        ("shards.example.com", 1),
        ("ns1.shards.example.com", 28),
        ("ns-vv.example.com", 16),
        ("zz._mimi.example.com", 16),
        ("example.com", 43),
    ] {
        cases.push((
            format!("{n} type {t}"),
            [header(0, [1, 0, 0, 0]), question(n, t, 1)].concat(),
        ));
    }
    let mut differences = Vec::new();
    for (what, packet) in &cases {
        for transport in ["udp", "tcp"] {
            let (a, b) = if transport == "udp" {
                (udp(ours, packet).await, udp(nsd_addr, packet).await)
            } else {
                (tcp(ours, packet).await, tcp(nsd_addr, packet).await)
            };
            let (a, b) = (sections(a), sections(b));
            eprintln!("{transport} {what:<40} {b}");
            if a != b {
                differences.push(format!("{transport} {what}:\n  ours {a}\n  NSD  {b}"));
            }
        }
    }
    nsd.assert_running();
    server.shutdown().await.unwrap();
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_like_nsd_on_the_same_zone() {
    let ws = Workspace::new();
    let provider = Authority::new("example.com");
    ws.write_key("z/signing.pem", &provider.root);
    ws.write("z/mappings.csv", MAPPINGS);
    let config = ws.zone(
        "z/zone.toml",
        &ZoneSpec {
            origin: "example.com",
            role: "home",
            authority: Some("example.com"),
            key: Some("signing.pem"),
            mappings: Some("mappings.csv"),
            ..Default::default()
        },
    );
    let server = serve::start(ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServeOptions::new(vec![config])
    })
    .await
    .unwrap();
    let ours = server.local_addr();
    let origin = DomainName::parse("example.com").unwrap();
    let zone = server.zone(&origin).unwrap();

    // NSD, primary for the very zone we serve.
    let (mut nsd, nsd_addr, serial) = start_nsd(&ws, &zone).await;
    assert_eq!(serial, zone.soa.serial);

    let alice = mimi_proto::name::discovery_name(
        &Sii::parse("alice@example.com", None).unwrap().label(),
        &origin,
    )
    .unwrap()
    .as_str()
    .to_owned();
    let shard = alice.split_once('.').unwrap().1.to_owned();
    let q = question(&alice, 16, 1);
    let root = [0u8];
    let long: Vec<u8> = [
        vec![63],
        vec![b'a'; 63],
        vec![63],
        vec![b'a'; 63],
        vec![63],
        vec![b'a'; 63],
        vec![63],
        vec![b'a'; 63],
        vec![0, 0, 16, 0, 1],
    ]
    .concat();
    let mut exactly_255 = long.clone();
    exactly_255[3 * 64] = 61;
    exactly_255.drain(3 * 64 + 62..3 * 64 + 64);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("TXT", [header(0x0100, [1, 0, 0, 0]), q.clone()].concat()),
        (
            "TXT, EDNS",
            [
                header(0x0100, [1, 0, 0, 1]),
                q.clone(),
                opt(4096, 0, 0, &root, &[]),
            ]
            .concat(),
        ),
        (
            "TXT, EDNS 600 DO",
            [
                header(0x0100, [1, 0, 0, 1]),
                q.clone(),
                opt(600, 0, 0x8000, &root, &[]),
            ]
            .concat(),
        ),
        (
            "TXT, EDNS 100",
            [
                header(0x0100, [1, 0, 0, 1]),
                q.clone(),
                opt(100, 0, 0, &root, &[]),
            ]
            .concat(),
        ),
        (
            "EDNS version 1",
            [
                header(0x0100, [1, 0, 0, 1]),
                q.clone(),
                opt(4096, 1, 0, &root, &[]),
            ]
            .concat(),
        ),
        (
            "EDNS version 1, DO",
            [
                header(0x0100, [1, 0, 0, 1]),
                q.clone(),
                opt(4096, 1, 0x8000, &root, &[]),
            ]
            .concat(),
        ),
        (
            "EDNS option",
            [
                header(0x0100, [1, 0, 0, 1]),
                q.clone(),
                opt(4096, 0, 0, &root, &[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]),
            ]
            .concat(),
        ),
        (
            "option length overruns",
            [
                header(0x0100, [1, 0, 0, 1]),
                q.clone(),
                opt(4096, 0, 0, &root, &[0, 10, 0, 8, 1, 2, 3]),
            ]
            .concat(),
        ),
        (
            "bytes after the option",
            [
                header(0x0100, [1, 0, 0, 1]),
                q.clone(),
                opt(4096, 0, 0, &root, &[0, 10, 0, 2, 1, 2, 3]),
            ]
            .concat(),
        ),
        (
            "two OPT",
            [
                header(0x0100, [1, 0, 0, 2]),
                q.clone(),
                opt(4096, 0, 0, &root, &[]),
                opt(4096, 0, 0, &root, &[]),
            ]
            .concat(),
        ),
        (
            "OPT not at the root",
            [
                header(0x0100, [1, 0, 0, 1]),
                q.clone(),
                opt(4096, 0, 0, &name("example.com"), &[]),
            ]
            .concat(),
        ),
        (
            "ANCOUNT 1",
            [header(0x0100, [1, 1, 0, 0]), q.clone(), txt_rr(&alice)].concat(),
        ),
        (
            "NSCOUNT 1",
            [header(0x0100, [1, 0, 1, 0]), q.clone(), txt_rr(&alice)].concat(),
        ),
        (
            "ANCOUNT 1, no record",
            [header(0x0100, [1, 1, 0, 0]), q.clone()].concat(),
        ),
        (
            "QDCOUNT 2",
            [header(0x0100, [2, 0, 0, 0]), q.clone(), q.clone()].concat(),
        ),
        (
            "QDCOUNT 65535",
            [header(0x0100, [65535, 0, 0, 0]), q.clone()].concat(),
        ),
        (
            "ARCOUNT 65535",
            [
                header(0x0100, [1, 0, 0, 65535]),
                q.clone(),
                opt(4096, 0, 0, &root, &[]),
            ]
            .concat(),
        ),
        (
            "TXT in additional",
            [header(0x0100, [1, 0, 0, 1]), q.clone(), txt_rr(&alice)].concat(),
        ),
        (
            "trailing bytes",
            [header(0x0100, [1, 0, 0, 0]), q.clone(), b"abc".to_vec()].concat(),
        ),
        (
            "name of 256 octets",
            [header(0x0100, [1, 0, 0, 0]), long].concat(),
        ),
        (
            "name of 255 octets",
            [header(0x0100, [1, 0, 0, 0]), exactly_255].concat(),
        ),
        (
            "opcode 3",
            [header(0x1900, [1, 0, 0, 0]), q.clone()].concat(),
        ),
        (
            "TC set in the query",
            [header(0x0300, [1, 0, 0, 0]), q.clone()].concat(),
        ),
        ("Z set", [header(0x0140, [1, 0, 0, 0]), q.clone()].concat()),
        ("AD set", [header(0x0120, [1, 0, 0, 0]), q.clone()].concat()),
        (
            "ANY at a discovery name",
            [header(0, [1, 0, 0, 0]), question(&alice, 255, 1)].concat(),
        ),
        (
            "ANY at the apex",
            [header(0, [1, 0, 0, 0]), question("example.com", 255, 1)].concat(),
        ),
        (
            "SOA",
            [header(0, [1, 0, 0, 0]), question("example.com", 6, 1)].concat(),
        ),
        (
            "NS",
            [header(0, [1, 0, 0, 0]), question("EXAMPLE.com", 2, 1)].concat(),
        ),
        (
            "A at the apex",
            [header(0, [1, 0, 0, 0]), question("example.com", 1, 1)].concat(),
        ),
        (
            "NXDOMAIN",
            [
                header(0, [1, 0, 0, 0]),
                question(&format!("zz.{shard}"), 16, 1),
            ]
            .concat(),
        ),
        (
            "below a discovery name",
            [
                header(0, [1, 0, 0, 0]),
                question(&format!("x.{alice}"), 16, 1),
            ]
            .concat(),
        ),
        (
            "shard ENT",
            [header(0, [1, 0, 0, 0]), question(&shard, 16, 1)].concat(),
        ),
        (
            "_mimi ENT",
            [
                header(0, [1, 0, 0, 0]),
                question("_mimi.example.com", 16, 1),
            ]
            .concat(),
        ),
        (
            "out of zone",
            [header(0, [1, 0, 0, 0]), question("example.org", 16, 1)].concat(),
        ),
        (
            "class CH",
            [header(0, [1, 0, 0, 0]), question(&alice, 16, 3)].concat(),
        ),
        ("QDCOUNT 0", header(0x0100, [0, 0, 0, 0])),
        (
            "a response",
            [header(0x8100, [1, 0, 0, 0]), q.clone()].concat(),
        ),
    ];
    let mut differences = Vec::new();
    for (what, packet) in &cases {
        for transport in ["udp", "tcp"] {
            // NSD resets a TCP connection whose query has no question.
            if transport == "tcp" && (*what == "QDCOUNT 0" || *what == "a response") {
                continue;
            }
            let (a, b) = if transport == "udp" {
                (udp(ours, packet).await, udp(nsd_addr, packet).await)
            } else {
                (tcp(ours, packet).await, tcp(nsd_addr, packet).await)
            };
            let (a, b) = (summary(a), summary(b));
            eprintln!("{transport} {what:<28} {b}");
            if a != b {
                differences.push(format!("{transport} {what}:\n  ours {a}\n  NSD  {b}"));
            }
        }
    }
    nsd.assert_running();
    server.shutdown().await.unwrap();
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
