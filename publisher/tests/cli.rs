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
