//! One configuration, many customer domains (`[domains]`): against a real
//! server on loopback, zones appear with a domain's first mapping and
//! disappear with its last, only the changed domain's zone gets a new
//! serial, a truncated mappings file is held back by the shrink guard over
//! the whole configuration, and a restart with a state directory keeps
//! every zone's serial. Queries go through dig; every wait is on the
//! server's reload events, never a sleep.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mimi_proto::{DomainName, Sii};
use mimi_publisher::serve::{self, ReloadEvent, RunningServer, ServeOptions};
use tokio::sync::broadcast;

const TEST_TIMEOUT: Duration = Duration::from_secs(90);
const EVENT_BOUND: Duration = Duration::from_secs(15);
const DOMAINS: usize = 20;

const CONFIG: &str = r#"
role = "home"
ttl = 300
ns = ["ns1.provider.example", "ns2.provider.example"]
mappings = "mappings.csv"

[domains]
origin = "_mimi.{domain}"

[soa]
mname = "ns1.provider.example"
rname = "hostmaster.provider.example"

[authority]
name = "provider.example"
key = "signing.pem"
"#;

struct Fixture {
    dir: tempfile::TempDir,
}

fn user(d: usize, u: usize) -> String {
    format!("user{u}@d{d}.example")
}

fn line(d: usize, u: usize, ssi: &str) -> String {
    format!("{},mimi://chat.provider.example/u/{ssi}\n", user(d, u))
}

/// Two users for each domain in `domains`.
fn mappings(domains: impl IntoIterator<Item = usize>) -> String {
    domains
        .into_iter()
        .flat_map(|d| (0..2).map(move |u| line(d, u, &format!("{u}-{d}"))))
        .collect()
}

fn origin(d: usize) -> DomainName {
    DomainName::parse(&format!("_mimi.d{d}.example")).unwrap()
}

fn name_of(d: usize, u: usize) -> String {
    let l = Sii::parse(&user(d, u), None).unwrap().label();
    format!("{l}.{}._mimi.d{d}.example", l.shard())
}

impl Fixture {
    fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("zone.toml"), CONFIG).unwrap();
        std::fs::write(dir.path().join("mappings.csv"), text).unwrap();
        let key = mimi_publisher::input::keys::generate();
        mimi_publisher::input::keys::write_signing_key(&dir.path().join("signing.pem"), &key)
            .unwrap();
        Fixture { dir }
    }

    fn options(&self, state: bool) -> ServeOptions {
        ServeOptions {
            configs: vec![self.dir.path().join("zone.toml")],
            listen: "127.0.0.1:0".parse().unwrap(),
            debounce: Duration::from_millis(100),
            state_dir: state.then(|| self.state_dir()),
            ..ServeOptions::default()
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Replaces the mappings file atomically (write, then rename).
    fn replace(&self, text: &str) {
        let tmp = self.dir.path().join("mappings.csv.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, self.dir.path().join("mappings.csv")).unwrap();
    }
}

async fn next_event(
    rx: &mut broadcast::Receiver<ReloadEvent>,
    what: &str,
    pred: impl Fn(&ReloadEvent) -> bool,
) -> ReloadEvent {
    tokio::time::timeout(EVENT_BOUND, async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(e) => eprintln!("(skipped event: {e:?})"),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("event channel closed"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: no such reload event within {EVENT_BOUND:?}"))
}

/// dig's status and number of answers for `name` TXT at the server.
async fn dig(server: &RunningServer, name: String) -> (String, usize) {
    let addr = server.local_addr();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("dig")
            .args(["-p", &addr.port().to_string(), &format!("@{}", addr.ip())])
            .args(["+tries=1", "+time=5", "+norecurse", &name, "TXT"])
            .output()
            .expect("dig runs (Debian package bind9-dnsutils)");
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        let status = out
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or_else(|| panic!("no status in dig output:\n{out}"))
            .to_owned();
        let answers = out
            .split("ANSWER: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no answer count in dig output:\n{out}"));
        (status, answers)
    })
    .await
    .unwrap()
}

fn serials(server: &RunningServer) -> BTreeMap<DomainName, u32> {
    server
        .origins()
        .into_iter()
        .map(|o| {
            let s = server.serial(&o).unwrap();
            (o, s)
        })
        .collect()
}

async fn shutdown(server: RunningServer) {
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown within 5 s")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_appear_with_a_domains_first_mapping_and_disappear_with_its_last() {
    let f = Fixture::new(&mappings(0..DOMAINS));
    tokio::time::timeout(TEST_TIMEOUT, async {
        let server = serve::start(f.options(false)).await.unwrap();
        let mut events = server.subscribe();
        let want: Vec<DomainName> = {
            let mut v: Vec<_> = (0..DOMAINS).map(origin).collect();
            v.sort();
            v
        };
        assert_eq!(server.origins(), want);
        assert_eq!(dig(&server, name_of(3, 1)).await, ("NOERROR".into(), 1));
        // A domain nobody has mapped yet is no zone of this server.
        assert_eq!(dig(&server, name_of(DOMAINS, 0)).await.0, "REFUSED");
        let before = serials(&server);

        // Its first mapping: the zone appears; no other zone changes.
        let mut text = mappings(0..DOMAINS);
        text.push_str(&line(DOMAINS, 0, "new"));
        f.replace(&text);
        let e = next_event(&mut events, "new domain's zone", |e| {
            e.ok && e.changed && e.origin == origin(DOMAINS)
        })
        .await;
        assert!(!e.removed);
        assert_eq!(
            dig(&server, name_of(DOMAINS, 0)).await,
            ("NOERROR".into(), 1)
        );
        let after = serials(&server);
        assert_eq!(after.len(), DOMAINS + 1);
        for (o, s) in &before {
            assert_eq!(after[o], *s, "{o} changed although its mappings did not");
        }

        // One domain's mapping changes: only its serial moves.
        let text = text.replace("/u/1-5\n", "/u/1-5-moved\n");
        f.replace(&text);
        next_event(&mut events, "changed domain", |e| {
            e.ok && e.changed && e.origin == origin(5)
        })
        .await;
        let later = serials(&server);
        for (o, s) in &after {
            if *o == origin(5) {
                assert!(later[o] > *s, "{o}'s serial did not increase");
            } else {
                assert_eq!(later[o], *s, "{o} changed although its mappings did not");
            }
        }

        // Its last mapping goes (2 of 41 assertions, under max_shrink):
        // the zone is no longer served.
        let text: String = text
            .lines()
            .filter(|l| !l.contains("@d3.example"))
            .map(|l| format!("{l}\n"))
            .collect();
        f.replace(&text);
        let e = next_event(&mut events, "removed zone", |e| e.removed).await;
        assert_eq!(e.origin, origin(3));
        assert!(e.ok && e.changed);
        assert!(!server.origins().contains(&origin(3)));
        assert!(server.zone(&origin(3)).is_none());
        assert_eq!(dig(&server, name_of(3, 1)).await.0, "REFUSED");
        assert_eq!(dig(&server, name_of(4, 1)).await, ("NOERROR".into(), 1));
        shutdown(server).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_mappings_file_cannot_delete_the_customers_zones() {
    let f = Fixture::new(&mappings(0..DOMAINS));
    tokio::time::timeout(TEST_TIMEOUT, async {
        let server = serve::start(f.options(false)).await.unwrap();
        let mut events = server.subscribe();
        let before = serials(&server);
        // Cut after the first two domains: every other zone would go.
        f.replace(&mappings(0..2));
        let e = next_event(&mut events, "truncation held back", |e| !e.ok).await;
        assert!(
            e.message
                .contains("would remove 36 of the 40 published assertions"),
            "{}",
            e.message
        );
        assert_eq!(serials(&server), before, "nothing was installed");
        assert_eq!(dig(&server, name_of(7, 0)).await, ("NOERROR".into(), 1));
        shutdown(server).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_state_directory_keeps_every_zones_serial() {
    let f = Fixture::new(&mappings(0..DOMAINS));
    tokio::time::timeout(TEST_TIMEOUT, async {
        let server = serve::start(f.options(true)).await.unwrap();
        let mut events = server.subscribe();
        for d in 0..DOMAINS {
            assert!(f
                .state_dir()
                .join(format!("_mimi.d{d}.example.zone"))
                .is_file());
        }
        // d2 changes, d9 goes.
        let text: String = mappings(0..DOMAINS)
            .replace("/u/0-2\n", "/u/0-2-moved\n")
            .lines()
            .filter(|l| !l.contains("@d9.example"))
            .map(|l| format!("{l}\n"))
            .collect();
        f.replace(&text);
        next_event(&mut events, "removed zone", |e| {
            e.removed && e.origin == origin(9)
        })
        .await;
        let served = serials(&server);
        assert_eq!(served.len(), DOMAINS - 1);
        assert!(!f.state_dir().join("_mimi.d9.example.zone").exists());
        shutdown(server).await;

        let server = serve::start(f.options(true)).await.unwrap();
        assert_eq!(serials(&server), served, "every zone continues its serial");
        // The kept zone lent its signatures: nothing was signed again.
        assert_eq!(dig(&server, name_of(2, 0)).await, ("NOERROR".into(), 1));
        shutdown(server).await;
    })
    .await
    .expect("test timed out");
}
