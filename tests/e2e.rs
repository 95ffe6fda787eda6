//! End-to-end tests: the publisher's real authoritative server on an
//! ephemeral loopback port, and the resolver library (and both CLIs) talking
//! real DNS to it over UDP and TCP.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mimi_e2e::world::{World, EXAMPLE_MAPPINGS};
use mimi_e2e::{bin, eventually};
use mimi_proto::{DomainName, Sii};
use mimi_resolver::{
    LookupError, NameServers, Outcome, Resolution, Resolver, ResolverOptions, TrustStore,
};

fn sii(s: &str) -> Sii {
    Sii::parse(s, None).unwrap()
}

fn ssis(r: &Resolution) -> Vec<String> {
    r.verified
        .iter()
        .map(|v| v.ssi.as_str().to_owned())
        .collect()
}

fn reasons(r: &Resolution) -> String {
    r.rejected
        .iter()
        .map(|x| {
            format!(
                "[{:?}] {}",
                x.authority.as_ref().map(|a| a.to_string()),
                x.reason
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_in_home_zone_vouched_for_by_two_authorities() {
    let w = World::new();
    let server = w.serve().await;
    let r = w
        .resolver(server.local_addr(), 1)
        .lookup(&sii("Alice@Example.COM"))
        .await
        .unwrap();
    assert_eq!(r.outcome(), Outcome::Verified, "{}", reasons(&r));
    let alice = r
        .verified
        .iter()
        .find(|v| v.ssi.as_str() == "mimi://chat.example.com/u/alice")
        .expect("alice verified");
    let auths: Vec<String> = alice.authorities.iter().map(|a| a.to_string()).collect();
    assert_eq!(auths, vec!["example.com", "ma.example.net"]);
    assert!(alice.expires > w.now);
    // The rogue authority's record is found and rejected, not returned.
    assert!(!ssis(&r).iter().any(|s| s.contains("rogue")));
    let rogue = r
        .rejected
        .iter()
        .find(|x| x.record.contains("a=rogue.example"))
        .expect("rogue record rejected");
    assert!(rogue.reason.contains("trust store"), "{}", rogue.reason);

    // With min_authorities = 2 alice still verifies; bob, vouched for by
    // only the provider, does not.
    let strict = w.resolver(server.local_addr(), 2);
    let r = strict.lookup(&sii("alice@example.com")).await.unwrap();
    assert_eq!(ssis(&r), vec!["mimi://chat.example.com/u/alice"]);
    let r = strict.lookup(&sii("bob@example.com")).await.unwrap();
    assert_eq!(r.outcome(), Outcome::Rejected, "{}", reasons(&r));
    assert!(r.verified.is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_replayed_under_another_sii_is_rejected() {
    let w = World::new();
    let server = w.serve().await;
    let r = w
        .resolver(server.local_addr(), 1)
        .lookup(&sii("bob@example.com"))
        .await
        .unwrap();
    assert_eq!(
        ssis(&r),
        vec!["mimi://chat.example.com/u/bob"],
        "{}",
        reasons(&r)
    );
    let replay = r
        .rejected
        .iter()
        .find(|x| x.record.contains("a=ma.example.net"))
        .expect("replayed record rejected");
    assert!(replay.reason.contains("signature"), "{}", replay.reason);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_asserting_outside_its_scope_is_rejected() {
    let w = World::new();
    let server = w.serve().await;
    let r = w
        .resolver(server.local_addr(), 1)
        .lookup(&sii("dave@example.com"))
        .await
        .unwrap();
    assert_eq!(r.outcome(), Outcome::Rejected);
    assert_eq!(r.rejected.len(), 1, "{}", reasons(&r));
    assert!(
        r.rejected[0].reason.contains("scope"),
        "{}",
        r.rejected[0].reason
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_number_via_telephone_root_and_distribution_zone() {
    let w = World::new();
    let server = w.serve().await;
    let r = w
        .resolver(server.local_addr(), 1)
        .lookup(&Sii::parse("06 1234 5678", Some("IT".parse().unwrap())).unwrap())
        .await
        .unwrap();
    let mut got = ssis(&r);
    got.sort();
    assert_eq!(
        got,
        vec!["im:bob@talk.example.net", "mimi://chat.example.org/u/bob"],
        "{}",
        reasons(&r)
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r
        .names
        .iter()
        .any(|n| n.as_str().ends_with("._mimi.9.3.e164.mimi.example")));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_zone_answers_when_the_home_zone_fails() {
    let w = World::new();
    let server = w.serve().await;
    // mail.example is not served here: the home source fails (REFUSED),
    // the distribution zone answers, and the failure is reported.
    let r = w
        .resolver(server.local_addr(), 1)
        .lookup(&sii("carol@mail.example"))
        .await
        .unwrap();
    assert_eq!(ssis(&r), vec!["mimi://chat.example.org/u/carol"]);
    assert_eq!(r.verified[0].authorities[0].as_str(), "chat.example.org");
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    // An SII nobody published: not found, not an error.
    let r = w
        .resolver(server.local_addr(), 1)
        .lookup(&sii("nobody@example.com"))
        .await
        .unwrap();
    assert_eq!(r.outcome(), Outcome::NotFound);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_records_are_rejected() {
    let w = World::new();
    let server = w.serve().await;
    let later = w.now.plus(60 * 86400);
    let r = w
        .resolver(server.local_addr(), 1)
        .lookup_at(&sii("alice@example.com"), later)
        .await
        .unwrap();
    assert_eq!(r.outcome(), Outcome::Rejected);
    assert!(r.rejected.len() >= 2);
    assert!(
        r.rejected
            .iter()
            .filter(|x| !x.record.contains("a=rogue.example"))
            .all(|x| x.reason.contains("expire")),
        "{}",
        reasons(&r)
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_that_is_down_is_a_prompt_dns_error() {
    let w = World::new();
    // A port nothing listens on: bind, note, release.
    let addr = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let started = Instant::now();
    let res = w.resolver(addr, 1).lookup(&sii("alice@example.com")).await;
    assert!(matches!(res, Err(LookupError::Dns(_))), "{res:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_adds_and_removes_mappings_while_serving() {
    let w = World::new();
    let server = w.serve_with(true).await;
    let resolver = w.resolver(server.local_addr(), 1);
    let origin = DomainName::parse("example.com").unwrap();
    let serial0 = server.serial(&origin).unwrap();
    assert_eq!(
        resolver
            .lookup(&sii("erin@example.com"))
            .await
            .unwrap()
            .outcome(),
        Outcome::NotFound
    );

    let written = Instant::now();
    w.ws.write(
        "example.com/mappings.csv",
        &format!(
            "{}erin@example.com,mimi://chat.example.com/u/erin\n",
            EXAMPLE_MAPPINGS.replace("bob@example.com,mimi://chat.example.com/u/bob\n", "")
        ),
    );
    let fresh = w.resolver(server.local_addr(), 1);
    eventually(Duration::from_secs(10), "erin to be served", || async {
        let r = fresh.lookup(&sii("erin@example.com")).await.ok()?;
        (r.outcome() == Outcome::Verified).then_some(())
    })
    .await;
    eprintln!("mapping added → served after {:?}", written.elapsed());
    let r = w
        .resolver(server.local_addr(), 1)
        .lookup(&sii("bob@example.com"))
        .await
        .unwrap();
    // bob's provider record is gone; only the replayed (invalid) record remains.
    assert!(r.verified.is_empty(), "{:?}", ssis(&r));
    assert!(server.serial(&origin).unwrap() > serial0);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_mappings_file_leaves_the_old_zone_served() {
    let w = World::new();
    let server = w.serve().await;
    let mut events = server.subscribe();
    let origin = DomainName::parse("example.com").unwrap();
    let serial0 = server.serial(&origin).unwrap();
    w.ws.write(
        "example.com/mappings.csv",
        &format!("{EXAMPLE_MAPPINGS}not-an-sii,mimi://chat.example.com/u/x\n"),
    );
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = events.recv().await.unwrap();
            if e.origin == origin {
                return e;
            }
        }
    })
    .await
    .expect("a reload event");
    assert!(!event.ok);
    assert!(
        event.message.contains("mappings.csv:5"),
        "{}",
        event.message
    );
    assert_eq!(server.serial(&origin), Some(serial0));
    let r = w
        .resolver(server.local_addr(), 1)
        .lookup(&sii("alice@example.com"))
        .await
        .unwrap();
    assert_eq!(r.outcome(), Outcome::Verified);
    // Fixing the file is picked up again.
    w.ws.write(
        "example.com/mappings.csv",
        &format!("{EXAMPLE_MAPPINGS}frank@example.com,mimi://chat.example.com/u/frank\n"),
    );
    let resolver = w.resolver(server.local_addr(), 1);
    eventually(Duration::from_secs(10), "frank to be served", || async {
        let r = resolver.lookup(&sii("frank@example.com")).await.ok()?;
        (r.outcome() == Outcome::Verified).then_some(())
    })
    .await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_key_rotation_with_two_certificates_never_fails_a_lookup() {
    let w = World::new();
    let server = w.serve().await;
    let addr = server.local_addr();
    let origin = DomainName::parse("example.com").unwrap();
    let day = 86400;
    let old_cert = w
        .provider
        .certify(&w.provider_signing, w.now.minus(day), 90);
    let new_key = mimi_publisher::input::keys::generate();
    let new_cert = w.provider.certify(&new_key, w.now.minus(60), 90);
    let new_kid = mimi_proto::PublicKey::from_verifying_key(new_key.verifying_key())
        .unwrap()
        .kid();

    // A lookup loop runs throughout the rotation; every lookup must verify.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looper = {
        let stop = stop.clone();
        let trust = w.trust(1);
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // A fresh resolver each time: no certificate cache hides a gap.
                let mut o = ResolverOptions::new(TrustStore::from_toml_str(&trust, "t").unwrap());
                o.name_servers = NameServers::Explicit(vec![addr]);
                let r = Resolver::new(o)
                    .unwrap()
                    .lookup(&sii("bob@example.com"))
                    .await
                    .unwrap();
                assert_eq!(
                    r.outcome(),
                    Outcome::Verified,
                    "lookup {n} during rotation: {}",
                    reasons(&r)
                );
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            n
        })
    };
    let wait_serial = |after: u32| {
        let server = &server;
        let origin = &origin;
        async move {
            eventually(Duration::from_secs(10), "a new serial", || async {
                server.serial(origin).filter(|s| *s != after)
            })
            .await
        }
    };
    // 1. Publish the new certificate next to the old one.
    let s0 = server.serial(&origin).unwrap();
    w.ws.write(
        "example.com/signing.cert",
        &format!("{old_cert}\n{new_cert}\n"),
    );
    let s1 = wait_serial(s0).await;
    // 2. Re-sign with the new key.
    w.ws.write_key("example.com/signing.pem", &new_key);
    let s2 = wait_serial(s1).await;
    let zone = server.zone(&origin).unwrap();
    let bob_owner = mimi_proto::name::discovery_name(&sii("bob@example.com").label(), &origin);
    let bob_rec = zone
        .records
        .iter()
        .find(|r| Ok(&r.owner) == bob_owner.as_ref())
        .unwrap();
    assert!(
        bob_rec.text.contains(&format!("k={new_kid}")),
        "{}",
        bob_rec.text
    );
    // 3. Remove the old certificate.
    w.ws.write("example.com/signing.cert", &format!("{new_cert}\n"));
    let _s3 = wait_serial(s2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let n = looper
        .await
        .expect("no failed verification during rotation");
    assert!(n > 3, "only {n} lookups ran");
    server.shutdown().await.unwrap();
}

/// The real binaries: `mimi-publisher serve` as a process, `mimi-resolve`
/// as a process, exit codes and JSON, and a clean stop on SIGTERM.
#[test]
fn binaries_serve_resolve_and_stop_on_sigterm() {
    let w = World::new();
    let trust = w.ws.write("trust.toml", &w.trust(1));
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(bin("mimi-publisher"))
        .arg("serve")
        .args(w.configs())
        .args(["--listen", &listen])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lookup = |who: &str| {
        let out = std::process::Command::new(bin("mimi-resolve"))
            .args(["lookup", who, "--json", "--trust"])
            .arg(&trust)
            .args([
                "--server",
                &listen,
                "--zone",
                "dir.chat.example.org",
                "--tel-root",
                "e164.mimi.example",
                "--timeout",
                "1s",
            ])
            .output()
            .unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code(), json)
    };
    let started = Instant::now();
    let (code, json) = loop {
        let (code, json) = lookup("alice@example.com");
        if code != Some(3) || started.elapsed() > Duration::from_secs(30) {
            break (code, json);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["outcome"], "verified");
    assert_eq!(json["canonical"], "mailto:alice@example.com");
    assert_eq!(
        json["verified"][0]["ssi"],
        "mimi://chat.example.com/u/alice"
    );
    assert_eq!(
        json["verified"][0]["authorities"],
        serde_json::json!(["example.com", "ma.example.net"])
    );
    let (code, json) = lookup("dave@example.com");
    assert_eq!(code, Some(4), "{json}");
    assert_eq!(json["outcome"], "rejected");
    assert!(json["rejected"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("scope"));
    let (code, json) = lookup("nobody@example.com");
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(json["outcome"], "not_found");
    let (code, _) = lookup("not an address");
    assert_eq!(code, Some(2));

    // `batch`: many SIIs, one JSON line each, in input order.
    let input = w.ws.write("siis.txt", "# address book\nalice@example.com\n\ndave@example.com\nnot an address\n+39 06 1234 5678\nnobody@example.com\n");
    let out = std::process::Command::new(bin("mimi-resolve"))
        .arg("batch")
        .arg(&input)
        .arg("--trust")
        .arg(&trust)
        .args([
            "--server",
            &listen,
            "--zone",
            "dir.chat.example.org",
            "--tel-root",
            "e164.mimi.example",
            "--concurrency",
            "3",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["input"].as_str().unwrap(), l["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("alice@example.com", "verified"),
            ("dave@example.com", "rejected"),
            ("not an address", "bad_input"),
            ("+39 06 1234 5678", "verified"),
            ("nobody@example.com", "not_found"),
        ]
    );
    assert_eq!(lines[3]["canonical"], "tel:+390612345678");
    assert_eq!(
        lines[0]["verified"][0]["authorities"],
        serde_json::json!(["example.com", "ma.example.net"])
    );

    // SIGTERM: the server stops cleanly, promptly, with success.
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mimi-publisher did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

/// `build` and `check` as a zone operator runs them.
#[test]
fn build_is_deterministic_and_check_locates_problems() {
    let w = World::new();
    let cfg = w.ws.path("example.com/zone.toml");
    let out_a = w.ws.path("a.zone");
    let out_b = w.ws.path("b.zone");
    let run = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(bin("mimi-publisher"))
            .args(args)
            .output()
            .unwrap()
    };
    let build = |out: &PathBuf| {
        run(&[
            "build".as_ref(),
            cfg.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ])
    };
    assert!(build(&out_a).status.success());
    assert!(build(&out_b).status.success());
    let a = std::fs::read_to_string(&out_a).unwrap();
    assert_eq!(
        a,
        std::fs::read_to_string(&out_b).unwrap(),
        "two builds of the same input differ"
    );
    // Rebuilding unchanged input keeps the file and serial.
    assert!(build(&out_a).status.success());
    assert_eq!(a, std::fs::read_to_string(&out_a).unwrap());
    let serial = |t: &str| mimi_publisher::zone::zonefile::read_serial(t).unwrap();
    // A change increases the serial.
    w.ws.write(
        "example.com/mappings.csv",
        &format!("{EXAMPLE_MAPPINGS}gina@example.com,mimi://chat.example.com/u/gina\n"),
    );
    assert!(build(&out_a).status.success());
    let a2 = std::fs::read_to_string(&out_a).unwrap();
    assert!(serial(&a2) > serial(&a));
    assert!(a2.contains("_mimi-ma.example.com. 1 IN TXT \"v=mimi1;a=example.com;"));
    // A broken input: exit 1, file:line named, the zone file untouched.
    w.ws.write(
        "example.com/mappings.csv",
        &format!("{EXAMPLE_MAPPINGS}bob@other.org,mimi://chat.example.com/u/x\n"),
    );
    let out = build(&out_a);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mappings.csv:5:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(a2, std::fs::read_to_string(&out_a).unwrap());
    let out = run(&["check".as_ref(), cfg.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("mappings.csv:5:"));
}

/// A rotation in the wrong order, re-signing with a key before its
/// certificate is published, is refused while serving: the previous zone,
/// whose assertions clients accept, stays served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_with_an_uncertified_key_keeps_the_old_zone_served() {
    let w = World::new();
    let server = w.serve().await;
    let mut events = server.subscribe();
    let origin = DomainName::parse("example.com").unwrap();
    let serial0 = server.serial(&origin).unwrap();
    let new_key = mimi_publisher::input::keys::generate();
    let new_kid = mimi_proto::PublicKey::from_verifying_key(new_key.verifying_key())
        .unwrap()
        .kid();
    // Swap the key file atomically (a new file renamed over the old one).
    let staged = w.ws.write_key("example.com/next.pem", &new_key);
    std::fs::rename(&staged, w.ws.path("example.com/signing.pem")).unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = events.recv().await.unwrap();
            if e.origin == origin && !e.ok {
                return e;
            }
        }
    })
    .await
    .expect("a failed reload");
    assert!(
        refused.message.contains(&format!(
            "signing key {new_kid} of authority example.com is not usable"
        )),
        "{}",
        refused.message
    );
    assert_eq!(server.serial(&origin), Some(serial0));
    let r = w
        .resolver(server.local_addr(), 1)
        .lookup(&sii("alice@example.com"))
        .await
        .unwrap();
    assert_eq!(r.outcome(), Outcome::Verified, "{:?}", r.rejected);
    server.shutdown().await.unwrap();
}

/// The example world as the bindings and gateway tests see it: the real
/// `mimi-publisher serve` binary, and `mimi-resolve lookup --json` giving
/// the outcomes `mimi_e2e::world` documents.
#[test]
fn the_served_example_world_gives_the_documented_outcomes() {
    let w = World::new();
    let trust = w.write_trust(1);
    let (_serve, addr) = w.serve_daemon();
    for (sii, outcome, ssis) in [
        ("alice@example.com", "verified", 1),
        ("bob@example.com", "verified", 1),
        ("carol@mail.example", "verified", 1),
        ("+39 06 1234 5678", "verified", 2),
        ("dave@example.com", "rejected", 0),
        ("nobody@example.com", "not_found", 0),
    ] {
        let out = std::process::Command::new(bin("mimi-resolve"))
            .args(["lookup", sii, "--json", "--trust"])
            .arg(&trust)
            .args(["--server", &addr.to_string()])
            .args([
                "--zone",
                "dir.chat.example.org",
                "--tel-root",
                "e164.mimi.example",
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{sii}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(v["outcome"], outcome, "{sii}: {v}");
        assert_eq!(v["verified"].as_array().unwrap().len(), ssis, "{sii}: {v}");
    }
}
