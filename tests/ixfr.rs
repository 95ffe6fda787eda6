//! Incremental zone transfer with the secondaries operators run: Knot DNS,
//! NSD and BIND, configured for IXFR, follow `mimi-publisher serve` (a real
//! process, with `--state-dir`) through changes by IXFR, end with exactly
//! the primary's content, and fall back to AXFR when the journal was
//! trimmed and when the primary restarts without usable state.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mimi_e2e::secondaries::{self, Key};
use mimi_e2e::{
    eventually, free_port, plain, publisher_serve, require, soa_serial, Daemon, Workspace, ZoneSpec,
};

const ZONE: &str = "example.com";
const LIMIT: Duration = Duration::from_secs(30);

fn mappings(users: impl IntoIterator<Item = usize>) -> String {
    users
        .into_iter()
        .map(|i| format!("user{i}@example.com,mimi://chat.example.com/u/user{i}\n"))
        .collect()
}

/// Knot as an IXFR secondary (Knot asks IXFR by default once it has the
/// zone), which also lets 127.0.0.1 transfer the zone from it.
fn knot(dir: &Path, primary: SocketAddr, key: &Key) -> (Daemon, SocketAddr) {
    let s = secondaries::knot(dir, primary, &[ZONE], key);
    (s.daemon, s.addr)
}

/// NSD as an IXFR secondary: `request-xfr` without `AXFR` asks IXFR over
/// TCP (with AXFR fallback); 127.0.0.1 may transfer the zone from it.
fn nsd(dir: &Path, primary: SocketAddr, key: &Key) -> (Daemon, SocketAddr) {
    let s = secondaries::nsd(dir, primary, &[ZONE], key);
    (s.daemon, s.addr)
}

/// BIND as an IXFR secondary (`request-ixfr` is its default); 127.0.0.1
/// may transfer the zone from it.
/// Started after the primary answers: a `named` whose first refresh finds
/// no primary waits for its retry timer (minutes), even when NOTIFYed.
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
}};
controls {{ }};
logging {{
    channel out {{ stderr; severity info; print-category yes; }};
    category default {{ out; }};
    category xfer-in {{ out; }};
    category notify {{ out; }};
}};
key "{key}" {{
    algorithm hmac-sha256;
    secret "{secret}";
}};
zone "{ZONE}" {{
    type secondary;
    file "{d}/{ZONE}.zone";
    primaries {{ {pip} port {pport} key "{key}"; }};
    allow-notify {{ {pip}; }};
    allow-transfer {{ 127.0.0.1; }};
    request-ixfr yes;
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

/// The primary: `mimi-publisher serve` on `addr`, with `state` as its
/// state directory if given, logging to `log`.
fn primary(config: &Path, addr: SocketAddr, state: Option<&Path>, log: PathBuf) -> Daemon {
    publisher_serve(config, addr, state, log, "info,hickory_proto=warn")
}

/// The zone as `server` transfers it (AXFR with dig): the SOA serial and
/// every other record, normalised (one space between fields, sorted).
fn dump(server: SocketAddr, key: Option<&Key>) -> (u32, BTreeSet<String>) {
    let dig = require("dig", "bind9-dnsutils");
    let mut cmd = Command::new(dig);
    cmd.args([
        &format!("@{}", server.ip()),
        "-p",
        &server.port().to_string(),
        ZONE,
        "AXFR",
        "+tries=1",
        "+time=5",
        "+nocmd",
        "+nostats",
    ]);
    if let Some(k) = key {
        cmd.args(["-y", &format!("hmac-sha256:{}:{}", k.name, k.secret)]);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let records: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|r| r.split(' ').nth(3) != Some("TSIG"))
        .collect();
    let soa = records
        .iter()
        .find(|r| r.split(' ').nth(3) == Some("SOA"))
        .unwrap_or_else(|| panic!("{server}: no zone transferred:\n{text}"));
    let serial = soa.split(' ').nth(6).unwrap().parse().unwrap();
    (
        serial,
        records
            .iter()
            .filter(|r| r.split(' ').nth(3) != Some("SOA"))
            .cloned()
            .collect(),
    )
}

/// Whether `server` serves `serial` exactly within [`LIMIT`].
async fn reaches(server: SocketAddr, serial: u32) -> bool {
    tokio::time::timeout(LIMIT, async {
        while soa_serial(server, ZONE).await != Some(serial) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok()
}

/// Waits until the primary serves a serial other than `old`; returns it.
async fn new_serial(primary: SocketAddr, old: u32) -> u32 {
    eventually(LIMIT, "the primary to serve a new serial", || async {
        soa_serial(primary, ZONE).await.filter(|s| *s != old)
    })
    .await
}

/// The sizes NSD logs for each update it received ("… of N bytes").
fn nsd_update_sizes(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("received update to serial"))
        .filter_map(|l| l.split(" of ").last()?.split(' ').next()?.parse().ok())
        .collect()
}

/// The record counts BIND logs for each transfer it received
/// ("Transfer completed: M messages, N records"): 6 for an incremental
/// answer with one record replaced (four SOAs), the whole zone otherwise.
fn bind_transfer_sizes(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("Transfer completed:"))
        .filter_map(|l| {
            l.split(" messages, ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Occurrences of `needle` in `haystack`.
fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Waits until the secondary `$name` at `$addr` serves `$serial`, or
/// fails with every log.
macro_rules! at_serial {
    ($name:expr, $addr:expr, $serial:expr, $knot:expr, $nsd:expr, $bind:expr, $primary:expr) => {
        if !reaches($addr, $serial).await {
            panic!(
                "{} did not reach serial {}\n--- knot:\n{}\n--- nsd:\n{}\n--- bind:\n{}\n--- primary:\n{}",
                $name,
                $serial,
                $knot.log(),
                $nsd.log(),
                $bind.log(),
                plain(&$primary.log())
            );
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knot_nsd_and_bind_follow_by_ixfr_and_fall_back_to_axfr() {
    let ws = Workspace::new();
    let dir = ws.path("servers");
    std::fs::create_dir_all(&dir).unwrap();
    let state = ws.path("state");
    let tsig = Key::random("transfer-key");
    ws.write_secret("tsig.key", &tsig.bind_format());
    ws.write_key(
        "example.com/signing.pem",
        &mimi_publisher::input::keys::generate(),
    );
    ws.write("example.com/mappings.csv", &mappings(0..200));
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (mut knot, knot_addr) = knot(&dir, addr, &tsig);
    let (mut nsd, nsd_addr) = nsd(&dir, addr, &tsig);
    let bind_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let zone_config = |extra: &str| {
        let transfer = format!(
            "allow = [\"127.0.0.1\"]\nnotify = [\"{knot_addr}\", \"{nsd_addr}\", \"{bind_addr}\"]\ntsig_key = \"../tsig.key\"\n{extra}"
        );
        ws.zone(
            "example.com/zone.toml",
            &ZoneSpec {
                origin: ZONE,
                role: "home",
                authority: Some(ZONE),
                key: Some("signing.pem"),
                mappings: Some("mappings.csv"),
                transfer: Some(&transfer),
                ..Default::default()
            },
        )
    };
    let config = zone_config("");
    let mut publisher = primary(&config, addr, Some(&state), ws.path("primary-1.log"));
    let secondaries = [("knot", knot_addr), ("nsd", nsd_addr), ("bind", bind_addr)];
    // Every secondary ends with exactly the primary's zone.
    let same_content = |serial: u32| {
        let want = dump(addr, Some(&tsig));
        assert_eq!(want.0, serial);
        for (name, a) in secondaries {
            let got = dump(a, None);
            assert_eq!(got.0, serial, "{name}");
            assert_eq!(got.1, want.1, "{name} holds other records than the primary");
        }
        want.1
    };
    let s1 = eventually(LIMIT, "the primary to answer", || soa_serial(addr, ZONE)).await;
    let (mut named, _) = bind(&dir, bind_addr.port(), addr, &tsig);
    for (name, a) in secondaries {
        at_serial!(name, a, s1, knot, nsd, named, publisher);
    }
    let first = same_content(s1);
    assert_eq!(first.iter().filter(|r| r.contains(" TXT ")).count(), 200);

    // A change: both pull it by IXFR, incrementally.
    ws.write("example.com/mappings.csv", &mappings(1..201));
    let s2 = new_serial(addr, s1).await;
    for (name, a) in secondaries {
        at_serial!(name, a, s2, knot, nsd, named, publisher);
    }
    same_content(s2);
    let log = plain(&publisher.log());
    assert_eq!(
        count(&log, "zone transferred incrementally"),
        3,
        "every secondary transferred incrementally:\n{log}"
    );
    assert!(log.contains("removed=1 added=1"), "{log}");
    let knot_log = knot.log();
    assert!(
        knot_log.contains("IXFR, incoming"),
        "knot did not pull by IXFR:\n{knot_log}"
    );
    assert!(!knot_log.contains("AXFR-style"), "{knot_log}");
    // NSD does not name the transfer type; it logs the size of what it
    // received: the change, not the zone.
    let sizes = nsd_update_sizes(&nsd.log());
    assert!(
        sizes.len() == 2 && sizes[1] * 10 < sizes[0],
        "nsd did not pull incrementally ({sizes:?}):\n{}",
        nsd.log()
    );
    assert_eq!(
        bind_transfer_sizes(&named.log()),
        [204, 6],
        "{}",
        named.log()
    );

    // A restart with the state directory keeps the serial and the journal;
    // the next change is again incremental.
    publisher.stop();
    let mut publisher = primary(&config, addr, Some(&state), ws.path("primary-2.log"));
    eventually(LIMIT, "the restarted primary", || async {
        (soa_serial(addr, ZONE).await? == s2).then_some(())
    })
    .await;
    ws.write("example.com/mappings.csv", &mappings(2..202));
    let s3 = new_serial(addr, s2).await;
    for (name, a) in secondaries {
        at_serial!(name, a, s3, knot, nsd, named, publisher);
    }
    same_content(s3);
    let log = plain(&publisher.log());
    assert_eq!(count(&log, "zone transferred incrementally"), 3, "{log}");

    // A journal bound below one change keeps nothing: the next transfer
    // is the whole zone (AXFR-style IXFR), which both apply.
    zone_config("journal_max_records = 1");
    let s4 = new_serial(addr, s3).await;
    for (name, a) in secondaries {
        at_serial!(name, a, s4, knot, nsd, named, publisher);
    }
    ws.write("example.com/mappings.csv", &mappings(3..203));
    let s5 = new_serial(addr, s4).await;
    for (name, a) in secondaries {
        at_serial!(name, a, s5, knot, nsd, named, publisher);
    }
    same_content(s5);
    let log = plain(&publisher.log());
    assert_eq!(
        count(&log, "zone transferred whole (fallback)"),
        3,
        "every secondary fell back to the whole zone:\n{log}"
    );
    assert!(knot.log().contains("AXFR-style IXFR"), "{}", knot.log());
    let sizes = nsd_update_sizes(&nsd.log());
    assert!(
        sizes.last().is_some_and(|l| *l * 2 > sizes[0]),
        "nsd got the whole zone ({sizes:?})"
    );
    assert_eq!(bind_transfer_sizes(&named.log()).last(), Some(&204));

    // A restart whose state cannot be trusted (here: the signing key was
    // replaced while the primary was down, so the kept zone's seal no
    // longer verifies): the serial goes on from the kept one, but neither
    // its records nor its journal are used, and the secondaries get the
    // whole zone. (A restart with no state directory at all starts again
    // from the signing window's serial floor, below what the secondaries
    // hold, so they keep their copy until the primary passes it; IXFR
    // plays no part there. publisher/tests/ixfr.rs checks that such a
    // server answers IXFR with the whole zone.)
    publisher.stop();
    ws.write_key(
        "example.com/signing.pem",
        &mimi_publisher::input::keys::generate(),
    );
    let config = zone_config("");
    let mut publisher = primary(&config, addr, Some(&state), ws.path("primary-3.log"));
    let s6 = new_serial(addr, s5).await;
    for (name, a) in secondaries {
        at_serial!(name, a, s6, knot, nsd, named, publisher);
    }
    same_content(s6);
    let log = plain(&publisher.log());
    assert_eq!(count(&log, "zone transferred whole (fallback)"), 3, "{log}");
    assert_eq!(count(&log, "zone transferred incrementally"), 0, "{log}");
    for d in [&mut knot, &mut nsd, &mut named] {
        d.assert_running();
    }
    publisher.stop();
}
