//! unbound forwarding the discovery zone to `mimi-publisher serve` over
//! DNS over TLS (`forward-tls-upstream`), with `mimi-resolver` verifying
//! through unbound: the standard way to keep the path between a
//! recursive resolver and the publisher private. unbound is told only the
//! TLS port, and the server's counters show that its answers went out
//! over TLS. The CA and the server certificate are generated here.

use std::net::SocketAddr;
use std::time::Duration;

use mimi_e2e::pki::TestCa;
use mimi_e2e::secondaries;
use mimi_e2e::{eventually, trust_toml, Authority, Trust, Workspace, ZoneSpec};
use mimi_proto::Sii;
use mimi_publisher::serve::encrypted::certs::CertPaths;
use mimi_publisher::serve::{EncryptedOptions, ServeOptions};
use mimi_resolver::{NameServers, Outcome, Resolver, ResolverOptions, TrustStore};

const MAPPINGS: &str = "alice@example.com,mimi://chat.example.com/u/alice\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_forwards_over_tls_to_serve() {
    let ws = Workspace::new();
    let provider = Authority::new("example.com");
    ws.write_key("zone/signing.pem", &provider.root);
    ws.write("zone/mappings.csv", MAPPINGS);
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
    let ca = TestCa::new("mimi e2e CA");
    let (cert, key) = ca.issue(&["localhost"], 1);
    let ca = ca.pem();
    let ca_path = ws.write("tls/ca.pem", &ca);
    let cert_path = ws.write("tls/server.crt", &cert);
    let key_path = ws.write_secret("tls/server.key", &key);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = mimi_publisher::serve::start(ServeOptions {
        listen: any,
        encrypted: EncryptedOptions {
            tls: vec![any],
            certificate: Some(CertPaths {
                cert: cert_path,
                key: key_path,
            }),
            ..EncryptedOptions::DEFAULT
        },
        ..ServeOptions::new(vec![config])
    })
    .await
    .unwrap();
    let dot = server.tls_addrs()[0];
    assert_ne!(dot.port(), server.local_addr().port());

    let dir = ws.path("servers");
    std::fs::create_dir_all(&dir).unwrap();
    let mut unbound =
        secondaries::unbound_forward_tls(&dir, "example.com", dot, "localhost", &ca_path);
    let trust = trust_toml(
        1,
        &[Trust {
            authority: &provider,
            sii_scope: &["mailto:*@example.com"],
            ssi_scope: &["chat.example.com"],
        }],
    );
    let mut o =
        ResolverOptions::new(TrustStore::from_toml_str(&trust, "test trust store").unwrap());
    o.name_servers = NameServers::Explicit(vec![unbound.addr]);
    o.timeout = Duration::from_secs(2);
    let resolver = Resolver::new(o).unwrap();
    let sii = Sii::parse("alice@example.com", None).unwrap();
    eventually(
        Duration::from_secs(20),
        "alice to verify through unbound over DoT",
        || async {
            let r = resolver.lookup(&sii).await.ok()?;
            (r.outcome() == Outcome::Verified).then_some(())
        },
    )
    .await;
    let stats = server.encrypted_stats().unwrap();
    assert!(stats.tls_answers > 0, "unbound asked over TLS: {stats:?}");
    assert_eq!(stats.failed_handshakes, 0, "{stats:?}");
    // A missing user is a verified absence, over the same channel.
    let bob = Sii::parse("bob@example.com", None).unwrap();
    let r = resolver.lookup(&bob).await.unwrap();
    assert_eq!(r.outcome(), Outcome::NotFound, "{r:?}");
    assert!(server.encrypted_stats().unwrap().tls_answers > stats.tls_answers);
    unbound.daemon.assert_running();
    server.shutdown().await.unwrap();
}
