//! The encrypted listeners of `serve` on loopback, checked with real,
//! independent clients: kdig (knot-dnsutils) over DNS over TLS and DNS
//! over HTTPS (POST and GET), curl for the HTTP status codes, a quinn
//! client for DNS over QUIC (Debian's kdig 3.2.6 is built without QUIC),
//! and tokio-rustls clients for certificate rotation. Certificates come
//! from a CA generated here (rcgen); nothing secret is committed.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use mimi_proto::name::discovery_name;
use mimi_proto::{DomainName, Sii};
use mimi_publisher::serve::encrypted::certs::{CertEvent, CertPaths};
use mimi_publisher::serve::{self, EncryptedOptions, RunningServer, ServeOptions};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::CONFIG;

/// Every step finishes well within this, or the test fails.
const BOUND: Duration = Duration::from_secs(20);

/// A test CA and the certificates it issues for `localhost` and
/// 127.0.0.1.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A server certificate and its key, as PEM.
    fn issue(&self, serial: u64) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
    ca: Ca,
    ca_pem: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// Writes `text` to `path` through a temporary file and a rename (as an
/// ACME client does), with `mode`.
fn replace(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zone.toml");
    std::fs::write(&config, CONFIG).unwrap();
    std::fs::write(
        dir.path().join("mappings.csv"),
        "alice@example.com,mimi://chat.example.org/u/alice\n",
    )
    .unwrap();
    let key = mimi_publisher::input::keys::generate();
    mimi_publisher::input::keys::write_signing_key(&dir.path().join("signing.pem"), &key).unwrap();
    let ca = Ca::new("mimi test CA");
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, ca.cert.pem()).unwrap();
    let tls = dir.path().join("tls");
    std::fs::create_dir(&tls).unwrap();
    let (cert_pem, key_pem) = ca.issue(1);
    let cert = tls.join("server.crt");
    let key = tls.join("server.key");
    replace(&cert, &cert_pem, 0o644);
    replace(&key, &key_pem, 0o600);
    Fixture {
        dir,
        config,
        ca,
        ca_pem,
        cert,
        key,
    }
}

fn options(f: &Fixture) -> ServeOptions {
    let any = "127.0.0.1:0".parse::<SocketAddr>().unwrap();
    ServeOptions {
        listen: any,
        debounce: Duration::from_millis(200),
        encrypted: EncryptedOptions {
            tls: vec![any],
            https: vec![any],
            quic: vec![any],
            certificate: Some(CertPaths {
                cert: f.cert.clone(),
                key: f.key.clone(),
            }),
            ..EncryptedOptions::DEFAULT
        },
        ..ServeOptions::new(vec![f.config.clone()])
    }
}

async fn start(f: &Fixture) -> RunningServer {
    serve::start(options(f)).await.unwrap()
}

/// Alice's discovery name, absolute.
fn alice() -> String {
    let sii = Sii::parse("alice@example.com", None).unwrap();
    discovery_name(&sii.label(), &DomainName::parse("example.com").unwrap())
        .unwrap()
        .fqdn()
}

/// What kdig printed, split up.
#[derive(Debug)]
struct Kdig {
    ok: bool,
    status: String,
    answers: Vec<String>,
    received: Option<usize>,
    padding: Option<usize>,
    text: String,
}

/// Runs kdig against `addr` with `args`, and with the CA `ca` for
/// encrypted transports (`+tls-ca` alone makes kdig use TLS).
fn kdig(addr: SocketAddr, args: &[&str], ca: Option<&Path>) -> Kdig {
    let mut cmd = Command::new("kdig");
    cmd.arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string()])
        .args(["+norec", "+timeout=5", "+retry=0"]);
    if let Some(ca) = ca {
        cmd.arg(format!("+tls-ca={}", ca.display()))
            .arg("+tls-hostname=localhost");
    }
    let out = cmd
        .args(args)
        .output()
        .expect("kdig is installed (knot-dnsutils)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let status = text
        .lines()
        .filter(|l| l.starts_with(";; ->>HEADER<<-"))
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(';').next().unwrap().trim().to_owned())
        .unwrap_or_default();
    let number = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    let mut answers = Vec::new();
    let mut in_answer = false;
    for line in text.lines() {
        if line.starts_with(";; ANSWER SECTION") {
            in_answer = true;
        } else if line.is_empty() || line.starts_with(";;") {
            in_answer = false;
        } else if in_answer {
            answers.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    // kdig 3.2.6 may crash on exit after an HTTPS query (double free),
    // after printing the answer: success is an answer printed.
    Kdig {
        ok: !status.is_empty(),
        status,
        answers,
        received: number(";; Received "),
        padding: number(";; PADDING: "),
        text,
    }
}

/// kdig over DNS over TLS and DNS over HTTPS (POST and GET) gets the
/// records UDP gets, NXDOMAIN for a missing name, and answers padded to a
/// multiple of 468 octets (the found and the missing name to the same
/// size); the listeners count what they answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_over_tls_and_https_gets_the_udp_answers_padded() {
    let f = fixture();
    let server = start(&f).await;
    let udp = server.local_addr();
    let tls = server.tls_addrs()[0];
    let https = server.https_addrs()[0];
    let name = alice();
    let missing = format!("x{}", &name[1..]);
    tokio::task::block_in_place(|| {
        let plain = kdig(udp, &[&name, "TXT"], None);
        assert!(plain.ok, "{}", plain.text);
        assert_eq!(plain.status, "NOERROR");
        assert_eq!(plain.answers.len(), 1, "{}", plain.text);
        assert!(plain.padding.is_none(), "plain UDP is never padded");
        let plain_tcp = kdig(udp, &[&name, "TXT", "+tcp", "+padding"], None);
        assert!(plain_tcp.ok, "{}", plain_tcp.text);
        assert!(plain_tcp.padding.is_none(), "plain TCP is never padded");
        for transport in [&["+tls"][..], &["+https"], &["+https", "+https-get"]] {
            for (qname, status) in [(name.as_str(), "NOERROR"), (missing.as_str(), "NXDOMAIN")] {
                let r = kdig(
                    if transport[0] == "+tls" { tls } else { https },
                    &[transport, &[qname, "TXT"]].concat(),
                    Some(&f.ca_pem),
                );
                assert!(r.ok, "{transport:?} {qname}: {}", r.text);
                assert_eq!(r.status, status, "{transport:?}: {}", r.text);
                if status == "NOERROR" {
                    assert_eq!(r.answers, plain.answers, "{transport:?}");
                } else {
                    assert!(r.answers.is_empty());
                }
                assert_eq!(r.received, Some(468), "{transport:?} {qname}: {}", r.text);
                assert!(r.padding.is_some_and(|p| p > 0), "{}", r.text);
                if transport.contains(&"+https-get") {
                    assert!(r.text.contains("HTTP/2-GET"), "{}", r.text);
                } else if transport[0] == "+https" {
                    assert!(r.text.contains("HTTP/2-POST"), "{}", r.text);
                }
            }
        }
    });
    let stats = server.encrypted_stats().unwrap();
    assert_eq!(stats.tls_answers, 2, "{stats:?}");
    assert_eq!(stats.https_answers, 4, "{stats:?}");
    server.shutdown().await.unwrap();
}

/// A client that trusts another CA fails the handshake (the certificate
/// is really checked), and the listener keeps serving the next client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_fails_and_the_listener_survives() {
    let f = fixture();
    let server = start(&f).await;
    let other = f.dir.path().join("other-ca.pem");
    std::fs::write(&other, Ca::new("someone else").cert.pem()).unwrap();
    let name = alice();
    tokio::task::block_in_place(|| {
        for (addr, how) in [
            (server.tls_addrs()[0], "+tls"),
            (server.https_addrs()[0], "+https"),
        ] {
            let r = kdig(addr, &[how, &name, "TXT"], Some(&other));
            assert!(!r.ok, "{how}: {}", r.text);
            assert!(r.text.contains("certificate"), "{how}: {}", r.text);
            let r = kdig(addr, &[how, &name, "TXT"], Some(&f.ca_pem));
            assert!(r.ok && r.status == "NOERROR", "{how}: {}", r.text);
        }
    });
    assert!(server.encrypted_stats().unwrap().failed_handshakes >= 2);
    server.shutdown().await.unwrap();
}

/// curl over HTTP/2 with `args`; returns the status code and the headers.
fn curl(port: u16, ca: &Path, target: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-D",
            "-",
        ])
        .arg("--cacert")
        .arg(ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(args)
        .arg(format!("https://localhost:{port}{target}"))
        .output()
        .expect("curl is installed");
    let headers = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = headers
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status from curl for {target} {args:?}: {headers} {out:?}"));
    (code, headers.to_ascii_lowercase())
}

fn query_bytes(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    m.set_edns(e);
    m.to_vec().unwrap()
}

/// DNS over HTTPS answers 200 with the media type and the TTL as
/// max-age; 404 for another path, 405 for another method, 415 for another
/// content type, 400 for a bad or oversized query; REFUSED (200) for a
/// zone transfer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_status_codes() {
    let f = fixture();
    let server = start(&f).await;
    let port = server.https_addrs()[0].port();
    let q = data_encoding::BASE64URL_NOPAD.encode(&query_bytes(0, &alice(), RecordType::TXT));
    let body = f.dir.path().join("query.bin");
    std::fs::write(&body, query_bytes(0, &alice(), RecordType::TXT)).unwrap();
    let big = f.dir.path().join("big.bin");
    std::fs::write(&big, vec![0u8; 70_000]).unwrap();
    let axfr = f.dir.path().join("axfr.bin");
    std::fs::write(&axfr, query_bytes(0, "example.com.", RecordType::AXFR)).unwrap();
    let out = f.dir.path().join("axfr.out");
    let data = |p: &Path| format!("@{}", p.display());
    let ca = &f.ca_pem;
    tokio::task::block_in_place(|| {
        let (code, headers) = curl(port, ca, &format!("/dns-query?dns={q}"), &[]);
        assert_eq!(code, 200, "{headers}");
        assert!(
            headers.contains("content-type: application/dns-message"),
            "{headers}"
        );
        assert!(headers.contains("cache-control: max-age=300"), "{headers}");
        let post = [
            "-H",
            "content-type: application/dns-message",
            "--data-binary",
        ];
        let (code, _) = curl(
            port,
            ca,
            "/dns-query",
            &[&post[..], &[&data(&body)]].concat(),
        );
        assert_eq!(code, 200);
        assert_eq!(curl(port, ca, &format!("/other?dns={q}"), &[]).0, 404);
        let (code, headers) = curl(port, ca, "/dns-query", &["-X", "PUT"]);
        assert_eq!(code, 405);
        assert!(headers.contains("allow: get, post"), "{headers}");
        let text = [
            "-H",
            "content-type: text/plain",
            "--data-binary",
            &data(&body),
        ];
        assert_eq!(curl(port, ca, "/dns-query", &text).0, 415);
        assert_eq!(curl(port, ca, "/dns-query?dns=!!!", &[]).0, 400);
        assert_eq!(curl(port, ca, "/dns-query?nodns=1", &[]).0, 400);
        let (code, _) = curl(
            port,
            ca,
            "/dns-query",
            &[&post[..], &[&data(&big)]].concat(),
        );
        assert_eq!(code, 400, "a body over 65,535 octets");
        let (code, _) = curl(port, ca, "/dns-query?dns=AAAA", &[]);
        assert_eq!(code, 400, "not a DNS query");
        let axfr_data = data(&axfr);
        let args = [&post[..], &[&axfr_data]].concat();
        let mut with_out: Vec<&str> = args.clone();
        let out_s = out.display().to_string();
        with_out.extend(["-o", &out_s]);
        let status = Command::new("curl")
            .args(["-s", "--http2", "--max-time", "10", "--cacert"])
            .arg(ca)
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .args(&with_out)
            .arg(format!("https://localhost:{port}/dns-query"))
            .status()
            .unwrap();
        assert!(status.success());
        let m = Message::from_vec(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::Refused,
            "no AXFR over HTTPS"
        );
    });
    server.shutdown().await.unwrap();
}

fn roots(ca: &Path) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

use rustls_pki_types::pem::PemObject;

fn client_config(ca: &Path, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca))
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// A DNS over QUIC exchange on a new stream of `conn`: the answer, or
/// the error that ended the stream.
async fn doq(conn: &quinn::Connection, query: &[u8]) -> Result<Vec<u8>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let mut frame = (query.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(query);
    send.write_all(&frame).await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    let data = recv.read_to_end(70_000).await.map_err(|e| e.to_string())?;
    let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
    assert_eq!(len, data.len() - 2, "one length-prefixed answer");
    Ok(data[2..].to_vec())
}

fn txt_of(m: &Message) -> Vec<Vec<u8>> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(t.txt_data.concat()),
            _ => None,
        })
        .collect()
}

/// DNS over QUIC (quinn client, ALPN doq): the TXT answer equals the UDP
/// answer, NXDOMAIN for a missing name, answers carry id 0 and are padded
/// to 468; a query with a non-zero id closes the connection with
/// DOQ_PROTOCOL_ERROR (RFC 9250 §4.2.1); a wrong CA fails the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_answers_like_udp_and_refuses_nonzero_ids() {
    let f = fixture();
    let server = start(&f).await;
    let addr = server.quic_addrs()[0];
    let name = alice();

    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server.local_addr()).await.unwrap();
    socket
        .send(&query_bytes(0, &name, RecordType::TXT))
        .await
        .unwrap();
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(BOUND, socket.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let udp = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(txt_of(&udp).len(), 1);

    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let quic_config = |ca: &Path| {
        let tls =
            quinn::crypto::rustls::QuicClientConfig::try_from(client_config(ca, b"doq")).unwrap();
        quinn::ClientConfig::new(Arc::new(tls))
    };
    endpoint.set_default_client_config(quic_config(&f.ca_pem));
    let conn = tokio::time::timeout(BOUND, endpoint.connect(addr, "localhost").unwrap())
        .await
        .unwrap()
        .unwrap();
    let found = doq(&conn, &query_bytes(0, &name, RecordType::TXT))
        .await
        .unwrap();
    assert_eq!(found.len() % 468, 0, "{}", found.len());
    let found = Message::from_vec(&found).unwrap();
    assert_eq!(found.metadata.id, 0);
    assert_eq!(txt_of(&found), txt_of(&udp));
    let missing = format!("x{}", &name[1..]);
    let nx = doq(&conn, &query_bytes(0, &missing, RecordType::TXT))
        .await
        .unwrap();
    assert_eq!(nx.len(), 468, "found and missing alike");
    assert_eq!(
        Message::from_vec(&nx).unwrap().metadata.response_code,
        ResponseCode::NXDomain
    );
    let axfr = doq(&conn, &query_bytes(0, "example.com.", RecordType::AXFR))
        .await
        .unwrap();
    assert_eq!(
        Message::from_vec(&axfr).unwrap().metadata.response_code,
        ResponseCode::Refused
    );
    assert_eq!(server.encrypted_stats().unwrap().quic_answers, 3);

    // A non-zero message id is a protocol error.
    let _ = doq(&conn, &query_bytes(7, &name, RecordType::TXT)).await;
    let reason = tokio::time::timeout(BOUND, conn.closed()).await.unwrap();
    match reason {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(
                c.error_code,
                quinn::VarInt::from_u32(2),
                "DOQ_PROTOCOL_ERROR"
            )
        }
        other => panic!("closed for another reason: {other}"),
    }

    // Another CA: the handshake fails.
    let other = f.dir.path().join("other-ca.pem");
    std::fs::write(&other, Ca::new("someone else").cert.pem()).unwrap();
    endpoint.set_default_client_config(quic_config(&other));
    let r = tokio::time::timeout(BOUND, endpoint.connect(addr, "localhost").unwrap())
        .await
        .unwrap();
    assert!(r.is_err(), "a wrong CA must fail");
    endpoint.close(0u32.into(), b"");
    server.shutdown().await.unwrap();
}

/// A DNS over TLS connection of the test.
struct DotClient {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
}

impl DotClient {
    async fn connect(addr: SocketAddr, ca: &Path) -> DotClient {
        let connector = tokio_rustls::TlsConnector::from(client_config(ca, b"dot"));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let stream = tokio::time::timeout(
            BOUND,
            connector.connect(ServerName::try_from("localhost").unwrap(), tcp),
        )
        .await
        .unwrap()
        .unwrap();
        DotClient { stream }
    }

    /// The leaf certificate the server presented.
    fn leaf(&self) -> CertificateDer<'static> {
        self.stream.get_ref().1.peer_certificates().unwrap()[0]
            .clone()
            .into_owned()
    }

    async fn ask(&mut self, id: u16, name: &str) -> Result<Message, String> {
        let q = query_bytes(id, name, RecordType::TXT);
        let mut frame = (q.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(&q);
        let exchange = async {
            self.stream.write_all(&frame).await?;
            let mut len = [0u8; 2];
            self.stream.read_exact(&mut len).await?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            self.stream.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        let buf = tokio::time::timeout(BOUND, exchange)
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        Message::from_vec(&buf).map_err(|e| e.to_string())
    }
}

fn pem_der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// Waits for the next certificate reload that installs a pair, skipping
/// the ones that kept the old pair (the moment between two renames).
async fn installed(events: &mut tokio::sync::broadcast::Receiver<CertEvent>) {
    tokio::time::timeout(BOUND, async {
        loop {
            match events.recv().await.unwrap() {
                CertEvent::Installed => return,
                CertEvent::Kept(_) => continue,
            }
        }
    })
    .await
    .expect("the new certificate is installed");
}

/// While a client loop queries DNS over TLS on new connections, the
/// certificate and key are replaced by a new pair from the same CA (two
/// renames, certificate first): no query fails, new connections present
/// the new certificate, and a connection opened before the rotation still
/// answers after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_load_drops_nothing() {
    let f = fixture();
    let server = start(&f).await;
    let addr = server.tls_addrs()[0];
    let name = alice();
    let old_leaf = pem_der(&std::fs::read_to_string(&f.cert).unwrap());
    let mut before = DotClient::connect(addr, &f.ca_pem).await;
    assert_eq!(before.leaf(), old_leaf);
    assert_eq!(txt_of(&before.ask(1, &name).await.unwrap()).len(), 1);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loop_task = {
        let stop = stop.clone();
        let ca = f.ca_pem.clone();
        let name = name.clone();
        tokio::spawn(async move {
            let mut leaves = Vec::new();
            let mut failures = Vec::new();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 5000 {
                n += 1;
                let mut c = DotClient::connect(addr, &ca).await;
                match c.ask(n as u16, &name).await {
                    Ok(m) if txt_of(&m).len() == 1 => {}
                    Ok(m) => failures.push(format!("{m:?}")),
                    Err(e) => failures.push(e),
                }
                let leaf = c.leaf();
                if leaves.last() != Some(&leaf) {
                    leaves.push(leaf);
                }
            }
            (n, leaves, failures)
        })
    };
    let mut events = server.subscribe_certificates().unwrap();
    let (cert_pem, key_pem) = f.ca.issue(2);
    let new_leaf = pem_der(&cert_pem);
    replace(&f.cert, &cert_pem, 0o644);
    replace(&f.key, &key_pem, 0o600);
    installed(&mut events).await;
    assert_eq!(server.certificate_chain().unwrap()[0], new_leaf);
    // The loop goes on until one of its connections has seen the new
    // certificate.
    let after = DotClient::connect(addr, &f.ca_pem).await;
    assert_eq!(
        after.leaf(),
        new_leaf,
        "a new connection sees the new certificate"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (n, leaves, failures) = loop_task.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} of {n} queries failed: {failures:?}",
        failures.len()
    );
    assert_eq!(leaves.first(), Some(&old_leaf), "{n} queries");
    // The loop may or may not have connected after the swap; whatever it
    // saw is the old certificate, then the new one.
    assert!(leaves.len() <= 2 && leaves.iter().all(|l| *l == old_leaf || *l == new_leaf));
    // The connection opened before the rotation still answers.
    assert_eq!(before.leaf(), old_leaf);
    assert_eq!(txt_of(&before.ask(2, &name).await.unwrap()).len(), 1);
    // openssl, an independent client, sees the new certificate too.
    let leaf_pem = tokio::task::block_in_place(|| {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &addr.to_string(),
                "-servername",
                "localhost",
            ])
            .arg("-CAfile")
            .arg(&f.ca_pem)
            .args(["-verify_return_error", "-alpn", "dot"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    });
    let begin = leaf_pem.find("-----BEGIN CERTIFICATE-----").unwrap();
    let end = leaf_pem.find("-----END CERTIFICATE-----").unwrap() + 25;
    assert_eq!(pem_der(&format!("{}\n", &leaf_pem[begin..end])), new_leaf);
    server.shutdown().await.unwrap();
}

/// Waits for a reload that kept the pair in service for a reason
/// containing `why` (a file event may be reported in more than one batch,
/// each giving the same reason); a reload that installs a pair fails.
async fn kept_because(events: &mut tokio::sync::broadcast::Receiver<CertEvent>, why: &str) {
    tokio::time::timeout(BOUND, async {
        loop {
            match events.recv().await.unwrap() {
                CertEvent::Kept(reason) if reason.contains(why) => return,
                CertEvent::Kept(_) => continue,
                CertEvent::Installed => panic!("installed instead of kept ({why})"),
            }
        }
    })
    .await
    .expect("the reload keeps the old pair");
}

/// A key that is not the certificate's (or a half-written file) never
/// replaces the pair in service: the reload says why, and new
/// connections still get the old certificate and answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatched_or_partial_pair_keeps_the_old_certificate() {
    let f = fixture();
    let server = start(&f).await;
    let addr = server.tls_addrs()[0];
    let old_leaf = pem_der(&std::fs::read_to_string(&f.cert).unwrap());
    let mut events = server.subscribe_certificates().unwrap();
    let (_, other_key) = f.ca.issue(3);
    replace(&f.key, &other_key, 0o600);
    kept_because(&mut events, "is not the key of the certificate").await;
    let mut c = DotClient::connect(addr, &f.ca_pem).await;
    assert_eq!(c.leaf(), old_leaf);
    assert_eq!(txt_of(&c.ask(1, &alice()).await.unwrap()).len(), 1);
    // A certificate file cut short (no final newline) is waited for.
    let (cert_pem, key_pem) = f.ca.issue(4);
    replace(&f.cert, &cert_pem[..cert_pem.len() - 1], 0o644);
    kept_because(&mut events, "does not end with a newline").await;
    assert_eq!(DotClient::connect(addr, &f.ca_pem).await.leaf(), old_leaf);
    // Completing both files installs the pair.
    replace(&f.cert, &cert_pem, 0o644);
    replace(&f.key, &key_pem, 0o600);
    installed(&mut events).await;
    assert_eq!(
        DotClient::connect(addr, &f.ca_pem).await.leaf(),
        pem_der(&cert_pem)
    );
    server.shutdown().await.unwrap();
}

/// Starting fails with a reason naming the file for a key readable by
/// others, and an encrypted listener without a certificate is an error
/// (library and command line).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_settings_stop_the_start() {
    let f = fixture();
    replace(&f.key, &std::fs::read_to_string(&f.key).unwrap(), 0o644);
    let e = serve::start(options(&f)).await.unwrap_err().to_string();
    assert!(e.contains("server.key"), "{e}");
    let mut opts = options(&f);
    opts.encrypted.certificate = None;
    let e = serve::start(opts).await.unwrap_err().to_string();
    assert!(e.contains("--tls-cert"), "{e}");
    let out = Command::new(env!("CARGO_BIN_EXE_mimi-publisher"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--listen-tls",
            "127.0.0.1:0",
        ])
        .arg(&f.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tls-cert"), "{stderr}");
}

/// Zone transfers run over DNS over TLS (XoT, RFC 9103) under the zone's
/// transfer policy, as over TCP: kdig +tls gets the whole zone from an
/// allowed address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_transfers_over_tls() {
    let f = fixture();
    std::fs::write(
        &f.config,
        format!("{CONFIG}\n[transfer]\nallow = [\"127.0.0.1\"]\n"),
    )
    .unwrap();
    let server = start(&f).await;
    let tls = server.tls_addrs()[0];
    let (over_tls, over_tcp, plain_to_tls) = tokio::task::block_in_place(|| {
        (
            kdig(tls, &["+tls", "example.com", "AXFR"], Some(&f.ca_pem)),
            kdig(server.local_addr(), &["example.com", "AXFR"], None),
            kdig(tls, &["example.com", "AXFR"], None),
        )
    });
    let records = |k: &Kdig| {
        k.text
            .lines()
            .filter(|l| !l.starts_with(";;") && !l.is_empty())
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    assert_eq!(records(&over_tcp).len(), 4, "{}", over_tcp.text);
    assert_eq!(records(&over_tls), records(&over_tcp), "{}", over_tls.text);
    // The port speaks TLS only: what came back came over TLS.
    assert!(records(&plain_to_tls).is_empty(), "{}", plain_to_tls.text);
    server.shutdown().await.unwrap();
}

/// A connection that sends no handshake is closed after the handshake
/// timeout, one that sends garbage at once, and connections over the
/// per-source limit are closed on arrival; the listener serves the next
/// client each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_and_connections_are_bounded() {
    let f = fixture();
    let mut opts = options(&f);
    opts.encrypted.handshake_timeout = Duration::from_millis(300);
    opts.tcp.max_per_source = 2;
    let server = serve::start(opts).await.unwrap();
    let addr = server.tls_addrs()[0];
    let closed = |mut s: TcpStream| async move {
        let mut buf = [0u8; 64];
        loop {
            match tokio::time::timeout(BOUND, s.read(&mut buf))
                .await
                .expect("closed in time")
            {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    let silent = TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    closed(silent).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    closed(garbage).await;
    assert_eq!(server.encrypted_stats().unwrap().failed_handshakes, 2);

    let mut a = DotClient::connect(addr, &f.ca_pem).await;
    let _b = DotClient::connect(addr, &f.ca_pem).await;
    let third = TcpStream::connect(addr).await.unwrap();
    closed(third).await;
    assert_eq!(txt_of(&a.ask(1, &alice()).await.unwrap()).len(), 1);
    drop(a);
    // The slot is free again once the server has seen the close.
    eventually_connects(addr, &f.ca_pem).await;
    server.shutdown().await.unwrap();
}

/// Connects and asks until it works (a slot freed by a client's close is
/// free once the server has read that close).
async fn eventually_connects(addr: SocketAddr, ca: &Path) {
    let deadline = std::time::Instant::now() + BOUND;
    loop {
        let connector = tokio_rustls::TlsConnector::from(client_config(ca, b"dot"));
        let tcp = TcpStream::connect(addr).await.unwrap();
        if let Ok(Ok(stream)) = tokio::time::timeout(
            BOUND,
            connector.connect(ServerName::try_from("localhost").unwrap(), tcp),
        )
        .await
        {
            let mut c = DotClient { stream };
            if c.ask(2, &alice()).await.is_ok() {
                return;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no slot freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// dnsperf (an independent DoH client, nghttp2 + OpenSSL) keeps 10
/// queries in flight over DNS over HTTPS, GET and POST, for two seconds:
/// every query is answered and none stalls. dnsperf reads the socket only
/// when it becomes readable, so a response whose DATA frame left in a
/// second TLS record waited for the next packet (or was lost at the end),
/// and a connection closed after a number of requests stalled it for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsperf_over_https_loses_nothing() {
    let f = fixture();
    let server = start(&f).await;
    let port = server.https_addrs()[0].port().to_string();
    let queries = f.dir.path().join("queries.txt");
    std::fs::write(
        &queries,
        format!("{} TXT\nx{} TXT\n", alice(), &alice()[1..]),
    )
    .unwrap();
    for method in ["GET", "POST"] {
        let out = tokio::task::block_in_place(|| {
            Command::new("dnsperf")
                .args([
                    "-m",
                    "doh",
                    "-s",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-l",
                    "2",
                    "-c",
                    "1",
                ])
                .args(["-q", "10", "-e", "-O", &format!("doh-method={method}")])
                .args(["-O", &format!("doh-uri=https://localhost:{port}/dns-query")])
                .arg("-d")
                .arg(&queries)
                .output()
                .expect("dnsperf is installed (dnsperf)")
        });
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{method}: no {name} in {text}"))
        };
        assert_eq!(field("Queries lost:"), 0, "{method}: {text}");
        assert!(field("Queries completed:") >= 200, "{method}: {text}");
    }
    assert!(server.encrypted_stats().unwrap().https_answers >= 400);
    server.shutdown().await.unwrap();
}
