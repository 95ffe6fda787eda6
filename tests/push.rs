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
    let out = Command::new(require("dig", "bind9-dnsutils"))
        .args([
            "@127.0.0.1",
            "-p",
            &server.port().to_string(),
            "example.com",
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
    let key_file = ws.write("update.key", &key.bind_format());
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

    // One mapping removed: exactly one record deleted.
    ws.write(
        "z/mappings.csv",
        &MAPPINGS.replace("bob@example.com,mimi://chat.example.com/u/bob\n", ""),
    );
    let second = run(&["--json"]);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(
        (summary["added"].as_u64(), summary["deleted"].as_u64()),
        (Some(0), Some(1)),
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
    let wrong_file = ws.write("wrong.key", &wrong.bind_format());
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
    eprintln!("wrong key: {err}");
    assert!(
        err.contains("TSIG") || err.contains("NOTAUTH") || err.contains("key"),
        "{err}"
    );
    assert_eq!(axfr(bind.addr, &key_file), (mimi2.clone(), other0.clone()));

    // No key at all: the transfer is refused, and the message says so.
    let nokey = push(&[config.as_os_str(), "--server".as_ref(), server.as_ref()]);
    assert_eq!(nokey.status.code(), Some(1));
    let err = String::from_utf8_lossy(&nokey.stderr);
    eprintln!("no key: {err}");
    assert!(err.contains("refuse"), "{err}");
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
        err.contains("rejected update 1 of 1") && err.contains("changed nothing"),
        "{err}"
    );
}
