//! `mimi-publisher push` into a real BIND primary with TSIG: only the
//! difference is sent, other records are never touched, the resolver
//! verifies the pushed records through BIND, and failures change nothing.

use std::process::{Command, Output};
use std::time::Duration;

use mimi_e2e::bind::{Bind, BindZone};
use mimi_e2e::secondaries::Key;
use mimi_e2e::{bin, require, trust_toml, Authority, Trust, Workspace, ZoneSpec};
use mimi_proto::Sii;
use mimi_resolver::{NameServers, Outcome, Resolver, ResolverOptions, TrustStore};

const ZONE_FILE: &str = "$ORIGIN example.com.
@ 300 IN SOA ns1.example.com. hostmaster.example.com. 1 3600 600 1209600 60
@ 300 IN NS ns1.example.com.
ns1 300 IN A 192.0.2.53
@ 300 IN MX 10 mail.example.com.
mail 300 IN A 192.0.2.25
www 300 IN A 192.0.2.80
; not a mimi record, at a _mimi name: push must leave it alone
hello._mimi 300 IN TXT \"v=spf1 -all\"
";

const MAPPINGS: &str = "alice@example.com,mimi://chat.example.com/u/alice\nbob@example.com,mimi://chat.example.com/u/bob\ncarol@example.com,mimi://chat.example.com/u/carol\n";

/// The zone as dig transfers it: (mimi records, every other record but the
/// SOA), one line per record.
fn axfr(server: std::net::SocketAddr, key: &std::path::Path) -> (Vec<String>, Vec<String>) {
    axfr_zone(server, "example.com", key)
}

/// [`axfr`] of any zone.
fn axfr_zone(
    server: std::net::SocketAddr,
    zone: &str,
    key: &std::path::Path,
) -> (Vec<String>, Vec<String>) {
    let out = Command::new(require("dig", "bind9-dnsutils"))
        .args([
            "@127.0.0.1",
            "-p",
            &server.port().to_string(),
            zone,
            "AXFR",
            "+tries=1",
            "+time=5",
            "-k",
        ])
        .arg(key)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("XFR size"), "AXFR failed:\n{text}");
    let lines: Vec<String> = text
        .lines()
        .filter(|l| {
            !l.starts_with(';')
                && !l.trim().is_empty()
                && !l.contains("\tSOA\t")
                && !l.contains("TSIG")
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let (mut mimi, mut other): (Vec<String>, Vec<String>) =
        lines.into_iter().partition(|l| l.contains("v=mimi1;"));
    mimi.sort();
    other.sort();
    (mimi, other)
}

/// The discovery name of `sii` in `zone` (no trailing dot).
fn discovery_owner(sii: &str, zone: &str) -> String {
    let label = Sii::parse(sii, None).unwrap().label();
    mimi_proto::name::discovery_name(&label, &mimi_proto::DomainName::parse(zone).unwrap())
        .unwrap()
        .as_str()
        .to_owned()
}

fn push(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(bin("mimi-publisher"))
        .arg("push")
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_into_bind_with_tsig() {
    let ws = Workspace::new();
    let provider = Authority::new("example.com");
    ws.write_key("z/root.pem", &provider.root);
    ws.write("z/mappings.csv", MAPPINGS);
    let config = ws.zone(
        "z/zone.toml",
        &ZoneSpec {
            origin: "example.com",
            role: "home",
            authority: Some("example.com"),
            key: Some("root.pem"),
            mappings: Some("mappings.csv"),
            ..Default::default()
        },
    );
    let key = Key::random("update-key");
    let key_file = ws.write_secret("update.key", &key.bind_format());
    let bind = Bind::start(
        &ws.path("servers"),
        &[
            BindZone {
                origin: "example.com",
                zone_file: ZONE_FILE,
                transfer: true,
                update: true,
            },
            BindZone {
                origin: "example.net",
                zone_file: &ZONE_FILE.replace("example.com", "example.net"),
                transfer: true,
                update: false,
            },
        ],
        &key,
    )
    .await;
    let server = bind.addr.to_string();
    let (mimi0, other0) = axfr(bind.addr, &key_file);
    assert!(mimi0.is_empty());
    let args = |extra: &[&str]| {
        let mut v: Vec<std::ffi::OsString> = vec![
            config.clone().into(),
            "--server".into(),
            server.clone().into(),
            "--tsig-key".into(),
            key_file.clone().into(),
        ];
        v.extend(extra.iter().map(|s| s.into()));
        v
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        push(&a.iter().map(|s| s.as_os_str()).collect::<Vec<_>>())
    };

    // --dry-run lists the additions and changes nothing.
    let dry = run(&["--dry-run"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(
        plan.lines().filter(|l| l.starts_with("+ ")).count(),
        3,
        "{plan}"
    );
    assert_eq!(
        plan.lines().filter(|l| l.starts_with("- ")).count(),
        0,
        "{plan}"
    );
    assert_eq!(axfr(bind.addr, &key_file), (mimi0.clone(), other0.clone()));

    // The first push adds every mapping, touching nothing else.
    let first = run(&["--json"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(
        (summary["added"].as_u64(), summary["deleted"].as_u64()),
        (Some(3), Some(0)),
        "{summary}"
    );
    let (mimi1, other1) = axfr(bind.addr, &key_file);
    assert_eq!(mimi1.len(), 3);
    assert_eq!(other1, other0, "push touched records it does not manage");

    // The resolver verifies a pushed mapping through BIND.
    let trust = trust_toml(
        1,
        &[Trust {
            authority: &provider,
            sii_scope: &["mailto:*@example.com"],
            ssi_scope: &["chat.example.com"],
        }],
    );
    let mut o = ResolverOptions::new(TrustStore::from_toml_str(&trust, "t").unwrap());
    o.name_servers = NameServers::Explicit(vec![bind.addr]);
    o.timeout = Duration::from_secs(2);
    let r = Resolver::new(o)
        .unwrap()
        .lookup(&Sii::parse("alice@example.com", None).unwrap())
        .await
        .unwrap();
    assert_eq!(r.outcome(), Outcome::Verified, "{:?}", r.rejected);

    // Pushing again with nothing changed sends nothing.
    let again = run(&["--json"]);
    let summary: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (
            summary["added"].as_u64(),
            summary["deleted"].as_u64(),
            summary["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(3))
    );

    // One mapping removed: exactly one record deleted (the human summary
    // says so too).
    ws.write(
        "z/mappings.csv",
        &MAPPINGS.replace("bob@example.com,mimi://chat.example.com/u/bob\n", ""),
    );
    let plan = run(&["--dry-run"]);
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.lines().count(), 1, "{plan}");
    assert!(
        plan.starts_with("- ") && plan.contains(" IN TXT \"v=mimi1;"),
        "{plan}"
    );
    let second = run(&["--allow-shrink"]);
    let summary = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{summary}");
    assert!(
        summary.contains("example.com: +0 −1 =2 (1 update message)"),
        "{summary}"
    );
    let (mimi2, other2) = axfr(bind.addr, &key_file);
    assert_eq!(mimi2.len(), 2);
    assert!(
        mimi1.iter().filter(|l| !mimi2.contains(l)).count() == 1
            && mimi2.iter().all(|l| mimi1.contains(l))
    );
    assert_eq!(other2, other0);

    // A wrong TSIG secret: refused, explained, nothing changed.
    let wrong = Key {
        name: key.name.clone(),
        secret: Key::random("x").secret,
    };
    let wrong_file = ws.write_secret("wrong.key", &wrong.bind_format());
    ws.write("z/mappings.csv", MAPPINGS);
    let bad = push(&[
        config.as_os_str(),
        "--server".as_ref(),
        server.as_ref(),
        "--tsig-key".as_ref(),
        wrong_file.as_os_str(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    eprintln!("wrong secret: {err}");
    assert!(
        err.contains("NOTAUTH (TSIG BADSIG)")
            && err.contains("different secret")
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(axfr(bind.addr, &key_file), (mimi2.clone(), other0.clone()));

    // A key the server does not know.
    let unknown = Key {
        name: "other-key".into(),
        secret: key.secret.clone(),
    };
    let unknown_file = ws.write_secret("unknown.key", &unknown.bind_format());
    let bad = push(&[
        config.as_os_str(),
        "--server".as_ref(),
        server.as_ref(),
        "--tsig-key".as_ref(),
        unknown_file.as_os_str(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    eprintln!("unknown key: {err}");
    assert!(
        err.contains("NOTAUTH (TSIG BADKEY)") && err.contains("does not know TSIG key other-key"),
        "{err}"
    );
    assert_eq!(axfr(bind.addr, &key_file), (mimi2.clone(), other0.clone()));

    // No key at all: the transfer is refused, and the message says so.
    let nokey = push(&[config.as_os_str(), "--server".as_ref(), server.as_ref()]);
    assert_eq!(nokey.status.code(), Some(1));
    let err = String::from_utf8_lossy(&nokey.stderr);
    eprintln!("no key: {err}");
    assert!(
        err.contains("REFUSED") && err.contains("without a TSIG key"),
        "{err}"
    );
    assert_eq!(axfr(bind.addr, &key_file), (mimi2, other0));

    // A zone the key may read but not update: the UPDATE is refused and
    // changes nothing.
    ws.write_key("n/root.pem", &provider.root);
    ws.write(
        "n/mappings.csv",
        "dave@example.com,mimi://chat.example.com/u/dave\n",
    );
    let net_config = ws.zone(
        "n/zone.toml",
        &ZoneSpec {
            origin: "example.net",
            role: "distribution",
            authority: Some("example.com"),
            key: Some("root.pem"),
            mappings: Some("mappings.csv"),
            ..Default::default()
        },
    );
    let net_before = axfr_zone(bind.addr, "example.net", &key_file);
    let refused = push(&[
        net_config.as_os_str(),
        "--server".as_ref(),
        server.as_ref(),
        "--tsig-key".as_ref(),
        key_file.as_os_str(),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    eprintln!("update refused: {err}");
    assert!(
        err.contains("rejected update 1 of 1: REFUSED")
            && err.contains("allow-update")
            && err.contains("as they were before that update"),
        "{err}"
    );
    assert_eq!(axfr_zone(bind.addr, "example.net", &key_file), net_before);
}

/// Runs `nsupdate` with `key` against `server` (to change the zone behind
/// push's back, as an operator would).
fn nsupdate(server: std::net::SocketAddr, key: &std::path::Path, commands: &str) {
    use std::io::Write;
    let mut child = Command::new(require("nsupdate", "bind9-dnsutils"))
        .arg("-k")
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    write!(
        child.stdin.take().unwrap(),
        "server 127.0.0.1 {}\nzone example.com\n{commands}\nsend\n",
        server.port()
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nsupdate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.stdout.starts_with(b"{"),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A difference too large for one UPDATE message goes in several (and the
/// AXFR reading it spans several TSIG-signed messages); a TTL change
/// replaces every record; an addition that would change the TTL of a
/// non-mimi TXT record at the same name is refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_push_in_batches_ttl_change_and_foreign_ttl_conflict() {
    const N: usize = 1200;
    let ws = Workspace::new();
    let provider = Authority::new("example.com");
    ws.write_key("z/root.pem", &provider.root);
    let mappings: String = (0..N)
        .map(|i| format!("m{i:04}@example.com,mimi://chat.example.com/u/m{i:04}\n"))
        .collect();
    ws.write("z/mappings.csv", &mappings);
    let config = ws.zone(
        "z/zone.toml",
        &ZoneSpec {
            origin: "example.com",
            role: "home",
            authority: Some("example.com"),
            key: Some("root.pem"),
            mappings: Some("mappings.csv"),
            ..Default::default()
        },
    );
    let set_ttl = |ttl: u32| {
        let text = std::fs::read_to_string(&config).unwrap();
        let (head, tail) = text.split_once("\nns = ").unwrap();
        let head: Vec<&str> = head.lines().filter(|l| !l.starts_with("ttl =")).collect();
        ws.write(
            "z/zone.toml",
            &format!("{}\nttl = {ttl}\nns = {tail}", head.join("\n")),
        );
    };
    set_ttl(300);
    // A non-mimi TXT record (TTL 300) at the name of m0000's assertions.
    let owner = discovery_owner("m0000@example.com", "example.com");
    let zone_file = format!("{ZONE_FILE}{owner}. 300 IN TXT \"hello\"\n");
    let key = Key::random("update-key");
    let key_file = ws.write_secret("update.key", &key.bind_format());
    let bind = Bind::start(
        &ws.path("servers"),
        &[BindZone {
            origin: "example.com",
            zone_file: &zone_file,
            transfer: true,
            update: true,
        }],
        &key,
    )
    .await;
    let server = bind.addr.to_string();
    let run = |extra: &[&str]| {
        let mut c = Command::new(bin("mimi-publisher"));
        c.arg("push")
            .arg(&config)
            .args(["--server", &server, "--tsig-key"])
            .arg(&key_file)
            .args(extra);
        c.output().unwrap()
    };
    let (_, other0) = axfr(bind.addr, &key_file);
    assert!(other0
        .iter()
        .any(|l| l.starts_with(&format!("{owner}. 300 IN TXT \"hello\""))));

    let plan = json_of(&run(&["--dry-run", "--json"]));
    assert_eq!(plan["add"].as_array().unwrap().len(), N);
    let updates = plan["updates"].as_u64().unwrap();
    assert!(updates >= 2, "{updates} update messages for {N} records");

    let started = std::time::Instant::now();
    let first = json_of(&run(&["--json"]));
    eprintln!("pushed {N} records in {:?}: {first}", started.elapsed());
    assert_eq!(
        (first["added"].as_u64(), first["updates"].as_u64()),
        (Some(N as u64), Some(updates))
    );
    let (mimi1, other1) = axfr(bind.addr, &key_file);
    assert_eq!(mimi1.len(), N);
    assert!(mimi1.iter().all(|l| l.split(' ').nth(1) == Some("300")));
    assert_eq!(other1, other0);

    // Reading the now large zone back takes a multi-message AXFR, every
    // message verified: nothing to do.
    let again = json_of(&run(&["--json"]));
    assert_eq!(
        (
            again["added"].as_u64(),
            again["deleted"].as_u64(),
            again["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(N as u64))
    );

    // TTL 60 would change the TTL of the "hello" record: refused, nothing sent.
    set_ttl(60);
    let dry = run(&["--dry-run"]);
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(
        plan.lines()
            .any(|l| l.starts_with("! ") && l.contains(&owner)),
        "{}",
        plan.lines()
            .filter(|l| l.starts_with("! "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let conflict = run(&[]);
    assert_eq!(conflict.status.code(), Some(1));
    let err = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        err.contains("nothing was sent") && err.contains(&owner) && err.contains("TTL 300"),
        "{err}"
    );
    assert_eq!(axfr(bind.addr, &key_file), (mimi1.clone(), other0.clone()));

    // Once the operator removes it, the TTL change replaces every record.
    nsupdate(
        bind.addr,
        &key_file,
        &format!("update delete {owner}. TXT \"hello\""),
    );
    let changed = json_of(&run(&["--json"]));
    assert_eq!(
        (
            changed["added"].as_u64(),
            changed["deleted"].as_u64(),
            changed["unchanged"].as_u64()
        ),
        (Some(N as u64), Some(N as u64), Some(0))
    );
    let (mimi2, other2) = axfr(bind.addr, &key_file);
    assert_eq!(mimi2.len(), N);
    assert!(mimi2.iter().all(|l| l.split(' ').nth(1) == Some("60")));
    assert_eq!(
        other2,
        other0
            .iter()
            .filter(|l| !l.ends_with("TXT \"hello\""))
            .cloned()
            .collect::<Vec<_>>()
    );

    // And the resolver verifies through BIND.
    let trust = trust_toml(
        1,
        &[Trust {
            authority: &provider,
            sii_scope: &["mailto:*@example.com"],
            ssi_scope: &["chat.example.com"],
        }],
    );
    let mut o = ResolverOptions::new(TrustStore::from_toml_str(&trust, "t").unwrap());
    o.name_servers = NameServers::Explicit(vec![bind.addr]);
    o.timeout = Duration::from_secs(2);
    let r = Resolver::new(o)
        .unwrap()
        .lookup(&Sii::parse("m0777@example.com", None).unwrap())
        .await
        .unwrap();
    assert_eq!(r.outcome(), Outcome::Verified, "{:?}", r.rejected);
}

/// When the server rejects one UPDATE message of several, that message
/// changes nothing, the earlier ones stay applied, and the error says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_batch_changes_nothing_and_the_error_names_the_applied_ones() {
    use mimi_publisher::transfer::push::{self, Diff, ManagedRecord, PushError};
    let ws = Workspace::new();
    let key = Key::random("update-key");
    let tsig = mimi_publisher::input::tsig::TsigKey::parse(&key.bind_format()).unwrap();
    let bind = Bind::start(
        &ws.path("servers"),
        &[BindZone {
            origin: "example.com",
            zone_file: ZONE_FILE,
            transfer: true,
            update: true,
        }],
        &key,
    )
    .await;
    let origin = mimi_proto::DomainName::parse("example.com").unwrap();
    let record = |owner: String, i: usize| ManagedRecord {
        owner,
        ttl: 60,
        text: format!("v=mimi1;a=example.com;n={i};{}", "x".repeat(200)),
    };
    let mut add: Vec<ManagedRecord> = (0..600)
        .map(|i| record(format!("r{i:03}._mimi.example.com"), i))
        .collect();
    // Outside the zone: the server rejects the message that carries it.
    add.push(record("bad._mimi.example.org".into(), 600));
    let diff = Diff {
        add,
        ..Default::default()
    };
    let batches = diff.batches();
    assert!(batches >= 3, "{batches}");
    let err = push::apply(bind.addr, &origin, &diff, Some(&tsig))
        .await
        .unwrap_err();
    eprintln!("{err}");
    match &err {
        PushError::Rejected {
            batch,
            batches: n,
            rcode,
            ..
        } => {
            assert_eq!((*batch, *n), (batches, batches));
            assert_eq!(*rcode, hickory_proto::op::ResponseCode::NotZone);
        }
        other => panic!("{other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&format!("rejected update {batches} of {batches}: NOTZONE"))
            && text.contains(&format!("updates 1 to {} were applied", batches - 1)),
        "{text}"
    );
    // Exactly the records of the earlier messages are there.
    let managed = push::Managed::new(["example.com".parse().unwrap()]);
    let current = push::read_current(bind.addr, &origin, Some(&tsig), &managed)
        .await
        .unwrap();
    let there: std::collections::BTreeSet<&str> =
        current.managed.iter().map(|r| r.owner.as_str()).collect();
    let n = there.len();
    assert!(n > 0 && n < 600, "{n}");
    for (i, r) in diff.add[..600].iter().enumerate() {
        assert_eq!(there.contains(r.owner.as_str()), i < n, "{}", r.owner);
    }
}

/// Two publishers push into one zone, each with its own authority: a push
/// manages only its own authorities' records, so neither removes the
/// other's (nor a record of a third authority at the same name). A push
/// that would remove more than 10% of its assertions on the server is
/// refused unless confirmed with --allow-shrink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_sharing_a_zone_leave_each_other_alone_and_shrinking_needs_confirmation() {
    let ws = Workspace::new();
    let provider = Authority::new("example.com");
    let directory = Authority::new("ma.example.net");
    // A record of a third authority at alice's discovery name (TTL 1, as
    // the publishers' records, so there is no TTL conflict).
    let alice = discovery_owner("alice@example.com", "example.com");
    let foreign = format!(
        "{alice}. 1 IN TXT \"v=mimi1;a=third.example;k=aaaaaaaaaaaaaaaa;s=im:alice@third.example;t=1;x=2;sig=x\""
    );
    let zone_file = format!("{ZONE_FILE}{foreign}\n");
    let key = Key::random("update-key");
    let key_file = ws.write_secret("update.key", &key.bind_format());
    let bind = Bind::start(
        &ws.path("servers"),
        &[BindZone {
            origin: "example.com",
            zone_file: &zone_file,
            transfer: true,
            update: true,
        }],
        &key,
    )
    .await;
    let server = bind.addr.to_string();

    // Publisher A: the provider's home zone. Publisher B: a directory
    // (distribution role) publishing in the same zone, at the same names.
    ws.write_key("a/root.pem", &provider.root);
    ws.write("a/mappings.csv", MAPPINGS);
    let a = ws.zone(
        "a/zone.toml",
        &ZoneSpec {
            origin: "example.com",
            role: "home",
            authority: Some("example.com"),
            key: Some("root.pem"),
            mappings: Some("mappings.csv"),
            ..Default::default()
        },
    );
    ws.write_key("b/root.pem", &directory.root);
    ws.write(
        "b/mappings.csv",
        "alice@example.com,mimi://chat.example.net/u/alice\ndave@other.example,mimi://chat.example.net/u/dave\n",
    );
    let b = ws.zone(
        "b/zone.toml",
        &ZoneSpec {
            origin: "example.com",
            role: "distribution",
            authority: Some("ma.example.net"),
            key: Some("root.pem"),
            mappings: Some("mappings.csv"),
            ..Default::default()
        },
    );
    let run = |config: &std::path::Path, extra: &[&str]| {
        let mut c = Command::new(bin("mimi-publisher"));
        c.arg("push")
            .arg(config)
            .args(["--server", &server, "--tsig-key"])
            .arg(&key_file)
            .args(extra);
        c.output().unwrap()
    };
    let counts = |v: &serde_json::Value| {
        (
            v["added"].as_u64().unwrap(),
            v["deleted"].as_u64().unwrap(),
            v["unchanged"].as_u64().unwrap(),
        )
    };
    let by = |mimi: &[String], authority: &str| {
        mimi.iter()
            .filter(|l| l.contains(&format!("v=mimi1;a={authority};")))
            .cloned()
            .collect::<Vec<_>>()
    };
    let (mimi0, other0) = axfr(bind.addr, &key_file);
    assert_eq!(mimi0.len(), 1, "{mimi0:?}");

    assert_eq!(counts(&json_of(&run(&a, &["--json"]))), (3, 0, 0));
    assert_eq!(counts(&json_of(&run(&b, &["--json"]))), (2, 0, 0));
    let (mimi1, other1) = axfr(bind.addr, &key_file);
    assert_eq!(other1, other0);
    assert_eq!(by(&mimi1, "example.com").len(), 3);
    assert_eq!(by(&mimi1, "ma.example.net").len(), 2);
    assert_eq!(by(&mimi1, "third.example"), by(&mimi0, "third.example"));
    // Alice's name holds all three authorities' records.
    assert_eq!(
        mimi1
            .iter()
            .filter(|l| l.starts_with(&format!("{alice}. ")))
            .count(),
        3,
        "{mimi1:?}"
    );
    // A's second push sees B's and the third authority's records as not its
    // own: nothing to delete.
    assert_eq!(counts(&json_of(&run(&a, &["--json"]))), (0, 0, 3));
    assert_eq!(axfr(bind.addr, &key_file), (mimi1.clone(), other1.clone()));

    // A's mappings cut to one of three: refused, nothing sent, and the
    // dry run says it would be.
    ws.write(
        "a/mappings.csv",
        "alice@example.com,mimi://chat.example.com/u/alice\n",
    );
    let dry = run(&a, &["--dry-run"]);
    assert!(dry.status.success());
    let err = String::from_utf8_lossy(&dry.stderr);
    assert!(err.contains("push would refuse"), "{err}");
    let refused = run(&a, &[]);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("nothing was sent")
            && err.contains("remove 2 of the 3 managed assertions")
            && err.contains("--allow-shrink"),
        "{err}"
    );
    assert_eq!(axfr(bind.addr, &key_file), (mimi1.clone(), other1.clone()));
    // Emptying is refused too (B's records do not count as A's).
    ws.write("a/mappings.csv", "");
    assert_eq!(run(&a, &[]).status.code(), Some(1));
    assert_eq!(axfr(bind.addr, &key_file), (mimi1.clone(), other1.clone()));

    // Confirmed: A's records go; B's and the third authority's stay.
    ws.write(
        "a/mappings.csv",
        "alice@example.com,mimi://chat.example.com/u/alice\n",
    );
    assert_eq!(
        counts(&json_of(&run(&a, &["--allow-shrink", "--json"]))),
        (0, 2, 1)
    );
    let (mimi2, other2) = axfr(bind.addr, &key_file);
    assert_eq!(other2, other0);
    assert_eq!(by(&mimi2, "example.com").len(), 1);
    assert_eq!(by(&mimi2, "ma.example.net"), by(&mimi1, "ma.example.net"));
    assert_eq!(by(&mimi2, "third.example"), by(&mimi0, "third.example"));
    // And B's push leaves A's remaining record alone.
    assert_eq!(counts(&json_of(&run(&b, &["--json"]))), (0, 0, 2));
    assert_eq!(axfr(bind.addr, &key_file), (mimi2, other2));
}

/// The key ids of the mimi records in an AXFR (from [`axfr`]): the
/// certificates' keys and the assertions' signing keys, each sorted.
fn kids(mimi: &[String]) -> (Vec<String>, Vec<String>) {
    let kid = |l: &str| {
        let rest = &l[l.find(";k=").expect("a k= field") + 3..];
        rest[..rest.find([';', '"']).unwrap_or(rest.len())].to_owned()
    };
    let (mut certs, mut assertions): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for l in mimi {
        if l.contains(";pk=") {
            certs.push(kid(l));
        } else {
            assertions.push(kid(l));
        }
    }
    certs.sort();
    assertions.sort();
    (certs, assertions)
}

/// With a key bundle, `push` keeps the rollover's ledger in `--state FILE`
/// and follows the same schedule as `serve`/`build`: the next certificate
/// goes to the primary first, and its key signs only once the primary has
/// published it for the certificate TTL + propagation delay. (Without the
/// ledger every push would be a first one: the push at T+120 below would
/// publish key 2's certificate and sign with key 2 at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_with_a_bundle_publishes_the_next_certificate_first_then_switches() {
    const T: u64 = 1_000_000;
    let ws = Workspace::new();
    let provider = Authority::new("example.com");
    let root = ws.write_key("z/root.pem", &provider.root);
    ws.write("z/mappings.csv", MAPPINGS);
    let out = Command::new(bin("mimi-publisher"))
        .args(["ceremony", "--root"])
        .arg(&root)
        .args(["--authority", "example.com", "--out"])
        .arg(ws.path("z/bundle"))
        .args(["--keys", "3", "--key-validity", "100s", "--overlap", "40s"])
        .args(["--start", &T.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = ws.write(
        "z/zone.toml",
        r#"origin = "example.com"
role = "home"
ttl = 2
ns = ["ns1.example.com"]
mappings = "mappings.csv"
[soa]
mname = "ns1.example.com"
rname = "hostmaster.example.com"
[authority]
name = "example.com"
bundle = "bundle"
validity = "20s"
resign_margin = "5s"
propagation_delay = "3s"
"#,
    );
    // The bundle's key ids in window order.
    let certs_text = std::fs::read_to_string(ws.path("z/bundle/certificates")).unwrap();
    let bundle: Vec<String> = certs_text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            mimi_proto::Certificate::parse(l.trim())
                .unwrap()
                .kid()
                .to_string()
        })
        .collect();
    assert_eq!(bundle.len(), 3, "{certs_text}");
    let sorted = |v: &[&String]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    let key = Key::random("update-key");
    let key_file = ws.write_secret("update.key", &key.bind_format());
    let bind = Bind::start(
        &ws.path("servers"),
        &[BindZone {
            origin: "example.com",
            zone_file: ZONE_FILE,
            transfer: true,
            update: true,
        }],
        &key,
    )
    .await;
    let server = bind.addr.to_string();
    let state = ws.path("z/push.state");
    let push_at = |t: u64, with_state: bool| {
        let mut v: Vec<std::ffi::OsString> = vec![
            config.clone().into(),
            "--server".into(),
            server.clone().into(),
            "--tsig-key".into(),
            key_file.clone().into(),
            "--now".into(),
            (T + t).to_string().into(),
        ];
        if with_state {
            v.extend(["--state".into(), state.clone().into()]);
        }
        let refs: Vec<&std::ffi::OsStr> = v.iter().map(|s| s.as_os_str()).collect();
        push(&refs)
    };

    // Without --state: refused, nothing sent.
    let o = push_at(0, false);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("needs --state FILE"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    assert!(axfr(bind.addr, &key_file).0.is_empty());

    // First push: key 0 signs at once; key 1's certificate goes ahead.
    let o = push_at(0, true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (certs, signers) = kids(&axfr(bind.addr, &key_file).0);
    assert_eq!(certs, sorted(&[&bundle[0], &bundle[1]]));
    assert_eq!(signers, vec![bundle[0].clone(); 3]);
    let ledger = std::fs::read_to_string(&state).unwrap();
    assert!(
        ledger.contains(&format!("; mimi-rollover active {}\n", bundle[0])),
        "{ledger}"
    );
    assert!(
        ledger.contains(&format!("; mimi-rollover key {} published {T}", bundle[1])),
        "{ledger}"
    );

    // T+120: key 1 (published since T) takes over; key 2's window begins,
    // but its certificate is only now sent to the primary: it must wait.
    let o = push_at(120, true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (certs, signers) = kids(&axfr(bind.addr, &key_file).0);
    assert!(certs.contains(&bundle[2]), "{certs:?}");
    assert_eq!(signers, vec![bundle[1].clone(); 3]);
    // T+124: still key 1 (key 2 published at T+120, lead 2 + 3 s).
    let o = push_at(124, true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, signers) = kids(&axfr(bind.addr, &key_file).0);
    assert_eq!(signers, vec![bundle[1].clone(); 3]);
    // T+125: key 2 signs; key 0's certificate is long gone (its
    // assertions expired at T+20).
    let o = push_at(125, true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (certs, signers) = kids(&axfr(bind.addr, &key_file).0);
    assert_eq!(signers, vec![bundle[2].clone(); 3]);
    assert!(
        certs.contains(&bundle[2]) && !certs.contains(&bundle[0]),
        "{certs:?}"
    );
    let ledger = std::fs::read_to_string(&state).unwrap();
    assert!(
        ledger.contains(&format!("; mimi-rollover active {}\n", bundle[2])),
        "{ledger}"
    );

    // A cut-short state file is an error naming it; nothing is sent.
    let before = axfr(bind.addr, &key_file).0;
    std::fs::write(&state, ledger.trim_end()).unwrap();
    let o = push_at(126, true);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("push.state") && err.contains("incomplete"),
        "{err}"
    );
    assert_eq!(axfr(bind.addr, &key_file).0, before);
}
