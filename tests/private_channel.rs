//! The private, authenticated lookup channel end to end, both sides ours:
//! `mimi-resolver` asking a real `mimi-publisher serve` over DNS over
//! TLS, HTTPS and QUIC (each transport alone, so an answer can only have
//! come over it), private mode through privacy buckets over DoT, and a
//! certificate rotation while a loop of lookups (each on a new connection,
//! so each one makes a handshake) runs without a single failure. The
//! independent clients and servers (kdig, openssl, curl, unbound) are in
//! `tests/resolver_tls.rs`, `tests/dot_upstream.rs` and
//! `publisher/tests/encrypted.rs`. The CA and certificates are generated
//! here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mimi_e2e::pki::TestCa;
use mimi_e2e::{trust_toml, Authority, Trust, Workspace, ZoneSpec};
use mimi_proto::Sii;
use mimi_publisher::serve::encrypted::certs::{CertEvent, CertPaths};
use mimi_publisher::serve::{EncryptedOptions, RunningServer, ServeOptions};
use mimi_resolver::transport::{CaBundle, DohPath};
use mimi_resolver::{
    LookupError, NameServers, Outcome, Resolver, ResolverOptions, ServerSpec, TlsName, TlsOptions,
    Transport, TrustRoots, TrustStore,
};

const MAPPINGS: &str = "alice@example.com,mimi://chat.example.com/u/alice\n\
                        carol@example.com,mimi://chat.example.com/u/carol\n";

/// Replaces `path` by renaming a complete temporary file over it, as an
/// ACME client does.
fn replace(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Setup {
    /// Kept for its temporary directory.
    _ws: Workspace,
    provider: Authority,
    ca: TestCa,
    ca_path: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    server: RunningServer,
}

/// `serve` for example.com (with privacy buckets of one character when
/// `buckets`) on a plain, a TLS, an HTTPS and a QUIC listener.
async fn setup(buckets: bool) -> Setup {
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
    if buckets {
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("buckets = 1\n{text}")).unwrap();
    }
    let ca = TestCa::new("mimi private-channel CA");
    let ca_path = ws.write("tls/ca.pem", &ca.pem());
    let (cert_pem, key_pem) = ca.issue(&["localhost"], 1);
    let cert = ws.write("tls/server.crt", &cert_pem);
    let key = ws.write_secret("tls/server.key", &key_pem);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = mimi_publisher::serve::start(ServeOptions {
        listen: any,
        encrypted: EncryptedOptions {
            tls: vec![any],
            https: vec![any],
            quic: vec![any],
            certificate: Some(CertPaths {
                cert: cert.clone(),
                key: key.clone(),
            }),
            ..EncryptedOptions::DEFAULT
        },
        ..ServeOptions::new(vec![config])
    })
    .await
    .unwrap();
    Setup {
        _ws: ws,
        provider,
        ca,
        ca_path,
        cert,
        key,
        server,
    }
}

impl Setup {
    fn trust(&self) -> TrustStore {
        let text = trust_toml(
            1,
            &[Trust {
                authority: &self.provider,
                sii_scope: &["mailto:*@example.com"],
                ssi_scope: &["chat.example.com"],
            }],
        );
        TrustStore::from_toml_str(&text, "test trust store").unwrap()
    }

    /// The server's one listener for `transport`.
    fn spec(&self, transport: Transport) -> ServerSpec {
        let addr = match transport {
            Transport::Plain => self.server.local_addr(),
            Transport::Tls => self.server.tls_addrs()[0],
            Transport::Https(_) => self.server.https_addrs()[0],
            Transport::Quic => self.server.quic_addrs()[0],
        };
        ServerSpec::new(addr, transport)
    }

    /// A resolver asking only `spec`, trusting only our CA for `localhost`.
    fn resolver(&self, spec: ServerSpec, private: bool) -> Resolver {
        let mut o = ResolverOptions::new(self.trust());
        o.name_servers = NameServers::Servers {
            servers: vec![spec],
            tls: TlsOptions {
                name: Some(TlsName::parse("localhost").unwrap()),
                roots: TrustRoots::Private(CaBundle::load(&self.ca_path).unwrap()),
            },
        };
        o.timeout = Duration::from_secs(2);
        o.private = private;
        Resolver::new(o).unwrap()
    }
}

fn sii(s: &str) -> Sii {
    Sii::parse(s, None).unwrap()
}

fn transports() -> [(Transport, &'static str); 3] {
    [
        (Transport::Tls, "tls"),
        (Transport::Https(DohPath::default()), "https"),
        (Transport::Quic, "quic"),
    ]
}

/// Each encrypted transport alone carries a whole lookup: the mapping
/// verifies (certificates and assertion both fetched over it), a missing
/// user is a clean absence, and the server counts the answers on that
/// transport and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_over_dot_doh_and_doq_to_serve() {
    let s = setup(false).await;
    for (transport, what) in transports() {
        let before = s.server.encrypted_stats().unwrap();
        let resolver = s.resolver(s.spec(transport), false);
        let r = resolver.lookup(&sii("alice@example.com")).await.unwrap();
        assert_eq!(r.outcome(), Outcome::Verified, "{what}: {r:?}");
        assert_eq!(
            r.verified[0].ssi.as_str(),
            "mimi://chat.example.com/u/alice"
        );
        let r = resolver.lookup(&sii("bob@example.com")).await.unwrap();
        assert_eq!(r.outcome(), Outcome::NotFound, "{what}: {r:?}");
        let after = s.server.encrypted_stats().unwrap();
        let delta = (
            after.tls_answers - before.tls_answers,
            after.https_answers - before.https_answers,
            after.quic_answers - before.quic_answers,
        );
        // One discovery name per lookup (the assertions are signed by a
        // pinned root key: no certificate to fetch).
        let asked = match what {
            "tls" => (delta.0, delta.1 + delta.2),
            "https" => (delta.1, delta.0 + delta.2),
            _ => (delta.2, delta.0 + delta.1),
        };
        assert!(asked.0 >= 2 && asked.1 == 0, "{what}: {delta:?}");
        assert_eq!(after.failed_handshakes, 0, "{what}: {after:?}");
    }
    s.server.shutdown().await.unwrap();
}

/// Private mode over DNS over TLS: the server never sees the discovery
/// label, the path sees nothing; the result is the normal one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_lookups_through_buckets_over_dot() {
    let s = setup(true).await;
    let normal = s.resolver(s.spec(Transport::Tls), false);
    let private = s.resolver(s.spec(Transport::Tls), true);
    for user in ["alice@example.com", "carol@example.com"] {
        let a = normal.lookup(&sii(user)).await.unwrap();
        let b = private.lookup(&sii(user)).await.unwrap();
        assert_eq!(a.outcome(), Outcome::Verified, "{a:?}");
        assert_eq!(b.outcome(), Outcome::Verified, "{b:?}");
        assert_eq!(a.verified, b.verified);
        assert!(
            b.names.iter().all(|n| n.as_str().contains("._mimi-b.")),
            "{:?}",
            b.names
        );
    }
    let r = private.lookup(&sii("bob@example.com")).await.unwrap();
    assert_eq!(r.outcome(), Outcome::NotFound, "{r:?}");
    s.server.shutdown().await.unwrap();

    // A zone without buckets: private mode says so and asks nothing else.
    let plain = setup(false).await;
    let private = plain.resolver(plain.spec(Transport::Tls), true);
    match private.lookup(&sii("alice@example.com")).await {
        Err(LookupError::NoBuckets { .. }) => {}
        other => panic!("expected NoBuckets, got {other:?}"),
    }
    plain.server.shutdown().await.unwrap();
}

/// The certificate and key are replaced (two renames, as an ACME client
/// renews) while a loop of lookups runs over DoT, DoH and DoQ in turn,
/// each with a new resolver and so a new handshake: not one lookup fails
/// before, while (the certificate renamed first, then the key) or after
/// the new pair is installed, when new handshakes get it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_while_lookups_run() {
    let s = Arc::new(setup(false).await);
    let stop = Arc::new(AtomicBool::new(false));
    let swapped = Arc::new(AtomicBool::new(false));
    let looper = {
        let (s, stop, swapped) = (s.clone(), stop.clone(), swapped.clone());
        tokio::spawn(async move {
            let mut failures = Vec::new();
            let (mut n, mut after_swap) = (0u32, 0u32);
            // Bounded: at most 2,000 lookups, and at least 9 after the
            // swap (three per transport) before it may stop.
            while n < 2000 && !(stop.load(Ordering::SeqCst) && after_swap >= 9) {
                let was_swapped = swapped.load(Ordering::SeqCst);
                let (transport, what) = transports()[(n % 3) as usize].clone();
                let resolver = s.resolver(s.spec(transport), false);
                match resolver.lookup(&sii("alice@example.com")).await {
                    Ok(r) if r.outcome() == Outcome::Verified => {}
                    other => failures.push(format!("{what} lookup {n}: {other:?}")),
                }
                n += 1;
                if was_swapped {
                    after_swap += 1;
                }
            }
            (n, after_swap, failures)
        })
    };
    // Let the loop get going on the old certificate.
    let old_leaf = s.server.certificate_chain().unwrap()[0].clone();
    tokio::time::timeout(Duration::from_secs(30), async {
        while s.server.encrypted_stats().unwrap().quic_answers < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the loop's first lookups over every transport");
    let mut events = s.server.subscribe_certificates().unwrap();
    let (cert_pem, key_pem) = s.ca.issue(&["localhost"], 2);
    replace(&s.cert, &cert_pem, 0o644);
    replace(&s.key, &key_pem, 0o600);
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.recv().await.unwrap() {
                CertEvent::Installed => return,
                CertEvent::Kept(_) => continue,
            }
        }
    })
    .await
    .expect("the renewed certificate is installed");
    assert_ne!(s.server.certificate_chain().unwrap()[0], old_leaf);
    swapped.store(true, Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    let (n, after_swap, failures) = looper.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} of {n} lookups failed: {failures:?}",
        failures.len()
    );
    assert!(after_swap >= 9, "{after_swap} lookups after the swap");
    assert_eq!(s.server.encrypted_stats().unwrap().failed_handshakes, 0);
    let s = Arc::try_unwrap(s).ok().expect("the loop has ended");
    s.server.shutdown().await.unwrap();
}
