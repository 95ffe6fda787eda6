//! The HTTP discovery gateway (`mimi-gateway serve`), end to end: the real
//! binary in front of a real `mimi-publisher serve` on loopback, asked
//! with the real curl (and openssl s_client for TLS).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mimi_e2e::world::World;
use mimi_e2e::{bin, free_port, plain, require, Daemon};
use serde_json::{json, Value};

/// A running gateway.
struct Gw {
    daemon: Daemon,
    addr: SocketAddr,
}

impl Gw {
    /// `mimi-gateway serve` for `w`'s world at the DNS server `dns`, with
    /// `extra` flags; its log is `name.log` in the world's workspace.
    fn start(w: &World, dns: SocketAddr, name: &str, extra: &[&str]) -> Gw {
        let trust = w.write_trust(1);
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = Command::new(bin("mimi-gateway"));
        cmd.arg("serve")
            .args(["--listen", &addr.to_string(), "--trust"])
            .arg(&trust)
            .args(["--server", &dns.to_string()])
            .args([
                "--zone",
                "dir.chat.example.org",
                "--tel-root",
                "e164.mimi.example",
            ])
            .args(if extra.contains(&"--timeout") {
                &[][..]
            } else {
                &["--timeout", "5s"][..]
            })
            .args(extra)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        let mut daemon =
            Daemon::spawn("mimi-gateway serve", cmd, w.ws.path(&format!("{name}.log")));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            daemon.assert_running();
            if std::net::TcpStream::connect(addr).is_ok() {
                return Gw { daemon, addr };
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not listen:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn get(&self, path: &str) -> Http {
        curl(&[&self.url(path)])
    }

    fn lookup(&self, sii: &str) -> Http {
        curl(&[
            "-G",
            &self.url("/v1/lookup"),
            "--data-urlencode",
            &format!("sii={sii}"),
        ])
    }

    fn post(&self, body: &str, extra: &[&str]) -> Http {
        let url = self.url("/v1/lookup");
        let mut args = vec![
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args)
    }

    fn log(&self) -> String {
        plain(&self.daemon.log())
    }

    /// The value of the metric line starting with `series` (e.g.
    /// `mimi_gateway_cache_hits_total`).
    fn metric(&self, series: &str) -> f64 {
        let text = self.get("/metrics").body;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
            .parse()
            .unwrap()
    }
}

/// An answer as curl received it.
#[derive(Debug)]
struct Http {
    status: u16,
    head: String,
    body: String,
}

impl Http {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The `error` of a JSON error answer of status `status`.
    fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.header("content-type")
                .unwrap_or_default()
                .starts_with("application/json"),
            "{self:?}"
        );
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error string: {self:?}"))
            .to_owned()
    }
}

/// Runs the system's curl with `args`, returning status, headers and body.
fn curl(args: &[&str]) -> Http {
    let out = Command::new(require("curl", "curl"))
        .args(["-sS", "-D", "-", "-H", "Expect:", "--max-time", "30"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    Http {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// What `mimi-resolve lookup --json` prints for `sii` in this world.
fn cli_lookup(w: &World, dns: SocketAddr, sii: &str) -> Value {
    let out = Command::new(bin("mimi-resolve"))
        .args(["lookup", sii, "--json", "--trust"])
        .arg(w.write_trust(1))
        .args(["--server", &dns.to_string()])
        .args([
            "--zone",
            "dir.chat.example.org",
            "--tel-root",
            "e164.mimi.example",
        ])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn poll<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const WORLD_SIIS: [(&str, &str, usize); 6] = [
    ("alice@example.com", "verified", 1),
    ("bob@example.com", "verified", 1),
    ("carol@mail.example", "verified", 1),
    ("+39 06 1234 5678", "verified", 2),
    ("dave@example.com", "rejected", 0),
    ("nobody@example.com", "not_found", 0),
];

#[test]
fn get_and_post_answer_what_mimi_resolve_prints_and_errors_are_json_with_reasons() {
    let w = World::new();
    let (_serve, dns) = w.serve_daemon();
    let gw = Gw::start(
        &w,
        dns,
        "gateway",
        &["--max-batch", "7", "--max-body", "600"],
    );

    // GET: one report, the object `mimi-resolve lookup --json` prints.
    for (sii, outcome, ssis) in WORLD_SIIS {
        let r = gw.lookup(sii);
        assert_eq!(r.status, 200, "{sii}: {r:?}");
        let v = r.json();
        assert_eq!(v["outcome"], outcome, "{sii}: {v}");
        assert_eq!(v["verified"].as_array().unwrap().len(), ssis, "{sii}: {v}");
        let cli = cli_lookup(&w, dns, sii);
        for field in ["canonical", "outcome", "verified", "rejected"] {
            assert_eq!(
                v[field], cli[field],
                "{sii}: {field}: gateway {v} cli {cli}"
            );
        }
    }
    let alice = gw.lookup("alice@example.com").json();
    assert_eq!(alice["canonical"], "mailto:alice@example.com");
    assert_eq!(
        alice["verified"][0]["ssi"],
        "mimi://chat.example.com/u/alice"
    );
    assert_eq!(
        alice["verified"][0]["authorities"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{alice}"
    );
    let dave = gw.lookup("dave@example.com").json();
    assert!(!dave["rejected"].as_array().unwrap().is_empty(), "{dave}");
    let tel = gw.lookup("+39 06 1234 5678").json();
    let ssis: Vec<&str> = tel["verified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ssi"].as_str().unwrap())
        .collect();
    assert!(ssis.contains(&"im:bob@talk.example.net"), "{tel}");
    // Not an SII: a lookup outcome, not a malformed request.
    let bad = gw.lookup("not an sii");
    assert_eq!(bad.status, 200);
    assert_eq!(bad.json()["outcome"], "bad_input");

    // POST: one report per SII, in order, the same objects as GET.
    let siis: Vec<&str> = WORLD_SIIS.iter().map(|(s, _, _)| *s).collect();
    let r = gw.post(&json!({ "siis": siis }).to_string(), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let results = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), siis.len());
    for ((sii, outcome, _), v) in WORLD_SIIS.iter().zip(&results) {
        assert_eq!(v["outcome"], *outcome, "{sii}: {v}");
        let single = gw.lookup(sii).json();
        assert_eq!(v["canonical"], single["canonical"]);
        assert_eq!(v["verified"], single["verified"]);
    }

    // Malformed requests: 400 with the reason.
    assert!(gw
        .get("/v1/lookup")
        .error(400)
        .contains("missing field `sii`"));
    assert!(gw.get("/v1/lookup?sii=").error(400).contains("empty"));
    assert!(gw
        .post("{\"siis\": [", &[])
        .error(400)
        .contains("invalid request body"));
    assert!(gw
        .post("{\"siis\": [1]}", &[])
        .error(400)
        .contains("invalid type: integer"));
    assert!(gw
        .post("{\"siis\": \"alice@example.com\"}", &[])
        .error(400)
        .contains("expected a sequence"));
    assert!(gw
        .post("{}", &[])
        .error(400)
        .contains("missing field `siis`"));
    assert!(gw
        .post("{\"siis\": [], \"x\": 1}", &[])
        .error(400)
        .contains("unknown field `x`"));
    assert!(gw
        .post("{\"siis\": []}", &[])
        .error(400)
        .contains("siis is empty"));
    // Too many SIIs: 413 naming the limit; a body over --max-body: 413.
    let eight = json!({ "siis": vec!["alice@example.com"; 8] }).to_string();
    assert!(gw
        .post(&eight, &[])
        .error(413)
        .contains("at most 7 (--max-batch)"));
    let big = json!({ "siis": vec!["a-rather-long-local-part@example.com"; 20] }).to_string();
    assert!(big.len() > 600);
    assert!(gw
        .post(&big, &[])
        .error(413)
        .contains("larger than 600 octets"));
    // Chunked, without Content-Length: counted as it arrives.
    assert!(gw
        .post(&big, &["-H", "Transfer-Encoding: chunked"])
        .error(413)
        .contains("larger than 600 octets"));
    // Unknown routes 404, wrong methods 405, both JSON.
    assert!(gw.get("/v2/lookup").error(404).contains("no such route"));
    assert!(curl(&["-X", "DELETE", &gw.url("/v1/lookup")])
        .error(405)
        .contains("DELETE"));
    assert!(curl(&["-X", "POST", &gw.url("/healthz")])
        .error(405)
        .contains("POST"));

    // The service routes.
    assert_eq!(gw.get("/healthz").json()["status"], "up");
    let ready = gw.get("/readyz");
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(ready.json()["ready"], true);
    let doc = gw.get("/v1/openapi.json").json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/lookup"]["post"]["responses"]["413"].is_object());
    assert_eq!(gw.get("/").status, 200);
    assert_eq!(gw.get("/app.js").status, 200);

    // Metrics: every request counted by route and status; lookups by
    // outcome; promtool accepts the exposition.
    assert!(gw.metric("mimi_gateway_requests_total{route=\"/v1/lookup\",status=\"200\"}") >= 14.0);
    assert_eq!(
        gw.metric("mimi_gateway_requests_total{route=\"other\",status=\"404\"}"),
        1.0
    );
    assert!(gw.metric("mimi_gateway_lookups_total{outcome=\"rejected\"}") >= 1.0);
    assert!(gw.metric("mimi_gateway_request_duration_seconds_count") >= 30.0);
    let exposition = gw.get("/metrics").body;
    let promtool = std::env::var_os("PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            require(
                "promtool",
                "prometheus (tests/run.sh extracts its promtool into tests/.tools)",
            )
        });
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // One log line per request, and no SII in it (nor parts of one).
    let log = gw.log();
    let requests = log
        .lines()
        .filter(|l| l.contains("request") && l.contains("route="))
        .count();
    assert!(requests >= 30, "{log}");
    assert!(log.contains("client=\"ip:127.0.0.1\""), "{log}");
    for secret in [
        "alice",
        "bob",
        "carol",
        "dave",
        "nobody",
        "1234",
        "5678",
        "example.com",
    ] {
        assert!(!log.contains(secret), "the log names {secret}:\n{log}");
    }
}

#[test]
fn log_siis_is_the_only_way_an_sii_reaches_the_log_and_json_logs_are_json() {
    let w = World::new();
    let (_serve, dns) = w.serve_daemon();
    let gw = Gw::start(&w, dns, "debug", &["--log-siis", "--log-format", "json"]);
    assert_eq!(gw.lookup("alice@example.com").status, 200);
    let r = gw.post("{\"siis\": [\"nobody@example.com\"]}", &[]);
    assert_eq!(r.status, 200);
    let log = gw.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["route"] == "/v1/lookup")
        .collect();
    assert_eq!(requests.len(), 2, "{log}");
    assert_eq!(requests[0]["fields"]["status"], 200);
    assert_eq!(requests[1]["fields"]["count"], 1);
    assert!(
        log.contains("alice@example.com") && log.contains("nobody@example.com"),
        "{log}"
    );
}

#[test]
fn a_dns_failure_is_200_dns_error_per_sii_and_makes_the_gateway_unready() {
    let w = World::new();
    // Nothing listens there: every DNS request fails.
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gw = Gw::start(
        &w,
        dead,
        "dead",
        &["--timeout", "200ms", "--request-timeout", "60s"],
    );
    assert_eq!(gw.get("/readyz").status, 200);
    let r = gw.lookup("alice@example.com");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["outcome"], "dns_error", "{r:?}");
    let r = gw.post(
        "{\"siis\": [\"alice@example.com\", \"not an sii\", \"bob@example.com\"]}",
        &[],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let outcomes: Vec<Value> = r.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["outcome"].clone())
        .collect();
    assert_eq!(
        outcomes,
        [json!("dns_error"), json!("bad_input"), json!("dns_error")]
    );
    // Never cached: every dns_error was a miss.
    assert_eq!(gw.metric("mimi_gateway_cache_hits_total"), 0.0);
    assert_eq!(gw.metric("mimi_gateway_cache_misses_total"), 3.0);
    assert_eq!(
        gw.metric("mimi_gateway_lookups_total{outcome=\"dns_error\"}"),
        3.0
    );
    let ready = gw.get("/readyz");
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(ready.json()["reason"].as_str().unwrap().contains("failed"));

    // A lookup that outlasts --request-timeout: 504 with the reason.
    let slow = Gw::start(
        &w,
        dead,
        "slow",
        &["--timeout", "5s", "--request-timeout", "1s"],
    );
    let r = slow.lookup("alice@example.com");
    assert!(r.error(504).contains("within 1s (--request-timeout)"));
    let r = slow.post("{\"siis\": [\"alice@example.com\"]}", &[]);
    assert!(r.error(504).contains("within 1s (--request-timeout)"));
}

#[test]
fn the_token_bucket_answers_429_with_retry_after_and_batches_cost_their_size() {
    let w = World::new();
    let (_serve, dns) = w.serve_daemon();
    let gw = Gw::start(&w, dns, "rate", &["--rate", "0.01", "--burst", "3"]);
    assert_eq!(gw.lookup("alice@example.com").status, 200);
    // A batch of 2 costs 2: the bucket of 3 is empty now.
    assert_eq!(
        gw.post(
            "{\"siis\": [\"alice@example.com\", \"bob@example.com\"]}",
            &[]
        )
        .status,
        200
    );
    let r = gw.lookup("alice@example.com");
    let reason = r.error(429);
    assert!(
        reason.contains("rate limit of 0.01 lookups/s (burst 3)"),
        "{reason}"
    );
    // One token at 0.01/s: about 100 s, in whole seconds rounded up.
    let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((90..=100).contains(&after), "Retry-After {after}");
    // A batch larger than the burst can never pass: said so, no Retry-After.
    let r = gw.post(
        "{\"siis\": [\"a@example.com\", \"b@example.com\", \"c@example.com\", \"d@example.com\"]}",
        &[],
    );
    assert!(r.error(429).contains("split it into batches of at most 3"));
    assert_eq!(r.header("retry-after"), None);
    assert_eq!(gw.metric("mimi_gateway_rate_limited_total"), 2.0);
    // The service routes are not rate limited.
    assert_eq!(gw.get("/healthz").status, 200);
}

/// Replaces `path` atomically with `text`, mode `mode`.
fn write_mode(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn api_keys_are_required_checked_reloaded_and_a_broken_file_keeps_the_old_keys() {
    let w = World::new();
    let (_serve, dns) = w.serve_daemon();
    let keys = w.ws.path("keys.txt");
    const OLD: &str = "old-key-0123456789abcdef";
    const NEW: &str = "new-key-0123456789abcdef";
    const SLOW: &str = "slow-key-0123456789abcdef";

    // A keys file readable by others is refused at start, naming it.
    write_mode(&keys, &format!("web:{OLD}\n"), 0o644);
    let out = Command::new(bin("mimi-gateway"))
        .args(["serve", "--listen", "127.0.0.1:0", "--trust"])
        .arg(w.write_trust(1))
        .args(["--server", &dns.to_string(), "--api-keys"])
        .arg(&keys)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&keys.display().to_string()) && err.contains("chmod 600"),
        "{err}"
    );

    write_mode(
        &keys,
        &format!("# clients\nweb:{OLD}\nslow:{SLOW} rate=0.01 burst=1\n"),
        0o600,
    );
    let gw = Gw::start(&w, dns, "keys", &["--api-keys", keys.to_str().unwrap()]);
    let url = gw.url("/v1/lookup?sii=alice%40example.com");
    let with_key = |key: &str| curl(&["-H", &format!("Authorization: Bearer {key}"), &url]);
    // No key, a wrong key, a malformed header: 401 with the reason.
    let keyless = curl(&[&url]);
    assert_eq!(
        keyless.header("www-authenticate").as_deref(),
        Some("Bearer")
    );
    assert!(keyless.error(401).contains("an API key is required"));
    assert!(with_key(NEW).error(401).contains("unknown API key"));
    assert!(curl(&["-H", "Authorization: Basic abc", &url])
        .error(401)
        .contains("Bearer"));
    let ok = with_key(OLD);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.json()["outcome"], "verified");
    // Each key its own rate.
    assert_eq!(with_key(SLOW).status, 200);
    assert!(with_key(SLOW).error(429).contains("key:slow"));
    assert_eq!(with_key(OLD).status, 200);
    assert_eq!(gw.metric("mimi_gateway_api_keys"), 2.0);

    // A new key is picked up when the file changes.
    write_mode(&keys, &format!("web:{OLD}\nmobile:{NEW}\n"), 0o600);
    poll(Duration::from_secs(20), "the new key", || {
        (with_key(NEW).status == 200).then_some(())
    });
    assert_eq!(gw.metric("mimi_gateway_api_keys"), 2.0);
    assert!(with_key(SLOW).error(401).contains("unknown API key"));
    // A broken file is reported with file:line and keeps the keys.
    write_mode(&keys, &format!("web:{OLD}\nmobile {NEW}\n"), 0o600);
    let want = format!("{}:2: expected name:key", keys.display());
    poll(Duration::from_secs(20), "the reload error", || {
        gw.log().contains(&want).then_some(())
    });
    assert_eq!(with_key(NEW).status, 200);
    assert_eq!(with_key(OLD).status, 200);
    // So does a file that became readable by others.
    write_mode(&keys, &format!("web:{OLD}\n"), 0o644);
    poll(Duration::from_secs(20), "the permission error", || {
        gw.log().contains("chmod 600").then_some(())
    });
    assert_eq!(with_key(NEW).status, 200);
    // The log names clients by name, never by key.
    let log = gw.log();
    assert!(
        log.contains("client=\"key:web\"") && log.contains("client=\"key:mobile\""),
        "{log}"
    );
    for k in [OLD, NEW, SLOW] {
        assert!(!log.contains(k), "the log holds a key:\n{log}");
    }
}

#[test]
fn answers_are_cached_for_their_ttl_and_a_changed_zone_shows_after_it() {
    let w = World::new();
    let (_serve, dns) = w.serve_daemon();
    // A: not-found answers kept an hour; B: two seconds.
    let a = Gw::start(&w, dns, "cache-a", &["--negative-ttl", "1h"]);
    let b = Gw::start(&w, dns, "cache-b", &["--negative-ttl", "2s"]);
    assert_eq!(
        a.lookup("nobody@example.com").json()["outcome"],
        "not_found"
    );
    assert_eq!(
        a.lookup("nobody@example.com").json()["outcome"],
        "not_found"
    );
    assert_eq!(a.metric("mimi_gateway_cache_hits_total"), 1.0);
    assert_eq!(a.metric("mimi_gateway_cache_misses_total"), 1.0);
    assert_eq!(a.metric("mimi_gateway_cache_entries"), 1.0);
    let first = Instant::now();
    assert_eq!(
        b.lookup("nobody@example.com").json()["outcome"],
        "not_found"
    );

    // nobody gets an SSI.
    w.ws.write(
        "example.com/mappings.csv",
        &format!(
            "{}nobody@example.com,mimi://chat.example.com/u/nobody\n",
            mimi_e2e::world::EXAMPLE_MAPPINGS
        ),
    );
    // B shows it once its answer is older than 2 s, and not before.
    poll(Duration::from_secs(30), "the new mapping through B", || {
        let v = b.lookup("nobody@example.com").json();
        (v["outcome"] == "verified").then_some(())
    });
    assert!(
        first.elapsed() >= Duration::from_secs(2),
        "B served a fresh answer within its negative TTL"
    );
    // The zone has changed, but A still serves the answer it keeps.
    assert_eq!(
        a.lookup("nobody@example.com").json()["outcome"],
        "not_found"
    );
    assert_eq!(a.metric("mimi_gateway_cache_hits_total"), 2.0);
    // And what A looks up afresh is current.
    let v = a.post("{\"siis\": [\"alice@example.com\"]}", &[]).json();
    assert_eq!(v["results"][0]["outcome"], "verified");
}

/// A self-signed certificate for `localhost` and its key, written to
/// `dir/NAME.crt` and `dir/NAME.key` (0600).
fn cert_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    write_mode(&crt, &c.cert.pem(), 0o644);
    write_mode(&key, &c.key_pair.serialize_pem(), 0o600);
    (crt, key)
}

#[test]
fn https_with_h2_and_http1_and_the_certificate_is_reloaded() {
    let w = World::new();
    let (_serve, dns) = w.serve_daemon();
    let dir = w.ws.path("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let (one_crt, one_key) = cert_pair(&dir, "one");
    let (crt, key) = (dir.join("gw.crt"), dir.join("gw.key"));
    std::fs::copy(&one_crt, &crt).unwrap();
    write_mode(&key, &std::fs::read_to_string(&one_key).unwrap(), 0o600);
    let gw = Gw::start(
        &w,
        dns,
        "tls",
        &[
            "--tls-cert",
            crt.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let port = gw.addr.port();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/v1/lookup?sii=alice%40example.com");
    let https = |ca: &Path, proto: &str| -> Option<Http> {
        let out = Command::new(require("curl", "curl"))
            .args([
                "-sS",
                "-D",
                "-",
                "--max-time",
                "10",
                proto,
                "--resolve",
                &resolve,
                "--cacert",
            ])
            .arg(ca)
            .arg(&url)
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8(out.stdout).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        Some(Http {
            status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
            head: head.to_owned(),
            body: body.to_owned(),
        })
    };
    let h2 = https(&one_crt, "--http2").expect("HTTPS with the first certificate");
    assert!(h2.head.starts_with("HTTP/2 200"), "{h2:?}");
    assert_eq!(h2.json()["outcome"], "verified");
    let h1 = https(&one_crt, "--http1.1").unwrap();
    assert!(h1.head.starts_with("HTTP/1.1 200"), "{h1:?}");
    // Plain HTTP to the TLS port is no answer.
    assert!(Command::new(require("curl", "curl"))
        .args(["-sS", "--max-time", "5", &gw.url("/healthz")])
        .output()
        .unwrap()
        .stdout
        .is_empty());
    // openssl s_client: the certificate and ALPN h2.
    let s = Command::new(require("openssl", "openssl"))
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
            "-alpn",
            "h2,http/1.1",
            "-CAfile",
        ])
        .arg(&one_crt)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&s.stdout);
    assert!(text.contains("ALPN protocol: h2"), "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");

    // A new pair is served once both files are replaced.
    let (two_crt, two_key) = cert_pair(&dir, "two");
    write_mode(&key, &std::fs::read_to_string(&two_key).unwrap(), 0o600);
    write_mode(&crt, &std::fs::read_to_string(&two_crt).unwrap(), 0o644);
    poll(Duration::from_secs(20), "the new certificate", || {
        https(&two_crt, "--http2")
    });
    assert!(
        https(&one_crt, "--http2").is_none(),
        "the old certificate is still served"
    );
    // A broken certificate keeps the pair in service and says why.
    let kept = |what: &str| gw.log().matches(what).count();
    let before = kept("keeping the TLS certificate in service");
    write_mode(&crt, "-----BEGIN CERTIFICATE-----\nbroken\n", 0o644);
    poll(Duration::from_secs(20), "the kept certificate", || {
        (kept("keeping the TLS certificate in service") > before).then_some(())
    });
    assert_eq!(https(&two_crt, "--http1.1").unwrap().status, 200);
    // A mismatched pair too.
    let before = kept("is not the key of the certificate");
    write_mode(&crt, &std::fs::read_to_string(&one_crt).unwrap(), 0o644);
    poll(Duration::from_secs(20), "the mismatch", || {
        (kept("is not the key of the certificate") > before).then_some(())
    });
    assert_eq!(https(&two_crt, "--http2").unwrap().status, 200);
}

#[test]
fn connections_beyond_max_connections_wait_until_one_ends() {
    let w = World::new();
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gw = Gw::start(&w, dead, "conns", &["--max-connections", "1"]);
    // Gw::start's readiness probe connected and closed; hold the one slot.
    let idle = poll(Duration::from_secs(10), "the slot", || {
        let s = std::net::TcpStream::connect(gw.addr).ok()?;
        // The slot is ours once a request on it is answered.
        use std::io::{Read, Write};
        let mut s2 = s;
        s2.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut buf = [0u8; 12];
        s2.read_exact(&mut buf).ok()?;
        (&buf == b"HTTP/1.1 200").then_some(s2)
    });
    let out = Command::new(require("curl", "curl"))
        .args(["-sS", "--max-time", "2", &gw.url("/healthz")])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a second connection was served beside the first"
    );
    drop(idle);
    assert_eq!(gw.get("/healthz").status, 200);
}
