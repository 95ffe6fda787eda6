//! Incremental zone transfer (RFC 1995) from a real `serve` on loopback,
//! checked with `dig` and `kdig`: the incremental form from a journaled
//! serial (against the difference of two AXFRs), the SOA alone for a
//! current or newer serial, the whole zone for an unknown one, UDP answers
//! that fit or fall back to the SOA, TSIG-signed IXFR, and a restart with
//! and without the state directory.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use mimi_proto::DomainName;
use mimi_publisher::serve::{self, ReloadEvent, RunningServer, ServeOptions};
use tokio::sync::broadcast;

use common::CONFIG;

/// Every reload finishes well within this, or the test fails.
const BOUND: Duration = Duration::from_secs(30);

const SECRET: &str = "kXW841Sbu0aZFtjM/0NLeCiBM/jbq9bvxoQXun9bHro=";

fn tsig_key_file() -> String {
    format!("key \"xfr\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{SECRET}\";\n}};\n")
}

struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn line(i: usize) -> String {
    format!("user{i}@example.com,mimi://chat.example.org/u/user{i}\n")
}

fn lines(users: impl IntoIterator<Item = usize>) -> String {
    users.into_iter().map(line).collect()
}

impl Fixture {
    fn new(users: impl IntoIterator<Item = usize>, transfer: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("zone.toml");
        std::fs::write(
            &config,
            format!(
                "max_shrink = \"100%\"\n{CONFIG}\n[transfer]\nallow = [\"127.0.0.1\"]\n{transfer}"
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("mappings.csv"), lines(users)).unwrap();
        let tsig = dir.path().join("transfer.key");
        std::fs::write(&tsig, tsig_key_file()).unwrap();
        std::fs::set_permissions(&tsig, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let key = mimi_publisher::input::keys::generate();
        mimi_publisher::input::keys::write_signing_key(&dir.path().join("signing.pem"), &key)
            .unwrap();
        Fixture { dir, config }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    async fn start(&self, state: bool) -> RunningServer {
        serve::start(ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            debounce: Duration::from_millis(50),
            state_dir: state.then(|| self.state_dir()),
            ..ServeOptions::new(vec![self.config.clone()])
        })
        .await
        .unwrap()
    }

    /// Replaces the mappings with `users` (atomically, by rename) and
    /// waits until the server serves a new serial; returns it.
    async fn change(&self, server: &RunningServer, users: impl IntoIterator<Item = usize>) -> u32 {
        let mut events = server.subscribe();
        let before = serial(server);
        let tmp = self.dir.path().join("mappings.tmp");
        std::fs::write(&tmp, lines(users)).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("mappings.csv")).unwrap();
        let e = next_event(&mut events, |e| e.ok && e.changed && e.serial != before).await;
        e.serial
    }
}

async fn next_event(
    rx: &mut broadcast::Receiver<ReloadEvent>,
    pred: impl Fn(&ReloadEvent) -> bool,
) -> ReloadEvent {
    tokio::time::timeout(BOUND, async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(e) => assert!(e.ok, "reload failed: {e:?}"),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("event channel closed"),
            }
        }
    })
    .await
    .expect("the change is served in time")
}

fn origin() -> DomainName {
    DomainName::parse("example.com").unwrap()
}

fn serial(server: &RunningServer) -> u32 {
    server.serial(&origin()).unwrap()
}

/// Runs `dig` against `server` for example.com with `args`; its output.
fn dig(server: &RunningServer, args: &[&str]) -> String {
    let port = server.local_addr().port().to_string();
    let out = tokio::task::block_in_place(|| {
        Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &port,
                "example.com",
                "+tries=1",
                "+time=5",
            ])
            .args(args)
            .output()
            .expect("dig is installed (bind9-dnsutils)")
    });
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The records dig printed (comments dropped), as `name ttl class type
/// rdata` with single spaces.
fn records(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|r| r.split(' ').nth(3) != Some("TSIG"))
        .collect()
}

/// The serial of a printed SOA record, if it is one.
fn soa_serial(record: &str) -> Option<u32> {
    let f: Vec<&str> = record.split(' ').collect();
    (f.get(3) == Some(&"SOA")).then(|| f[6].parse().unwrap())
}

/// Splits an incremental answer into (removed, added) after checking its
/// SOA frame: SOA(new), SOA(old), removed…, SOA(new), added…, SOA(new).
fn incremental(recs: &[String], old: u32, new: u32) -> (BTreeSet<String>, BTreeSet<String>) {
    let soas: Vec<(usize, u32)> = recs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| soa_serial(r).map(|s| (i, s)))
        .collect();
    let serials: Vec<u32> = soas.iter().map(|s| s.1).collect();
    assert_eq!(
        serials,
        [new, old, new, new],
        "SOA sequence of\n{}",
        recs.join("\n")
    );
    assert_eq!((soas[0].0, soas[1].0, soas[3].0), (0, 1, recs.len() - 1));
    let removed = recs[2..soas[2].0].iter().cloned().collect();
    let added = recs[soas[2].0 + 1..recs.len() - 1]
        .iter()
        .cloned()
        .collect();
    (removed, added)
}

/// The TXT records of a full transfer (AXFR form), checking its frame.
fn full(recs: &[String], serial: u32) -> BTreeSet<String> {
    assert!(recs.len() >= 2, "{recs:?}");
    assert_eq!(soa_serial(&recs[0]), Some(serial), "{recs:?}");
    assert_eq!(soa_serial(recs.last().unwrap()), Some(serial), "{recs:?}");
    recs.iter()
        .filter(|r| r.split(' ').nth(3) == Some("TXT"))
        .cloned()
        .collect()
}

fn axfr(server: &RunningServer) -> BTreeSet<String> {
    let text = dig(server, &["AXFR"]);
    full(&records(&text), serial(server))
}

/// IXFR over TCP from a journaled serial gives the condensed difference,
/// equal to the difference of the AXFRs at both serials (dig and kdig
/// agree); from the current serial or a newer one the SOA alone; from an
/// unknown serial the whole zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ixfr_over_tcp_from_journaled_current_newer_and_unknown_serials() {
    let f = Fixture::new(0..20, "");
    let server = f.start(false).await;
    let s1 = serial(&server);
    let at_s1 = axfr(&server);
    // user0 removed, user100 added; then user1 removed, user101 added and
    // user100 removed again (condensed away from s1).
    let s2 = f.change(&server, (1..20).chain([100])).await;
    let at_s2 = axfr(&server);
    let s3 = f.change(&server, (2..20).chain([101])).await;
    let at_s3 = axfr(&server);
    for (from, before) in [(s1, &at_s1), (s2, &at_s2)] {
        let text = dig(&server, &["+tcp", &format!("IXFR={from}")]);
        let (removed, added) = incremental(&records(&text), from, s3);
        let want_removed: BTreeSet<_> = before.difference(&at_s3).cloned().collect();
        let want_added: BTreeSet<_> = at_s3.difference(before).cloned().collect();
        assert_eq!(removed, want_removed, "IXFR={from}");
        assert_eq!(added, want_added, "IXFR={from}");
    }
    // From s1: user0 and user1 removed, only user101 added (user100 came
    // and went).
    let text = dig(&server, &["+tcp", &format!("IXFR={s1}")]);
    let (removed, added) = incremental(&records(&text), s1, s3);
    assert_eq!((removed.len(), added.len()), (2, 1), "{text}");
    assert!(added.iter().all(|r| !r.contains("user100")));
    // kdig reads the same incremental answer.
    let port = server.local_addr().port().to_string();
    let out = tokio::task::block_in_place(|| {
        Command::new("kdig")
            .args([
                "@127.0.0.1",
                "-p",
                &port,
                "example.com",
                &format!("IXFR={s1}"),
            ])
            .output()
            .expect("kdig is installed (knot-dnsutils)")
    });
    let kdig = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{kdig}");
    let soas = records(&kdig)
        .iter()
        .filter(|r| r.contains(" SOA "))
        .count();
    let txts = records(&kdig)
        .iter()
        .filter(|r| r.contains(" TXT "))
        .count();
    assert_eq!((soas, txts), (4, 3), "{kdig}");
    // Current and newer serials: the SOA alone.
    for from in [s3, s3.wrapping_add(1000)] {
        let recs = records(&dig(&server, &["+tcp", &format!("IXFR={from}")]));
        assert_eq!(recs.len(), 1, "IXFR={from}: {recs:?}");
        assert_eq!(soa_serial(&recs[0]), Some(s3));
    }
    // Unknown serial: the whole zone in AXFR form.
    let unknown = s1.wrapping_sub(1000);
    let recs = records(&dig(&server, &["+tcp", &format!("IXFR={unknown}")]));
    assert_eq!(full(&recs, s3), at_s3);
    server.shutdown().await.unwrap();
}

/// Over UDP an incremental answer is sent when it fits the client's size,
/// otherwise the SOA alone (RFC 1995 §2); the allow list applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ixfr_over_udp_fits_or_gets_the_soa_alone() {
    let f = Fixture::new(0..10, "");
    let server = f.start(false).await;
    let s1 = serial(&server);
    let s2 = f.change(&server, 0..11).await;
    let text = dig(&server, &["+notcp", "+bufsize=1232", &format!("IXFR={s1}")]);
    assert!(text.contains("(UDP)"), "{text}");
    let (removed, added) = incremental(&records(&text), s1, s2);
    assert_eq!((removed.len(), added.len()), (0, 1), "{text}");
    // Forty new mappings do not fit 1,232 octets: the SOA alone.
    let s3 = f.change(&server, 0..51).await;
    let text = dig(&server, &["+notcp", "+bufsize=1232", &format!("IXFR={s2}")]);
    let recs = records(&text);
    assert!(text.contains("(UDP)"), "{text}");
    assert_eq!(recs.len(), 1, "{text}");
    assert_eq!(soa_serial(&recs[0]), Some(s3));
    // Over TCP the same request gets the forty.
    let text = dig(&server, &["+tcp", &format!("IXFR={s2}")]);
    assert_eq!(incremental(&records(&text), s2, s3).1.len(), 40);
    // The allow list holds over UDP too.
    assert_eq!(
        udp_ixfr_rcode(&server, "127.0.0.1", s1).await,
        ResponseCode::NoError
    );
    assert_eq!(
        udp_ixfr_rcode(&server, "127.0.0.2", s1).await,
        ResponseCode::Refused
    );
    // Unknown serial over UDP: the SOA alone too.
    let recs = records(&dig(&server, &["+notcp", "IXFR=1"]));
    assert_eq!(recs.len(), 1, "{recs:?}");
    server.shutdown().await.unwrap();
}

/// The RCODE of an unsigned IXFR from `serial` sent over UDP from
/// `source`.
async fn udp_ixfr_rcode(server: &RunningServer, source: &str, serial: u32) -> ResponseCode {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::SOA;
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    let apex = Name::from_ascii("example.com.").unwrap();
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(apex.clone(), RecordType::IXFR));
    let soa = SOA::new(apex.clone(), apex.clone(), serial, 0, 0, 0, 0);
    m.authorities
        .push(Record::from_rdata(apex, 0, RData::SOA(soa)));
    let sock = tokio::net::UdpSocket::bind((source, 0)).await.unwrap();
    sock.send_to(&m.to_vec().unwrap(), server.local_addr())
        .await
        .unwrap();
    let mut buf = vec![0u8; 65_535];
    let n = tokio::time::timeout(BOUND, sock.recv(&mut buf))
        .await
        .expect("answered")
        .unwrap();
    let answer = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(answer.metadata.id, 7);
    answer.metadata.response_code
}

/// A zone with a TSIG key answers signed IXFR with signed messages that dig
/// verifies, over TCP and UDP, and refuses unsigned ones; a signed SOA
/// query (a secondary's refresh check) gets a signed answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsig_signed_ixfr_verifies_and_unsigned_is_refused() {
    let f = Fixture::new(0..30, "tsig_key = \"transfer.key\"\n");
    let server = f.start(false).await;
    let s1 = serial(&server);
    let s2 = f.change(&server, 1..31).await;
    let key = format!("hmac-sha256:xfr:{SECRET}");
    for transport in ["+tcp", "+notcp"] {
        let text = dig(&server, &[transport, "-y", &key, &format!("IXFR={s1}")]);
        assert!(
            !text.contains("failure") && !text.contains("TSIG error"),
            "{transport}: {text}"
        );
        let (removed, added) = incremental(&records(&text), s1, s2);
        assert_eq!((removed.len(), added.len()), (1, 1), "{transport}: {text}");
        // A wrong secret is not answered with the zone.
        let wrong = dig(
            &server,
            &[
                transport,
                "-y",
                "hmac-sha256:xfr:AAAA41Sbu0aZFtjM/0NLeCiBM/jbq9bvxoQXun9bHro=",
                &format!("IXFR={s1}"),
            ],
        );
        assert!(!wrong.contains(" TXT "), "{transport}: {wrong}");
        let unsigned = dig(&server, &[transport, &format!("IXFR={s1}")]);
        assert!(!unsigned.contains(" TXT "), "{transport}: {unsigned}");
    }
    assert_eq!(
        udp_ixfr_rcode(&server, "127.0.0.1", s1).await,
        ResponseCode::Refused
    );
    // The SOA query of a secondary's refresh check, signed, gets a signed
    // answer (BIND refuses an unsigned one and never transfers).
    for transport in ["+tcp", "+notcp"] {
        let text = dig(&server, &[transport, "-y", &key, "SOA"]);
        assert!(
            text.contains("status: NOERROR") && text.contains(" TSIG "),
            "{text}"
        );
        assert!(
            !text.contains("expected a TSIG") && !text.contains("failure"),
            "{text}"
        );
        let wrong = dig(
            &server,
            &[
                transport,
                "-y",
                "hmac-sha256:xfr:AAAA41Sbu0aZFtjM/0NLeCiBM/jbq9bvxoQXun9bHro=",
                "SOA",
            ],
        );
        assert!(
            wrong.contains("Couldn't verify")
                || wrong.contains("expected a TSIG")
                || wrong.contains("failure"),
            "{wrong}"
        );
    }
    // A large signed incremental answer over TCP spans several messages,
    // each signed (dig verifies the chain).
    let s3 = f.change(&server, 1..1031).await;
    let text = dig(&server, &["+tcp", "-y", &key, &format!("IXFR={s2}")]);
    assert!(!text.contains("failure"), "{text}");
    assert_eq!(incremental(&records(&text), s2, s3).1.len(), 1000);
    let summary = text.lines().find(|l| l.starts_with(";; XFR size")).unwrap();
    assert!(!summary.contains("messages 1,"), "{summary}");
    server.shutdown().await.unwrap();
}

/// With `--state-dir` a restarted server answers IXFR from before the
/// restart incrementally; without it (or with the journal removed) it
/// falls back to the whole zone. A tiny journal bound keeps nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_journal_only_with_the_state_directory() {
    let f = Fixture::new(0..20, "");
    let server = f.start(true).await;
    let s1 = serial(&server);
    let s2 = f.change(&server, 1..21).await;
    let s3 = f.change(&server, 2..22).await;
    let journal: &Path = &f.state_dir().join("example.com.journal");
    assert!(journal.exists());
    server.shutdown().await.unwrap();

    let server = f.start(true).await;
    assert_eq!(serial(&server), s3);
    let text = dig(&server, &["+tcp", &format!("IXFR={s1}")]);
    let (r, a) = incremental(&records(&text), s1, s3);
    assert_eq!((r.len(), a.len()), (2, 2), "{text}");
    let text = dig(&server, &["+tcp", &format!("IXFR={s2}")]);
    incremental(&records(&text), s2, s3);
    // The journal goes on after the restart.
    let s4 = f.change(&server, 3..23).await;
    let text = dig(&server, &["+tcp", &format!("IXFR={s1}")]);
    let (r, a) = incremental(&records(&text), s1, s4);
    assert_eq!((r.len(), a.len()), (3, 3), "{text}");
    server.shutdown().await.unwrap();

    // A journal whose tail was damaged loses only that tail.
    let bytes = std::fs::read(journal).unwrap();
    std::fs::write(journal, &bytes[..bytes.len() - 5]).unwrap();
    let server = f.start(true).await;
    assert_eq!(serial(&server), s4);
    // The last delta (s3 → s4) is gone, so the journal no longer ends at
    // the kept serial: nothing is served from it.
    let recs = records(&dig(&server, &["+tcp", &format!("IXFR={s3}")]));
    assert_eq!(full(&recs, s4).len(), 20);
    assert!(!journal.exists());
    server.shutdown().await.unwrap();

    // Without the state directory: no history, whatever serial the
    // secondary holds.
    let server = f.start(false).await;
    let s = serial(&server);
    let recs = records(&dig(
        &server,
        &["+tcp", &format!("IXFR={}", s.wrapping_sub(1))],
    ));
    assert_eq!(full(&recs, s).len(), 20);
    server.shutdown().await.unwrap();
}

/// A journal bound smaller than one change keeps nothing: IXFR falls back
/// to the whole zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trimmed_journal_falls_back_to_the_whole_zone() {
    let f = Fixture::new(0..20, "journal_max_records = 3\n");
    let server = f.start(false).await;
    let s1 = serial(&server);
    let s2 = f.change(&server, 1..21).await;
    let s3 = f.change(&server, 2..22).await;
    // Each change holds two records: only the last fits.
    let text = dig(&server, &["+tcp", &format!("IXFR={s2}")]);
    incremental(&records(&text), s2, s3);
    let recs = records(&dig(&server, &["+tcp", &format!("IXFR={s1}")]));
    assert_eq!(full(&recs, s3).len(), 20);
    server.shutdown().await.unwrap();
}
