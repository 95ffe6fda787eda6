//! Reload and restart never lose published data: files rewritten in place,
//! half-written and replaced key files, the shrink guard, and the kept
//! zones of a state directory (written before they are served, sealed, in
//! a directory only we may write). Every test runs a real server on
//! loopback and synchronises on its reload events, never on sleeps.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use mimi_proto::name::discovery_name;
use mimi_proto::{Assertion, DomainName, PublicKey, Sii};
use mimi_publisher::serve::{self, ReloadEvent, RunningServer, ServeError, ServeOptions};
use mimi_publisher::Zone;
use tokio::sync::broadcast;

/// Every test finishes well within this, or fails instead of hanging.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A bound for one reload event to arrive (a failure bound, not a wait).
const EVENT_BOUND: Duration = Duration::from_secs(10);

struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
    mappings: PathBuf,
    key_path: PathBuf,
    origin: DomainName,
}

fn config_text(extra: &str) -> String {
    format!(
        r#"
origin = "example.com"
role = "home"
ttl = 300
ns = ["ns1.example.com"]
mappings = "mappings.csv"
{extra}
[soa]
mname = "ns1.example.com"
rname = "hostmaster.example.com"

[authority]
name = "example.com"
key = "signing.pem"
"#
    )
}

fn line(i: usize) -> String {
    format!("user{i}@example.com,mimi://chat.example.org/u/user{i}\n")
}

fn lines(range: std::ops::Range<usize>) -> String {
    range.map(line).collect()
}

impl Fixture {
    fn new(mappings: &str, extra_config: &str) -> (Self, SigningKey) {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("zone.toml");
        std::fs::write(&config, config_text(extra_config)).unwrap();
        let mappings_path = dir.path().join("mappings.csv");
        std::fs::write(&mappings_path, mappings).unwrap();
        let key = mimi_publisher::input::keys::generate();
        let key_path = dir.path().join("signing.pem");
        mimi_publisher::input::keys::write_signing_key(&key_path, &key).unwrap();
        (
            Fixture {
                dir,
                config,
                mappings: mappings_path,
                key_path,
                origin: DomainName::parse("example.com").unwrap(),
            },
            key,
        )
    }

    fn options(&self) -> ServeOptions {
        ServeOptions {
            configs: vec![self.config.clone()],
            listen: "127.0.0.1:0".parse().unwrap(),
            debounce: Duration::from_millis(100),
            state_dir: None,
            ..ServeOptions::default()
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn kept(&self) -> PathBuf {
        self.state_dir().join("example.com.zone")
    }

    /// Rewrites the mappings file in place: truncate, then write `text`
    /// (closing the file, which is one event).
    fn rewrite_in_place(&self, text: &str) {
        let mut f = std::fs::File::create(&self.mappings).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn append(&self, path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
}

/// Waits for the next reload event that satisfies `pred`.
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

/// The SIIs of `user{i}` for `range`, by discovery name.
fn owners(range: std::ops::Range<usize>, origin: &DomainName) -> HashMap<String, Sii> {
    range
        .map(|i| {
            let sii = Sii::parse(&format!("user{i}@example.com"), None).unwrap();
            (
                discovery_name(&sii.label(), origin)
                    .unwrap()
                    .as_str()
                    .to_owned(),
                sii,
            )
        })
        .collect()
}

/// How many of the zone's assertions verify under `key` (each against the
/// SII its owner name is for), and how many there are.
fn verifying(zone: &Zone, siis: &HashMap<String, Sii>, key: &SigningKey) -> (usize, usize) {
    let pk: PublicKey = mimi_publisher::input::keys::public_key(key).unwrap();
    let mut ok = 0;
    let mut all = 0;
    for r in &zone.records {
        let Some(sii) = siis.get(r.owner.as_str()) else {
            continue;
        };
        all += 1;
        let a = Assertion::parse(&r.text).unwrap();
        if a.verify(&sii.hash(), &pk).is_ok() {
            ok += 1;
        }
    }
    (ok, all)
}

async fn shutdown(server: RunningServer) {
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown within 5 s")
        .unwrap();
}

/// `(sleep 2; cat all.csv) > mappings.csv`, step by step: the truncated
/// file, then a half-written one, then the complete one. None of them is
/// published, the serial never moves, nothing is re-signed, and the kept
/// zone stays the one served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_rewritten_in_place_is_never_published_half_written() {
    let all = lines(0..40);
    let (f, key) = Fixture::new(&all, "");
    tokio::time::timeout(TEST_TIMEOUT, async {
        let opts = ServeOptions {
            state_dir: Some(f.state_dir()),
            ..f.options()
        };
        let server = serve::start(opts).await.unwrap();
        let mut events = server.subscribe();
        let zone0 = server.zone(&f.origin).unwrap();
        let serial0 = zone0.soa.serial;
        let kept0 = std::fs::read_to_string(f.kept()).unwrap();

        // Truncated: the empty file is well-formed, but would empty the
        // zone.
        f.rewrite_in_place("");
        let e = next_event(&mut events, "truncation refused", |e| !e.ok).await;
        assert!(
            e.message.contains("would remove 40 of the 40 published assertions"),
            "{}",
            e.message
        );
        assert_eq!(e.serial, serial0);
        assert_eq!(server.serial(&f.origin), Some(serial0));

        // Half written, cut inside a line: incomplete, waited for.
        let cut = all.len() / 2 + 7;
        f.append(&f.mappings, &all[..cut]);
        let e = next_event(&mut events, "half-written file waited for", |e| {
            e.message.contains("does not end with a newline")
        })
        .await;
        assert!(!e.ok && !e.changed);
        let line = all[..cut].matches('\n').count() + 1;
        assert!(
            e.message.contains(&format!("mappings.csv:{line}: does not end with a newline: the file may still be being written; add a final newline")),
            "{}",
            e.message
        );
        assert_eq!(server.serial(&f.origin), Some(serial0));

        // Complete again: the same content, so the same zone.
        f.append(&f.mappings, &all[cut..]);
        let e = next_event(&mut events, "complete file", |e| e.ok).await;
        assert!(!e.changed, "{e:?}");
        assert_eq!(e.serial, serial0);
        let zone1 = server.zone(&f.origin).unwrap();
        assert_eq!(zone1.records, zone0.records, "nothing re-signed");
        let (ok, n) = verifying(&zone1, &owners(0..40, &f.origin), &key);
        assert_eq!((ok, n), (40, 40));
        assert_eq!(std::fs::read_to_string(f.kept()).unwrap(), kept0);
        shutdown(server).await;
    })
    .await
    .expect("test timed out");
}

/// The guard's threshold: 10% by default, `max_shrink` in the zone
/// configuration, `--allow-shrink` for the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shrink_guard_holds_back_large_removals_until_confirmed() {
    let (f, _key) = Fixture::new(&lines(0..20), "");
    tokio::time::timeout(TEST_TIMEOUT, async {
        let server = serve::start(f.options()).await.unwrap();
        let mut events = server.subscribe();
        let serial0 = server.serial(&f.origin).unwrap();
        // 2 of 20 (10%): allowed.
        f.rewrite_in_place(&lines(2..20));
        let e = next_event(&mut events, "10% removal", |e| e.ok && e.changed).await;
        assert!(e.serial > serial0);
        // 3 of 18 (16.7%): held back, the 18 stay served.
        f.rewrite_in_place(&lines(5..20));
        let e = next_event(&mut events, "16.7% removal", |e| !e.ok).await;
        assert!(
            e.message
                .contains("would remove 3 of the 18 published assertions (16.7%, 15 left), more than max_shrink = 10% allows"),
            "{}",
            e.message
        );
        assert_eq!(server.zone(&f.origin).unwrap().records.len(), 18);
        // The configuration confirms it.
        std::fs::write(&f.config, config_text("max_shrink = \"20%\"")).unwrap();
        let e = next_event(&mut events, "removal under max_shrink = 20%", |e| {
            e.ok && e.changed
        })
        .await;
        assert_eq!(server.zone(&f.origin).unwrap().records.len(), 15);
        // Emptying is refused whatever the limit (short of 100%).
        std::fs::write(&f.config, config_text("max_shrink = \"99%\"")).unwrap();
        next_event(&mut events, "config change", |e| e.ok).await;
        f.rewrite_in_place("# nobody\n");
        let e2 = next_event(&mut events, "emptying", |e| !e.ok).await;
        assert!(e2.message.contains("(100.0%, 0 left)"), "{}", e2.message);
        assert_eq!(server.serial(&f.origin), Some(e.serial));
        shutdown(server).await;

        // A server started with --allow-shrink installs it.
        let (f, _key) = Fixture::new(&lines(0..20), "");
        let server = serve::start(ServeOptions {
            allow_shrink: true,
            ..f.options()
        })
        .await
        .unwrap();
        let mut events = server.subscribe();
        f.rewrite_in_place("");
        next_event(&mut events, "confirmed emptying", |e| e.ok && e.changed).await;
        assert!(server.zone(&f.origin).unwrap().records.is_empty());
        shutdown(server).await;
    })
    .await
    .expect("test timed out");
}

/// What `tests/topology.rs` does to rotate a key (remove, then create and
/// fill), at once and step by step: the zone ends signed with the new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_removed_and_recreated_ends_with_the_new_key() {
    let (f, old_key) = Fixture::new(&lines(0..10), "");
    let siis = owners(0..10, &f.origin);
    tokio::time::timeout(TEST_TIMEOUT, async {
        let server = serve::start(f.options()).await.unwrap();
        let mut events = server.subscribe();
        let zone = server.zone(&f.origin).unwrap();
        assert_eq!(verifying(&zone, &siis, &old_key), (10, 10));

        // Step by step: removed (the rebuild fails, the old zone stays),
        // then recreated.
        std::fs::remove_file(&f.key_path).unwrap();
        let e = next_event(&mut events, "key missing", |e| !e.ok).await;
        assert!(e.message.contains("signing.pem"), "{}", e.message);
        assert_eq!(
            verifying(&server.zone(&f.origin).unwrap(), &siis, &old_key),
            (10, 10)
        );
        let new_key = mimi_publisher::input::keys::generate();
        mimi_publisher::input::keys::write_signing_key(&f.key_path, &new_key).unwrap();
        let e = next_event(&mut events, "new key", |e| e.ok && e.changed).await;
        assert_eq!(server.serial(&f.origin), Some(e.serial));
        assert_eq!(
            verifying(&server.zone(&f.origin).unwrap(), &siis, &new_key),
            (10, 10)
        );

        // At once, as the harness does: remove and create in a burst.
        // Whatever rebuilds the burst causes, the last one reads the
        // final file.
        let newer_key = mimi_publisher::input::keys::generate();
        std::fs::remove_file(&f.key_path).unwrap();
        mimi_publisher::input::keys::write_signing_key(&f.key_path, &newer_key).unwrap();
        let zone_is_newer = |server: &RunningServer| {
            verifying(&server.zone(&f.origin).unwrap(), &siis, &newer_key) == (10, 10)
        };
        while !zone_is_newer(&server) {
            next_event(&mut events, "a rebuild after the burst", |_| true).await;
        }
        shutdown(server).await;
    })
    .await
    .expect("test timed out");
}

/// A key file written in two steps (half the PEM, then the rest): the
/// half is refused, the whole is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_written_in_two_steps_ends_with_the_new_key() {
    use std::os::unix::fs::OpenOptionsExt;
    let (f, _old_key) = Fixture::new(&lines(0..10), "");
    let siis = owners(0..10, &f.origin);
    tokio::time::timeout(TEST_TIMEOUT, async {
        let server = serve::start(f.options()).await.unwrap();
        let mut events = server.subscribe();
        let serial0 = server.serial(&f.origin).unwrap();
        let new_key = mimi_publisher::input::keys::generate();
        let scratch = f.dir.path().join("scratch.pem");
        mimi_publisher::input::keys::write_signing_key(&scratch, &new_key).unwrap();
        let pem = std::fs::read(&scratch).unwrap();
        let (first, rest) = pem.split_at(pem.len() / 2);

        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&f.key_path)
            .unwrap();
        file.write_all(first).unwrap();
        file.flush().unwrap();
        let e = next_event(&mut events, "half a key", |e| !e.ok).await;
        assert!(e.message.contains("signing.pem"), "{}", e.message);
        assert_eq!(server.serial(&f.origin), Some(serial0));
        file.write_all(rest).unwrap();
        drop(file);
        let e = next_event(&mut events, "the whole key", |e| e.ok && e.changed).await;
        assert!(e.serial > serial0);
        assert_eq!(
            verifying(&server.zone(&f.origin).unwrap(), &siis, &new_key),
            (10, 10)
        );
        shutdown(server).await;
    })
    .await
    .expect("test timed out");
}

/// At start an incomplete input is an error naming the file and line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_from_an_incomplete_file_is_an_error() {
    let (f, _key) = Fixture::new(lines(0..3).trim_end(), "");
    let e = serve::start(f.options()).await.unwrap_err();
    assert!(matches!(e, ServeError::Build { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("mappings.csv:3: does not end with a newline"),
        "{msg}"
    );
}

/// The kept zone is on disk before its serial is served: when the reload
/// event arrives (after the swap), the file already holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kept_zone_is_written_before_it_is_served() {
    let (f, _key) = Fixture::new(&lines(0..10), "");
    tokio::time::timeout(TEST_TIMEOUT, async {
        let opts = ServeOptions {
            state_dir: Some(f.state_dir()),
            ..f.options()
        };
        let server = serve::start(opts).await.unwrap();
        let kept_serial = || {
            mimi_publisher::zone::zonefile::read_serial(&std::fs::read_to_string(f.kept()).unwrap())
        };
        assert_eq!(kept_serial(), server.serial(&f.origin));
        let mut events = server.subscribe();
        for n in 11..16 {
            f.append(&f.mappings, &line(n));
            let e = next_event(&mut events, "append", |e| e.ok && e.changed).await;
            assert_eq!(kept_serial(), Some(e.serial));
        }
        shutdown(server).await;
    })
    .await
    .expect("test timed out");
}

/// A kept zone changed by someone else (a signature replaced) lends
/// nothing but its serial: every served record verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_kept_zone_is_not_reused() {
    let (f, key) = Fixture::new(&lines(0..10), "");
    let siis = owners(0..10, &f.origin);
    tokio::time::timeout(TEST_TIMEOUT, async {
        let opts = ServeOptions {
            state_dir: Some(f.state_dir()),
            ..f.options()
        };
        let server = serve::start(opts.clone()).await.unwrap();
        let serial = server.serial(&f.origin).unwrap();
        shutdown(server).await;
        // Replace one signature by another record's (well-formed, wrong).
        let text = std::fs::read_to_string(f.kept()).unwrap();
        let sigs: Vec<&str> = text
            .match_indices(";sig=")
            .map(|(i, _)| &text[i + 5..i + 5 + 86])
            .collect();
        let tampered = text.replacen(sigs[0], sigs[1], 1);
        assert_ne!(tampered, text);
        std::fs::write(f.kept(), &tampered).unwrap();

        let server = serve::start(opts.clone()).await.unwrap();
        let zone = server.zone(&f.origin).unwrap();
        assert_eq!(verifying(&zone, &siis, &key), (10, 10));
        // Only the serial was taken from it (and a new one follows).
        assert!(zone.soa.serial > serial, "{} > {serial}", zone.soa.serial);
        shutdown(server).await;
        // Now kept afresh and sealed: the next start reuses it whole.
        let server = serve::start(opts).await.unwrap();
        assert_eq!(server.zone(&f.origin).unwrap().soa.serial, zone.soa.serial);
        assert_eq!(server.zone(&f.origin).unwrap().records, zone.records);
        shutdown(server).await;
    })
    .await
    .expect("test timed out");
}

/// Restarting after the mappings were cut down: a kept zone whose seal
/// verifies stays served (as a running server keeps its zone); with
/// `allow_shrink` the cut-down zone is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_install_a_shrunken_zone_unconfirmed() {
    let (f, _key) = Fixture::new(&lines(0..10), "");
    tokio::time::timeout(TEST_TIMEOUT, async {
        let opts = ServeOptions {
            state_dir: Some(f.state_dir()),
            ..f.options()
        };
        let server = serve::start(opts.clone()).await.unwrap();
        let zone = server.zone(&f.origin).unwrap();
        shutdown(server).await;
        std::fs::write(&f.mappings, lines(0..2)).unwrap();
        let server = serve::start(opts.clone()).await.unwrap();
        let served = server.zone(&f.origin).unwrap();
        assert_eq!(served.records, zone.records);
        assert_eq!(served.soa.serial, zone.soa.serial);
        shutdown(server).await;
        // A kept zone that is not ours cannot stand in: an error.
        let text = std::fs::read_to_string(f.kept()).unwrap();
        std::fs::write(f.kept(), mimi_publisher::zone::seal::body(&text)).unwrap();
        let e = serve::start(opts.clone()).await.unwrap_err();
        assert!(matches!(e, ServeError::Shrink { .. }), "{e}");
        assert!(e.to_string().contains("would remove 8 of the 10"), "{e}");
        // Confirmed.
        let server = serve::start(ServeOptions {
            allow_shrink: true,
            ..opts
        })
        .await
        .unwrap();
        assert_eq!(server.zone(&f.origin).unwrap().records.len(), 2);
        shutdown(server).await;
    })
    .await
    .expect("test timed out");
}

/// A state directory others may write, or that is not ours, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (f, _key) = Fixture::new(&lines(0..2), "");
    std::fs::create_dir(f.state_dir()).unwrap();
    std::fs::set_permissions(f.state_dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = serve::start(ServeOptions {
        state_dir: Some(f.state_dir()),
        ..f.options()
    })
    .await
    .unwrap_err();
    assert!(matches!(e, ServeError::State(_)), "{e}");
    assert!(e.to_string().contains("chmod go-w"), "{e}");
}
