//! `serve --metrics`: a real server started from the binary, queried with
//! dig, scraped with curl, the scrape checked with `promtool check
//! metrics`; and the alert rules of `contrib/prometheus` checked and unit
//! tested with promtool.
//!
//! promtool is taken from `$PROMTOOL`, else from `PATH`; without either
//! those checks are skipped with a printed reason (everything else runs).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::CONFIG;

/// How long a server may take to start, a reload to be served, a NOTIFY
/// to be acknowledged.
const WAIT: Duration = Duration::from_secs(30);

const ALICE: &str = "alice@example.com,mimi://chat.example.org/u/alice\n";
const BOB: &str = "bob@example.com,mimi://chat.example.org/u/bob\n";
const CAROL: &str = "carol@example.com,mimi://chat.example.org/u/carol\n";

/// A zone directory: configuration, mappings, signing key.
struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn fixture(extra_config: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zone.toml");
    std::fs::write(&config, format!("{CONFIG}{extra_config}")).unwrap();
    std::fs::write(dir.path().join("mappings.csv"), format!("{ALICE}{BOB}")).unwrap();
    let key = mimi_publisher::input::keys::generate();
    mimi_publisher::input::keys::write_signing_key(&dir.path().join("signing.pem"), &key).unwrap();
    Fixture { dir, config }
}

/// The binary serving `config`, with the addresses it logged.
struct Server {
    child: Child,
    dns: SocketAddr,
    metrics: SocketAddr,
    /// Every listener's address by kind: dns, metrics, tls, https.
    addrs: HashMap<&'static str, SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signals the child this test started, by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// The address after `addr=` in a log line.
fn logged_addr(line: &str) -> SocketAddr {
    let at = line.find("addr=").expect("addr in line") + 5;
    line[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The log lines that tell a listener's address, by kind.
const LISTENERS: [(&str, &str); 4] = [
    ("dns", "serving over UDP and TCP"),
    ("metrics", "serving metrics over HTTP"),
    ("tls", "serving DNS over TLS"),
    ("https", "serving DNS over HTTPS"),
];

fn start(config: &Path, extra_args: &[&str]) -> Server {
    start_with(config, extra_args, &["dns", "metrics"])
}

/// Starts the binary and waits until it has logged the address of every
/// listener in `expect`.
fn start_with(config: &Path, extra_args: &[&str], expect: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mimi-publisher"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .args(extra_args)
        .arg(config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx, rx) = mpsc::channel();
    {
        let log = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                for (kind, marker) in LISTENERS {
                    if line.contains(marker) {
                        let _ = tx.send((kind, logged_addr(&line)));
                    }
                }
                log.lock().unwrap().push(line);
            }
        });
    }
    let mut addrs = HashMap::new();
    while !expect.iter().all(|k| addrs.contains_key(k)) {
        match rx.recv_timeout(WAIT) {
            Ok((kind, a)) => {
                addrs.insert(kind, a);
            }
            Err(_) => panic!("server starts: {:?}", log.lock().unwrap()),
        }
    }
    Server {
        child,
        dns: addrs["dns"],
        metrics: addrs["metrics"],
        addrs,
        log,
    }
}

/// `dig` at the server; its output.
fn dig(server: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+tries=1", "+time=5"])
        .args(args)
        .output()
        .expect("dig runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status(dig_output: &str) -> &str {
    let at = dig_output.find("status: ").expect("a header") + 8;
    dig_output[at..].split(',').next().unwrap()
}

/// One scrape with curl: the HTTP status and the body.
fn curl(metrics: SocketAddr, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://{metrics}{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

fn scrape(metrics: SocketAddr) -> String {
    let (code, body) = curl(metrics, "/metrics");
    assert_eq!(code, 200, "{body}");
    body
}

/// The value of the series `name{labels}` in a scrape (labels in the
/// order the server writes them), `None` if absent.
fn value(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let series = if labels.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{}}}", labels.join(","))
    };
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

/// [`value`], 0 when absent (a counter not yet incremented).
fn count(scrape: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(scrape, name, labels).unwrap_or(0.0)
}

fn queries(s: &str, transport: &str, qtype: &str, rcode: &str) -> f64 {
    count(
        s,
        "mimi_queries_total",
        &[("transport", transport), ("type", qtype), ("rcode", rcode)],
    )
}

/// Scrapes until `done` holds (a reload or NOTIFY the server does in the
/// background); the scrape that satisfied it.
fn scrape_until(server: &Server, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = scrape(server.metrics);
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {s}\n{:?}",
            server.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The promtool to run, or `None` (with the reason printed).
fn promtool() -> Option<PathBuf> {
    let candidate =
        std::env::var_os("PROMTOOL").map_or_else(|| PathBuf::from("promtool"), PathBuf::from);
    match Command::new(&candidate).arg("--version").output() {
        Ok(o) if o.status.success() => Some(candidate),
        _ => {
            println!(
                "skipping the promtool checks: {} cannot be run (set PROMTOOL to promtool's path)",
                candidate.display()
            );
            None
        }
    }
}

fn promtool_check_metrics(text: &str) {
    let Some(promtool) = promtool() else { return };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A secondary's NOTIFY handling, enough for the primary: every datagram
/// is answered as a NOERROR response with the same ID and question.
fn notify_acknowledger() -> (SocketAddr, Arc<AtomicU64>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80; // QR
            reply[3] &= 0xf0; // NOERROR
                              // Question only: no TSIG, no additional records.
            reply[6..12].fill(0);
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = socket.send_to(&reply, peer);
        }
    });
    (addr, seen)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The earliest `x=` of the TXT records with `field` in an AXFR output,
/// and how many there are.
fn earliest_expiry(axfr: &str, field: &str) -> (usize, Option<i64>) {
    let texts: Vec<String> = axfr
        .lines()
        .filter(|l| l.contains("\tTXT\t") || l.contains(" TXT "))
        // dig splits long strings: join them.
        .map(|l| l.replace("\" \"", ""))
        .filter(|l| l.contains(&format!(";{field}=")))
        .collect();
    let earliest = texts
        .iter()
        .filter_map(|t| {
            let at = t.find(";x=")? + 3;
            t[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .min();
    (texts.len(), earliest)
}

#[test]
fn scraped_counters_and_gauges_match_what_clients_saw() {
    let (secondary, notified) = notify_acknowledger();
    let f = fixture(&format!(
        "\n[transfer]\nallow = [\"127.0.0.1\"]\nnotify = [\"{secondary}\"]\n"
    ));
    let server = start(&f.config, &[]);
    let zone = [("zone", "example.com")];
    let acknowledged = [("zone", "example.com"), ("outcome", "acknowledged")];
    // The start-up NOTIFY.
    let s0 = scrape_until(&server, "start-up NOTIFY counted", |s| {
        count(s, "mimi_notifies_sent_total", &acknowledged) == 1.0
    });
    assert_eq!(notified.load(Ordering::Relaxed), 1);
    assert_eq!(
        value(
            &s0,
            "mimi_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    // The start-up build signed both mappings.
    assert_eq!(value(&s0, "mimi_resigned_records_total", &zone), Some(2.0));

    // Queries over UDP and TCP, each answer checked with dig.
    let soa = dig(server.dns, &["example.com", "SOA", "+short"]);
    let serial: f64 = soa.split_whitespace().nth(2).unwrap().parse().unwrap();
    let axfr = dig(server.dns, &["example.com", "AXFR", "+noall", "+answer"]);
    assert!(axfr.contains("SOA"), "{axfr}");
    let owner = axfr
        .lines()
        .find(|l| l.contains("TXT") && l.contains(";s="))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(status(&dig(server.dns, &[&owner, "TXT"])), "NOERROR");
    assert_eq!(
        status(&dig(server.dns, &[&owner, "TXT", "+tcp"])),
        "NOERROR"
    );
    assert_eq!(
        status(&dig(server.dns, &["nope.example.com", "TXT"])),
        "NXDOMAIN"
    );
    assert_eq!(
        status(&dig(server.dns, &["nope.example.com", "A", "+tcp"])),
        "NXDOMAIN"
    );
    assert_eq!(status(&dig(server.dns, &["example.org", "TXT"])), "REFUSED");
    let refused_axfr = dig(server.dns, &["example.org", "AXFR"]);
    assert!(refused_axfr.contains("Transfer failed"), "{refused_axfr}");

    let s1 = scrape(server.metrics);
    let delta = |t, q, r| queries(&s1, t, q, r) - queries(&s0, t, q, r);
    assert_eq!(delta("udp", "SOA", "NOERROR"), 1.0, "{s1}");
    assert_eq!(delta("udp", "TXT", "NOERROR"), 1.0, "{s1}");
    assert_eq!(delta("tcp", "TXT", "NOERROR"), 1.0, "{s1}");
    assert_eq!(delta("udp", "TXT", "NXDOMAIN"), 1.0, "{s1}");
    assert_eq!(delta("tcp", "A", "NXDOMAIN"), 1.0, "{s1}");
    assert_eq!(delta("udp", "TXT", "REFUSED"), 1.0, "{s1}");
    assert_eq!(delta("tcp", "AXFR", "NOERROR"), 1.0, "{s1}");
    assert_eq!(delta("tcp", "AXFR", "REFUSED"), 1.0, "{s1}");
    let total = |s: &str| -> f64 {
        s.lines()
            .filter(|l| l.starts_with("mimi_queries_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!(total(&s1) - total(&s0), 8.0, "nothing else counted: {s1}");
    assert_eq!(
        count(
            &s1,
            "mimi_transfers_total",
            &[
                ("zone", "example.com"),
                ("type", "AXFR"),
                ("outcome", "completed")
            ]
        ),
        1.0
    );
    assert_eq!(
        count(
            &s1,
            "mimi_transfers_refused_total",
            &[("reason", "not_served")]
        ),
        1.0
    );
    // Nothing was rate limited.
    assert_eq!(
        value(&s1, "mimi_rrl_actions_total", &[("action", "dropped")]),
        Some(0.0)
    );
    assert_eq!(
        value(&s1, "mimi_rrl_actions_total", &[("action", "slipped")]),
        Some(0.0)
    );

    // The zone's figures: what dig and the transferred zone show.
    assert_eq!(value(&s1, "mimi_zone_serial", &zone), Some(serial));
    let (assertions, earliest) = earliest_expiry(&axfr, "s");
    let (certificates, _) = earliest_expiry(&axfr, "pk");
    let records = |s: &str, kind| {
        value(
            s,
            "mimi_zone_records",
            &[("zone", "example.com"), ("kind", kind)],
        )
    };
    assert_eq!(records(&s1, "assertion"), Some(assertions as f64));
    assert_eq!(assertions, 2);
    assert_eq!(records(&s1, "certificate"), Some(certificates as f64));
    assert_eq!(records(&s1, "all"), Some(2.0));
    let expiry = |s: &str, kind| {
        value(
            s,
            "mimi_zone_earliest_expiry_seconds",
            &[("zone", "example.com"), ("kind", kind)],
        )
    };
    let left = expiry(&s1, "assertion").unwrap() as i64;
    let expected = earliest.unwrap() - now();
    assert!(
        (expected - 2..=expected + 2).contains(&left),
        "{left} vs {expected}"
    );
    assert!(left > 0, "not expired yet: {left}");
    // No certificate published, no certificate expiry.
    assert_eq!(expiry(&s1, "certificate"), None);

    promtool_check_metrics(&s1);

    // A reload: one mapping more; only it is signed.
    let before = now();
    std::fs::write(
        f.dir.path().join("mappings.csv"),
        format!("{ALICE}{BOB}{CAROL}"),
    )
    .unwrap();
    let installed = [("zone", "example.com"), ("outcome", "installed")];
    let s2 = scrape_until(&server, "reload counted", |s| {
        count(s, "mimi_reloads_total", &installed) == 1.0
            && count(s, "mimi_notifies_sent_total", &acknowledged) == 2.0
    });
    let after = now();
    let new_soa = dig(server.dns, &["example.com", "SOA", "+short"]);
    let new_serial: f64 = new_soa.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_ne!(new_serial, serial);
    assert_eq!(value(&s2, "mimi_zone_serial", &zone), Some(new_serial));
    assert_eq!(records(&s2, "assertion"), Some(3.0));
    assert_eq!(records(&s2, "all"), Some(3.0));
    assert_eq!(value(&s2, "mimi_resigned_records_total", &zone), Some(3.0));
    let at = value(&s2, "mimi_last_reload_timestamp_seconds", &installed).unwrap() as i64;
    assert!(
        (before..=after).contains(&at),
        "{before} <= {at} <= {after}"
    );
    for outcome in ["failed", "unchanged"] {
        assert_eq!(
            count(
                &s2,
                "mimi_reloads_total",
                &[("zone", "example.com"), ("outcome", outcome)]
            ),
            0.0
        );
    }

    // A reload that fails: the zone stays, the failure is counted.
    std::fs::write(
        f.dir.path().join("mappings.csv"),
        format!("{ALICE}{BOB}{CAROL}not a mapping\n"),
    )
    .unwrap();
    let failed = [("zone", "example.com"), ("outcome", "failed")];
    let s3 = scrape_until(&server, "failed reload counted", |s| {
        count(s, "mimi_reloads_total", &failed) == 1.0
    });
    assert_eq!(value(&s3, "mimi_zone_serial", &zone), Some(new_serial));
    assert_eq!(count(&s3, "mimi_reloads_total", &installed), 1.0);
    assert!(value(&s3, "mimi_last_reload_timestamp_seconds", &failed).is_some());
    promtool_check_metrics(&s3);
}

#[test]
fn only_get_metrics_is_served() {
    let f = fixture("");
    let server = start(&f.config, &[]);
    assert_eq!(curl(server.metrics, "/").0, 404);
    assert_eq!(curl(server.metrics, "/metrics/x").0, 404);
    let post = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .arg(format!("http://{}/metrics", server.metrics))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&post.stdout), "405");
    // Prometheus asks for OpenMetrics first.
    let om = Command::new("curl")
        .args([
            "-s",
            "-H",
            "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        ])
        .arg(format!("http://{}/metrics", server.metrics))
        .output()
        .unwrap();
    let om = String::from_utf8_lossy(&om.stdout);
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE mimi_queries counter"), "{om}");
    let plain = scrape(server.metrics);
    assert!(
        plain.contains("# TYPE mimi_queries_total counter"),
        "{plain}"
    );
    assert!(!plain.contains("# EOF"), "{plain}");
}

#[test]
fn slow_and_excess_clients_cannot_hold_the_endpoint() {
    let f = fixture("");
    let server = start(&f.config, &[]);
    // An oversized request head is refused (connection closed), not
    // buffered.
    let mut big = TcpStream::connect(server.metrics).unwrap();
    big.set_read_timeout(Some(WAIT)).unwrap();
    let head = format!(
        "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    let _ = big.write_all(head.as_bytes());
    let mut buf = Vec::new();
    let _ = big.read_to_end(&mut buf);
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));

    // Four clients that send nothing fill every connection slot.
    let started = Instant::now();
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(server.metrics).unwrap())
        .collect();
    // Each sends a byte, so that all four are surely accepted (and hold a
    // slot) before the fifth connects.
    for s in &mut idle {
        s.write_all(b"G").unwrap();
    }
    // Wait until the server has accepted them: a fifth is closed without
    // an answer while they hold the slots.
    let mut fifth = TcpStream::connect(server.metrics).unwrap();
    fifth.set_read_timeout(Some(WAIT)).unwrap();
    let _ = fifth.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
    let mut got = Vec::new();
    let _ = fifth.read_to_end(&mut got);
    assert!(got.is_empty(), "a fifth connection is closed at once");
    // The idle ones are closed after the request timeout (5 s), not held.
    for s in &mut idle {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(rest.is_empty());
    }
    let held = started.elapsed();
    assert!(
        held >= Duration::from_secs(4) && held < Duration::from_secs(15),
        "{held:?}"
    );
    // And scrapes work again.
    assert!(scrape(server.metrics).contains("mimi_build_info"));
}

/// The alert rules are valid and each alert fires (and stays silent) as
/// its unit tests say.
#[test]
fn alert_rules_pass_promtool() {
    let Some(promtool) = promtool() else { return };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/prometheus");
    for args in [
        ["check", "rules", "mimi-dns.rules.yml"],
        ["test", "rules", "mimi-dns.rules.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Queries over DNS over TLS and HTTPS (kdig) are counted under their
/// transport.
#[test]
fn encrypted_transports_are_counted_under_their_own_label() {
    let f = fixture("");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (f.dir.path().join("tls.pem"), f.dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::set_permissions(
        &key_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let server = start_with(
        &f.config,
        &[
            "--listen-tls",
            "127.0.0.1:0",
            "--listen-https",
            "127.0.0.1:0",
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
        &["dns", "metrics", "tls", "https"],
    );
    let kdig = |mode: &str, addr: SocketAddr, name: &str| {
        let out = Command::new("kdig")
            .args([mode, "+time=5", "+retry=0"])
            .arg(format!("@{}", addr.ip()))
            .args(["-p", &addr.port().to_string(), name, "TXT"])
            .output()
            .expect("kdig runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let s0 = scrape(server.metrics);
    for _ in 0..2 {
        let out = kdig("+tls", server.addrs["tls"], "nope.example.com");
        assert!(out.contains("status: NXDOMAIN"), "{out}");
    }
    let out = kdig("+https", server.addrs["https"], "example.org");
    assert!(out.contains("status: REFUSED"), "{out}");
    let s1 = scrape(server.metrics);
    let delta = |t, q, r| queries(&s1, t, q, r) - queries(&s0, t, q, r);
    assert_eq!(delta("tls", "TXT", "NXDOMAIN"), 2.0, "{s1}");
    assert_eq!(delta("https", "TXT", "REFUSED"), 1.0, "{s1}");
    assert_eq!(delta("udp", "TXT", "NXDOMAIN"), 0.0, "{s1}");
    promtool_check_metrics(&s1);
}

/// A query in wire form: `id`, TXT `name`, no EDNS.
fn txt_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 16, 0, 1]);
    q
}

/// Response rate limiting: what the client saw (answers, truncated
/// answers, silence) is what the RRL counters say.
#[test]
fn rate_limited_answers_are_counted_as_the_client_saw_them() {
    let f = fixture("");
    // One answer a second per network, every second limited answer slips.
    let server = start(&f.config, &["--rrl-rate", "1", "--rrl-slip", "2"]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(server.dns).unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let s0 = scrape(server.metrics);
    let (mut full, mut truncated, mut silent) = (0, 0, 0);
    let sent = 20u16;
    for id in 0..sent {
        client.send(&txt_query(id, "nope.example.com")).unwrap();
        let mut buf = [0u8; 1500];
        // Skip late answers to earlier queries (matched by ID).
        let deadline = Instant::now() + Duration::from_millis(300);
        let got = loop {
            match client.recv(&mut buf) {
                Ok(n) if n >= 12 && buf[..2] == id.to_be_bytes() => break Some(buf[2] & 0x02 != 0),
                Ok(_) if Instant::now() < deadline => continue,
                _ => break None,
            }
        };
        match got {
            Some(false) => full += 1,
            Some(true) => truncated += 1,
            None => silent += 1,
        }
    }
    let s1 = scrape(server.metrics);
    let rrl = |s: &str, action| count(s, "mimi_rrl_actions_total", &[("action", action)]);
    assert!(truncated > 0 && silent > 0, "{full} {truncated} {silent}");
    assert_eq!(
        rrl(&s1, "slipped") - rrl(&s0, "slipped"),
        f64::from(truncated)
    );
    assert_eq!(rrl(&s1, "dropped") - rrl(&s0, "dropped"), f64::from(silent));
    // Every query was answered by the encoder, limited or not.
    assert_eq!(
        queries(&s1, "udp", "TXT", "NXDOMAIN") - queries(&s0, "udp", "TXT", "NXDOMAIN"),
        f64::from(sent)
    );
}

/// A zone signed from a ceremony bundle: every rollover step the server
/// installs is counted by kind, and the bundle's end is a gauge that
/// counts down.
#[test]
fn rollover_steps_and_the_bundle_end_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = now() as u64;
    let root = mimi_publisher::input::keys::generate();
    let plan = mimi_publisher::input::bundle::CeremonyPlan {
        authority: mimi_proto::AuthorityName::parse("example.com").unwrap(),
        keys: 2,
        start: mimi_proto::UnixTime(t0),
        key_validity: 30,
        overlap: 15,
    };
    mimi_publisher::input::bundle::ceremony(&dir.path().join("bundle"), &root, &plan).unwrap();
    let config = dir.path().join("zone.toml");
    std::fs::write(
        &config,
        r#"origin = "example.com"
ttl = 1
ns = ["ns1.example.net"]
mappings = "mappings.csv"
[soa]
mname = "ns1.example.net"
rname = "hostmaster.example.com"
[authority]
name = "example.com"
bundle = "bundle"
validity = "8s"
resign_margin = "3s"
propagation_delay = "1s"
"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("mappings.csv"), format!("{ALICE}{BOB}")).unwrap();
    let server = start(&config, &[]);
    let zone = [("zone", "example.com")];
    let steps = |s: &str, step: &str| {
        count(
            s,
            "mimi_rollover_steps_total",
            &[("zone", "example.com"), ("step", step)],
        )
    };
    // The first zone: signing with key 1, certificates 1 and 2 published.
    let s = scrape_until(&server, "the bootstrap steps", |s| {
        steps(s, "switched") >= 1.0
    });
    assert_eq!(
        (steps(&s, "switched"), steps(&s, "published")),
        (1.0, 2.0),
        "{s}"
    );
    // The bundle runs out at the last certificate's end less the margin.
    let runs_out = (t0 + 15 + 30 - 3) as f64;
    let left = value(&s, "mimi_key_bundle_remaining_seconds", &zone).expect("the gauge");
    let expected = runs_out - now() as f64;
    assert!((left - expected).abs() <= 2.0, "{left} vs {expected}");
    promtool_check_metrics(&s);
    // The switch to key 2 at its window's start, and key 1's certificate
    // retired later (when is tests/rollover.rs's business: once every
    // assertion key 1 signed has expired).
    let s = scrape_until(&server, "the switch to key 2", |s| {
        steps(s, "switched") >= 2.0
    });
    assert!(now() as u64 >= t0 + 15, "switched before key 2's window");
    assert_eq!(steps(&s, "retired"), 0.0, "{s}");
    let s = scrape_until(&server, "key 1 retired", |s| steps(s, "retired") >= 1.0);
    assert_eq!(steps(&s, "switched"), 2.0, "{s}");
    let later = value(&s, "mimi_key_bundle_remaining_seconds", &zone).unwrap();
    assert!(later < left, "the gauge counts down: {left} then {later}");
}
