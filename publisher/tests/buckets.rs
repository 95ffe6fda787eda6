//! Privacy buckets (SPEC §10) from a real `serve` on loopback, checked
//! with `dig`: the `_mimi-b` record, a bucket answer (truncated over UDP,
//! whole over TCP) holding exactly the assertions of its prefix, byte for
//! byte those at their discovery names, each with `h=`; AXFR carries the
//! buckets; after a hot reload the bucket changes and IXFR carries only the
//! changed records.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mimi_proto::{DomainName, Sii};
use mimi_publisher::serve::{self, ReloadEvent, RunningServer, ServeOptions};
use tokio::sync::broadcast;

use common::CONFIG;

/// Every reload finishes well within this, or the test fails.
const BOUND: Duration = Duration::from_secs(60);

/// Users in the zone: with one-character prefixes (32 buckets) a bucket
/// holds about 300 / 32 ≈ 9 records of ~330 octets, more than a UDP
/// answer of 1232 octets carries.
const USERS: usize = 300;

struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn sii(i: usize) -> String {
    format!("user{i}@example.com")
}

fn label(i: usize) -> String {
    Sii::parse(&sii(i), None)
        .unwrap()
        .label()
        .as_str()
        .to_owned()
}

fn lines(users: impl IntoIterator<Item = usize>) -> String {
    users
        .into_iter()
        .map(|i| format!("{},mimi://chat.example.org/u/user{i}\n", sii(i)))
        .collect()
}

impl Fixture {
    fn new(users: impl IntoIterator<Item = usize>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("zone.toml");
        std::fs::write(
            &config,
            format!("buckets = 1\n{CONFIG}\n[transfer]\nallow = [\"127.0.0.1\"]\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("mappings.csv"), lines(users)).unwrap();
        let key = mimi_publisher::input::keys::generate();
        mimi_publisher::input::keys::write_signing_key(&dir.path().join("signing.pem"), &key)
            .unwrap();
        Fixture { dir, config }
    }

    async fn start(&self) -> RunningServer {
        serve::start(ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            debounce: Duration::from_millis(50),
            ..ServeOptions::new(vec![self.config.clone()])
        })
        .await
        .unwrap()
    }

    /// Replaces the mappings (atomically, by rename) and waits until the
    /// server serves a new serial; returns it.
    async fn change(&self, server: &RunningServer, users: impl IntoIterator<Item = usize>) -> u32 {
        let mut events = server.subscribe();
        let before = serial(server);
        let tmp = self.dir.path().join("mappings.tmp");
        std::fs::write(&tmp, lines(users)).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("mappings.csv")).unwrap();
        next_event(&mut events, |e| e.ok && e.changed && e.serial != before)
            .await
            .serial
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

fn serial(server: &RunningServer) -> u32 {
    server
        .serial(&DomainName::parse("example.com").unwrap())
        .unwrap()
}

/// `dig` against `server` with `args`; its output.
fn dig(server: &RunningServer, args: &[&str]) -> String {
    let port = server.local_addr().port().to_string();
    let out = tokio::task::block_in_place(|| {
        Command::new("dig")
            .args(["@127.0.0.1", "-p", &port, "+tries=1", "+time=5"])
            .args(args)
            .output()
            .expect("dig is installed (bind9-dnsutils)")
    });
    assert!(out.status.success(), "dig {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The records dig printed (comments dropped), as `name ttl class type
/// rdata` with single spaces.
fn records(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// (owner, text) of each TXT record printed by dig, the character-strings
/// joined (SPEC §4).
fn txts(text: &str) -> Vec<(String, String)> {
    records(text)
        .iter()
        .filter(|r| r.split(' ').nth(3) == Some("TXT"))
        .map(|r| {
            let f: Vec<&str> = r.splitn(5, ' ').collect();
            (f[0].to_owned(), f[4].replace("\" \"", "").replace('"', ""))
        })
        .collect()
}

/// The TXT texts answered for `name` over TCP.
fn tcp_texts(server: &RunningServer, name: &str) -> BTreeSet<String> {
    txts(&dig(server, &["+tcp", name, "TXT"]))
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

fn discovery(i: usize) -> String {
    let l = label(i);
    format!("{l}.{}._mimi.example.com.", &l[..2])
}

fn bucket_of(i: usize) -> String {
    format!("{}._mimi-b.example.com.", &label(i)[..1])
}

/// The bucket of user0 over TCP holds exactly the records of the users
/// whose label starts like user0's, byte-identical to their exact-name
/// answers, each with its `h=`; over UDP it is truncated (TC); the
/// `_mimi-b` record announces the prefix length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_answer_is_the_exact_records_of_its_prefix() {
    let f = Fixture::new(0..USERS);
    let server = f.start().await;
    let apex = txts(&dig(&server, &["_mimi-b.example.com.", "TXT"]));
    assert_eq!(
        apex,
        [("_mimi-b.example.com.".to_owned(), "v=mimi1;n=1".to_owned())]
    );
    let bucket = bucket_of(0);
    let mates: Vec<usize> = (0..USERS).filter(|&i| bucket_of(i) == bucket).collect();
    assert!(mates.len() >= 4, "{mates:?}");
    let mut want = BTreeSet::new();
    for &i in &mates {
        let exact = tcp_texts(&server, &discovery(i));
        assert_eq!(exact.len(), 1, "{i}: {exact:?}");
        let text = exact.into_iter().next().unwrap();
        assert!(text.contains(&format!(";h={};", label(i))), "{text}");
        want.insert(text);
    }
    let got = tcp_texts(&server, &bucket);
    assert_eq!(got, want);
    // Too large for UDP: truncated, and dig (told not to retry over TCP)
    // shows TC.
    let udp = dig(&server, &["+ignore", "+bufsize=1232", &bucket, "TXT"]);
    assert!(
        udp.lines()
            .any(|l| l.starts_with(";; flags:") && l.contains(" tc")),
        "{udp}"
    );
    // A name in no bucket of the zone's prefix length does not exist.
    let nx = dig(&server, &["+tcp", "00._mimi-b.example.com.", "TXT"]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    // AXFR carries every exact record, every bucket copy and `_mimi-b`.
    let all = txts(&dig(&server, &["example.com", "AXFR"]));
    let in_buckets = all.iter().filter(|(o, _)| o.contains("._mimi-b.")).count();
    let exact = all.iter().filter(|(o, _)| o.contains("._mimi.")).count();
    assert_eq!(
        (exact, in_buckets, all.len()),
        (USERS, USERS, 2 * USERS + 1)
    );
}

/// After a hot reload that removes user0 and adds a new user to user0's
/// bucket, the bucket answer follows, and IXFR from the old serial
/// carries exactly the two exact records and the two bucket copies that
/// changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changes_the_bucket_and_ixfr_carries_only_that() {
    let f = Fixture::new(0..USERS);
    let server = f.start().await;
    let s1 = serial(&server);
    let bucket = bucket_of(0);
    let before = tcp_texts(&server, &bucket);
    let newcomer = (USERS..).find(|&i| bucket_of(i) == bucket).unwrap();
    let s2 = f.change(&server, (1..USERS).chain([newcomer])).await;
    let after = tcp_texts(&server, &bucket);
    let removed: Vec<&String> = before.difference(&after).collect();
    let added: Vec<&String> = after.difference(&before).collect();
    assert_eq!((removed.len(), added.len()), (1, 1));
    assert!(removed[0].contains(&format!("h={};", label(0))));
    assert!(added[0].contains(&format!("h={};", label(newcomer))));

    let ixfr = records(&dig(
        &server,
        &["+tcp", "example.com", &format!("IXFR={s1}")],
    ));
    let soas: Vec<usize> = ixfr
        .iter()
        .enumerate()
        .filter(|(_, r)| r.split(' ').nth(3) == Some("SOA"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(soas.len(), 4, "{ixfr:?}");
    assert!(ixfr[0].contains(&format!(" {s2} ")) && ixfr[1].contains(&format!(" {s1} ")));
    let owners = |rs: &[String]| -> BTreeSet<String> {
        rs.iter()
            .map(|r| r.split(' ').next().unwrap().to_owned())
            .collect()
    };
    let gone = owners(&ixfr[2..soas[2]]);
    let new = owners(&ixfr[soas[2] + 1..ixfr.len() - 1]);
    assert_eq!(gone, BTreeSet::from([discovery(0), bucket.clone()]));
    assert_eq!(new, BTreeSet::from([discovery(newcomer), bucket.clone()]));
    assert_eq!(
        (soas[2] - 2, ixfr.len() - 1 - soas[2] - 1),
        (2, 2),
        "{ixfr:?}"
    );
}
