//! The DNS that operators already run, end to end: `mimi-publisher serve`
//! as a hidden primary, Knot DNS and NSD as secondaries pulling by AXFR
//! (TSIG) after NOTIFY, unbound as the recursive resolver in front of them,
//! and `mimi-resolver` verifying through unbound. Every server is a real
//! process from Debian's packages, on ephemeral loopback ports, with
//! configurations generated into a temporary directory.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mimi_e2e::secondaries::{self, Key};
use mimi_e2e::{
    bin, eventually, free_port, soa_serial, trust_toml, Authority, Daemon, Trust, Workspace,
    ZoneSpec,
};
use mimi_proto::{Sii, UnixTime};
use mimi_resolver::{NameServers, Outcome, Resolver, ResolverOptions, TrustStore};

const MAPPINGS: &str = "alice@example.com,mimi://chat.example.com/u/alice\nbob@example.com,mimi://chat.example.com/u/bob\n";

fn resolver(trust: &str, server: SocketAddr) -> Resolver {
    let mut o = ResolverOptions::new(TrustStore::from_toml_str(trust, "test trust store").unwrap());
    o.name_servers = NameServers::Explicit(vec![server]);
    o.timeout = Duration::from_secs(2);
    Resolver::new(o).unwrap()
}

async fn verified(trust: &str, server: SocketAddr, who: &str) -> Result<(), String> {
    let sii = Sii::parse(who, None).unwrap();
    let r = resolver(trust, server)
        .lookup(&sii)
        .await
        .map_err(|e| e.to_string())?;
    if r.outcome() == Outcome::Verified {
        Ok(())
    } else {
        Err(format!(
            "{who}: {:?}: {:?} {:?}",
            r.outcome(),
            r.rejected.iter().map(|x| &x.reason).collect::<Vec<_>>(),
            r.errors
        ))
    }
}

/// Waits until every server serves at least `serial` (RFC 1982 order).
async fn propagated(servers: &[(&str, SocketAddr)], serial: u32, limit: Duration) {
    for (name, addr) in servers {
        eventually(
            limit,
            &format!("{name} to serve serial {serial}"),
            || async {
                let s = soa_serial(*addr, "example.com").await?;
                (s.wrapping_sub(serial) < (1 << 31)).then_some(())
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_primary_knot_nsd_secondaries_and_unbound() {
    let ws = Workspace::new();
    let dir = ws.path("servers");
    std::fs::create_dir_all(&dir).unwrap();
    let provider = Authority::new("example.com");
    let old_key = mimi_publisher::input::keys::generate();
    let now = UnixTime::now();
    let old_cert = provider.certify(&old_key, now.minus(86400), 90);
    let tsig = Key::random("transfer-key");
    ws.write_secret("tsig.key", &tsig.bind_format());
    ws.write_key("example.com/signing.pem", &old_key);
    ws.write("example.com/signing.cert", &format!("{old_cert}\n"));
    ws.write("example.com/mappings.csv", MAPPINGS);
    let trust = trust_toml(
        1,
        &[Trust {
            authority: &provider,
            sii_scope: &["mailto:*@example.com"],
            ssi_scope: &["chat.example.com"],
        }],
    );

    // Secondaries first (they learn of the primary by NOTIFY when it starts).
    // Knot is not told of example.com: it learns the zone from the
    // primary's catalog (RFC 9432). NSD 4.6 reads no catalogs, so it lists
    // the zone. Both pull changes by IXFR once they hold the zone.
    let primary: SocketAddr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut knot = secondaries::knot_with_catalog(
        &dir,
        free_port(),
        primary,
        &[],
        Some("catalog.example.net"),
        &tsig,
    );
    let mut nsd = secondaries::nsd(&dir, primary, &["example.com"], &tsig);
    let transfer = format!(
        "allow = [\"127.0.0.1\"]\nnotify = [\"{}\", \"{}\"]\ntsig_key = \"../tsig.key\"",
        knot.addr, nsd.addr
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
    ws.write(
        "catalog.toml",
        &format!(
            "origin = \"catalog.example.net\"\n[transfer]\nallow = [\"127.0.0.1\"]\nnotify = [\"{}\"]\ntsig_key = \"tsig.key\"\n",
            knot.addr
        ),
    );
    let mut cmd = Command::new(bin("mimi-publisher"));
    cmd.arg("serve")
        .arg(&config)
        .args(["--listen", &primary.to_string()])
        .arg("--catalog")
        .arg(ws.path("catalog.toml"))
        .arg("--state-dir")
        .arg(ws.path("state"));
    let mut publisher = Daemon::spawn("mimi-publisher serve", cmd, ws.path("publisher.log"));

    let serial = eventually(Duration::from_secs(20), "the primary to answer", || async {
        soa_serial(primary, "example.com").await
    })
    .await;
    let started = Instant::now();
    let secondaries = [("knot", knot.addr), ("nsd", nsd.addr)];
    propagated(&secondaries, serial, Duration::from_secs(30)).await;
    eprintln!(
        "secondaries loaded serial {serial} {:?} after the primary started",
        started.elapsed()
    );
    knot.daemon.assert_running();
    nsd.daemon.assert_running();

    // An unsigned transfer is refused, a signed one from dig works (SOA, NS,
    // glue A, certificate, two assertions, SOA): the
    // same checks Knot and NSD passed.
    let dig = mimi_e2e::require("dig", "bind9-dnsutils");
    let port = primary.port().to_string();
    let unsigned = Command::new(&dig)
        .args([
            "@127.0.0.1",
            "-p",
            &port,
            "example.com",
            "AXFR",
            "+tries=1",
            "+time=3",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&unsigned.stdout);
    assert!(
        text.contains("Transfer failed"),
        "unsigned AXFR must be refused:\n{text}"
    );
    let key_file = ws.path("tsig.key");
    let signed = Command::new(&dig)
        .args([
            "@127.0.0.1",
            "-p",
            &port,
            "example.com",
            "AXFR",
            "+tries=1",
            "+time=3",
            "-k",
        ])
        .arg(&key_file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&signed.stdout);
    assert!(
        text.contains("XFR size: 7 records") && text.contains("TSIG"),
        "signed AXFR:\n{text}"
    );

    let mut unbound = secondaries::unbound(&dir, &["example.com"], &[knot.addr, nsd.addr], 1);
    let resolver_addr = unbound.addr;
    eventually(
        Duration::from_secs(20),
        "alice to verify through unbound",
        || async {
            verified(&trust, resolver_addr, "alice@example.com")
                .await
                .ok()
        },
    )
    .await;

    // A mapping added on the primary is resolvable through unbound within 10 s.
    let added = Instant::now();
    ws.write(
        "example.com/mappings.csv",
        &format!("{MAPPINGS}carol@example.com,mimi://chat.example.com/u/carol\n"),
    );
    eventually(
        Duration::from_secs(10),
        "carol to verify through unbound → secondary",
        || async {
            verified(&trust, resolver_addr, "carol@example.com")
                .await
                .ok()
        },
    )
    .await;
    eprintln!(
        "new mapping resolvable through unbound after {:?}",
        added.elapsed()
    );

    // Signing-key rotation through the whole chain, with a lookup loop that
    // must never see a failed verification.
    let stop = Arc::new(AtomicBool::new(false));
    let looper = {
        let stop = stop.clone();
        let trust = trust.clone();
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = verified(&trust, resolver_addr, "alice@example.com").await {
                    return Err(format!("lookup {n} failed during rotation: {e}"));
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(n)
        })
    };
    // The serial before a change is read before the change is made: read
    // after it, it may already be the new one (the primary reloads as soon
    // as the file is written, possibly before the writer returns, e.g.
    // while it fsyncs the key file), and the step would then wait for a
    // change that has already happened.
    let serial_now = || async { soa_serial(primary, origin_str()).await.unwrap() };
    let step = |what: &'static str, before: u32| {
        async move {
            let s = eventually(Duration::from_secs(10), what, || async {
                soa_serial(primary, origin_str())
                    .await
                    .filter(|s| *s != before)
            })
            .await;
            propagated(&secondaries, s, Duration::from_secs(20)).await;
            // Let unbound's cache (max TTL 1 s) forget the previous state.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    };
    let new_key = mimi_publisher::input::keys::generate();
    let new_cert = provider.certify(&new_key, now.minus(60), 90);
    let before = serial_now().await;
    ws.write(
        "example.com/signing.cert",
        &format!("{old_cert}\n{new_cert}\n"),
    );
    step("the new certificate to be published", before).await;
    let before = serial_now().await;
    ws.write_key("example.com/signing.pem", &new_key);
    step("the assertions to be re-signed with the new key", before).await;
    let before = serial_now().await;
    ws.write("example.com/signing.cert", &format!("{new_cert}\n"));
    step("the old certificate to be removed", before).await;
    stop.store(true, Ordering::Relaxed);
    let n = looper.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    assert!(n >= 10, "only {n} lookups ran during the rotation");
    eprintln!("{n} lookups through unbound during the rotation, all verified");

    for d in [&mut knot.daemon, &mut nsd.daemon, &mut unbound.daemon] {
        d.assert_running();
    }
    // The secondaries were told by NOTIFY and pulled with TSIG-signed
    // transfers (their own logs say so).
    let knot_log = knot.daemon.log();
    assert!(
        knot_log.contains("notify, incoming"),
        "knot never got a NOTIFY:\n{knot_log}"
    );
    // The primary refuses unsigned transfers, so a finished transfer was a
    // TSIG-signed one. Knot learnt example.com from the catalog, fetched it
    // whole once and then followed every change (a mapping, a certificate,
    // a re-signing, a removal) by IXFR.
    assert!(
        knot_log.contains("[catalog.example.net.] AXFR, incoming")
            && knot_log.contains("[example.com.] AXFR, incoming"),
        "knot never transferred the catalog and its member:\n{knot_log}"
    );
    assert!(
        knot_log.contains("[example.com.] IXFR, incoming") && knot_log.contains("finished"),
        "knot never followed a change by IXFR:\n{knot_log}"
    );
    let publisher_log = publisher.log();
    let incremental = publisher_log
        .matches("zone transferred incrementally")
        .count();
    // Each of the three rotation steps waited until both secondaries served
    // its serial, starting from the previous step's: at least one transfer
    // per step and secondary, and each must have been incremental (the
    // carol change may share one with the first step).
    assert!(
        incremental >= 6,
        "{incremental} incremental transfers for 3 steps to 2 secondaries:\n{publisher_log}"
    );
    assert!(
        !publisher_log.contains("zone transferred whole (fallback)"),
        "a secondary fell back to a whole transfer:\n{publisher_log}"
    );
    let nsd_log = nsd.daemon.log();
    assert!(
        nsd_log.contains("notify for example.com"),
        "nsd never got a NOTIFY:\n{nsd_log}"
    );
    assert!(
        nsd_log.contains("TSIG verified with key transfer-key"),
        "nsd did not transfer with TSIG:\n{nsd_log}"
    );
    let status = publisher.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "mimi-publisher did not stop cleanly:\n{}",
        publisher.log()
    );
}

fn origin_str() -> &'static str {
    "example.com"
}

/// Transfer access control on its own: the allow list is by address, a zone
/// without `[transfer]` refuses everyone, UDP transfers are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_only_to_allowed_addresses() {
    let ws = Workspace::new();
    let provider = Authority::new("example.com");
    ws.write_key("a/signing.pem", &provider.root);
    ws.write("a/mappings.csv", MAPPINGS);
    let spec = ZoneSpec {
        origin: "example.com",
        role: "home",
        authority: Some("example.com"),
        key: Some("signing.pem"),
        mappings: Some("mappings.csv"),
        transfer: Some("allow = [\"127.0.0.2\"]"),
        ..Default::default()
    };
    let with_acl = ws.zone("a/zone.toml", &spec);
    ws.write_key("b/signing.pem", &provider.root);
    ws.write("b/mappings.csv", MAPPINGS);
    let without = ws.zone(
        "b/zone.toml",
        &ZoneSpec {
            origin: "example.org",
            role: "distribution",
            transfer: None,
            ..spec
        },
    );
    let opts = mimi_publisher::serve::ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..mimi_publisher::serve::ServeOptions::new(vec![with_acl, without])
    };
    let server = mimi_publisher::serve::start(opts).await.unwrap();
    let port = server.local_addr().port().to_string();
    let dig = mimi_e2e::require("dig", "bind9-dnsutils");
    let axfr = |zone: &str, source: &str, extra: &[&str]| {
        let out = Command::new(&dig)
            .args([
                "@127.0.0.1",
                "-p",
                &port,
                "-b",
                source,
                zone,
                "AXFR",
                "+tries=1",
                "+time=3",
            ])
            .args(extra)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let allowed = axfr("example.com", "127.0.0.2", &[]);
    assert!(allowed.contains("XFR size: 6 records"), "{allowed}");
    let other = axfr("example.com", "127.0.0.1", &[]);
    assert!(other.contains("Transfer failed"), "{other}");
    let no_acl = axfr("example.org", "127.0.0.2", &[]);
    assert!(no_acl.contains("Transfer failed"), "{no_acl}");
    // dig always transfers over TCP; ask over UDP by hand.
    let udp = {
        use hickory_proto::op::{Message, MessageType, OpCode, Query};
        use hickory_proto::rr::{Name, RecordType};
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("example.com.").unwrap(),
            RecordType::AXFR,
        ));
        let sock = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
        sock.send_to(&m.to_vec().unwrap(), server.local_addr())
            .await
            .unwrap();
        let mut buf = vec![0u8; 65535];
        let n = tokio::time::timeout(Duration::from_secs(3), sock.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        Message::from_vec(&buf[..n]).unwrap()
    };
    assert_eq!(
        udp.metadata.response_code,
        hickory_proto::op::ResponseCode::Refused
    );
    assert!(udp.answers.is_empty());
    server.shutdown().await.unwrap();
}
