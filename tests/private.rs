//! Private lookups through privacy buckets (SPEC §10), end to end: a real
//! `serve` publishing buckets, the resolver library and the real
//! `mimi-resolve --private`, with every query captured at the DNS level by
//! a forwarding proxy between them, so the test sees exactly which names
//! went over the wire: never a discovery name in private mode.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mimi_e2e::{bin, trust_toml, Authority, Trust, Workspace, ZoneSpec};
use mimi_proto::{DomainName, Sii};
use mimi_publisher::serve::{self, RunningServer, ServeOptions};
use mimi_resolver::{LookupError, NameServers, Resolver, ResolverOptions, TrustStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Users of the bucket zone: with one-character prefixes, buckets of
/// about 300 / 32 ≈ 9 records (~3 KB), so a bucket holds other users'
/// records and is too large for UDP (the resolver retries over TCP).
const USERS: usize = 300;

/// The question name of a DNS message (uncompressed, as resolvers send
/// it), lowercase with a trailing dot.
fn qname(msg: &[u8]) -> Option<String> {
    let mut i = 12;
    let mut out = String::new();
    loop {
        let l = *msg.get(i)? as usize;
        if l == 0 {
            break;
        }
        if l & 0xc0 != 0 {
            return None;
        }
        out.push_str(std::str::from_utf8(msg.get(i + 1..i + 1 + l)?).ok()?);
        out.push('.');
        i += 1 + l;
    }
    Some(out.to_ascii_lowercase())
}

/// A DNS forwarder on loopback (UDP and TCP on one port) that records the
/// question name of every query it passes to `upstream`.
struct Capture {
    addr: SocketAddr,
    names: Arc<Mutex<Vec<String>>>,
    /// The names asked over TCP.
    tcp: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Capture {
    async fn start(upstream: SocketAddr) -> Capture {
        let (tcp, udp) = loop {
            let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
            if let Ok(udp) = UdpSocket::bind(tcp.local_addr().unwrap()).await {
                break (tcp, udp);
            }
        };
        let addr = tcp.local_addr().unwrap();
        let names = Arc::new(Mutex::new(Vec::new()));
        let udp = Arc::new(udp);
        let log = names.clone();
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                    return;
                };
                let query = buf[..n].to_vec();
                log.lock().unwrap().extend(qname(&query));
                let udp = udp.clone();
                tokio::spawn(async move {
                    let up = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                    up.send_to(&query, upstream).await.unwrap();
                    let mut resp = vec![0u8; 65_535];
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(5), up.recv(&mut resp)).await
                    {
                        let _ = udp.send_to(&resp[..n], peer).await;
                    }
                });
            }
        });
        let tcp_names = Arc::new(Mutex::new(Vec::new()));
        let log = names.clone();
        let tcp_log = tcp_names.clone();
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = tcp.accept().await else {
                    return;
                };
                let log = log.clone();
                let tcp_log = tcp_log.clone();
                tokio::spawn(async move {
                    let Ok(mut up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    loop {
                        let mut len = [0u8; 2];
                        if client.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if client.read_exact(&mut query).await.is_err() {
                            return;
                        }
                        log.lock().unwrap().extend(qname(&query));
                        tcp_log.lock().unwrap().extend(qname(&query));
                        if up.write_all(&len).await.is_err() || up.write_all(&query).await.is_err()
                        {
                            return;
                        }
                        let mut len = [0u8; 2];
                        if up.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut resp = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if up.read_exact(&mut resp).await.is_err() {
                            return;
                        }
                        if client.write_all(&len).await.is_err()
                            || client.write_all(&resp).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Capture {
            addr,
            names,
            tcp: tcp_names,
            tasks: vec![udp_task, tcp_task],
        }
    }

    /// The names asked since the last call.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.names.lock().unwrap())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct World {
    ws: Workspace,
    dir: Authority,
}

fn sii(i: usize) -> String {
    format!("user{i}@mail.example")
}

impl World {
    /// `dir.example`: a distribution zone with buckets (one-character
    /// prefixes); `plain.example`: the same mappings without buckets.
    fn new() -> World {
        let w = World {
            ws: Workspace::new(),
            dir: Authority::new("dir.example"),
        };
        let mappings: String = (0..USERS)
            .map(|i| format!("{},mimi://chat.example.org/u/user{i}\n", sii(i)))
            .collect();
        for (sub, origin, buckets) in [
            ("dir", "dir.example", true),
            ("plain", "plain.example", false),
        ] {
            w.ws.write_key(&format!("{sub}/root.pem"), &w.dir.root);
            w.ws.write(&format!("{sub}/mappings.csv"), &mappings);
            let config = w.ws.zone(
                &format!("{sub}/zone.toml"),
                &ZoneSpec {
                    origin,
                    role: "distribution",
                    authority: Some("dir.example"),
                    key: Some("root.pem"),
                    mappings: Some("mappings.csv"),
                    ..Default::default()
                },
            );
            if buckets {
                let text = std::fs::read_to_string(&config).unwrap();
                w.ws.write(&format!("{sub}/zone.toml"), &format!("buckets = 1\n{text}"));
            }
        }
        w
    }

    fn trust(&self) -> String {
        trust_toml(
            1,
            &[Trust {
                authority: &self.dir,
                sii_scope: &["*"],
                ssi_scope: &["chat.example.org"],
            }],
        )
    }

    async fn serve(&self) -> RunningServer {
        serve::start(ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ServeOptions::new(vec![
                self.ws.path("dir/zone.toml"),
                self.ws.path("plain/zone.toml"),
            ])
        })
        .await
        .expect("server starts")
    }

    fn resolver(&self, server: SocketAddr, zones: &[&str], private: bool) -> Resolver {
        let trust = TrustStore::from_toml_str(&self.trust(), "test trust store").unwrap();
        let mut o = ResolverOptions::new(trust);
        o.name_servers = NameServers::Explicit(vec![server]);
        o.distribution_zones = zones
            .iter()
            .map(|z| DomainName::parse(z).unwrap())
            .collect();
        o.home_lookup = false;
        o.timeout = Duration::from_secs(2);
        o.private = private;
        Resolver::new(o).unwrap()
    }
}

fn label(i: usize) -> String {
    Sii::parse(&sii(i), None)
        .unwrap()
        .label()
        .as_str()
        .to_owned()
}

/// Private lookups verify exactly what normal lookups verify, while the
/// wire carries only `_mimi-b` names: the bucket of the label's prefix,
/// never a name with the label; other users' records in the bucket are
/// ignored, not reported. `_mimi-b` is asked once (cached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_lookup_equals_normal_and_asks_no_exact_name() {
    let w = World::new();
    let server = w.serve().await;
    let cap = Capture::start(server.local_addr()).await;
    let me = 0;
    let mates = (1..USERS)
        .filter(|&i| label(i)[..1] == label(me)[..1])
        .count();
    assert!(mates >= 1, "user0's bucket holds other users too");

    let normal = w.resolver(cap.addr, &["dir.example"], false);
    let want = normal
        .lookup(&Sii::parse(&sii(me), None).unwrap())
        .await
        .unwrap();
    assert_eq!(want.verified.len(), 1, "{want:?}");
    let asked = cap.take();
    assert!(asked.iter().any(|n| n.contains(&label(me))), "{asked:?}");

    let private = w.resolver(cap.addr, &["dir.example"], true);
    for i in [me, 1, 2] {
        let got = private
            .lookup(&Sii::parse(&sii(i), None).unwrap())
            .await
            .unwrap();
        assert_eq!(got.verified.len(), 1, "{got:?}");
        assert_eq!(
            got.verified[0].ssi.as_str(),
            format!("mimi://chat.example.org/u/user{i}")
        );
        assert!(got.rejected.is_empty(), "{:?}", got.rejected);
        if i == me {
            assert_eq!(got.verified, want.verified);
        }
        let bucket = format!("{}._mimi-b.dir.example.", &label(i)[..1]);
        assert_eq!(
            got.names,
            [DomainName::parse(bucket.trim_end_matches('.')).unwrap()]
        );
    }
    let asked = cap.take();
    assert!(!asked.is_empty());
    // The bucket answer did not fit UDP: asked again over TCP.
    let bucket = format!("{}._mimi-b.dir.example.", &label(me)[..1]);
    assert!(cap.tcp.lock().unwrap().contains(&bucket), "{asked:?}");
    for n in &asked {
        assert!(n.ends_with("_mimi-b.dir.example."), "asked {n}");
        assert!(!n.contains("._mimi."), "asked a discovery name: {n}");
        for i in 0..USERS {
            assert!(!n.contains(&label(i)), "asked {n}");
        }
    }
    assert_eq!(
        asked
            .iter()
            .filter(|n| *n == "_mimi-b.dir.example.")
            .count(),
        1,
        "_mimi-b is cached: {asked:?}"
    );
    server.shutdown().await.unwrap();
}

/// A zone without buckets: private mode asks its `_mimi-b` name only and
/// returns the typed NoBuckets outcome; with a zone that has buckets next
/// to it, the lookup stands and the other zone's failure says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_without_buckets_is_no_buckets_never_an_exact_query() {
    let w = World::new();
    let server = w.serve().await;
    let cap = Capture::start(server.local_addr()).await;
    let alice = Sii::parse(&sii(0), None).unwrap();
    let r = w.resolver(cap.addr, &["plain.example"], true);
    match r.lookup(&alice).await {
        Err(LookupError::NoBuckets { zones, errors }) => {
            assert_eq!(zones, [DomainName::parse("plain.example").unwrap()]);
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains("publishes no privacy buckets")),
                "{errors:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cap.take(), ["_mimi-b.plain.example."]);

    let r = w.resolver(cap.addr, &["plain.example", "dir.example"], true);
    let got = r.lookup(&alice).await.unwrap();
    assert_eq!(got.verified.len(), 1);
    assert!(
        got.errors
            .iter()
            .any(|e| e.contains("_mimi-b.plain.example.") && e.contains("no privacy buckets")),
        "{:?}",
        got.errors
    );
    assert!(cap.take().iter().all(|n| n.contains("_mimi-b.")));
    server.shutdown().await.unwrap();
}

/// The real `mimi-resolve lookup --private`: the same JSON result as a
/// normal lookup, only bucket names on the wire; exit code 6 and outcome
/// `no_buckets` for a zone without buckets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mimi_resolve_private_binary() {
    let w = World::new();
    let server = w.serve().await;
    let cap = Capture::start(server.local_addr()).await;
    let trust = w.ws.write("trust.toml", &w.trust());
    let addr = cap.addr.to_string();
    let run = |zone: &str, private: bool| {
        let mut cmd = std::process::Command::new(bin("mimi-resolve"));
        cmd.args(["lookup", &sii(0), "--json", "--no-home", "--trust"])
            .arg(&trust)
            .args(["--server", &addr, "--zone", zone]);
        if private {
            cmd.arg("--private");
        }
        let out = tokio::task::block_in_place(|| cmd.output().unwrap());
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code(), json)
    };
    let (code, normal) = run("dir.example", false);
    assert_eq!(code, Some(0), "{normal}");
    cap.take();
    let (code, private) = run("dir.example", true);
    assert_eq!(code, Some(0), "{private}");
    assert_eq!(private["verified"], normal["verified"]);
    assert_eq!(private["outcome"], "verified");
    let asked = cap.take();
    assert!(
        !asked.is_empty()
            && asked
                .iter()
                .all(|n| n.ends_with("._mimi-b.dir.example.") || n == "_mimi-b.dir.example."),
        "{asked:?}"
    );
    let (code, json) = run("plain.example", true);
    assert_eq!(code, Some(6), "{json}");
    assert_eq!(json["outcome"], "no_buckets");
    assert_eq!(json["zones"], serde_json::json!(["plain.example"]));
    assert_eq!(cap.take(), ["_mimi-b.plain.example."]);
    // `batch --private`: one line per SII, the same outcomes.
    let input = w.ws.write("siis.txt", &format!("{}\n{}\n", sii(1), sii(2)));
    for (zone, outcome) in [("dir.example", "verified"), ("plain.example", "no_buckets")] {
        let mut cmd = std::process::Command::new(bin("mimi-resolve"));
        cmd.arg("batch")
            .arg(&input)
            .args(["--no-home", "--private", "--trust"])
            .arg(&trust)
            .args(["--server", &addr, "--zone", zone]);
        let out = tokio::task::block_in_place(|| cmd.output().unwrap());
        assert!(out.status.success());
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l["outcome"] == outcome), "{lines:?}");
        assert!(cap.take().iter().all(|n| n.contains("_mimi-b.")));
    }
    server.shutdown().await.unwrap();
}
