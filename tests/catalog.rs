//! Catalog zones (RFC 9432) end to end: `mimi-publisher serve --catalog`
//! as the hidden primary, Knot DNS (`catalog-role: interpret`) and BIND
//! (`catalog-zones`, `allow-new-zones`) as catalog consumers whose
//! configurations name the catalog only. Each secondary provisions every
//! member zone by itself, serves it (checked with dig) and a record of it
//! verifies through `mimi-resolver` asking the secondary. A zone added to
//! the publisher appears at both secondaries after the catalog's NOTIFY,
//! and a zone removed disappears, without touching their configuration:
//! by restarting `serve` with another set of configurations (the first
//! test), and while serving, as a `[domains]` configuration gains and
//! loses a customer domain (the second).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mimi_e2e::secondaries::{self, Key};
use mimi_e2e::{
    bin, eventually, free_port, require, soa_serial, trust_toml, Authority, Daemon, Trust,
    Workspace, ZoneSpec,
};
use mimi_proto::{Sii, UnixTime};
use mimi_resolver::{NameServers, Outcome, ResolverOptions, TrustStore};

const CATALOG: &str = "catalog.mimi.test";

/// Knot as a consumer of the catalog at `primary`: members get the
/// `member` template (same primary, same key).
fn knot(dir: &Path, port: u16, primary: SocketAddr, key: &Key) -> (Daemon, SocketAddr) {
    let s = secondaries::knot_with_catalog(dir, port, primary, &[], Some(CATALOG), key);
    (s.daemon, s.addr)
}

/// BIND as a consumer of the catalog at `primary`.
fn bind(dir: &Path, port: u16, primary: SocketAddr, key: &Key) -> (Daemon, SocketAddr) {
    let named = require("named", "bind9");
    let d = dir.join("bind");
    std::fs::create_dir_all(&d).unwrap();
    let conf = format!(
        r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-new-zones yes;
    // Retry soon after a failed refresh (the primary may start after us).
    min-retry-time 1;
    max-retry-time 2;
    catalog-zones {{
        zone "{CATALOG}" default-primaries {{ {pip} port {pport} key "{key}"; }}
            in-memory yes min-update-interval 1;
    }};
}};
controls {{ }};
key "{key}" {{
    algorithm hmac-sha256;
    secret "{secret}";
}};
zone "{CATALOG}" {{
    type secondary;
    file "{d}/catalog.db";
    primaries {{ {pip} port {pport} key "{key}"; }};
    allow-notify {{ {pip}; }};
}};
"#,
        d = d.display(),
        key = key.name,
        secret = key.secret,
        pip = primary.ip(),
        pport = primary.port(),
    );
    let path = d.join("named.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new(named);
    cmd.arg("-g").arg("-c").arg(&path);
    (
        Daemon::spawn("named", cmd, d.join("named.log")),
        SocketAddr::from(([127, 0, 0, 1], port)),
    )
}

/// One customer domain's zone: signing key, certificate, one mapping.
fn customer(ws: &Workspace, domain: &str, transfer: &str) -> (PathBuf, Authority) {
    let authority = Authority::new(domain);
    let key = mimi_publisher::input::keys::generate();
    let cert = authority.certify(&key, UnixTime::now().minus(86400), 90);
    ws.write_key(&format!("{domain}/signing.pem"), &key);
    ws.write(&format!("{domain}/signing.cert"), &format!("{cert}\n"));
    ws.write(
        &format!("{domain}/mappings.csv"),
        &format!("alice@{domain},mimi://chat.{domain}/u/alice\n"),
    );
    let config = ws.zone(
        &format!("{domain}/zone.toml"),
        &ZoneSpec {
            origin: domain,
            role: "home",
            authority: Some(domain),
            key: Some("signing.pem"),
            certificates: &["signing.cert"],
            mappings: Some("mappings.csv"),
            transfer: Some(transfer),
            ..Default::default()
        },
    );
    (config, authority)
}

/// alice@`domain` verifies through `mimi-resolver` asking `server`, her
/// SSI at the domain's own chat server (each customer its own authority).
async fn verified(authority: &Authority, domain: &str, server: SocketAddr) -> Result<(), String> {
    verified_at(authority, domain, &format!("chat.{domain}"), server).await
}

/// alice@`domain` verifies through `mimi-resolver` asking `server`,
/// trusting `authority` for `domain`'s SIIs and SSIs at `ssi_host`.
async fn verified_at(
    authority: &Authority,
    domain: &str,
    ssi_host: &str,
    server: SocketAddr,
) -> Result<(), String> {
    let scope = format!("mailto:*@{domain}");
    let trust = trust_toml(
        1,
        &[Trust {
            authority,
            sii_scope: &[&scope],
            ssi_scope: &[ssi_host],
        }],
    );
    let mut o = ResolverOptions::new(TrustStore::from_toml_str(&trust, "test trust").unwrap());
    o.name_servers = NameServers::Explicit(vec![server]);
    o.timeout = Duration::from_secs(2);
    let resolver = mimi_resolver::Resolver::new(o).unwrap();
    let sii = Sii::parse(&format!("alice@{domain}"), None).unwrap();
    let r = resolver.lookup(&sii).await.map_err(|e| e.to_string())?;
    match r.outcome() {
        Outcome::Verified => Ok(()),
        o => Err(format!("{o:?}: {:?} {:?}", r.rejected, r.errors)),
    }
}

/// dig's short answer for TXT at alice's discovery name in `domain`.
fn dig_alice(dig: &Path, server: SocketAddr, domain: &str) -> String {
    let d = mimi_proto::DomainName::parse(domain).unwrap();
    let label = Sii::parse(&format!("alice@{domain}"), None)
        .unwrap()
        .label();
    let name = mimi_proto::name::discovery_name(&label, &d).unwrap();
    let out = Command::new(dig)
        .args([
            &format!("@{}", server.ip()),
            "-p",
            &server.port().to_string(),
            &name.fqdn(),
            "TXT",
            "+short",
            "+norec",
            "+tries=1",
            "+time=2",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn serve(ws: &Workspace, configs: &[&PathBuf], primary: SocketAddr, log: &str) -> Daemon {
    let mut cmd = Command::new(bin("mimi-publisher"));
    cmd.arg("serve")
        .args(configs)
        .arg("--catalog")
        .arg(ws.path("catalog.toml"))
        .arg("--state-dir")
        .arg(ws.path("state"))
        .args(["--listen", &primary.to_string()]);
    Daemon::spawn("mimi-publisher serve", cmd, ws.path(log))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knot_and_bind_follow_the_catalog() {
    let ws = Workspace::new();
    let dir = ws.path("servers");
    std::fs::create_dir_all(&dir).unwrap();
    let tsig = Key::random("transfer-key");
    ws.write_secret("tsig.key", &tsig.bind_format());
    let primary = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let knot_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let bind_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let secondaries = [("knot", knot_addr), ("bind", bind_addr)];
    let transfer = format!(
        "allow = [\"127.0.0.1\"]\nnotify = [\"{knot_addr}\", \"{bind_addr}\"]\ntsig_key = \"../tsig.key\""
    );
    ws.write(
        "catalog.toml",
        &format!(
            "origin = \"{CATALOG}\"\n[soa]\nrefresh = 2\nretry = 1\n[transfer]\n{}\n",
            transfer.replace("../tsig.key", "tsig.key")
        ),
    );
    let (a, auth_a) = customer(&ws, "a.example", &transfer);
    let (b, auth_b) = customer(&ws, "b.example", &transfer);
    let (c, auth_c) = customer(&ws, "c.example", &transfer);
    let mut publisher = serve(&ws, &[&a, &b], primary, "publisher-1.log");
    let catalog_serial = {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = soa_serial(primary, CATALOG).await {
                break s;
            }
            publisher.assert_running();
            assert!(
                std::time::Instant::now() < deadline,
                "no catalog:\n{}",
                publisher.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    // The secondaries start once the primary serves (a BIND secondary whose
    // first refresh finds no primary waits minutes before the next). Their
    // configurations name the catalog only.
    let (mut knot, _) = knot(&dir, knot_addr.port(), primary, &tsig);
    let (mut named, _) = bind(&dir, bind_addr.port(), primary, &tsig);

    // The catalog's content, as a secondary transfers it.
    let dig = require("dig", "bind9-dnsutils");
    let axfr = Command::new(&dig)
        .args([
            "@127.0.0.1",
            "-p",
            &primary.port().to_string(),
            CATALOG,
            "AXFR",
            "+tries=1",
            "+time=3",
            "-k",
        ])
        .arg(ws.path("tsig.key"))
        .output()
        .unwrap();
    // dig separates fields with tabs or spaces: compare words.
    let text = String::from_utf8_lossy(&axfr.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n");
    let id_a = mimi_publisher::zone::catalog::member_id(
        &mimi_proto::DomainName::parse("a.example").unwrap(),
    );
    assert!(
        text.contains(&format!("version.{CATALOG}. 0 IN TXT \"2\"")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{id_a}.zones.{CATALOG}. 0 IN PTR a.example.")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{CATALOG}. 0 IN NS invalid.")),
        "{text}"
    );
    assert!(text.contains("XFR size: 6 records"), "{text}");

    let logs = [knot.log_path(), named.log_path()];
    let both = async |domain: &str, authority: &Authority| {
        for ((name, addr), log) in secondaries.into_iter().zip(&logs) {
            let deadline = std::time::Instant::now() + Duration::from_secs(40);
            while soa_serial(addr, domain).await.is_none() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{name} does not serve {domain} from the catalog:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let txt = dig_alice(&dig, addr, domain);
            assert!(
                txt.contains("v=mimi1"),
                "{name}: dig alice@{domain}: {txt:?}"
            );
            eventually(
                Duration::from_secs(10),
                &format!("alice@{domain} to verify at {name}"),
                || async { verified(authority, domain, addr).await.ok() },
            )
            .await;
        }
    };
    both("a.example", &auth_a).await;
    both("b.example", &auth_b).await;
    for (name, addr) in secondaries {
        assert!(
            soa_serial(addr, "c.example").await.is_none(),
            "{name} serves c.example too early"
        );
    }

    // A new customer: restart with a third zone. The catalog gets a new
    // serial (continued from the one kept in --state-dir), its NOTIFY
    // brings it to the secondaries, which add the zone.
    publisher.stop();
    publisher = serve(&ws, &[&a, &b, &c], primary, "publisher-2.log");
    eventually(
        Duration::from_secs(20),
        "the catalog's new serial",
        || async {
            soa_serial(primary, CATALOG)
                .await
                .filter(|s| s.wrapping_sub(catalog_serial).wrapping_sub(1) < (1 << 31))
        },
    )
    .await;
    both("c.example", &auth_c).await;

    // A customer leaves: its zone disappears from both secondaries.
    let before = soa_serial(primary, CATALOG).await.unwrap();
    publisher.stop();
    publisher = serve(&ws, &[&a, &c], primary, "publisher-3.log");
    eventually(
        Duration::from_secs(20),
        "the catalog's next serial",
        || async {
            soa_serial(primary, CATALOG)
                .await
                .filter(|s| s.wrapping_sub(before).wrapping_sub(1) < (1 << 31))
        },
    )
    .await;
    for (name, addr) in secondaries {
        eventually(
            Duration::from_secs(40),
            &format!("{name} to drop b.example"),
            || async { soa_serial(addr, "b.example").await.is_none().then_some(()) },
        )
        .await;
        assert!(
            soa_serial(addr, "a.example").await.is_some(),
            "{name} lost a.example"
        );
    }

    knot.assert_running();
    named.assert_running();
    let knot_log = knot.log();
    assert!(knot_log.contains("catalog"), "knot log:\n{knot_log}");
    let status = publisher.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "mimi-publisher did not stop cleanly:\n{}",
        publisher.log()
    );
}

/// The issue's case, with no restart: one `[domains]` configuration
/// serves a zone `_mimi.<domain>` per customer domain; a mapping of a new
/// customer domain, appended to the running publisher's mappings file,
/// makes a new zone, the catalog lists it and is NOTIFYed, and Knot and
/// BIND (configured with the catalog only) provision it, serve it, and a
/// lookup through each verifies. The customer's last mapping removed, its
/// zone leaves the catalog and both secondaries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_customer_domain_reaches_the_secondaries_while_serving() {
    let ws = Workspace::new();
    let dir = ws.path("servers");
    std::fs::create_dir_all(&dir).unwrap();
    let tsig = Key::random("transfer-key");
    ws.write_secret("tsig.key", &tsig.bind_format());
    let primary = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let knot_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let bind_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let secondaries = [("knot", knot_addr), ("bind", bind_addr)];
    let transfer = format!(
        "allow = [\"127.0.0.1\"]\nnotify = [\"{knot_addr}\", \"{bind_addr}\"]\ntsig_key = \"tsig.key\""
    );
    ws.write(
        "catalog.toml",
        &format!("origin = \"{CATALOG}\"\n[soa]\nrefresh = 2\nretry = 1\n[transfer]\n{transfer}\n"),
    );
    let provider = Authority::new("provider.example");
    ws.write_key("root.pem", &provider.root);
    let line = |d: &str| format!("alice@{d},mimi://chat.provider.example/u/alice-{d}\n");
    // The first customer is large enough that the second's leaving is a
    // small share of the configuration's assertions (the shrink guard,
    // max_shrink 10% by default, would hold a larger drop back).
    let first: String = std::iter::once(line("a.example"))
        .chain((0..20).map(|i| format!("u{i}@a.example,mimi://chat.provider.example/u/{i}\n")))
        .collect();
    ws.write("mappings.csv", &first);
    let config = ws.write(
        "customers.toml",
        &format!(
            "role = \"home\"\nttl = 1\nns = [\"ns1.provider.example\"]\nmappings = \"mappings.csv\"\n\
             [domains]\norigin = \"_mimi.{{domain}}\"\n\
             [soa]\nmname = \"ns1.provider.example\"\nrname = \"hostmaster.provider.example\"\nrefresh = 2\nretry = 1\nminimum = 1\nttl = 1\n\
             [authority]\nname = \"provider.example\"\nkey = \"root.pem\"\n\
             [transfer]\n{transfer}\n"
        ),
    );
    let publisher = serve(&ws, &[&config], primary, "publisher.log");
    eventually(
        Duration::from_secs(20),
        "the first customer zone",
        || async { soa_serial(primary, "_mimi.a.example").await },
    )
    .await;
    let (mut knot, _) = knot(&dir, knot_addr.port(), primary, &tsig);
    let (mut named, _) = bind(&dir, bind_addr.port(), primary, &tsig);
    let dig = require("dig", "bind9-dnsutils");
    let logs = [knot.log_path(), named.log_path()];
    let served_by_both = async |domain: &str| {
        let zone = format!("_mimi.{domain}");
        for ((name, addr), log) in secondaries.into_iter().zip(&logs) {
            let deadline = std::time::Instant::now() + Duration::from_secs(40);
            while soa_serial(addr, &zone).await.is_none() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{name} does not serve {zone} from the catalog:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let txt = dig_alice(&dig, addr, domain);
            assert!(txt.contains("v=mimi1"), "{name}: alice@{domain}: {txt:?}");
            eventually(
                Duration::from_secs(10),
                &format!("alice@{domain} to verify at {name}"),
                || async {
                    verified_at(&provider, domain, "chat.provider.example", addr)
                        .await
                        .ok()
                },
            )
            .await;
        }
    };
    served_by_both("a.example").await;

    // A new customer domain: one line appended (the whole file replaced at
    // once, as README "Replacing files safely" says).
    let both_lines = format!("{first}{}", line("b.example"));
    ws.write("mappings.csv.new", &both_lines);
    std::fs::rename(ws.path("mappings.csv.new"), ws.path("mappings.csv")).unwrap();
    served_by_both("b.example").await;

    // Its last mapping removed: the zone leaves the catalog and both
    // secondaries; the first customer stays.
    ws.write("mappings.csv.new", &first);
    std::fs::rename(ws.path("mappings.csv.new"), ws.path("mappings.csv")).unwrap();
    for (name, addr) in secondaries {
        eventually(
            Duration::from_secs(40),
            &format!("{name} to drop _mimi.b.example"),
            || async {
                soa_serial(addr, "_mimi.b.example")
                    .await
                    .is_none()
                    .then_some(())
            },
        )
        .await;
        assert!(
            soa_serial(addr, "_mimi.a.example").await.is_some(),
            "{name} lost _mimi.a.example"
        );
    }
    knot.assert_running();
    named.assert_running();
    let mut publisher = publisher;
    let status = publisher.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "mimi-publisher did not stop cleanly:\n{}",
        publisher.log()
    );
}
