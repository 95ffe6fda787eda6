//! The DNS path against a scripted DNS server on 127.0.0.1 (UDP only,
//! answering from a fixed table), so that TXT string concatenation,
//! NXDOMAIN/NODATA versus failures, certificate fetching and SRV endpoints
//! are exercised for real. The full publisher → server → resolver test lives
//! in the workspace's `tests/` crate.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use mimi_proto::{DomainName, Sii, UnixTime};
use mimi_resolver::{
    Endpoint, LookupError, NameServers, Outcome, Resolver, ResolverOptions, TrustStore,
};
use serde_json::Value;
use tokio::net::UdpSocket;

fn vectors() -> Value {
    let dir = std::env::var("MIMI_VECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"));
    let path = dir.join("records.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e} (set MIMI_VECTORS_DIR)", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[derive(Clone)]
enum Answer {
    Records(Vec<RData>),
    Code(ResponseCode),
    Silence,
}

/// A tiny authoritative-looking server: answers `(name, type)` from a table,
/// NODATA for a known name with another type, NXDOMAIN for anything else.
struct FakeDns {
    addr: SocketAddr,
    queries: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeDns {
    async fn start(table: Vec<(&str, RecordType, Answer)>) -> Self {
        let table: HashMap<(String, RecordType), Answer> = table
            .into_iter()
            .map(|(n, t, a)| ((n.to_ascii_lowercase(), t), a))
            .collect();
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let log = queries.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(req) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                let Some(q) = req.queries.first().cloned() else {
                    continue;
                };
                let name = q.name().to_ascii().to_ascii_lowercase();
                log.lock()
                    .unwrap()
                    .push(format!("{name} {}", q.query_type()));
                let mut resp = Message::response(req.metadata.id, OpCode::Query);
                resp.metadata.message_type = MessageType::Response;
                resp.metadata.recursion_desired = req.metadata.recursion_desired;
                resp.metadata.recursion_available = true;
                resp.metadata.authoritative = true;
                resp.add_query(q.clone());
                match table.get(&(name.clone(), q.query_type())) {
                    Some(Answer::Records(rdatas)) => {
                        for rd in rdatas {
                            resp.add_answer(Record::from_rdata(q.name().clone(), 300, rd.clone()));
                        }
                    }
                    Some(Answer::Code(code)) => resp.metadata.response_code = *code,
                    Some(Answer::Silence) => continue,
                    None if table.keys().any(|(n, _)| *n == name) => {}
                    None => resp.metadata.response_code = ResponseCode::NXDomain,
                }
                let _ = socket.send_to(&resp.to_vec().unwrap(), peer).await;
            }
        });
        FakeDns {
            addr,
            queries,
            task,
        }
    }

    fn count(&self, prefix: &str) -> usize {
        self.queries
            .lock()
            .unwrap()
            .iter()
            .filter(|q| q.starts_with(prefix))
            .count()
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// TXT rdata split into character-strings of `chunk` octets.
fn txt(text: &str, chunk: usize) -> RData {
    let strings = text
        .as_bytes()
        .chunks(chunk)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    RData::TXT(TXT::new(strings))
}

fn srv(priority: u16, weight: u16, port: u16, target: &str) -> RData {
    RData::SRV(SRV::new(
        priority,
        weight,
        port,
        Name::from_ascii(target).unwrap(),
    ))
}

const TRUST: &str = r#"
[[authority]]
name = "ma.example.net"
root_keys = ["11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"]

[[authority]]
name = "chat.example.org"
root_keys = ["_FHNjmIYoaONpH7QAjDwWAgW7RO6MwOsXeuRFUiQgCU"]
"#;

const ALICE_HOME: &str =
    "3b3qhrr4hku6f09cih8hemu3qt7u60q58uvh63lqcsjfgama37jg.3b._mimi.example.com.";
const ALICE_DIR: &str =
    "3b3qhrr4hku6f09cih8hemu3qt7u60q58uvh63lqcsjfgama37jg.3b._mimi.dir.chat.example.org.";
const CERTS: &str = "_mimi-ma.ma.example.net.";
const NOW: UnixTime = UnixTime(1_765_000_000);

fn resolver(dns: &FakeDns, endpoints: bool) -> Resolver {
    let mut o = ResolverOptions::new(TrustStore::from_toml_str(TRUST, "test").unwrap());
    o.name_servers = NameServers::Explicit(vec![dns.addr]);
    o.distribution_zones = vec![DomainName::parse("dir.chat.example.org").unwrap()];
    o.timeout = Duration::from_millis(700);
    o.attempts = 0;
    o.endpoints = endpoints;
    Resolver::new(o).unwrap()
}

fn alice() -> Sii {
    Sii::parse("Alice@Example.COM", None).unwrap()
}

fn vector_texts(v: &Value) -> (String, String, String) {
    (
        v["assertions"][0]["text"].as_str().unwrap().to_owned(),
        v["assertions"][2]["text"].as_str().unwrap().to_owned(),
        v["certificate"]["text"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn verified_with_certificate_split_strings_and_endpoints() {
    let v = vectors();
    let (ma, chat, cert) = vector_texts(&v);
    let dns = FakeDns::start(vec![
        (
            ALICE_HOME,
            RecordType::TXT,
            Answer::Records(vec![txt(&ma, 100), txt("v=spf1 -all", 255), txt(&chat, 7)]),
        ),
        (
            ALICE_DIR,
            RecordType::TXT,
            Answer::Records(vec![txt(&ma, 255)]),
        ),
        (
            CERTS,
            RecordType::TXT,
            Answer::Records(vec![txt(&cert, 60)]),
        ),
        (
            "_mimi._tcp.chat.example.org.",
            RecordType::SRV,
            Answer::Records(vec![
                srv(20, 0, 443, "backup.chat.example.org."),
                srv(10, 1, 8443, "b.chat.example.org."),
                srv(10, 5, 8443, "a.chat.example.org."),
            ]),
        ),
    ])
    .await;
    let r = resolver(&dns, true);
    let res = r.lookup_at(&alice(), NOW).await.unwrap();
    assert_eq!(res.outcome(), Outcome::Verified);
    assert!(res.rejected.is_empty(), "{:?}", res.rejected);
    assert!(res.errors.is_empty(), "{:?}", res.errors);
    assert_eq!(
        res.names.iter().map(|n| n.fqdn()).collect::<Vec<_>>(),
        vec![ALICE_HOME, ALICE_DIR]
    );
    assert_eq!(res.verified.len(), 1);
    let vs = &res.verified[0];
    assert_eq!(vs.ssi.as_str(), "mimi://chat.example.org/u/alice");
    assert_eq!(
        vs.authorities
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        vec!["chat.example.org", "ma.example.net"]
    );
    assert_eq!(vs.expires, UnixTime(1765756800));
    let ep = |priority, weight, port, target: &str| Endpoint {
        priority,
        weight,
        port,
        target: target.into(),
    };
    assert_eq!(res.unauthenticated_endpoints.len(), 1);
    let eps = &res.unauthenticated_endpoints[0];
    assert_eq!(eps.host.as_str(), "chat.example.org");
    assert!(!eps.unavailable);
    assert_eq!(
        eps.endpoints,
        vec![
            ep(10, 5, 8443, "a.chat.example.org."),
            ep(10, 1, 8443, "b.chat.example.org."),
            ep(20, 0, 443, "backup.chat.example.org."),
        ]
    );
    assert_eq!(dns.count("_mimi-ma.ma.example.net."), 1);

    // A second lookup does not fetch the certificates again (they are
    // cached for their TTL, by us and by hickory).
    let again = r.lookup_at(&alice(), NOW).await.unwrap();
    assert_eq!(again.verified, res.verified);
    assert_eq!(dns.count("_mimi-ma.ma.example.net."), 1);
}

#[tokio::test]
async fn failed_source_is_reported_when_another_answers() {
    let v = vectors();
    let (ma, _, cert) = vector_texts(&v);
    let dns = FakeDns::start(vec![
        (
            ALICE_HOME,
            RecordType::TXT,
            Answer::Code(ResponseCode::ServFail),
        ),
        (
            ALICE_DIR,
            RecordType::TXT,
            Answer::Records(vec![txt(&ma, 255)]),
        ),
        (
            CERTS,
            RecordType::TXT,
            Answer::Records(vec![txt(&cert, 255)]),
        ),
    ])
    .await;
    let res = resolver(&dns, true).lookup_at(&alice(), NOW).await.unwrap();
    assert_eq!(res.outcome(), Outcome::Verified);
    // No SRV records: no endpoints, and that is not an error.
    assert_eq!(res.unauthenticated_endpoints.len(), 1);
    assert!(res.unauthenticated_endpoints[0].endpoints.is_empty());
    assert_eq!(res.errors.len(), 1, "{:?}", res.errors);
    assert!(res.errors[0].starts_with(ALICE_HOME), "{:?}", res.errors);
    assert!(
        res.errors[0].contains("SERVFAIL") || res.errors[0].contains("Server Failure"),
        "{:?}",
        res.errors
    );
}

#[tokio::test]
async fn every_source_failing_is_a_dns_error() {
    let dns = FakeDns::start(vec![
        (
            ALICE_HOME,
            RecordType::TXT,
            Answer::Code(ResponseCode::Refused),
        ),
        (ALICE_DIR, RecordType::TXT, Answer::Silence),
    ])
    .await;
    let start = Instant::now();
    let e = resolver(&dns, false)
        .lookup_at(&alice(), NOW)
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let LookupError::Dns(msgs) = e else {
        panic!("expected a DNS error, got {e}");
    };
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs[0].starts_with(ALICE_HOME) && msgs[1].starts_with(ALICE_DIR),
        "{msgs:?}"
    );
}

#[tokio::test]
async fn nxdomain_and_nodata_are_not_found() {
    let dns = FakeDns::start(vec![
        // The home name exists, but only with an A record: NODATA for TXT.
        (
            ALICE_HOME,
            RecordType::A,
            Answer::Code(ResponseCode::NoError),
        ),
    ])
    .await;
    let res = resolver(&dns, false)
        .lookup_at(&alice(), NOW)
        .await
        .unwrap();
    assert_eq!(res.outcome(), Outcome::NotFound);
    assert!(res.errors.is_empty(), "{:?}", res.errors);
    assert!(res.verified.is_empty() && res.rejected.is_empty());
}

#[tokio::test]
async fn rejected_records_and_certificate_failures() {
    let v = vectors();
    let (ma, _, _) = vector_texts(&v);
    let expired = v["invalid"][3]["text"].as_str().unwrap().to_owned();
    assert_eq!(v["invalid"][3]["why"], "expired at now");
    let dns = FakeDns::start(vec![
        (
            ALICE_HOME,
            RecordType::TXT,
            Answer::Records(vec![txt(&ma, 255), txt(&expired, 255)]),
        ),
        (CERTS, RecordType::TXT, Answer::Code(ResponseCode::ServFail)),
    ])
    .await;
    let res = resolver(&dns, false)
        .lookup_at(&alice(), NOW)
        .await
        .unwrap();
    assert_eq!(res.outcome(), Outcome::Rejected);
    assert_eq!(res.rejected.len(), 2, "{:?}", res.rejected);
    for r in &res.rejected {
        assert_eq!(r.source, ALICE_HOME);
        assert_eq!(
            r.authority.as_ref().map(|a| a.as_str()),
            Some("ma.example.net")
        );
        assert!(
            r.reason
                .contains("no certificate for signing key 77rh7k568giju12i"),
            "{}",
            r.reason
        );
    }
    assert_eq!(res.errors.len(), 1, "{:?}", res.errors);
    assert!(res.errors[0].starts_with(CERTS), "{:?}", res.errors);
}

/// The binary end to end: JSON and exit codes 0, 1 and 4.
#[tokio::test]
async fn cli_lookup_exit_codes() {
    let v = vectors();
    let (ma, _, cert) = vector_texts(&v);
    let bob = "uqiufnce0un4jbde0gqto43sm0jetrdrlhgnmm99cg9h2pnpvt1g.uq._mimi.dir.chat.example.org.";
    let carol_label = Sii::parse("carol@example.com", None).unwrap().label();
    let carol = format!("{carol_label}.{}._mimi.example.com.", carol_label.shard());
    let dns = FakeDns::start(vec![
        (
            ALICE_HOME,
            RecordType::TXT,
            Answer::Records(vec![txt(&ma, 255)]),
        ),
        (
            CERTS,
            RecordType::TXT,
            Answer::Records(vec![txt(&cert, 255)]),
        ),
        // Alice's record copied to carol's name.
        (
            &carol,
            RecordType::TXT,
            Answer::Records(vec![txt(&ma, 255)]),
        ),
        (bob, RecordType::TXT, Answer::Code(ResponseCode::NoError)),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.toml");
    std::fs::write(&trust, TRUST).unwrap();
    let trust = trust.to_str().unwrap().to_owned();
    let server = dns.addr.to_string();

    let run = |sii: &'static str, extra: &'static [&'static str]| {
        let trust = trust.clone();
        let server = server.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_mimi-resolve"))
                .env_remove("RUST_LOG")
                .args([
                    "lookup",
                    sii,
                    "--trust",
                    &trust,
                    "--server",
                    &server,
                    "--now",
                    "1765000000",
                    "--json",
                ])
                .args(extra)
                .output()
                .unwrap()
        })
    };

    let out = run("alice@example.com", &[]).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["outcome"], "verified");
    assert_eq!(j["verified"][0]["ssi"], "mimi://chat.example.org/u/alice");
    assert_eq!(
        j["verified"][0]["authorities"],
        serde_json::json!(["ma.example.net"])
    );
    assert_eq!(j["verified"][0]["expires"], 1765756800u64);

    let out = run("carol@example.com", &[]).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["outcome"], "rejected");
    assert_eq!(j["rejected"][0]["authority"], "ma.example.net");
    assert!(j["rejected"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("signature does not verify"));
    assert_eq!(j["rejected"][0]["record"], ma.as_str());

    let out = run(
        "+390612345678",
        &["--no-home", "--zone", "dir.chat.example.org"],
    )
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["outcome"], "not_found");
    assert_eq!(j["canonical"], "tel:+390612345678");
}

/// SPEC §4: a record with a time beyond 9999-12-31 (here the vector signed
/// by a trusted key) is rejected as malformed, and the lookup and the batch
/// go on. This used to panic while formatting the time, aborting `batch`.
#[tokio::test]
async fn out_of_range_times_are_rejected_and_the_batch_goes_on() {
    let v = vectors();
    let (ma, _, cert) = vector_texts(&v);
    let far = v["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["why"].as_str().unwrap().contains("time out of range"))
        .expect("the out-of-range time vector")["text"]
        .as_str()
        .unwrap()
        .to_owned();
    // The same kind of record with t above i64::MAX and x above u64::MAX:
    // malformed whatever its signature.
    let huge = ma
        .replace("t=1764547200", "t=9223372036854775808")
        .replace("x=1765756800", "x=99999999999999999999999");
    let carol_label = Sii::parse("carol@example.com", None).unwrap().label();
    let carol = format!("{carol_label}.{}._mimi.example.com.", carol_label.shard());
    let dns = FakeDns::start(vec![
        (
            ALICE_HOME,
            RecordType::TXT,
            Answer::Records(vec![txt(&far, 255), txt(&huge, 255), txt(&ma, 255)]),
        ),
        (
            CERTS,
            RecordType::TXT,
            Answer::Records(vec![txt(&cert, 255)]),
        ),
        (
            &carol,
            RecordType::TXT,
            Answer::Records(vec![txt(&far, 255)]),
        ),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.toml");
    std::fs::write(&trust, TRUST).unwrap();
    let input = dir.path().join("siis.txt");
    std::fs::write(
        &input,
        "carol@example.com\nalice@example.com\ncarol@example.com\n",
    )
    .unwrap();
    let args = [
        "batch".to_owned(),
        input.to_str().unwrap().to_owned(),
        "--trust".to_owned(),
        trust.to_str().unwrap().to_owned(),
        "--server".to_owned(),
        dns.addr.to_string(),
        "--now".to_owned(),
        "1765000000".to_owned(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mimi-resolve"))
            .env_remove("RUST_LOG")
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for carol in [&lines[0], &lines[2]] {
        assert_eq!(carol["outcome"], "rejected", "{carol}");
        let reason = carol["rejected"][0]["reason"].as_str().unwrap();
        assert!(reason.contains("at most 253402300799"), "{reason}");
    }
    let alice = &lines[1];
    assert_eq!(alice["outcome"], "verified", "{alice}");
    assert_eq!(
        alice["verified"][0]["ssi"],
        "mimi://chat.example.org/u/alice"
    );
    let reasons: Vec<&str> = alice["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().all(|r| r.starts_with("malformed")),
        "{reasons:?}"
    );
}
