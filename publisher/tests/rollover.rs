//! The key rollover in simulated time: `mimi-publisher build --out FILE
//! --now T`, T stepped second by second through whole ceremony bundles,
//! with mappings changing on the way. After every build the invariants a
//! client relies on are checked against the zone file (see [`Sim::check`]):
//! every assertion verifies through a certificate in the same zone; a key
//! signs a new assertion only once its certificate has been in the zone for
//! the certificate TTL + propagation delay; a certificate leaves only when
//! every assertion its key ever signed has expired; old keys' assertions
//! never outlive their certificate's margin; the serial only increases.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Output};

use mimi_proto::{Assertion, Certificate, DomainName, KeyId, PublicKey, Sii};
use mimi_publisher::zone::{seal, zonefile};

const T: u64 = 1_000_000;
/// Certificate TTL (the zone's `ttl`) + `propagation_delay`.
const TTL: u64 = 2;
const PROPAGATION: u64 = 3;
const LEAD: u64 = TTL + PROPAGATION;
const VALIDITY: u64 = 20;
const MARGIN: u64 = 5;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mimi-publisher")
}

fn sii(i: usize) -> String {
    format!("user{i}@example.com")
}

/// A zone directory with a root key, a bundle and a configuration.
struct Sim {
    dir: tempfile::TempDir,
    /// The first key's window start.
    start: u64,
    root: PublicKey,
    /// SII hash by discovery owner name, for every SII ever mapped.
    hashes: BTreeMap<String, mimi_proto::label::SiiHash>,
    /// The zone file's text after the last successful build.
    last_text: Option<String>,
    last_serial: Option<u32>,
    /// Assertion texts of the previous zone.
    last_assertions: BTreeSet<String>,
    /// Certificates in the previous zone, by key.
    last_certs: BTreeMap<KeyId, Certificate>,
    /// When each key's certificate was first in a zone file.
    first_published: BTreeMap<KeyId, u64>,
    /// The latest expiry of any assertion ever published, by key.
    signed_until: BTreeMap<KeyId, u64>,
    /// The active key after each build (from the ledger).
    actives: Vec<(u64, KeyId)>,
    builds: usize,
    /// (owner, assertion text, certificate text) already verified: the
    /// signatures do not change from build to build, and Ed25519 in a
    /// debug build is slow.
    verified: BTreeSet<(String, String, String)>,
}

/// What one build did, for the tests' own checks.
#[derive(Debug, Default)]
struct Built {
    /// Assertions by key.
    by_key: BTreeMap<KeyId, usize>,
    /// New assertions (not in the previous zone).
    fresh: usize,
    /// The build's stderr.
    stderr: String,
}

impl Sim {
    fn new(keys: u32, key_validity: u64, overlap: u64) -> Sim {
        Sim::starting(T, keys, key_validity, overlap)
    }

    fn starting(start: u64, keys: u32, key_validity: u64, overlap: u64) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let root = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
        mimi_publisher::input::keys::write_signing_key(&dir.path().join("root.pem"), &root)
            .unwrap();
        let root_pk = mimi_publisher::input::keys::public_key(&root).unwrap();
        let sim = Sim {
            dir,
            start,
            root: root_pk,
            hashes: BTreeMap::new(),
            last_text: None,
            last_serial: None,
            last_assertions: BTreeSet::new(),
            last_certs: BTreeMap::new(),
            first_published: BTreeMap::new(),
            signed_until: BTreeMap::new(),
            actives: Vec::new(),
            builds: 0,
            verified: BTreeSet::new(),
        };
        sim.ceremony(keys, key_validity, overlap);
        std::fs::write(
            sim.path("zone.toml"),
            format!(
                r#"origin = "example.com"
role = "home"
ttl = {TTL}
ns = ["ns1.example.com"]
mappings = "mappings.csv"
[soa]
mname = "ns1.example.com"
rname = "hostmaster.example.com"
[authority]
name = "example.com"
bundle = "bundle"
validity = "{VALIDITY}s"
resign_margin = "{MARGIN}s"
propagation_delay = "{PROPAGATION}s"
bundle_warning = "30s"
"#
            ),
        )
        .unwrap();
        sim
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs (or continues) a ceremony into `bundle/`.
    fn ceremony(&self, keys: u32, key_validity: u64, overlap: u64) {
        let out = Command::new(bin())
            .arg("ceremony")
            .arg("--root")
            .arg(self.path("root.pem"))
            .args(["--authority", "example.com", "--out"])
            .arg(self.path("bundle"))
            .args(["--keys", &keys.to_string()])
            .args(["--key-validity", &format!("{key_validity}s")])
            .args(["--overlap", &format!("{overlap}s")])
            .args(["--start", &self.start.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    /// Writes the mappings: users `range`, user 0's SSI suffixed `ssi`.
    fn mappings(&mut self, users: impl IntoIterator<Item = usize>, ssi: &str) {
        let mut s = String::new();
        let origin = DomainName::parse("example.com").unwrap();
        for i in users {
            let id = sii(i);
            s.push_str(&format!(
                "{id},mimi://chat.example.com/u/{i}{}\n",
                if i == 0 { ssi } else { "" }
            ));
            let parsed = Sii::parse(&id, None).unwrap();
            let owner = mimi_proto::name::discovery_name(&parsed.label(), &origin).unwrap();
            self.hashes.insert(owner.as_str().to_owned(), parsed.hash());
        }
        std::fs::write(self.path("mappings.csv"), s).unwrap();
    }

    fn run_build(&self, now: u64) -> Output {
        Command::new(bin())
            .arg("build")
            .arg(self.path("zone.toml"))
            .arg("--out")
            .arg(self.path("z.zone"))
            .args(["--now", &now.to_string()])
            .env("RUST_LOG", "info")
            .output()
            .unwrap()
    }

    /// Builds at `now` (must succeed) and checks every invariant.
    fn build(&mut self, now: u64) -> Built {
        let out = self.run_build(now);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "build at T+{}: {stderr}", now - T);
        let mut built = self.check(now);
        built.stderr = stderr;
        built
    }

    /// The invariants, on the zone file just written at `now`.
    fn check(&mut self, now: u64) -> Built {
        let at = format!("at T+{}", now - T);
        let file = std::fs::read_to_string(self.path("z.zone")).unwrap();
        let zone = zonefile::parse(seal::body(&file)).unwrap();
        let mut certs: BTreeMap<KeyId, Certificate> = BTreeMap::new();
        let mut assertions: Vec<(String, Assertion)> = Vec::new();
        for r in &zone.records {
            if r.text.contains(";pk=") {
                let c = Certificate::parse(&r.text).unwrap();
                assert_eq!(r.owner.as_str(), "_mimi-ma.example.com", "{at}");
                certs.insert(c.kid().clone(), c);
            } else {
                assertions.push((
                    r.owner.as_str().to_owned(),
                    Assertion::parse(&r.text).unwrap(),
                ));
            }
        }
        for kid in certs.keys() {
            self.first_published.entry(kid.clone()).or_insert(now);
        }
        let mut built = Built::default();
        let texts: BTreeSet<String> = assertions
            .iter()
            .map(|(_, a)| a.text().to_owned())
            .collect();
        for (owner, a) in &assertions {
            // (a) It verifies, as a client at `now` with no clock skew sees it.
            let c = certs
                .get(a.kid())
                .unwrap_or_else(|| panic!("{at}: no certificate for key {} in the zone", a.kid()));
            let seen = (owner.clone(), a.text().to_owned(), c.text().to_owned());
            if !self.verified.contains(&seen) {
                c.verify(&self.root).unwrap();
                let hash = self
                    .hashes
                    .get(owner)
                    .unwrap_or_else(|| panic!("{at}: unknown owner {owner}"));
                a.verify(hash, c.key())
                    .unwrap_or_else(|e| panic!("{at}: {owner}: {e}"));
                self.verified.insert(seen);
            }
            assert_eq!(c.root_kid(), &self.root.kid(), "{at}");
            assert_eq!(c.authority().as_str(), "example.com", "{at}");
            assert_eq!(a.authority().as_str(), "example.com", "{at}");
            assert!(
                c.not_before().0 <= now && now < c.expires().0,
                "{at}: certificate {} not valid",
                c.kid()
            );
            assert!(
                a.not_before().0 <= now && now < a.expires().0,
                "{at}: assertion {owner} not valid"
            );
            *built.by_key.entry(a.kid().clone()).or_default() += 1;
            // (b) A new assertion only by a key published for the lead.
            if !self.last_assertions.contains(a.text()) {
                built.fresh += 1;
                // The first zone's key is exempt: no resolver can hold a
                // certificate set of the authority without it.
                if self.actives.first().is_some_and(|(_, k)| k != a.kid()) {
                    let p = self.first_published[a.kid()];
                    assert!(
                        p + LEAD <= now,
                        "{at}: key {} signed a new assertion, its certificate is published only since T+{}",
                        a.kid(),
                        p - T
                    );
                }
            }
            // Usable by a client until the assertion or its certificate
            // ends, whichever is first.
            let until = self.signed_until.entry(a.kid().clone()).or_default();
            *until = (*until).max(a.expires().0.min(c.expires().0));
        }
        // (c) A certificate leaves only when its key's assertions expired.
        for kid in self.last_certs.keys() {
            if !certs.contains_key(kid) {
                let until = self.signed_until.get(kid).copied().unwrap_or(0);
                assert!(
                    until <= now,
                    "{at}: the certificate of key {kid} was removed, an assertion it signed is valid until T+{}",
                    until - T
                );
            }
        }
        // Old keys' assertions stay only while their certificate has the
        // margin left.
        let active = zone
            .ledger
            .active
            .clone()
            .expect("a ledger in the zone file");
        for kid in built.by_key.keys().filter(|k| **k != active) {
            assert!(
                now + MARGIN < certs[kid].expires().0,
                "{at}: assertions of the old key {kid} within its certificate's margin"
            );
        }
        // (f) The serial only increases; it changes when the content does
        // (the rollover ledger's comment lines are not DNS content: a key
        // switch that changes no record rewrites the file, serial kept).
        let content = |t: &str| -> String {
            seal::body(t)
                .lines()
                .filter(|l| !l.starts_with("; mimi-rollover "))
                .collect::<Vec<_>>()
                .join("\n")
        };
        if let (Some(prev), Some(text)) = (self.last_serial, &self.last_text) {
            if content(text) != content(&file) {
                assert!(
                    zone.soa.serial > prev,
                    "{at}: serial {} after {prev}",
                    zone.soa.serial
                );
            } else {
                assert_eq!(zone.soa.serial, prev, "{at}");
            }
        }
        self.last_serial = Some(zone.soa.serial);
        self.last_text = Some(file);
        self.last_assertions = texts;
        self.last_certs = certs;
        if self.actives.last().map(|(_, k)| k) != Some(&active) {
            self.actives.push((now, active));
        }
        self.builds += 1;
        built
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A whole 4-key bundle with overlap (40 s) ≥ assertion validity (20 s):
/// every switch re-signs progressively; at the end, a warning, then a
/// failed build that leaves the zone file as it was.
#[test]
fn a_whole_bundle_rolls_over_progressively_then_warns_and_stops() {
    // Windows [T, T+100), [T+60, T+160), [T+120, T+220), [T+180, T+280).
    let mut sim = Sim::new(4, 100, 40);
    sim.mappings(0..24, "");
    let mut warned_at = None;
    let mut last_ok = T;
    let mut now = T;
    let mut olds_at_switch = Vec::new();
    while now < T + 300 {
        // Mappings change on the way, also during a switch.
        match now - T {
            50 => sim.mappings(0..30, ""),
            61 => sim.mappings((0..1).chain(2..30), "-moved"),
            130 => sim.mappings((0..1).chain(2..30).chain(40..44), "x"),
            _ => {}
        }
        let out = sim.run_build(now);
        if !out.status.success() {
            let err = text(&out.stderr);
            assert!(
                err.contains("no key of the bundle can sign"),
                "T+{}: {err}",
                now - T
            );
            assert!(err.contains("is unchanged"), "{err}");
            break;
        }
        let switches = sim.actives.len();
        let b = sim.check(now);
        let stderr = text(&out.stderr);
        if stderr.contains("runs out at") && warned_at.is_none() {
            warned_at = Some(now);
        }
        if sim.actives.len() > switches && switches > 0 {
            // (e) At a switch, old assertions stay (progressive).
            let new = &sim.actives.last().unwrap().1;
            let old: usize = b
                .by_key
                .iter()
                .filter(|(k, _)| *k != new)
                .map(|(_, n)| n)
                .sum();
            olds_at_switch.push(old);
        }
        last_ok = now;
        now += 1;
    }
    // (d) Every key of the bundle signed in turn.
    let switched_at: Vec<u64> = sim.actives.iter().map(|(t, _)| t - T).collect();
    assert_eq!(switched_at, [0, 60, 120, 180], "{:?}", sim.actives);
    assert!(olds_at_switch.iter().all(|n| *n > 0), "{olds_at_switch:?}");
    // (g) Warned 30 s before the bundle runs out (T+275), failed after its
    // last certificate ended (T+280), the file left as it was.
    assert_eq!(warned_at, Some(T + 245));
    assert_eq!(last_ok, T + 279);
    assert_eq!(now, T + 280);
    let before = sim.last_text.clone().unwrap();
    assert!(!sim.run_build(now + 5).status.success());
    assert_eq!(std::fs::read_to_string(sim.path("z.zone")).unwrap(), before);
}

/// Overlap (15 s) shorter than the assertion validity (20 s): the old
/// key's assertions stay after the switch until its certificate comes
/// within the margin of its end, then all that remain are signed again at
/// once.
#[test]
fn a_short_overlap_re_signs_the_rest_at_once_a_margin_before_the_end() {
    // Windows [T, T+100), [T+85, T+185).
    let mut sim = Sim::new(2, 100, 15);
    sim.mappings(0..24, "");
    let mut olds = BTreeMap::new();
    for now in T..T + 120 {
        let b = sim.build(now);
        let old = sim.actives[0].1.clone();
        olds.insert(now - T, b.by_key.get(&old).copied().unwrap_or(0));
    }
    // The new key signs from its window start (T+85): the zone file, and
    // the ledger in it, change at the first build that signs something.
    assert_eq!(sim.actives.len(), 2, "{:?}", sim.actives);
    let switched = sim.actives[1].0 - T;
    assert!((85..90).contains(&switched), "{switched}");
    // Progressive from the switch until T+95 = T+100 − margin …
    assert!(olds[&switched] > 1 && olds[&94] > 1, "{olds:?}");
    // … then every remaining one at once.
    assert_eq!(olds[&95], 0, "{olds:?}");
}

/// A bundle extended by a second ceremony on the same directory keeps
/// rolling: the new key's certificate is published, waits the lead, then
/// signs; no build fails where the first bundle would have run out.
#[test]
fn a_bundle_extended_by_a_second_ceremony_keeps_rolling_without_a_gap() {
    // Windows [T, T+100), [T+60, T+160); then [T+120, T+220).
    let mut sim = Sim::new(2, 100, 40);
    sim.mappings(0..12, "");
    for now in T..T + 100 {
        sim.build(now);
    }
    sim.ceremony(1, 100, 40);
    for now in T + 100..T + 215 {
        let b = sim.build(now);
        assert!(!b.stderr.contains("ERROR"), "{}", b.stderr);
    }
    assert_eq!(sim.first_published.len(), 3);
    // Published at the first build after the ceremony, switched at its
    // window start (T+120 ≥ T+100 + lead).
    let mut firsts: Vec<u64> = sim.first_published.values().map(|t| t - T).collect();
    firsts.sort();
    assert_eq!(firsts, [0, 0, 100]);
    assert_eq!(
        sim.actives.iter().map(|(t, _)| t - T).collect::<Vec<_>>(),
        [0, 60, 120]
    );
}

/// `serve --state-dir` restarted in the middle of a rollover (real time,
/// the bundle's first window began 50 s ago, the next key's begins in
/// 10 s) continues it: the restarted server's first zone keeps the ledger
/// of the kept zone file (no second bootstrap: the certificates keep their
/// publication times), and the switch happens on schedule after the
/// restart, with the key after next published, as dig sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_restarted_mid_rollover_continues_it() {
    use mimi_publisher::serve::{self, ServeOptions};
    use std::time::{Duration, Instant};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut sim = Sim::starting(now - 50, 3, 100, 40);
    sim.mappings(0..4, "");
    let state = sim.path("state");
    let kept = state.join("example.com.zone");
    let opts = ServeOptions {
        configs: vec![sim.path("zone.toml")],
        listen: "127.0.0.1:0".parse().unwrap(),
        debounce: Duration::from_millis(200),
        state_dir: Some(state.clone()),
        ..ServeOptions::default()
    };
    let ledger = || {
        std::fs::read_to_string(&kept)
            .ok()
            .and_then(|t| zonefile::parse(seal::body(&t)).ok())
            .map(|z| z.ledger)
    };
    let until = |what: &str, limit: Duration, f: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !f() {
            assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
            std::thread::sleep(Duration::from_millis(25));
        }
    };
    let certs_served = |addr: std::net::SocketAddr| -> Vec<String> {
        let out = Command::new("dig")
            .args(["@127.0.0.1", "-p", &addr.port().to_string()])
            .args([
                "_mimi-ma.example.com",
                "TXT",
                "+short",
                "+tries=1",
                "+time=2",
            ])
            .output()
            .unwrap();
        let text = text(&out.stdout);
        let mut kids: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let rest = &l[l.find(";k=")? + 3..];
                Some(rest[..rest.find(';')?].to_owned())
            })
            .collect();
        kids.sort();
        kids
    };

    let server = serve::start(opts.clone()).await.unwrap();
    until(
        "the zone is kept with its ledger",
        Duration::from_secs(20),
        &|| ledger().is_some_and(|l| l.keys.len() == 2),
    );
    let first = ledger().unwrap();
    let k0 = first.active.clone().unwrap();
    let k1 = first.keys.keys().find(|k| **k != k0).unwrap().clone();
    let mut both = vec![k0.to_string(), k1.to_string()];
    both.sort();
    assert_eq!(certs_served(server.local_addr()), both);
    server.shutdown().await.unwrap();

    let server = serve::start(opts.clone()).await.unwrap();
    let again = ledger().unwrap();
    for k in [&k0, &k1] {
        assert_eq!(
            again.get(k).published,
            first.get(k).published,
            "key {k}: publication time kept over the restart:\n{first:?}\n{again:?}"
        );
    }
    assert_eq!(again.active.as_ref(), Some(&k0));
    assert_eq!(certs_served(server.local_addr()), both);
    // The switch to key 1 (its window starts at now + 10) happens after
    // the restart, by the server's own timer, and publishes key 2.
    until("the switch to key 1", Duration::from_secs(40), &|| {
        ledger().is_some_and(|l| l.active.as_ref() == Some(&k1))
    });
    let after = ledger().unwrap();
    assert_eq!(after.get(&k1).published, first.get(&k1).published);
    assert_eq!(after.keys.len(), 3, "{after:?}");
    until(
        "key 2's certificate is served",
        Duration::from_secs(10),
        &|| certs_served(server.local_addr()).len() == 3,
    );
    server.shutdown().await.unwrap();
}
