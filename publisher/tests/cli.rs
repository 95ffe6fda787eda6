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
