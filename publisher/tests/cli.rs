//! The `mimi-publisher` key and signing commands, run as a user runs them.

use std::path::Path;
use std::process::{Command, Output};

use mimi_proto::{Assertion, Certificate, PublicKey, Sii};

fn publisher(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mimi-publisher"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn keygen(dir: &Path, name: &str) -> (String, serde_json::Value) {
    let p = dir.join(name);
    let o = publisher(&["keygen", "--out", p.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (
        p.to_str().unwrap().to_owned(),
        serde_json::from_slice(&o.stdout).unwrap(),
    )
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let (path, info) = keygen(dir.path(), "k.pem");
    let pk = PublicKey::from_base64url(info["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(info["kid"].as_str().unwrap(), pk.kid().as_str());
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Never overwrites.
    let o = publisher(&["keygen", "--out", &path]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
}

#[cfg(unix)]
#[test]
fn a_key_readable_by_others_is_refused_with_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = keygen(dir.path(), "k.pem");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let o = publisher(&[
        "sign",
        "--key",
        &path,
        "--authority",
        "ma.example.net",
        "--sii",
        "a@example.com",
        "--ssi",
        "im:a@x.example",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("readable by group or others") && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn certify_and_sign_produce_records_that_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (root, root_info) = keygen(dir.path(), "root.pem");
    let (signing, signing_info) = keygen(dir.path(), "signing.pem");
    let o = publisher(&[
        "certify",
        "--root",
        &root,
        "--key",
        &signing,
        "--authority",
        "MA.Example.NET",
        "--validity",
        "180d",
        "--now",
        "1765000000",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cert = Certificate::parse(stdout(&o).trim()).unwrap();
    assert_eq!(cert.authority().as_str(), "ma.example.net");
    assert_eq!(cert.kid().as_str(), signing_info["kid"].as_str().unwrap());
    assert_eq!(
        (cert.not_before().0, cert.expires().0),
        (1765000000, 1765000000 + 180 * 86400)
    );
    let root_pk = PublicKey::from_base64url(root_info["public_key"].as_str().unwrap()).unwrap();
    cert.verify(&root_pk).unwrap();

    let o = publisher(&[
        "sign",
        "--key",
        &signing,
        "--authority",
        "ma.example.net",
        "--sii",
        "+39 06 1234 5678",
        "--ssi",
        "im:bob@talk.example.net",
        "--now",
        "1765000000",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line = stdout(&o);
    let (sii, record) = line.trim().split_once(' ').unwrap();
    assert_eq!(sii, "tel:+390612345678");
    let a = Assertion::parse(record).unwrap();
    a.verify(&Sii::parse(sii, None).unwrap().hash(), cert.key())
        .unwrap();
    // Window per SPEC §9: contains now, 14 days long.
    assert!(a.not_before().0 <= 1765000000 && 1765000000 < a.expires().0);
    assert_eq!(a.expires().0 - a.not_before().0, 14 * 86400);
    // Same input, same output (Ed25519 and the window are deterministic).
    let again = publisher(&[
        "sign",
        "--key",
        &signing,
        "--authority",
        "ma.example.net",
        "--sii",
        "+39 06 1234 5678",
        "--ssi",
        "im:bob@talk.example.net",
        "--now",
        "1765000100",
    ]);
    assert_eq!(stdout(&again), line);
}

#[test]
fn bad_arguments_are_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (k, _) = keygen(dir.path(), "k.pem");
    let o = publisher(&[
        "sign",
        "--key",
        &k,
        "--authority",
        "ma.example.net",
        "--sii",
        "not an address",
        "--ssi",
        "im:a@x.example",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--sii"));
    let o = publisher(&[
        "certify",
        "--root",
        &k,
        "--key",
        &k,
        "--authority",
        "x",
        "--validity",
        "soon",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--authority"));
    let o = publisher(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl binary is needed by this test (apt-get install openssl)")
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The Ed25519 public key OpenSSL derives from a private key file, as
/// base64url (the last 32 octets of the DER SubjectPublicKeyInfo).
fn openssl_public_key(path: &str) -> String {
    let o = openssl(&["pkey", "-in", path, "-pubout", "-outform", "DER"]);
    ok(&o);
    assert_eq!(o.stdout.len(), 44, "Ed25519 SPKI is 44 octets");
    data_encoding::BASE64URL_NOPAD.encode(&o.stdout[12..])
}

#[test]
fn openssl_reads_keygen_keys_and_we_read_openssl_keys() {
    let dir = tempfile::tempdir().unwrap();
    // Ours → OpenSSL: parses, and derives the public key we printed.
    let (path, info) = keygen(dir.path(), "ours.pem");
    ok(&openssl(&["pkey", "-in", &path, "-noout"]));
    assert_eq!(
        openssl_public_key(&path),
        info["public_key"].as_str().unwrap()
    );

    // OpenSSL → ours: certify with an OpenSSL root, sign with an OpenSSL
    // signing key; both verify under the keys OpenSSL derives.
    let root = dir.path().join("root.pem");
    let signing = dir.path().join("signing.pem");
    for p in [&root, &signing] {
        ok(&openssl(&[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            p.to_str().unwrap(),
        ]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    let (root, signing) = (root.to_str().unwrap(), signing.to_str().unwrap());
    let o = publisher(&[
        "certify",
        "--root",
        root,
        "--key",
        signing,
        "--authority",
        "ma.example.net",
        "--now",
        "1765000000",
    ]);
    ok(&o);
    let cert = Certificate::parse(stdout(&o).trim()).unwrap();
    let root_pk = PublicKey::from_base64url(&openssl_public_key(root)).unwrap();
    cert.verify(&root_pk).unwrap();
    assert_eq!(cert.key().to_base64url(), openssl_public_key(signing));
    let o = publisher(&[
        "sign",
        "--key",
        signing,
        "--authority",
        "ma.example.net",
        "--sii",
        "alice@example.com",
        "--ssi",
        "im:alice@chat.example.org",
        "--now",
        "1765000000",
    ]);
    ok(&o);
    let line = stdout(&o);
    let (sii, record) = line.trim().split_once(' ').unwrap();
    Assertion::parse(record)
        .unwrap()
        .verify(&Sii::parse(sii, None).unwrap().hash(), cert.key())
        .unwrap();
}

#[test]
fn keys_in_the_older_pkcs8_v2_form_are_still_read() {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
    // ed25519-dalek writes v2 (with the public key), as keygen once did.
    let v2 = key.to_pkcs8_pem(Default::default()).unwrap();
    let path = dir.path().join("v2.pem");
    std::fs::write(&path, v2.as_bytes()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let o = publisher(&[
        "sign",
        "--key",
        path.to_str().unwrap(),
        "--authority",
        "ma.example.net",
        "--sii",
        "alice@example.com",
        "--ssi",
        "im:alice@chat.example.org",
    ]);
    ok(&o);
    let line = stdout(&o);
    let (sii, record) = line.trim().split_once(' ').unwrap();
    let pk = PublicKey::from_verifying_key(key.verifying_key()).unwrap();
    Assertion::parse(record)
        .unwrap()
        .verify(&Sii::parse(sii, None).unwrap().hash(), &pk)
        .unwrap();
}

#[cfg(unix)]
#[test]
fn secret_files_are_refused_when_readable_by_others_linked_or_not_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path(), "k.pem");
    let link = dir.path().join("link.pem");
    std::os::unix::fs::symlink(&key, &link).unwrap();
    let sign = |key: &str| {
        publisher(&[
            "sign",
            "--key",
            key,
            "--authority",
            "ma.example.net",
            "--sii",
            "a@example.com",
            "--ssi",
            "im:a@x.example",
        ])
    };
    for (path, expect) in [
        (link.to_str().unwrap(), "symbolic link"),
        ("/dev/zero", "not a regular file"),
    ] {
        let o = sign(path);
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(expect), "{err}");
    }
    // A TSIG key readable by others: push refuses before sending anything.
    let tsig = dir.path().join("update.key");
    std::fs::write(
        &tsig,
        "key \"k\" { algorithm hmac-sha256; secret \"kXW841Sbu0aZFtjM/0NLeCiBM/jbq9bvxoQXun9bHro=\"; };\n",
    )
    .unwrap();
    std::fs::set_permissions(&tsig, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = publisher(&[
        "push",
        dir.path().join("zone.toml").to_str().unwrap(),
        "--server",
        "127.0.0.1:9",
        "--tsig-key",
        tsig.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("TSIG key file is readable by group or others")
            && err.contains(&format!("chmod 600 {}", tsig.display())),
        "{err}"
    );
}

const NOW: u64 = 1_765_000_000;
const DAY: u64 = 86400;

/// A zone directory for `check` and `build`: writes `zone.toml` for zone
/// `origin` of `role` with `[authority]` lines `authority` and top-level
/// lines `top`.
fn zone_dir(dir: &Path, origin: &str, role: &str, top: &str, authority: &str) -> String {
    let p = dir.join("zone.toml");
    std::fs::write(
        &p,
        format!(
            "origin = \"{origin}\"\nrole = \"{role}\"\nns = [\"ns1.example.net\"]\n{top}\n[soa]\nmname = \"ns1.example.net\"\nrname = \"hostmaster.example.net\"\n[authority]\n{authority}\n"
        ),
    )
    .unwrap();
    p.to_str().unwrap().to_owned()
}

fn certify(root: &str, key: &str, from: u64, validity: &str) -> String {
    let o = publisher(&[
        "certify",
        "--root",
        root,
        "--key",
        key,
        "--authority",
        "example.com",
        "--validity",
        validity,
        "--now",
        &from.to_string(),
    ]);
    ok(&o);
    stdout(&o)
}

fn check(config: &str) -> (Option<i32>, String) {
    let o = publisher(&["check", config, "--now", &NOW.to_string()]);
    (o.status.code(), stdout(&o))
}

#[test]
fn a_signing_key_no_valid_certificate_covers_fails_check_build_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (root, root_info) = keygen(d, "root.pem");
    let (old, _) = keygen(d, "old.pem");
    let (new, new_info) = keygen(d, "new.pem");
    let new_kid = new_info["kid"].as_str().unwrap();
    std::fs::write(
        d.join("m.csv"),
        "alice@example.com,im:alice@chat.example.com\n",
    )
    .unwrap();
    let old_cert = certify(&root, &old, NOW - DAY, "90d");
    let write_certs = |certs: &[&str]| std::fs::write(d.join("certs"), certs.concat()).unwrap();
    let config = |key: &str, extra: &str| {
        zone_dir(
            d,
            "example.com",
            "home",
            "mappings = \"m.csv\"",
            &format!(
                "name = \"example.com\"\nkey = \"{key}\"\ncertificates = [\"certs\"]\n{extra}"
            ),
        )
    };

    // The old key is certified: fine.
    write_certs(&[&old_cert]);
    let c = config("old.pem", "");
    assert_eq!(check(&c), (Some(0), check(&c).1));
    // Re-signing with the new key before its certificate is published.
    let c = config("new.pem", "");
    let (code, out) = check(&c);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("new.pem: signing key {new_kid} of authority example.com is not usable: no published certificate covers it")),
        "{out}"
    );
    let zone = d.join("z.zone");
    let o = publisher(&[
        "build",
        &c,
        "--out",
        zone.to_str().unwrap(),
        "--now",
        &NOW.to_string(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no published certificate covers it"));
    assert!(!zone.exists());
    // serve refuses to start with it (it builds every zone first).
    let mut child = Command::new(env!("CARGO_BIN_EXE_mimi-publisher"))
        .args(["serve", &c, "--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("serve started with a key no certificate covers");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let o = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no published certificate covers it"), "{err}");

    // Its certificate published, but valid only from tomorrow: still an error.
    write_certs(&[&old_cert, &certify(&root, &new, NOW + DAY, "90d")]);
    let (code, out) = check(&c);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("its certificate is valid only from"), "{out}");
    // Valid now: fine.
    let new_cert = certify(&root, &new, NOW - 60, "90d");
    write_certs(&[&old_cert, &new_cert]);
    assert_eq!(check(&c).0, Some(0), "{}", check(&c).1);
    // Its certificate expired: an error.
    write_certs(&[&certify(&root, &new, NOW - 100 * DAY, "90d")]);
    let (code, out) = check(&c);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("its certificate expired at {}", NOW - 10 * DAY)),
        "{out}"
    );

    // The root key itself signs: it is the r= of a published certificate.
    write_certs(&[&old_cert]);
    assert_eq!(check(&config("root.pem", "")).0, Some(0));
    // Or it is pinned in root_keys (no certificates needed).
    let pinned = format!(
        "root_keys = [\"{}\"]",
        root_info["public_key"].as_str().unwrap()
    );
    write_certs(&[]);
    assert_eq!(check(&config("root.pem", &pinned)).0, Some(0));
    // With root_keys, an uncertified signing key is refused even without
    // certificate lines.
    let (code, out) = check(&config("new.pem", &pinned));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no published certificate covers it"), "{out}");
}

#[test]
fn published_certificates_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (root, root_info) = keygen(d, "root.pem");
    let (other_root, _) = keygen(d, "other-root.pem");
    let (signing, _) = keygen(d, "signing.pem");
    let (spare, spare_info) = keygen(d, "spare.pem");
    let good = certify(&root, &signing, NOW - DAY, "90d");
    // k= of another key (the signature is checked after, so the k/pk
    // mismatch is what is reported).
    let good_cert = Certificate::parse(good.trim()).unwrap();
    let wrong_kid = good.replace(
        &format!("k={}", good_cert.kid()),
        &format!("k={}", spare_info["kid"].as_str().unwrap()),
    );
    let too_long = certify(&root, &spare, NOW - DAY, "401d");
    let foreign_root = certify(&other_root, &spare, NOW - DAY, "90d");
    let t = good_cert.not_before().0;
    let altered = good.replace(&format!(";t={t};"), &format!(";t={};", t + 1));
    std::fs::write(
        d.join("certs"),
        [&good, &wrong_kid, &too_long, &foreign_root, &altered]
            .map(|s| s.as_str())
            .concat(),
    )
    .unwrap();
    let config = zone_dir(
        d,
        "example.com",
        "home",
        "",
        &format!(
            "name = \"example.com\"\nkey = \"signing.pem\"\ncertificates = [\"certs\"]\nroot_keys = [\"{}\"]",
            root_info["public_key"].as_str().unwrap()
        ),
    );
    let (code, out) = check(&config);
    assert_eq!(code, Some(1), "{out}");
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 4, "{out}");
    assert!(
        errors[0].contains("certs:2: certificate k=")
            && errors[0].contains("is not the key id of its pk="),
        "{out}"
    );
    assert!(
        errors[1].contains("certs:3: certificate for key")
            && errors[1].contains("valid for 401 days"),
        "{out}"
    );
    assert!(
        errors[2].contains("certs:4: ") && errors[2].contains("not one of authority.root_keys"),
        "{out}"
    );
    assert!(
        errors[3].contains("certs:5: ") && errors[3].contains("does not verify under root key"),
        "{out}"
    );
}

#[test]
fn pre_signed_assertions_are_checked_for_window_and_signature() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (root, _) = keygen(d, "root.pem");
    let (signing, _) = keygen(d, "signing.pem");
    let (stray, _) = keygen(d, "stray.pem");
    let (third, _) = keygen(d, "third.pem");
    std::fs::write(d.join("certs"), certify(&root, &signing, NOW - DAY, "90d")).unwrap();
    let sign = |key: &str, authority: &str, sii: &str, validity: &str| {
        let o = publisher(&[
            "sign",
            "--key",
            key,
            "--authority",
            authority,
            "--sii",
            sii,
            "--ssi",
            "im:u@chat.example.com",
            "--validity",
            validity,
            "--now",
            &NOW.to_string(),
        ]);
        ok(&o);
        stdout(&o).trim().to_owned()
    };
    let alice = sign(&signing, "example.com", "alice@example.com", "14d");
    let replayed = format!(
        "mailto:bob@example.com {}",
        alice.split_once(' ').unwrap().1
    );
    let lines = [
        alice.clone(),
        replayed,
        sign(&stray, "example.com", "carol@example.com", "14d"),
        sign(&third, "ma.example.net", "dave@example.com", "100d"),
        // Another authority's key is unknown here: not checked.
        sign(&third, "ma.example.net", "erin@example.com", "14d"),
    ];
    std::fs::write(d.join("presigned"), lines.join("\n") + "\n").unwrap();
    let config = zone_dir(
        d,
        "example.com",
        "home",
        "presigned = [\"presigned\"]",
        "name = \"example.com\"\nkey = \"signing.pem\"\ncertificates = [\"certs\"]",
    );
    let (code, out) = check(&config);
    assert_eq!(code, Some(1), "{out}");
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 3, "{out}");
    assert!(
        errors[0].contains("presigned:2: ") && errors[0].contains("does not verify under key"),
        "{out}"
    );
    assert!(
        errors[1].contains("presigned:3: ")
            && errors[1].contains(
                "neither a root key of example.com nor covered by a published certificate"
            ),
        "{out}"
    );
    assert!(
        errors[2].contains("presigned:4: ") && errors[2].contains("valid for 100 days"),
        "{out}"
    );
    // The good lines alone build.
    std::fs::write(d.join("presigned"), format!("{alice}\n{}\n", lines[4])).unwrap();
    assert_eq!(check(&config), (Some(0), check(&config).1));
}

#[test]
fn a_discovery_name_over_253_octets_is_an_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "k.pem");
    // 190 octets: <52-octet label>.<shard>._mimi.<origin> is 252 octets.
    let origin = format!(
        "{}.{}.{}.example",
        "a".repeat(60),
        "b".repeat(60),
        "c".repeat(60)
    );
    assert_eq!(origin.len(), 190);
    std::fs::write(
        d.join("m.csv"),
        format!("alice@{origin},im:alice@chat.example.com\nbob@x.{origin},im:bob@chat.example.com\ncarol@{origin},im:carol@chat.example.com\n"),
    )
    .unwrap();
    let config = zone_dir(
        d,
        &origin,
        "home",
        "mappings = \"m.csv\"",
        "name = \"example.com\"\nkey = \"k.pem\"",
    );
    let (code, out) = check(&config);
    assert_eq!(code, Some(1), "{out}");
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains("m.csv:2: ") && errors[0].contains("longer than 253 octets"),
        "{out}"
    );
    // Without that line the rest builds, into a zone file with both names.
    std::fs::write(
        d.join("m.csv"),
        format!(
            "alice@{origin},im:alice@chat.example.com\ncarol@{origin},im:carol@chat.example.com\n"
        ),
    )
    .unwrap();
    let zone = d.join("z.zone");
    let o = publisher(&[
        "build",
        &config,
        "--out",
        zone.to_str().unwrap(),
        "--now",
        &NOW.to_string(),
    ]);
    ok(&o);
    let text = std::fs::read_to_string(&zone).unwrap();
    assert_eq!(text.matches("v=mimi1;").count(), 2, "{text}");
}
