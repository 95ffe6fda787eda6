//! Writes the seed corpora into `fuzz/corpus/<target>/seed-*` from the
//! SPEC vectors, the demo zones and generated DNS queries:
//!
//! ```text
//! cargo run -p mimi-fuzz --example seed -- /path/to/shared/vectors
//! ```
//!
//! Seeds are deterministic, so re-running it rewrites the same files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use serde_json::Value;

fn main() {
    let vectors = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "../shared/vectors".to_owned()),
    );
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let repo = here.parent().expect("repository root").to_owned();
    let load = |f: &str| -> Value {
        let path = vectors.join(f);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).expect("vector JSON")
    };
    let canonical = load("canonical.json");
    let records = load("records.json");
    let ssi = load("ssi.json");
    let corpus = here.join("corpus");

    // sii: region selector byte + input.
    let regions = [
        None,
        Some("IT"),
        Some("US"),
        Some("DE"),
        Some("GB"),
        Some("JP"),
    ];
    let mut sii = Vec::new();
    for v in iter(&canonical["valid"]).chain(iter(&canonical["invalid"])) {
        let region = v["region"].as_str().map(|r| r.to_ascii_uppercase());
        let sel = regions
            .iter()
            .position(|r| r.map(str::to_owned) == region)
            .unwrap_or(0) as u8;
        let mut seed = vec![sel];
        seed.extend_from_slice(v["input"].as_str().expect("input").as_bytes());
        sii.push(seed);
    }
    for extra in [
        "ÅSA@Bücher.example",
        "A\u{30a}sa@example.com",
        "MAILTO:Bob%2Bchat@Example.org.",
        "+1 (415) 555-0123",
        "TEL:+39.06.1234.5678",
        "tel:+1234567890123456",
    ] {
        let mut seed = vec![0];
        seed.extend_from_slice(extra.as_bytes());
        sii.push(seed);
    }
    write(&corpus.join("sii"), &sii);

    // record: every record text and SSI of the vectors.
    let mut record: Vec<Vec<u8>> = Vec::new();
    record.push(text(&records["certificate"]["text"]));
    for a in iter(&records["assertions"]).chain(iter(&records["invalid"])) {
        record.push(text(&a["text"]));
    }
    for s in iter(&ssi["provider_hosts"]).chain(iter(&ssi["invalid"])) {
        record.push(text(&s["ssi"]));
    }
    write(&corpus.join("record"), &record);

    // verify: the vector records at their owner names, with the
    // certificate; the invalid ones; and signing lines.
    let cert = records["certificate"]["text"].as_str().expect("cert");
    let mut verify: Vec<Vec<u8>> = Vec::new();
    for a in iter(&records["assertions"]) {
        verify.push(
            format!(
                "{}\n1\n@{}\n{}\n!ma.example.net\n{cert}",
                a["sii"].as_str().expect("sii"),
                a["owner"].as_str().expect("owner"),
                a["text"].as_str().expect("text")
            )
            .into_bytes(),
        );
    }
    for a in iter(&records["invalid"]) {
        verify.push(
            format!(
                "{}\n1\n@x.\n{}\n!ma.example.net\n{cert}",
                a["sii"].as_str().expect("sii"),
                a["text"].as_str().expect("text")
            )
            .into_bytes(),
        );
    }
    let alice = "mailto:alice@example.com";
    let w = "t=1764547200;x=1765756800";
    let cert_body = "v=mimi1;a=ma.example.net;k=77rh7k568giju12i;pk=PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw;r=47v33nt1aih62ojb;t=1764547200;x=1780099200";
    for body in [
        format!("{alice}\n1\n@a.\nAr v=mimi1;a=ma.example.net;k=47v33nt1aih62ojb;s=mimi://chat.example.org/u/alice;{w}"),
        format!("{alice}\n1\n@a.\nAs v=mimi1;a=ma.example.net;k=77rh7k568giju12i;s=mimi://chat.example.org/u/alice;{w}\n!ma.example.net\nCr {cert_body}"),
        format!("{alice}\n2\n@a.\nAs v=mimi1;a=ma.example.net;k=77rh7k568giju12i;s=mimi://chat.example.org/u/alice;{w}\nAp v=mimi1;a=chat.example.org;k=rb077o0i7ffab7ep;s=mimi://chat.example.org/u/alice;{w};h=3b3qhrr4hku6f09cih8hemu3qt7u60q58uvh63lqcsjfgama37jg\n!ma.example.net\n{cert}"),
        format!("{alice}\n1\n@a.\nAx v=mimi1;a=ma.example.net;k=47v33nt1aih62ojb;s=mimi://chat.example.org/u/alice;{w}"),
        format!("{alice}\n1\n@a.\nAr v=mimi1;a=ma.example.net;k=47v33nt1aih62ojb;s=mimi://evil.example/u/alice;{w}"),
        format!("mailto:eve@evil.example\n1\n@a.\nAr v=mimi1;a=ma.example.net;k=47v33nt1aih62ojb;s=mimi://chat.example.org/u/eve;{w}"),
        format!("{alice}\n1 1780000000\n@a.\nAs v=mimi1;a=ma.example.net;k=77rh7k568giju12i;s=mimi://chat.example.org/u/alice;t=1779990000;x=1780990000\n!ma.example.net\nCr {cert_body}"),
        format!("tel:+390612345678\n1\n@b.\nAp v=mimi1;a=chat.example.org;k=rb077o0i7ffab7ep;s=mimi://x.chat.example.org/u/bob;{w}\n@c.\nAp v=mimi1;a=chat.example.org;k=rb077o0i7ffab7ep;s=mimi://x.chat.example.org/u/bob;{w}"),
        format!("{alice}\n1\n@a.\nAs v=mimi1;a=ma.example.net;k=77rh7k568giju12i;s=mimi://chat.example.org/u/alice;{w}\n!ma.example.net\nCx {cert_body}"),
    ] {
        verify.push(body.into_bytes());
    }
    write(&corpus.join("verify"), &verify);

    // udp: queries for names in and out of the zones.
    let zone = mimi_fuzz::udp::example_com();
    let owners: Vec<String> = zone.records.iter().map(|r| r.owner.fqdn()).collect();
    let mut names: Vec<String> = owners.clone();
    names.dedup();
    let e164 = mimi_fuzz::udp::e164();
    names.push(e164.records[0].owner.fqdn());
    names.extend(
        [
            "example.com.",
            "ns1.example.com.",
            "_mimi.example.com.",
            "3b._mimi.example.com.",
            "nope._mimi.example.com.",
            "e164.mimi.example.",
            "example.org.",
            ".",
        ]
        .map(str::to_owned),
    );
    let mut udp: Vec<Vec<u8>> = Vec::new();
    let shapes = [
        (RecordType::TXT, None),
        (RecordType::TXT, Some((1232, 0, true))),
        (RecordType::A, Some((512, 0, false))),
        (RecordType::SOA, None),
        (RecordType::NS, Some((4096, 0, false))),
        (RecordType::ANY, None),
    ];
    for (i, name) in names.iter().enumerate() {
        for (j, (qtype, edns)) in shapes.iter().enumerate() {
            if (i + j) % 2 == 0 || *qtype == RecordType::TXT {
                udp.push(query(name, *qtype, *edns).to_vec().expect("query"));
            }
        }
    }
    let alice_name = &owners[0];
    for qtype in [
        RecordType::AAAA,
        RecordType::AXFR,
        RecordType::IXFR,
        RecordType::CNAME,
    ] {
        udp.push(query(alice_name, qtype, None).to_vec().expect("query"));
    }
    udp.push(
        query(alice_name, RecordType::TXT, Some((1232, 1, false)))
            .to_vec()
            .expect("q"),
    );
    let mut two = query(alice_name, RecordType::TXT, None);
    two.add_query(Query::query(
        Name::from_ascii("example.com.").expect("n"),
        RecordType::SOA,
    ));
    udp.push(two.to_vec().expect("q"));
    let mut notify = query("example.com.", RecordType::SOA, None);
    notify.metadata.op_code = OpCode::Notify;
    udp.push(notify.to_vec().expect("q"));
    let mut response = query(alice_name, RecordType::TXT, None);
    response.metadata.message_type = MessageType::Response;
    udp.push(response.to_vec().expect("q"));
    let mut chaos = Message::new(7, MessageType::Query, OpCode::Query);
    let mut q = Query::query(
        Name::from_ascii("version.bind.").expect("n"),
        RecordType::TXT,
    );
    q.set_query_class(DNSClass::CH);
    chaos.add_query(q);
    udp.push(chaos.to_vec().expect("q"));
    let plain = query(alice_name, RecordType::TXT, None)
        .to_vec()
        .expect("q");
    let mut trailing = plain.clone();
    trailing.extend_from_slice(&[1, 2, 3]);
    udp.push(trailing);
    udp.push(vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0]);
    udp.push(plain[..5].to_vec());
    // A compressed question name: a pointer back into the header.
    let mut compressed = plain[..12].to_vec();
    compressed.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1]);
    udp.push(compressed);
    write(&corpus.join("udp"), &udp);

    // zonefile: the served zones rendered, a minimal zone, and damage.
    let rendered = mimi_publisher::zone::zonefile::render(&zone);
    let mut zonefile = vec![
        rendered.clone().into_bytes(),
        mimi_publisher::zone::zonefile::render(&e164).into_bytes(),
    ];
    let minimal = "$ORIGIN a.example.\na.example. 60 IN SOA ns.a.example. h.a.example. (\n\t1 ; serial\n\t1 1 1 1 )\n";
    zonefile.push(minimal.as_bytes().to_vec());
    zonefile.push(
        format!("{minimal}x.a.example. 60 IN TXT \"v=mimi1;\\\"q\\\\\" \"more\"\n").into_bytes(),
    );
    zonefile.push(rendered.replace("IN SOA", "IN SOA x").into_bytes());
    zonefile.push(
        rendered
            .lines()
            .take(4)
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes(),
    );
    write(&corpus.join("zonefile"), &zonefile);

    // mappings: the demo zones' files, and a mixed one, with and without a
    // default region.
    let mut mappings: Vec<Vec<u8>> = Vec::new();
    for z in ["example.com", "dir.chat.example.org", "e164.mimi.example"] {
        let text =
            std::fs::read(repo.join("zones").join(z).join("mappings.csv")).expect("demo mappings");
        for sel in [0u8, 1] {
            let mut seed = vec![sel];
            seed.extend_from_slice(&text);
            mappings.push(seed);
        }
    }
    let mixed = "# users\n\nAlice@Example.com , mimi://chat.example.com/u/alice\n+1 415 555 0123,im:bob@talk.example.net\nalice@example.com,mimi://chat.example.com/u/alice\nbroken line\nx@localhost,mimi://a/b\nc@example.com,\nd@example.com,not a uri\n06 1234 5678,mimi://chat.example.com/u/it\nü@bücher.example,mimi://chat.example.com/u/ü\n";
    for sel in [0u8, 1] {
        let mut seed = vec![sel];
        seed.extend_from_slice(mixed.as_bytes());
        mappings.push(seed);
    }
    write(&corpus.join("mappings"), &mappings);

    // presigned: the vector assertions as `SII RECORD` lines.
    let mut presigned: Vec<Vec<u8>> = Vec::new();
    let mut all = String::from("# pre-signed by ma.example.net\n\n");
    for a in iter(&records["assertions"]).chain(iter(&records["invalid"])) {
        let line = format!(
            "{} {}\n",
            a["sii"].as_str().expect("sii"),
            a["text"].as_str().expect("text")
        );
        presigned.push(line.clone().into_bytes());
        let _ = write!(all, "{line}");
    }
    presigned.push(all.into_bytes());
    presigned.push(b"mailto:alice@example.com\nnot-an-sii v=mimi1;sig=x\n".to_vec());
    write(&corpus.join("presigned"), &presigned);
}

fn iter(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().expect("array").iter()
}

fn text(v: &Value) -> Vec<u8> {
    v.as_str().expect("string").as_bytes().to_vec()
}

fn query(name: &str, qtype: RecordType, edns: Option<(u16, u8, bool)>) -> Message {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    if let Some((payload, version, dnssec_ok)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        e.set_version(version);
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    m
}

fn write(dir: &Path, seeds: &[Vec<u8>]) {
    std::fs::create_dir_all(dir).expect("corpus directory");
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:03}")), s).expect("seed");
    }
    println!("{}: {} seeds", dir.display(), seeds.len());
}
