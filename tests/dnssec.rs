//! DNSSEC as an additional layer, in the standard operator setup:
//! `mimi-publisher serve` as an unsigned hidden primary → Knot DNS as a
//! signing secondary (automatic keys, NSEC3) → unbound → `mimi-resolver`
//! with `dnssec = "require"` and the test zone's DNSKEYs (exported with
//! kdig) as its trust anchor — or only the DS of its KSK.
//!
//! Also the attacks DNSSEC is there for, by a small proxy on the path that
//! changes a TXT record, strips signatures, or answers NXDOMAIN in place of
//! a mapping; and the signer bypassed (unsigned answers from the primary).

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY};
use hickory_proto::dnssec::{PublicKey, PublicKeyBuf};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use mimi_e2e::pki::TestCa;
use mimi_e2e::secondaries::{self, Key};
use mimi_e2e::{
    bin, eventually, free_port, soa_serial, trust_toml, Authority, Daemon, Trust, Workspace,
    ZoneSpec,
};
use mimi_proto::{Sii, UnixTime};
use mimi_resolver::transport::CaBundle;
use mimi_resolver::{
    DnssecMode, LookupError, NameServers, Outcome, Resolver, ResolverOptions, ServerSpec,
    TlsOptions, TrustAnchor, TrustRoots, TrustStore,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAPPINGS: &str = "alice@example.com,mimi://chat.example.com/u/alice\nbob@example.com,mimi://chat.example.com/u/bob\n";

/// What a lookup came to, in one comparable line.
async fn outcome(
    trust: &TrustStore,
    mode: DnssecMode,
    server: SocketAddr,
    who: &str,
) -> Result<Outcome, String> {
    let mut o = ResolverOptions::new(trust.clone());
    o.dnssec.mode = mode;
    o.name_servers = NameServers::Explicit(vec![server]);
    o.timeout = Duration::from_secs(2);
    judge(&Resolver::new(o).unwrap(), who).await
}

/// What a lookup of `who` by `resolver` came to.
async fn judge(resolver: &Resolver, who: &str) -> Result<Outcome, String> {
    let sii = Sii::parse(who, None).unwrap();
    match resolver.lookup(&sii).await {
        Ok(r) if r.errors.is_empty() => Ok(r.outcome()),
        Ok(r) => Err(format!(
            "{:?} with errors: {}",
            r.outcome(),
            r.errors.join("; ")
        )),
        Err(LookupError::Dns(e)) => Err(e.join("; ")),
        Err(e) => Err(e.to_string()),
    }
}

/// How the proxy treats answers passing through it.
const PASS: u8 = 0;
/// Changes one byte of every TXT record in the answer section.
const FLIP_TXT: u8 = 1;
/// Removes every RRSIG from every section.
const STRIP_RRSIG: u8 = 2;
/// Answers TXT queries for `alice`'s discovery name NXDOMAIN, without
/// answer or authority records (a mapping suppressed on the path).
const SUPPRESS: u8 = 3;

/// Changes one byte of the public key of every ZSK (flags 256) in the
/// answer section: the DNSKEY set no longer matches its RRSIG.
const FLIP_ZSK: u8 = 4;

fn tamper(mode: u8, packet: &[u8], victim: &str) -> Vec<u8> {
    let Ok(mut m) = Message::from_vec(packet) else {
        return packet.to_vec();
    };
    match mode {
        FLIP_TXT => {
            for r in &mut m.answers {
                if let RData::TXT(txt) = &mut r.data {
                    let mut strings: Vec<Box<[u8]>> = txt.txt_data.to_vec();
                    if let Some(b) = strings.first_mut().and_then(|s| s.last_mut()) {
                        *b = if *b == b'A' { b'B' } else { b'A' };
                    }
                    txt.txt_data = strings.into_boxed_slice();
                }
            }
        }
        STRIP_RRSIG => {
            for section in [&mut m.answers, &mut m.authorities, &mut m.additionals] {
                section.retain(|r| r.record_type() != RecordType::RRSIG);
            }
        }
        FLIP_ZSK => {
            for r in &mut m.answers {
                if let RData::DNSSEC(DNSSECRData::DNSKEY(k)) = &r.data {
                    if k.flags() == 256 {
                        let mut bytes = k.public_key().public_bytes().to_vec();
                        bytes[0] ^= 1;
                        let key = PublicKeyBuf::new(bytes, k.public_key().algorithm());
                        r.data = RData::DNSSEC(DNSSECRData::DNSKEY(DNSKEY::with_flags(256, key)));
                    }
                }
            }
        }
        SUPPRESS => {
            let hit = m.queries.first().is_some_and(|q| {
                q.query_type() == RecordType::TXT && q.name().to_ascii().starts_with(victim)
            });
            if hit {
                m.answers.clear();
                m.authorities.clear();
                m.additionals.clear();
                m.metadata.response_code = ResponseCode::NXDomain;
            }
        }
        _ => return packet.to_vec(),
    }
    m.to_vec().unwrap_or_else(|_| packet.to_vec())
}

/// A UDP+TCP proxy on 127.0.0.1 in front of `upstream` that rewrites
/// answers according to the shared mode.
async fn proxy(upstream: SocketAddr, mode: Arc<AtomicU8>, victim: String) -> SocketAddr {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let udp = Arc::new(tokio::net::UdpSocket::bind(addr).await.unwrap());
    let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
    {
        let (mode, victim) = (mode.clone(), victim.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            loop {
                let Ok((n, client)) = udp.recv_from(&mut buf).await else {
                    return;
                };
                let query = buf[..n].to_vec();
                let (udp, mode, victim) = (udp.clone(), mode.clone(), victim.clone());
                tokio::spawn(async move {
                    let up = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                    up.send_to(&query, upstream).await.unwrap();
                    let mut b = vec![0u8; 65535];
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(3), up.recv(&mut b)).await
                    {
                        let out = tamper(mode.load(Ordering::SeqCst), &b[..n], &victim);
                        let _ = udp.send_to(&out, client).await;
                    }
                });
            }
        });
    }
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = tcp.accept().await else {
                return;
            };
            let (mode, victim) = (mode.clone(), victim.clone());
            tokio::spawn(async move {
                let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                loop {
                    let Ok(len) = client.read_u16().await else {
                        return;
                    };
                    let mut q = vec![0u8; usize::from(len)];
                    if client.read_exact(&mut q).await.is_err()
                        || up.write_u16(len).await.is_err()
                        || up.write_all(&q).await.is_err()
                    {
                        return;
                    }
                    let Ok(len) = up.read_u16().await else {
                        return;
                    };
                    let mut a = vec![0u8; usize::from(len)];
                    if up.read_exact(&mut a).await.is_err() {
                        return;
                    }
                    let out = tamper(mode.load(Ordering::SeqCst), &a, &victim);
                    let Ok(n) = u16::try_from(out.len()) else {
                        return;
                    };
                    if client.write_u16(n).await.is_err() || client.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// The zone's DNSKEY records as kdig prints them from `server`, once the
/// signer publishes them.
fn dnskeys(server: SocketAddr) -> Option<String> {
    let kdig = mimi_e2e::require("kdig", "knot-dnsutils");
    let out = Command::new(kdig)
        .args([
            &format!("@{}", server.ip()),
            "-p",
            &server.port().to_string(),
            "example.com.",
            "DNSKEY",
            "+noall",
            "+answer",
            "+retry=0",
            "+time=2",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (text.matches("DNSKEY").count() >= 2).then_some(text)
}

/// unbound with its own DNS-over-TLS listener (certificate for 127.0.0.1
/// from a CA written to `dir/dot-ca.pem`, generated here) in front of
/// `knot`.
fn unbound_dot(dir: &std::path::Path, knot: SocketAddr) -> secondaries::UnboundTls {
    let ca = TestCa::new("mimi dnssec test CA");
    let (cert_pem, key_pem) = ca.issue(&["127.0.0.1"], 1);
    let d = dir.join("unbound-dot");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(dir.join("dot-ca.pem"), ca.pem()).unwrap();
    std::fs::write(d.join("cert.pem"), cert_pem).unwrap();
    let key_path = d.join("key.pem");
    std::fs::write(&key_path, key_pem).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    secondaries::unbound_tls(&d, "example.com", knot, &d.join("cert.pem"), &key_path)
}

/// The SHA-256 DS of the KSK(s) among the DNSKEY records in `file`, as
/// BIND's `dnssec-dsfromkey` computes it (an implementation independent of
/// ours).
fn ds_of(file: &std::path::Path) -> String {
    let tool = mimi_e2e::require("dnssec-dsfromkey", "bind9-utils");
    let out = Command::new(tool)
        .args(["-2", "-f"])
        .arg(file)
        .arg("example.com.")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains(" DS "),
        "dnssec-dsfromkey: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_by_knot_verified_under_require_and_attacks_fail() {
    let ws = Workspace::new();
    let dir = ws.path("servers");
    std::fs::create_dir_all(&dir).unwrap();
    let provider = Authority::new("example.com");
    let key = mimi_publisher::input::keys::generate();
    let now = UnixTime::now();
    let cert = provider.certify(&key, now.minus(86400), 90);
    let tsig = Key::random("transfer-key");
    ws.write_secret("tsig.key", &tsig.bind_format());
    ws.write_key("example.com/signing.pem", &key);
    ws.write("example.com/signing.cert", &format!("{cert}\n"));
    ws.write("example.com/mappings.csv", MAPPINGS);

    let primary: SocketAddr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut knot = secondaries::knot_signer(&dir, primary, &["example.com"], &tsig);
    let transfer = format!(
        "allow = [\"127.0.0.1\"]\nnotify = [\"{}\"]\ntsig_key = \"../tsig.key\"",
        knot.addr
    );
    let config = ws.zone(
        "example.com/zone.toml",
        &ZoneSpec {
            origin: "example.com",
            role: "home",
            authority: Some("example.com"),
            key: Some("signing.pem"),
            certificates: &["signing.cert"],
            mappings: Some("mappings.csv"),
            transfer: Some(&transfer),
            ..Default::default()
        },
    );
    let mut cmd = Command::new(bin("mimi-publisher"));
    cmd.arg("serve")
        .arg(&config)
        .args(["--listen", &primary.to_string()])
        .arg("--state-dir")
        .arg(ws.path("state"));
    let mut publisher = Daemon::spawn("mimi-publisher serve", cmd, ws.path("publisher.log"));
    eventually(Duration::from_secs(20), "the primary to answer", || async {
        soa_serial(primary, "example.com").await
    })
    .await;
    let started = Instant::now();
    // Knot has transferred and signed the zone when it publishes its keys.
    let knot_addr = knot.addr;
    let keys = loop {
        if soa_serial(knot_addr, "example.com").await.is_some() {
            if let Some(k) = dnskeys(knot_addr) {
                break k;
            }
        }
        knot.daemon.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "knot did not serve the signed zone within 30 s:\n{}",
            knot.daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "knot signed the zone {:?} after the primary answered; anchor:\n{keys}",
        started.elapsed()
    );
    let anchor_file = ws.write("anchors.txt", &keys);

    // The trust store names the anchor file relative to itself.
    let mut toml = trust_toml(
        1,
        &[Trust {
            authority: &provider,
            sii_scope: &["mailto:*@example.com"],
            ssi_scope: &["chat.example.com"],
        }],
    );
    toml = toml.replacen(
        "[policy]\n",
        "[policy]\ndnssec = \"require\"\ntrust_anchor = \"anchors.txt\"\n",
        1,
    );
    let store_path = ws.write("trust.toml", &toml);
    let trust = TrustStore::load(&store_path).unwrap();
    assert_eq!(trust.dnssec().mode, DnssecMode::Require);
    assert!(
        matches!(&trust.dnssec().anchor, TrustAnchor::Keys { file, .. } if *file == anchor_file)
    );

    use DnssecMode::{Off, Prefer, Require};
    let (alice, dave) = ("alice@example.com", "dave@example.com");
    // Through the signed chain: verified under require; a missing SII is
    // "not found" with its NXDOMAIN proven by NSEC3 (no error).
    assert_eq!(
        outcome(&trust, Require, knot.addr, alice).await,
        Ok(Outcome::Verified)
    );
    assert_eq!(
        outcome(&trust, Require, knot.addr, dave).await,
        Ok(Outcome::NotFound)
    );
    assert_eq!(
        outcome(&trust, Prefer, knot.addr, alice).await,
        Ok(Outcome::Verified)
    );

    // What validation costs a cold lookup (a fresh resolver each time:
    // the DNSKEY set is fetched and checked once per resolver).
    for m in [Off, Require] {
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(
                outcome(&trust, m, knot.addr, alice).await,
                Ok(Outcome::Verified)
            );
        }
        eprintln!(
            "cold lookup through knot, dnssec {m}: {:?} each",
            t0.elapsed() / 10
        );
    }

    // And through unbound as the recursive resolver in front of Knot.
    let mut unbound = secondaries::unbound(&dir, &["example.com"], &[knot.addr], 1);
    let via_unbound = unbound.addr;
    eventually(
        Duration::from_secs(20),
        "alice to verify through unbound",
        || async {
            (outcome(&trust, Require, via_unbound, alice).await == Ok(Outcome::Verified))
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        outcome(&trust, Require, via_unbound, dave).await,
        Ok(Outcome::NotFound)
    );

    // A DS as the only anchor: the SHA-256 DS of Knot's KSK as BIND's
    // dnssec-dsfromkey computes it from the published DNSKEYs. The resolver
    // fetches the DNSKEY set itself (directly and through unbound), checks
    // it against the DS and its RRSIG, and validates from it.
    let ds = ds_of(&anchor_file);
    eprintln!("DS anchor:\n{ds}");
    let with_anchor = |name: &str, text: &str| {
        ws.write(name, text);
        let store = ws.write(
            &format!("{name}.trust.toml"),
            &toml.replacen("\"anchors.txt\"", &format!("\"{name}\""), 1),
        );
        TrustStore::load(&store).unwrap()
    };
    let ds_trust = with_anchor("ds-anchors.txt", &ds);
    assert_eq!(ds_trust.dnssec().anchor.ds().len(), 1, "{ds}");
    for server in [knot.addr, via_unbound] {
        assert_eq!(
            outcome(&ds_trust, Require, server, alice).await,
            Ok(Outcome::Verified)
        );
        assert_eq!(
            outcome(&ds_trust, Require, server, dave).await,
            Ok(Outcome::NotFound)
        );
    }
    // One hex digit of the digest altered: no key matches, and every
    // lookup fails with that reason, under require and prefer alike.
    let fields: Vec<&str> = ds.split_whitespace().collect();
    let tag = fields[fields.iter().position(|f| *f == "DS").unwrap() + 1];
    let last = ds.trim_end().chars().last().unwrap();
    let flipped = if last == '0' { '1' } else { '0' };
    let altered = format!("{}{flipped}\n", &ds.trim_end()[..ds.trim_end().len() - 1]);
    let bad_trust = with_anchor("bad-ds-anchors.txt", &altered);
    for m in [Require, Prefer] {
        let e = outcome(&bad_trust, m, knot.addr, alice).await.unwrap_err();
        assert!(
            e.contains(&format!(
                "DNSSEC ({m}): trust anchor example.com. DS {tag}: no DNSKEY matches"
            )),
            "{e}"
        );
    }
    // The DS anchor established over DNS over TLS: unbound's own DoT
    // listener in front of Knot, the resolver asking only it.
    let dot = unbound_dot(&dir, knot.addr);
    let mut o = ResolverOptions::new(ds_trust.clone());
    o.name_servers = NameServers::Servers {
        servers: vec![ServerSpec::parse(&format!("tls://{}", dot.tls)).unwrap()],
        tls: TlsOptions {
            name: None,
            roots: TrustRoots::Private(CaBundle::load(dir.join("dot-ca.pem")).unwrap()),
        },
    };
    o.timeout = Duration::from_secs(2);
    let over_tls = o;
    eventually(
        Duration::from_secs(20),
        "alice to verify from the DS over DoT",
        || async {
            let r = Resolver::new(over_tls.clone()).unwrap();
            (judge(&r, alice).await == Ok(Outcome::Verified)).then_some(())
        },
    )
    .await;
    let mut wrong = over_tls.clone();
    wrong.dnssec.anchor = bad_trust.dnssec().anchor.clone();
    let e = judge(&Resolver::new(wrong).unwrap(), alice)
        .await
        .unwrap_err();
    assert!(
        e.contains(&format!(
            "DNSSEC (require): trust anchor example.com. DS {tag}: no DNSKEY matches"
        )),
        "{e}"
    );

    // The signer bypassed: the primary's unsigned answers fail under
    // require, with the reason; without DNSSEC they verify as before.
    let bypass = outcome(&trust, Require, primary, alice).await;
    eprintln!("signer bypassed, require: {bypass:?}");
    let reason = bypass.unwrap_err();
    assert!(reason.contains("DNSSEC (require)"), "{reason}");
    assert_eq!(
        outcome(&trust, Off, primary, alice).await,
        Ok(Outcome::Verified)
    );
    let bypass_nx = outcome(&trust, Require, primary, dave).await;
    eprintln!("signer bypassed, require, missing SII: {bypass_nx:?}");
    assert!(bypass_nx.unwrap_err().contains("DNSSEC (require)"));

    // The CLI: the trust store's policy, and the flags that override it.
    let cli = |server: SocketAddr, extra: &[&str]| {
        let out = Command::new(bin("mimi-resolve"))
            .args(["lookup", alice, "--trust"])
            .arg(&store_path)
            .args(["--server", &server.to_string(), "--timeout", "2s"])
            .args(extra)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = cli(knot.addr, &[]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = cli(primary, &[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("DNSSEC (require): bogus"), "{text}");
    let (code, text) = cli(primary, &["--dnssec", "off"]);
    assert_eq!(code, Some(0), "{text}");
    let plain = ws.write(
        "plain-trust.toml",
        &trust_toml(
            1,
            &[Trust {
                authority: &provider,
                sii_scope: &["mailto:*@example.com"],
                ssi_scope: &["chat.example.com"],
            }],
        ),
    );
    let flags = |server: SocketAddr| {
        let out = Command::new(bin("mimi-resolve"))
            .args(["lookup", alice, "--trust"])
            .arg(&plain)
            .args([
                "--server",
                &server.to_string(),
                "--dnssec",
                "require",
                "--trust-anchor",
            ])
            .arg(&anchor_file)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(flags(knot.addr).0, Some(0));
    let (code, text) = flags(primary);
    assert_eq!(code, Some(3), "{text}");
    let (code, text) = cli(knot.addr, &["--dnssec", "always"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("not one of"), "{text}");

    // On the path: a proxy in front of Knot.
    let label = Sii::parse(alice, None).unwrap().label().to_string();
    let mode = Arc::new(AtomicU8::new(PASS));
    let path = proxy(knot.addr, mode.clone(), label).await;
    assert_eq!(
        outcome(&trust, Require, path, alice).await,
        Ok(Outcome::Verified)
    );

    mode.store(FLIP_TXT, Ordering::SeqCst);
    for m in [Require, Prefer] {
        let r = outcome(&trust, m, path, alice).await;
        eprintln!("TXT changed on the path, {m}: {r:?}");
        let reason = r.unwrap_err();
        assert!(reason.contains(&format!("DNSSEC ({m}): bogus")), "{reason}");
    }

    mode.store(STRIP_RRSIG, Ordering::SeqCst);
    for m in [Require, Prefer] {
        let t0 = Instant::now();
        let r = outcome(&trust, m, path, alice).await;
        eprintln!(
            "RRSIGs stripped on the path, {m}: {r:?} after {:?}",
            t0.elapsed()
        );
        let reason = r.unwrap_err();
        assert!(reason.contains(&format!("DNSSEC ({m})")), "{reason}");
    }

    // A mapping suppressed by a forged NXDOMAIN: undetectable without
    // DNSSEC, a failed source with DNSSEC.
    mode.store(SUPPRESS, Ordering::SeqCst);
    assert_eq!(
        outcome(&trust, Off, path, alice).await,
        Ok(Outcome::NotFound)
    );
    for m in [Require, Prefer] {
        let r = outcome(&trust, m, path, alice).await;
        eprintln!("NXDOMAIN forged on the path, {m}: {r:?}");
        let reason = r.unwrap_err();
        assert!(reason.contains(&format!("DNSSEC ({m})")), "{reason}");
    }
    mode.store(PASS, Ordering::SeqCst);

    // The DS anchor's DNSKEY fetch attacked on the path: one resolver,
    // which fails every lookup with the reason while the attack lasts and
    // establishes the anchor once it stops (a failure is not kept).
    let mut o = ResolverOptions::new(ds_trust.clone());
    o.name_servers = NameServers::Explicit(vec![path]);
    o.timeout = Duration::from_secs(2);
    let ds_resolver = Resolver::new(o).unwrap();
    let anchor = format!("DNSSEC (require): trust anchor example.com. DS {tag}: ");
    for (attack, why) in [
        (
            STRIP_RRSIG,
            "the DNSKEY set is not signed by the matching key (no RRSIG by it in the answer)",
        ),
        (
            FLIP_ZSK,
            "the DNSKEY set's RRSIG by the matching key does not verify",
        ),
    ] {
        mode.store(attack, Ordering::SeqCst);
        for who in [alice, dave] {
            let e = judge(&ds_resolver, who).await.unwrap_err();
            eprintln!("DS anchor, DNSKEY fetch attacked ({attack}): {e}");
            assert!(e.contains(&format!("{anchor}{why}")), "{e}");
        }
    }
    mode.store(PASS, Ordering::SeqCst);
    assert_eq!(judge(&ds_resolver, alice).await, Ok(Outcome::Verified));
    assert_eq!(judge(&ds_resolver, dave).await, Ok(Outcome::NotFound));

    // The CLI reads DS lines from --trust-anchor the same way.
    let out = Command::new(bin("mimi-resolve"))
        .args(["lookup", alice, "--trust"])
        .arg(&plain)
        .args([
            "--server",
            &knot.addr.to_string(),
            "--dnssec",
            "require",
            "--trust-anchor",
        ])
        .arg(ws.path("ds-anchors.txt"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A mapping added at the primary: NOTIFY → Knot transfers and re-signs
    // → verified under require.
    let before = soa_serial(knot.addr, "example.com").await.unwrap();
    let added = Instant::now();
    ws.write(
        "example.com/mappings.csv",
        &format!("{MAPPINGS}carol@example.com,mimi://chat.example.com/u/carol\n"),
    );
    eventually(
        Duration::from_secs(20),
        "knot to re-sign the change",
        || async {
            soa_serial(knot.addr, "example.com")
                .await
                .filter(|s| *s != before)
        },
    )
    .await;
    assert_eq!(
        outcome(&trust, Require, knot.addr, "carol@example.com").await,
        Ok(Outcome::Verified)
    );
    eprintln!(
        "new mapping verified under require after {:?}",
        added.elapsed()
    );

    knot.daemon.assert_running();
    unbound.daemon.assert_running();
    let log = knot.daemon.log();
    assert!(
        log.contains("DNSSEC, signing zone") || log.contains("DNSSEC"),
        "{log}"
    );
    assert!(
        publisher.stop().is_some_and(|s| s.success()),
        "{}",
        publisher.log()
    );
}

/// A TXT record's presentation form: the text in quoted strings of at most
/// 255 octets (certificate records are longer than one string holds).
fn txt_rdata(text: &str) -> String {
    text.as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The alternative to a signing secondary: the signed parent `example.com`
/// (Knot, automatic keys) delegates an unsigned `_mimi.example.com` served
/// by `mimi-publisher serve`; the certificates stay in the signed parent.
/// The delegation is proven insecure by the parent's NSEC3 (no DS): under
/// `require` the mappings fail as "not signed (Insecure)", with the
/// negative answers "not proven"; under `prefer` and `off` they verify,
/// and `prefer` still demands that the certificates be Secure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_mimi_child_under_a_signed_parent() {
    let ws = Workspace::new();
    let dir = ws.path("servers");
    std::fs::create_dir_all(&dir).unwrap();
    let provider = Authority::new("example.com");
    let key = mimi_publisher::input::keys::generate();
    let cert = provider.certify(&key, UnixTime::now().minus(86400), 90);
    let tsig = Key::random("transfer-key");
    ws.write_secret("tsig.key", &tsig.bind_format());
    ws.write_key("child/signing.pem", &key);
    ws.write("child/mappings.csv", MAPPINGS);
    let parent = ws.write(
        "parent.zone",
        &format!(
            "$ORIGIN example.com.\n$TTL 1\n@ SOA ns1 hostmaster 1 60 60 3600 1\n@ NS ns1\nns1 A 127.0.0.1\n\
             _mimi NS ns1\n_mimi-ma TXT {}\n",
            txt_rdata(&cert)
        ),
    );
    let primary: SocketAddr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut knot = secondaries::knot_signed_parent(
        &dir,
        "example.com",
        &parent,
        primary,
        "_mimi.example.com",
        &tsig,
    );
    let config = ws.write(
        "child/zone.toml",
        &format!(
            "origin = \"_mimi.example.com\"\nrole = \"home\"\nttl = 1\nns = [\"ns1.example.com\"]\nmappings = \"mappings.csv\"\n\
             [soa]\nmname = \"ns1.example.com\"\nrname = \"hostmaster.example.com\"\nminimum = 1\nttl = 1\n\
             [authority]\nname = \"example.com\"\nkey = \"signing.pem\"\n\
             [transfer]\nallow = [\"127.0.0.1\"]\nnotify = [\"{}\"]\ntsig_key = \"../tsig.key\"\n",
            knot.addr
        ),
    );
    let mut cmd = Command::new(bin("mimi-publisher"));
    cmd.arg("serve")
        .arg(&config)
        .args(["--listen", &primary.to_string()]);
    let mut publisher = Daemon::spawn("mimi-publisher serve", cmd, ws.path("publisher.log"));
    let started = Instant::now();
    let keys = loop {
        if soa_serial(knot.addr, "_mimi.example.com").await.is_some() {
            if let Some(k) = dnskeys(knot.addr) {
                break k;
            }
        }
        knot.daemon.assert_running();
        publisher.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "knot did not serve both zones within 30 s:\n{}\n{}",
            knot.daemon.log(),
            publisher.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ws.write("anchors.txt", &keys);
    let toml = trust_toml(
        1,
        &[Trust {
            authority: &provider,
            sii_scope: &["mailto:*@example.com"],
            ssi_scope: &["chat.example.com"],
        }],
    )
    .replacen(
        "[policy]\n",
        "[policy]\ndnssec = \"require\"\ntrust_anchor = \"anchors.txt\"\n",
        1,
    );
    let trust = TrustStore::load(ws.write("trust.toml", &toml)).unwrap();

    use DnssecMode::{Off, Prefer, Require};
    let (alice, dave) = ("alice@example.com", "dave@example.com");
    assert_eq!(
        outcome(&trust, Off, knot.addr, alice).await,
        Ok(Outcome::Verified)
    );
    assert_eq!(
        outcome(&trust, Prefer, knot.addr, alice).await,
        Ok(Outcome::Verified)
    );
    assert_eq!(
        outcome(&trust, Prefer, knot.addr, dave).await,
        Ok(Outcome::NotFound)
    );
    let r = outcome(&trust, Require, knot.addr, alice).await;
    eprintln!("unsigned child, require: {r:?}");
    let reason = r.unwrap_err();
    assert!(
        reason.contains("DNSSEC (require): not signed (Insecure)"),
        "{reason}"
    );
    let r = outcome(&trust, Require, knot.addr, dave).await;
    eprintln!("unsigned child, require, missing SII: {r:?}");
    let reason = r.unwrap_err();
    assert!(
        reason.contains("DNSSEC (require): negative answer not proven (not signed (Insecure))"),
        "{reason}"
    );
    assert!(
        publisher.stop().is_some_and(|s| s.success()),
        "{}",
        publisher.log()
    );
}
