//! Every zone `mimi-publisher build` writes passes the zone checkers of
//! BIND, Knot and NSD without error or warning, and BIND serves it as a
//! plain zone file that the resolver verifies through.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mimi_e2e::bind::{Bind, BindZone};
use mimi_e2e::secondaries::Key;
use mimi_e2e::{bin, require, trust_toml, Authority, Trust, Workspace, ZoneSpec};
use mimi_proto::{Sii, UnixTime};
use mimi_resolver::{NameServers, Outcome, Resolver, ResolverOptions, TrustStore};

fn check(tool: &Path, args: &[&str], zone_file: &Path) {
    let out = Command::new(tool)
        .args(args)
        .arg(zone_file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{text}",
        tool.display()
    );
    assert!(
        !text.to_lowercase().contains("warning"),
        "{} {args:?} warns:\n{text}",
        tool.display()
    );
}

/// A binary in the usual system directories, if installed.
fn find(binary: &str) -> Option<PathBuf> {
    [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ]
    .iter()
    .map(|d| Path::new(d).join(binary))
    .find(|p| p.exists())
}

/// How Knot checks a zone file.
enum KnotCheck {
    /// `kzonecheck -o ORIGIN FILE` (knot-dnssecutils).
    Kzonecheck(PathBuf),
    /// `knotc -c CONF zone-check ORIGIN` with a generated configuration
    /// (package knot), where kzonecheck is not packaged.
    Knotc(PathBuf),
}

impl KnotCheck {
    fn find() -> KnotCheck {
        match (find("kzonecheck"), find("knotc")) {
            (Some(k), _) => KnotCheck::Kzonecheck(k),
            (None, Some(c)) => KnotCheck::Knotc(c),
            (None, None) => panic!(
                "kzonecheck not found: install the Debian package knot-dnssecutils (or knot, for knotc zone-check)"
            ),
        }
    }

    fn check(&self, dir: &Path, origin: &str, zone_file: &Path) {
        match self {
            KnotCheck::Kzonecheck(k) => check(k, &["-o", origin], zone_file),
            KnotCheck::Knotc(knotc) => {
                let d = dir.join(format!("knot-{origin}"));
                std::fs::create_dir_all(&d).unwrap();
                let conf = d.join("knot.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "server:\n    rundir: \"{d}\"\ndatabase:\n    storage: \"{d}\"\nzone:\n  - domain: {origin}\n    file: \"{f}\"\n",
                        d = d.display(),
                        f = zone_file.display()
                    ),
                )
                .unwrap();
                let out = Command::new(knotc)
                    .arg("-c")
                    .arg(&conf)
                    .args(["zone-check", origin])
                    .output()
                    .unwrap();
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(
                    out.status.success() && !text.to_lowercase().contains("warning"),
                    "knotc zone-check {origin} ({}):\n{text}",
                    zone_file.display()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_zones_pass_bind_knot_and_nsd_checks_and_bind_serves_them() {
    let named_checkzone = require("named-checkzone", "bind9-utils");
    let knot = KnotCheck::find();
    let nsd_checkzone = require("nsd-checkzone", "nsd");
    let ws = Workspace::new();
    let now = UnixTime::now();
    let provider = Authority::new("example.com");
    let signing = mimi_publisher::input::keys::generate();
    let third = Authority::new("ma.example.net");
    let third_signing = mimi_publisher::input::keys::generate();

    // A home zone: certificate, assertions, pre-signed records, a long SSI
    // (several character-strings) and one with `"` and `\` in it.
    ws.write_key("home/signing.pem", &signing);
    ws.write(
        "home/signing.cert",
        &format!("{}\n", provider.certify(&signing, now.minus(3600), 90)),
    );
    let long = format!("mimi://chat.example.com/u/{}", "x".repeat(400));
    ws.write(
        "home/mappings.csv",
        &format!("alice@example.com,mimi://chat.example.com/u/alice\nbob@example.com,{long}\nquote@example.com,mimi://chat.example.com/u/a\"b\\c\n"),
    );
    ws.write(
        "home/presigned.txt",
        &format!(
            "{}\n",
            third.presign(
                &third.root,
                "alice@example.com",
                "mimi://chat.example.com/u/alice",
                now.minus(3600),
                now.plus(86400)
            )
        ),
    );
    let home = ws.zone(
        "home/zone.toml",
        &ZoneSpec {
            origin: "example.com",
            role: "home",
            authority: Some("example.com"),
            key: Some("signing.pem"),
            certificates: &["signing.cert"],
            mappings: Some("mappings.csv"),
            presigned: &["presigned.txt"],
            ..Default::default()
        },
    );
    // A telephone root and a distribution zone.
    ws.write_key("tel/signing.pem", &third_signing);
    ws.write(
        "tel/mappings.csv",
        "+39 06 1234 5678,im:bob@talk.example.net\n+1 415 555 0123,im:frank@talk.example.net\n",
    );
    let tel = ws.zone(
        "tel/zone.toml",
        &ZoneSpec {
            origin: "e164.mimi.example",
            role: "home",
            tel_root: Some("e164.mimi.example"),
            authority: Some("ma.example.net"),
            key: Some("signing.pem"),
            mappings: Some("mappings.csv"),
            ..Default::default()
        },
    );
    ws.write_key("dir/root.pem", &provider.root);
    ws.write(
        "dir/mappings.csv",
        "carol@mail.example,mimi://chat.example.com/u/carol\n",
    );
    let dir = ws.zone(
        "dir/zone.toml",
        &ZoneSpec {
            origin: "dir.example.org",
            role: "distribution",
            authority: Some("example.com"),
            key: Some("root.pem"),
            mappings: Some("mappings.csv"),
            ..Default::default()
        },
    );

    // A zone that delegates its shards: a range to outside name servers,
    // one shard to a name server inside the zone (glue, both families).
    let delegating = ws.zone(
        "deleg/zone.toml",
        &ZoneSpec {
            origin: "shop.example",
            role: "home",
            ..Default::default()
        },
    );
    let text = std::fs::read_to_string(&delegating).unwrap();
    ws.write(
        "deleg/zone.toml",
        &format!("{text}[[delegate]]\nshards = [\"00-7v\"]\nns = [\"ns.example.net\", \"ns2.example.net\"]\n[[delegate]]\nshards = [\"vv\"]\nns = [\"ns-vv.shop.example\"]\nglue = {{ \"ns-vv.shop.example\" = [\"192.0.2.8\", \"2001:db8::8\"] }}\n"),
    );

    let mut built = Vec::new();
    for (config, origin) in [
        (&home, "example.com"),
        (&tel, "e164.mimi.example"),
        (&dir, "dir.example.org"),
        (&delegating, "shop.example"),
    ] {
        let out_file = ws.path(&format!("{origin}.zone"));
        let out = Command::new(bin("mimi-publisher"))
            .arg("build")
            .arg(config)
            .arg("--out")
            .arg(&out_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("WARN"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        check(
            &named_checkzone,
            &["-k", "fail", "-i", "full", origin],
            &out_file,
        );
        knot.check(&ws.path("knot"), origin, &out_file);
        check(&nsd_checkzone, &[origin], &out_file);
        built.push((origin, out_file));
    }
    let deleg = std::fs::read_to_string(&built[3].1).unwrap();
    assert_eq!(
        deleg.matches(" IN NS ns.example.net.").count(),
        256,
        "{deleg}"
    );
    // A catalog zone as the server keeps it passes the checkers too.
    let catalog = mimi_publisher::zone::catalog::build(
        &mimi_publisher::zone::catalog::CatalogSettings::new(
            mimi_proto::DomainName::parse("catalog.mimi.test").unwrap(),
        ),
        built
            .iter()
            .map(|(o, _)| mimi_proto::DomainName::parse(o).unwrap())
            .collect::<Vec<_>>()
            .iter(),
        None,
        now,
    );
    let catalog_file = ws.path("catalog.mimi.test.zone");
    mimi_publisher::zone::zonefile::write_zone_atomically(&catalog_file, &catalog).unwrap();
    check(
        &named_checkzone,
        &["-k", "fail", "-i", "full", "catalog.mimi.test"],
        &catalog_file,
    );
    knot.check(&ws.path("knot"), "catalog.mimi.test", &catalog_file);
    check(&nsd_checkzone, &["catalog.mimi.test"], &catalog_file);

    let text = std::fs::read_to_string(&built[0].1).unwrap();
    // SPEC §5: `"` and `\` are not URI characters; the publisher
    // percent-encodes them when it reads the mappings file.
    assert!(
        text.contains("u/a%22b%5Cc;"),
        "quote and backslash are percent-encoded"
    );
    assert!(
        text.lines().any(|l| l.matches("\" \"").count() >= 1),
        "a long record is split into several strings"
    );

    // BIND serves the built file as a plain primary zone; the resolver
    // verifies through it, including the split and escaped records.
    let zone_text = std::fs::read_to_string(&built[0].1).unwrap();
    let bind = Bind::start(
        &ws.path("servers"),
        &[BindZone {
            origin: "example.com",
            zone_file: &zone_text,
            transfer: false,
            update: false,
        }],
        &Key::random("unused"),
    )
    .await;
    let trust = trust_toml(
        1,
        &[
            Trust {
                authority: &provider,
                sii_scope: &["mailto:*@example.com"],
                ssi_scope: &["chat.example.com"],
            },
            Trust {
                authority: &third,
                sii_scope: &["mailto:*@example.com"],
                ssi_scope: &["chat.example.com"],
            },
        ],
    );
    let mut o = ResolverOptions::new(TrustStore::from_toml_str(&trust, "t").unwrap());
    o.name_servers = NameServers::Explicit(vec![bind.addr]);
    o.timeout = Duration::from_secs(2);
    let resolver = Resolver::new(o).unwrap();
    for (who, ssi, authorities) in [
        (
            "alice@example.com",
            "mimi://chat.example.com/u/alice".to_owned(),
            2,
        ),
        ("bob@example.com", long.clone(), 1),
        (
            "quote@example.com",
            "mimi://chat.example.com/u/a%22b%5Cc".to_owned(),
            1,
        ),
    ] {
        let r = resolver
            .lookup(&Sii::parse(who, None).unwrap())
            .await
            .unwrap();
        assert_eq!(r.outcome(), Outcome::Verified, "{who}: {:?}", r.rejected);
        assert_eq!(r.verified[0].ssi.as_str(), ssi);
        assert_eq!(r.verified[0].authorities.len(), authorities, "{who}");
    }
}
