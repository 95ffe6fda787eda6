//! The resolver over encrypted transports, against real, independent
//! servers: unbound's own DNS-over-TLS and DNS-over-HTTPS listeners (in
//! front of the publisher's real server, as a stub zone), `openssl
//! s_server` recording the bytes of a DoT query (padding), and — because no
//! independent DoQ server is packaged — a minimal DoQ test fixture built
//! from quinn and hickory-proto that relays to the publisher over UDP.
//!
//! Certificates are generated here with rcgen (a private CA and a server
//! certificate for `dns.test` and 127.0.0.1); nothing secret is committed.

use rustls::pki_types::pem::PemObject;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use mimi_e2e::pki::TestCa;
use mimi_e2e::secondaries::{self, UnboundTls};
use mimi_e2e::{
    bin, eventually, free_port, require, trust_toml, Authority, Trust, Workspace, ZoneSpec,
};
use mimi_proto::{Sii, UnixTime};
use mimi_publisher::serve::{self, RunningServer, ServeOptions};
use mimi_resolver::transport::CaBundle;
use mimi_resolver::{
    LookupError, NameServers, Resolver, ResolverOptions, ServerSpec, TlsOptions, TrustRoots,
    TrustStore,
};
use serde_json::Value;

/// A CA and a server certificate it issued (names `dns.test` and
/// 127.0.0.1), all as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    cert_der: rustls::pki_types::CertificateDer<'static>,
    key_der: Vec<u8>,
}

fn pki(dir: &Path, prefix: &str) -> Pki {
    let ca = TestCa::new(&format!("{prefix} test CA"));
    let (cert_pem, key_pem) = ca.issue(&["dns.test", "127.0.0.1"], 1);
    let write = |name: &str, text: String| {
        let path = dir.join(format!("{prefix}-{name}"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let key_path = write("key.pem", key_pem.clone());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    Pki {
        ca: write("ca.pem", ca.pem()),
        cert_der: rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap(),
        key_der: rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .unwrap()
            .secret_der()
            .to_vec(),
        cert: write("cert.pem", cert_pem),
        key: key_path,
    }
}

/// The publisher serving example.com with alice's mapping, and the trust
/// store that verifies it.
struct Zone {
    ws: Workspace,
    server: RunningServer,
    trust: PathBuf,
}

async fn zone() -> Zone {
    let ws = Workspace::new();
    let provider = Authority::new("example.com");
    let signing = mimi_publisher::input::keys::generate();
    let now = UnixTime::now();
    ws.write_key("example.com/signing.pem", &signing);
    ws.write(
        "example.com/signing.cert",
        &format!("{}\n", provider.certify(&signing, now.minus(86400), 90)),
    );
    ws.write(
        "example.com/mappings.csv",
        "alice@example.com,mimi://chat.example.com/u/alice\n",
    );
    let config = ws.zone(
        "example.com/zone.toml",
        &ZoneSpec {
            origin: "example.com",
            role: "home",
            authority: Some("example.com"),
            key: Some("signing.pem"),
            certificates: &["signing.cert"],
            mappings: Some("mappings.csv"),
            ..Default::default()
        },
    );
    let trust = ws.write(
        "trust.toml",
        &trust_toml(
            1,
            &[Trust {
                authority: &provider,
                sii_scope: &["mailto:*@example.com"],
                ssi_scope: &["chat.example.com"],
            }],
        ),
    );
    let server = serve::start(ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServeOptions::new(vec![config])
    })
    .await
    .expect("server starts");
    Zone { ws, server, trust }
}

/// unbound with its own plain, TLS and HTTPS listeners in front of the
/// publisher (see [`secondaries::unbound_tls`]).
fn unbound(dir: &Path, pki: &Pki, authority: SocketAddr) -> UnboundTls {
    secondaries::unbound_tls(dir, "example.com", authority, &pki.cert, &pki.key)
}

fn resolve(trust: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin("mimi-resolve"));
    cmd.arg("lookup")
        .arg("alice@example.com")
        .arg("--trust")
        .arg(trust)
        .args(["--timeout", "1s"])
        .args(args);
    // The publisher runs on this test's runtime: let it go on while the
    // process runs.
    tokio::task::block_in_place(|| cmd.output().unwrap())
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn verified(out: &Output) -> bool {
    out.status.code() == Some(0)
        && String::from_utf8_lossy(&out.stdout).contains("mimi://chat.example.com/u/alice")
}

/// A lookup that must fail as a DNS failure (exit 3) whose every error
/// names `server` and contains `reason`, in text and in JSON.
fn assert_fails_with(trust: &Path, args: &[&str], server: &str, reason: &str) {
    let out = resolve(trust, args);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(3), "{shown}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let errors: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("error: "))
        .collect();
    assert!(!errors.is_empty(), "{shown}");
    eprintln!("mimi-resolve {}:\n{stdout}", args.join(" "));
    for e in &errors {
        assert!(
            e.contains(&format!("{server}: {reason}")),
            "expected {server}: {reason}…\n{shown}"
        );
    }
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = resolve(trust, &json_args);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "dns_error", "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert!(!errors.is_empty(), "{v}");
    for e in errors {
        assert!(
            e.as_str().unwrap().contains(&format!("{server}: {reason}")),
            "{v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_and_doh_to_unbound_with_a_private_ca() {
    let z = zone().await;
    let dir = z.ws.path("servers");
    std::fs::create_dir_all(&dir).unwrap();
    let good = pki(&dir, "good");
    let other = pki(&dir, "other");
    let mut ub = unbound(&dir, &good, z.server.local_addr());
    let trust = z.trust.clone();
    let dot = format!("tls://{}", ub.tls);
    let ca = good.ca.to_str().unwrap().to_owned();

    // DoT, the certificate checked against the server's IP address (an IP
    // SAN): polled until unbound is up, then a plain success.
    let dot_args = ["--server", dot.as_str(), "--ca", ca.as_str()];
    let out = eventually(
        Duration::from_secs(20),
        "alice to verify over DoT through unbound",
        || {
            let trust = trust.clone();
            async move {
                let out = resolve(&trust, &dot_args);
                verified(&out).then_some(out)
            }
        },
    )
    .await;
    assert!(verified(&out), "{}", text(&out));
    ub.server.daemon.assert_running();

    // DoH, with the certificate's DNS name.
    let doh = format!("https://{}/dns-query", ub.https);
    let out = resolve(
        &trust,
        &["--server", &doh, "--tls-name", "dns.test", "--ca", &ca],
    );
    assert!(verified(&out), "DoH through unbound: {}", text(&out));

    // A CA that did not issue the certificate.
    let wrong_ca = other.ca.to_str().unwrap();
    assert_fails_with(
        &trust,
        &["--server", &dot, "--ca", wrong_ca],
        &format!("tls://{}", ub.tls),
        "certificate not trusted: UnknownIssuer",
    );
    assert_fails_with(
        &trust,
        &["--server", &doh, "--tls-name", "dns.test", "--ca", wrong_ca],
        &doh,
        "certificate not trusted: UnknownIssuer",
    );
    // The system roots do not know the private CA either.
    let out = resolve(&trust, &["--server", &dot]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(3), "{shown}");
    assert!(shown.contains("certificate not trusted"), "{shown}");

    // The same through the library: LookupError::Dns carries the reason.
    let mut o = ResolverOptions::new(TrustStore::load(&trust).unwrap());
    o.name_servers = NameServers::Servers {
        servers: vec![ServerSpec::parse(&dot).unwrap()],
        tls: TlsOptions {
            name: None,
            roots: TrustRoots::Private(CaBundle::load(&other.ca).unwrap()),
        },
    };
    o.timeout = Duration::from_secs(1);
    let r = Resolver::new(o).unwrap();
    match r
        .lookup(&Sii::parse("alice@example.com", None).unwrap())
        .await
    {
        Err(LookupError::Dns(msgs)) => {
            assert!(!msgs.is_empty());
            for m in &msgs {
                assert!(
                    m.contains(&format!("{dot}: certificate not trusted: UnknownIssuer")),
                    "{msgs:?}"
                );
            }
        }
        other => panic!("expected a DNS failure, got {other:?}"),
    }

    // A name the certificate does not carry.
    assert_fails_with(
        &trust,
        &["--server", &dot, "--tls-name", "other.test", "--ca", &ca],
        &format!("tls://{}", ub.tls),
        "certificate not valid for the name other.test",
    );

    // A server that does not speak TLS (unbound's plain DNS port): a
    // failure with its reason, never an answer over plain DNS.
    let not_tls = format!("tls://{}", ub.plain);
    assert_fails_with(
        &trust,
        &["--server", &not_tls, "--ca", &ca],
        &not_tls,
        "no TLS handshake within 1s",
    );

    // A failed encrypted server next to a working one: the lookup verifies
    // through the working one and says nothing failed for good.
    let out = resolve(
        &trust,
        &["--server", &dot, "--server", &not_tls, "--ca", &ca],
    );
    assert!(verified(&out), "{}", text(&out));

    // The same settings as trust-store defaults: [dns] servers, tls_name,
    // ca (relative to the trust store).
    std::fs::copy(&good.ca, z.ws.path("private-ca.pem")).unwrap();
    let base = std::fs::read_to_string(&trust).unwrap();
    let with_dns = z.ws.write(
        "trust-dns.toml",
        &format!(
            "[dns]\nservers = [\"{doh}\"]\ntls_name = \"dns.test\"\nca = \"private-ca.pem\"\n\n{base}"
        ),
    );
    let out = resolve(&with_dns, &[]);
    assert!(verified(&out), "trust-store [dns] defaults: {}", text(&out));
    // Flags override the defaults: another name fails for that reason.
    assert_fails_with(
        &with_dns,
        &["--tls-name", "other.test"],
        &doh,
        "certificate not valid for the name other.test",
    );
    // --ca without any encrypted server is a usage error.
    let out = resolve(&trust, &["--server", &ub.plain.to_string(), "--ca", &ca]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // An unusable CA file is a configuration error naming it.
    let out = resolve(&trust, &["--server", &dot, "--ca", "/nonexistent/ca.pem"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("/nonexistent/ca.pem"), "{shown}");

    ub.server.daemon.assert_running();
    ub.server.daemon.stop();
    z.server.shutdown().await.unwrap();
}

/// The DNS messages in `bytes` (2-octet length prefixes, as on DoT and
/// DoQ streams); a trailing incomplete one is left out.
fn framed_messages(bytes: &[u8]) -> Vec<(usize, Message)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if rest.len() < 2 + len {
            break;
        }
        out.push((len, Message::from_vec(&rest[2..2 + len]).unwrap()));
        rest = &rest[2 + len..];
    }
    out
}

fn padding_len(m: &Message) -> Option<usize> {
    match m.edns.as_ref()?.option(EdnsCode::Padding)? {
        EdnsOption::Unknown(12, data) => Some(data.len()),
        _ => None,
    }
}

/// `openssl s_server` (an independent TLS server) records what the
/// resolver sends over DoT: every query is a multiple of 128 octets long
/// and carries an EDNS Padding option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_queries_are_padded_to_128_octets() {
    let openssl = require("openssl", "openssl");
    let ws = Workspace::new();
    let dir = ws.path("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let good = pki(&dir, "good");
    let trust = ws.write(
        "trust.toml",
        &trust_toml(
            1,
            &[Trust {
                authority: &Authority::new("example.com"),
                sii_scope: &["*"],
                ssi_scope: &["*"],
            }],
        ),
    );
    let port = free_port();
    let received = ws.path("received.bin");
    let out = std::fs::File::create(&received).unwrap();
    let mut cmd = Command::new(openssl);
    cmd.args([
        "s_server",
        "-accept",
        &format!("127.0.0.1:{port}"),
        "-quiet",
    ])
    .arg("-cert")
    .arg(&good.cert)
    .arg("-key")
    .arg(&good.key);
    let mut child = cmd
        .stdin(std::process::Stdio::piped()) // kept open: EOF on stdin ends s_server
        .stdout(out)
        .stderr(std::fs::File::create(ws.path("s_server.log")).unwrap())
        .spawn()
        .unwrap();
    let server = format!("tls://127.0.0.1:{port}");
    let ca = good.ca.to_str().unwrap().to_owned();
    // s_server never answers: each lookup times out after sending. Polled
    // until the recorded bytes hold a complete query.
    let messages = eventually(Duration::from_secs(30), "a DoT query at s_server", || {
        let trust = trust.clone();
        let (server, ca, received) = (server.clone(), ca.clone(), received.clone());
        async move {
            let out = resolve(
                &trust,
                &[
                    "--server",
                    &server,
                    "--ca",
                    &ca,
                    "--zone",
                    "dir.chat.example.org",
                ],
            );
            assert_ne!(out.status.code(), Some(0), "{}", text(&out));
            let msgs = framed_messages(&std::fs::read(&received).unwrap());
            (!msgs.is_empty()).then_some(msgs)
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    for (len, m) in &messages {
        assert_eq!(len % 128, 0, "a {len}-octet query: {m:?}");
        let pad = padding_len(m).unwrap_or_else(|| panic!("no Padding option: {m:?}"));
        assert!(pad < 128, "{pad}");
        assert!(!m.queries.is_empty());
    }
    eprintln!(
        "{} DoT queries recorded, lengths {:?}",
        messages.len(),
        messages.iter().map(|(l, _)| *l).collect::<Vec<_>>()
    );
}

/// Each query's length and the length of its Padding option, if any.
type QueryLog = Arc<Mutex<Vec<(usize, Option<usize>)>>>;

/// A minimal DNS-over-QUIC server (RFC 9250) — a TEST FIXTURE, since no
/// independent DoQ server is packaged: it relays each query to `upstream`
/// over UDP and records the query lengths it saw.
struct DoqFixture {
    addr: SocketAddr,
    lengths: QueryLog,
    endpoint: quinn::Endpoint,
}

impl DoqFixture {
    fn start(pki: &Pki, upstream: SocketAddr) -> DoqFixture {
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(pki.key_der.clone().into());
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.cert_der.clone()], key)
        .unwrap();
        tls.alpn_protocols = vec![b"doq".to_vec()];
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
        let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = endpoint.local_addr().unwrap();
        let lengths = Arc::new(Mutex::new(Vec::new()));
        let (ep, log) = (endpoint.clone(), lengths.clone());
        tokio::spawn(async move {
            while let Some(incoming) = ep.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        let log = log.clone();
                        tokio::spawn(async move {
                            let mut len = [0u8; 2];
                            if recv.read_exact(&mut len).await.is_err() {
                                return;
                            }
                            let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
                            if recv.read_exact(&mut query).await.is_err() {
                                return;
                            }
                            let padding =
                                Message::from_vec(&query).ok().and_then(|m| padding_len(&m));
                            log.lock().unwrap().push((query.len(), padding));
                            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                            sock.send_to(&query, upstream).await.unwrap();
                            let mut buf = vec![0u8; 65535];
                            let Ok(Ok(n)) =
                                tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
                                    .await
                            else {
                                return;
                            };
                            let mut answer = (n as u16).to_be_bytes().to_vec();
                            answer.extend_from_slice(&buf[..n]);
                            let _ = send.write_all(&answer).await;
                            let _ = send.finish();
                            let _ = send.stopped().await;
                        });
                    }
                });
            }
        });
        DoqFixture {
            addr,
            lengths,
            endpoint,
        }
    }
}

/// DoQ: the resolver verifies a mapping through the fixture, with padded
/// queries; a wrong CA is a failure with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doq_to_a_quinn_fixture() {
    let z = zone().await;
    let dir = z.ws.path("quic");
    std::fs::create_dir_all(&dir).unwrap();
    let good = pki(&dir, "good");
    let other = pki(&dir, "other");
    let doq = DoqFixture::start(&good, z.server.local_addr());
    let server = format!("quic://{}", doq.addr);
    let ca = good.ca.to_str().unwrap().to_owned();
    let trust = z.trust.clone();
    let out = resolve(
        &trust,
        &["--server", &server, "--tls-name", "dns.test", "--ca", &ca],
    );
    assert!(verified(&out), "DoQ: {}", text(&out));
    let lengths = doq.lengths.lock().unwrap().clone();
    assert!(!lengths.is_empty());
    for (len, pad) in &lengths {
        assert_eq!(len % 128, 0, "{lengths:?}");
        assert!(pad.is_some(), "{lengths:?}");
    }

    let server = format!("quic://{}", doq.addr);
    let wrong = other.ca.to_str().unwrap().to_owned();
    let trust = z.trust.clone();
    assert_fails_with(
        &trust,
        &[
            "--server",
            &server,
            "--tls-name",
            "dns.test",
            "--ca",
            &wrong,
        ],
        &server,
        "certificate not trusted: UnknownIssuer",
    );
    doq.endpoint.close(0u32.into(), b"done");
    z.server.shutdown().await.unwrap();
}
