//! DNS over QUIC against `mimi-publisher serve` with an independent
//! implementation: dnspython over aioquic (PyPI), run by
//! `tests/py/doq_query.py`. Debian 12's kdig is built without QUIC, so
//! this is the DoQ counterpart of the `kdig +tls`/`+https` tests in
//! `publisher/tests/encrypted.rs`. `tests/run.sh` makes the Python
//! environment (`tests/.venv`, or `MIMI_TEST_PYTHON`); without it this
//! test fails and says how to make it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use mimi_e2e::pki::TestCa;
use mimi_e2e::{Authority, Workspace, ZoneSpec};
use mimi_proto::Sii;
use mimi_publisher::serve::encrypted::certs::CertPaths;
use mimi_publisher::serve::{EncryptedOptions, ServeOptions};

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MIMI_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} not found: run tests/run.sh (it makes tests/.venv with aioquic and dnspython), \
         or set MIMI_TEST_PYTHON to a Python that has them",
        p.display()
    );
    p
}

/// The JSON line `doq_query.py` printed, and whether it succeeded.
fn doq(addr: SocketAddr, ca: &Path, name: &str) -> (bool, serde_json::Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/doq_query.py");
    let out = tokio::task::block_in_place(|| {
        Command::new(python())
            .arg(script)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(ca)
            .arg("localhost")
            .arg(name)
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "doq_query.py printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnspython_over_aioquic_asks_serve() {
    let ws = Workspace::new();
    let provider = Authority::new("example.com");
    ws.write_key("zone/signing.pem", &provider.root);
    ws.write(
        "zone/mappings.csv",
        "alice@example.com,mimi://chat.example.com/u/alice\n",
    );
    let config = ws.zone(
        "zone/zone.toml",
        &ZoneSpec {
            origin: "example.com",
            role: "home",
            authority: Some("example.com"),
            key: Some("signing.pem"),
            mappings: Some("mappings.csv"),
            ..Default::default()
        },
    );
    let ca = TestCa::new("mimi doq CA");
    let (cert, key) = ca.issue(&["localhost"], 1);
    let ca_path = ws.write("tls/ca.pem", &ca.pem());
    let other_ca = ws.write("tls/other-ca.pem", &TestCa::new("another CA").pem());
    let cert = ws.write("tls/server.crt", &cert);
    let key = ws.write_secret("tls/server.key", &key);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = mimi_publisher::serve::start(ServeOptions {
        listen: any,
        encrypted: EncryptedOptions {
            quic: vec![any],
            certificate: Some(CertPaths { cert, key }),
            ..EncryptedOptions::DEFAULT
        },
        ..ServeOptions::new(vec![config])
    })
    .await
    .unwrap();
    let addr = server.quic_addrs()[0];
    let alice = mimi_proto::name::discovery_name(
        &Sii::parse("alice@example.com", None).unwrap().label(),
        &mimi_proto::DomainName::parse("example.com").unwrap(),
    )
    .unwrap()
    .fqdn();
    let bob = mimi_proto::name::discovery_name(
        &Sii::parse("bob@example.com", None).unwrap().label(),
        &mimi_proto::DomainName::parse("example.com").unwrap(),
    )
    .unwrap()
    .fqdn();

    let (ok, found) = doq(addr, &ca_path, &alice);
    assert!(ok, "{found}");
    assert_eq!(found["id"], 0, "RFC 9250 §4.2.1: {found}");
    assert_eq!(found["rcode"], "NOERROR", "{found}");
    let txt = found["txt"].as_array().unwrap();
    assert_eq!(txt.len(), 1, "{found}");
    assert!(txt[0].as_str().unwrap().starts_with("v=mimi1;"), "{found}");
    assert!(found["padded"].as_bool().unwrap(), "{found}");
    assert_eq!(found["size"].as_u64().unwrap() % 468, 0, "{found}");

    let (ok, missing) = doq(addr, &ca_path, &bob);
    assert!(ok, "{missing}");
    assert_eq!(missing["rcode"], "NXDOMAIN", "{missing}");
    // Found and missing look the same on the wire.
    assert_eq!(missing["size"], found["size"], "{missing} vs {found}");

    let (ok, refused) = doq(addr, &other_ca, &alice);
    assert!(
        !ok,
        "a certificate from another CA must not be accepted: {refused}"
    );
    // aioquic closes the connection on the bad certificate; dnspython
    // reports that as an unexpected end of the stream, not with aioquic's
    // reason. What matters is that no answer was taken.
    assert!(refused["error"].is_string(), "{refused}");
    assert!(refused.get("rcode").is_none(), "{refused}");
    assert_eq!(server.encrypted_stats().unwrap().quic_answers, 2);
    server.shutdown().await.unwrap();
}
