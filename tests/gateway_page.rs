//! The gateway's lookup page in a real headless Chromium (Debian package
//! `chromium`): the real `mimi-publisher serve` serves the example world,
//! the real `mimi-gateway serve` resolves through it, and Chromium loads
//! `/?sii=…`, runs the page's script, and dumps the DOM it rendered.
//!
//! Waiting: Chromium runs with `--virtual-time-budget`, under which the
//! page's virtual clock stands still while a fetch is pending and its
//! timers run without real delay, so the dump is taken after the lookup
//! has been answered and rendered, however slow the machine is. The page
//! signals that it is finished (`body[data-state="done"]`); a dump without
//! that signal fails the test with the DOM and Chromium's output. No fixed
//! sleep stands in for synchronization anywhere.
//!
//! Every check compares the DOM with the gateway's own JSON answer for the
//! same SII (fetched with curl): each verified SSI, each authority, each
//! expiry, each rejection reason and authority, each error. The page also
//! enforces `default-src 'self'` itself, counts policy violations into
//! `html[data-csp-violations]` and records whether its styles (a
//! constructed stylesheet) took: both are checked on every page.
//!
//! A screenshot of alice's result is kept at
//! `target/test-artifacts/gateway-page-alice.png`.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mimi_e2e::world::World;
use mimi_e2e::{bin, free_port, require, Daemon};
use serde_json::Value;

/// Chromium's own limit per page load: generous, as a cold start on two
/// shared cores can take many seconds. Only a hung browser reaches it.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(120);

/// The budget of virtual time for the page. Virtual time does not advance
/// while a fetch is pending, so this bounds only the page's own timers.
const VIRTUAL_TIME_BUDGET_MS: &str = "20000";

/// The running example world and the gateway in front of it.
struct Setup {
    /// The servers, stopped (by pid) when the test ends.
    _daemons: Vec<Daemon>,
    gateway: SocketAddr,
    /// Kept alive for the daemons' files.
    world: World,
}

fn setup() -> Setup {
    let world = World::new();
    let (serve, dns) = world.serve_daemon();
    let (gateway, daemon) = start_gateway(&world, dns, "5s");
    Setup {
        _daemons: vec![serve, daemon],
        gateway,
        world,
    }
}

/// `mimi-gateway serve` resolving through the DNS server at `dns` (each
/// query given up after `timeout`: generous when the server is real, as the
/// machine may be busy), once it accepts connections.
fn start_gateway(world: &World, dns: SocketAddr, timeout: &str) -> (SocketAddr, Daemon) {
    start_gateway_with(world, dns, timeout, &[])
}

/// [`start_gateway`] with extra `mimi-gateway serve` flags.
fn start_gateway_with(
    world: &World,
    dns: SocketAddr,
    timeout: &str,
    extra: &[&str],
) -> (SocketAddr, Daemon) {
    let trust = world.write_trust(1);
    let gateway: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = Command::new(bin("mimi-gateway"));
    cmd.args(["serve", "--listen", &gateway.to_string(), "--trust"])
        .arg(&trust)
        .args(["--server", &dns.to_string(), "--timeout", timeout])
        .args([
            "--zone",
            "dir.chat.example.org",
            "--tel-root",
            "e164.mimi.example",
        ])
        .args(extra)
        .env("NO_COLOR", "1");
    let daemon = Daemon::spawn("mimi-gateway serve", cmd, world.ws.path("gateway.log"));
    // Ready when it accepts a connection: it binds only once the resolver
    // is built.
    let (daemon, gateway) = mimi_e2e::world::listening(daemon, gateway);
    (gateway, daemon)
}

/// `s` percent-encoded for a query string (everything but RFC 3986's
/// unreserved characters).
fn query_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Text as Chromium serializes it inside an element (HTML's serialization
/// of text nodes).
fn html_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('\u{a0}', "&nbsp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Seconds since the epoch as the page shows them: `2026-12-15T01:57:53Z`.
fn iso_utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The gateway's JSON answer for `sii`, with curl.
fn api(gateway: SocketAddr, sii: &str) -> Value {
    let curl = require("curl", "curl");
    let out = Command::new(curl)
        .args(["-sS", "--max-time", "30", "--fail-with-body"])
        .arg(format!(
            "http://{gateway}/v1/lookup?sii={}",
            query_encode(sii)
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {sii}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One headless Chromium run on `url` with `extra` arguments, in a fresh
/// profile; its stdout. Stopped (by its pid) if it outlives
/// [`CHROMIUM_LIMIT`].
fn chromium(url: &str, extra: &[String], scratch: &Path) -> String {
    let chromium = require("chromium", "chromium");
    let profile = tempfile::tempdir_in(scratch).unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-sync",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-domain-reliability",
            "--no-pings",
            "--mute-audio",
            // Loopback only: any other host name fails to resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("HOME", profile.path())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromium: {e}"));
    // Read both pipes on threads, so that a full pipe never stalls it.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CHROMIUM_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish {url} within {CHROMIUM_LIMIT:?}:\n{}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out.join().unwrap().expect("chromium's output is UTF-8");
    let stderr = err.join().unwrap();
    assert!(
        status.success(),
        "chromium {url} exited with {status}:\n{stderr}"
    );
    assert!(
        !stdout.is_empty() || extra.iter().any(|a| a.starts_with("--screenshot")),
        "chromium printed nothing for {url}:\n{stderr}"
    );
    stdout
}

/// The DOM the page rendered for `?sii=…`, once it signals it is done,
/// with the page-wide checks made (policy kept, styles applied).
fn rendered(s: &Setup, sii: &str) -> String {
    let url = format!("http://{}/?sii={}", s.gateway, query_encode(sii));
    let dom = chromium(&url, &["--dump-dom".to_owned()], &s.world.ws.path(""));
    assert!(
        dom.contains("data-state=\"done\""),
        "the page did not finish {sii}:\n{dom}"
    );
    assert!(
        dom.contains("data-csp-violations=\"0\""),
        "the page broke its own content security policy for {sii}:\n{dom}"
    );
    assert!(
        dom.contains("data-styled=\"yes\""),
        "the page's styles did not apply under its policy for {sii}:\n{dom}"
    );
    dom
}

/// Checks that the DOM shows every part of the gateway's answer `v`.
fn shows_the_answer(dom: &str, v: &Value) {
    let outcome = v["outcome"].as_str().unwrap();
    assert!(
        dom.contains(&format!(
            "id=\"outcome\" class=\"badge\" data-outcome=\"{outcome}\""
        )),
        "outcome {outcome} not shown:\n{dom}"
    );
    assert!(dom.contains(&format!(
        "data-outcome=\"{outcome}\" data-http-status=\"200\""
    )));
    if let Some(c) = v["canonical"].as_str() {
        assert!(
            dom.contains(&format!(
                "<span id=\"canonical\" class=\"mono\">{}</span>",
                html_text(c)
            )),
            "canonical {c} not shown:\n{dom}"
        );
    }
    for ssi in v["verified"].as_array().unwrap() {
        let text = ssi["ssi"].as_str().unwrap();
        assert!(
            dom.contains(&format!(
                "<div class=\"ssi mono\">{}</div>",
                html_text(text)
            )),
            "SSI {text} not shown:\n{dom}"
        );
        for a in ssi["authorities"].as_array().unwrap() {
            let a = a.as_str().unwrap();
            assert!(
                dom.contains(&format!(
                    "<li class=\"authority mono\">{}</li>",
                    html_text(a)
                )),
                "authority {a} not shown:\n{dom}"
            );
        }
        let iso = iso_utc(ssi["expires"].as_i64().unwrap());
        assert!(
            dom.contains(&format!("datetime=\"{iso}\">{iso}</time>")),
            "expiry {iso} not shown:\n{dom}"
        );
    }
    let rejected = v["rejected"].as_array().unwrap();
    for r in rejected {
        let reason = r["reason"].as_str().unwrap();
        assert!(
            dom.contains(&format!("<dd class=\"reason\">{}</dd>", html_text(reason))),
            "reason {reason} not shown:\n{dom}"
        );
        if let Some(a) = r["authority"].as_str() {
            assert!(
                dom.contains(&format!(
                    "<dd class=\"authority mono\">{}</dd>",
                    html_text(a)
                )),
                "rejecting authority {a} not shown:\n{dom}"
            );
        }
    }
    assert_eq!(
        dom.matches("<li class=\"rejected-entry\">").count(),
        rejected.len(),
        "{dom}"
    );
    for e in v["errors"].as_array().unwrap() {
        let e = e.as_str().unwrap();
        assert!(
            dom.contains(&format!("<li class=\"error\">{}</li>", html_text(e))),
            "error {e} not shown:\n{dom}"
        );
    }
}

/// The PNG at `path` is a real screenshot of the requested size: PNG
/// signature, IHDR of 1200 × 900, and larger than a blank page compresses
/// to.
fn is_real_screenshot(path: &Path) {
    let png =
        std::fs::read(path).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", path.display()));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR", "no IHDR chunk first");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1200, 900), "screenshot size");
    // A blank 1200 × 900 page compresses to a few kB; text, badges and
    // borders take far more.
    assert!(
        png.len() > 20_000,
        "the screenshot is only {} bytes: a blank page?",
        png.len()
    );
}

/// target/test-artifacts (target/debug/deps/<test> → target).
fn artifacts() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_owned();
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_lookup_page_renders_every_outcome_in_chromium() {
    let s = setup();

    // alice: verified by two authorities.
    let alice = api(s.gateway, "alice@example.com");
    assert_eq!(alice["outcome"], "verified", "{alice}");
    let dom = rendered(&s, "alice@example.com");
    shows_the_answer(&dom, &alice);
    assert!(dom.contains("<div class=\"ssi mono\">mimi://chat.example.com/u/alice</div>"));
    assert!(
        dom.contains("ssi-entry"),
        "the refused-lookup tests look for this class:\n{dom}"
    );
    for a in ["example.com", "ma.example.net"] {
        assert!(
            dom.contains(&format!("<li class=\"authority mono\">{a}</li>")),
            "{a}:\n{dom}"
        );
    }
    assert_eq!(dom.matches("<li class=\"authority mono\">").count(), 2);
    // Its record expires days from now (the world signs for a week or more).
    let relative = dom
        .split("<span class=\"expires-relative\">")
        .nth(1)
        .and_then(|r| r.split_once("</span>"))
        .map(|(r, _)| r)
        .unwrap_or_default();
    assert!(
        relative.starts_with("in ") && relative.ends_with(" days"),
        "relative expiry {relative:?}:\n{dom}"
    );
    assert!(dom.contains(">Verified</span>"));

    // bob: verified, and the replayed record rejected next to it.
    let bob = api(s.gateway, "bob@example.com");
    assert_eq!(bob["outcome"], "verified", "{bob}");
    assert!(!bob["rejected"].as_array().unwrap().is_empty(), "{bob}");
    shows_the_answer(&rendered(&s, "bob@example.com"), &bob);

    // A national telephone number in international form: two SSIs (the
    // "+" must reach the gateway as "+", not as a space).
    let tel = api(s.gateway, "+39 06 1234 5678");
    assert_eq!(tel["verified"].as_array().unwrap().len(), 2, "{tel}");
    shows_the_answer(&rendered(&s, "+39 06 1234 5678"), &tel);

    // dave: rejected, with the reason and the authority that signed it.
    let dave = api(s.gateway, "dave@example.com");
    assert_eq!(dave["outcome"], "rejected", "{dave}");
    let dom = rendered(&s, "dave@example.com");
    shows_the_answer(&dom, &dave);
    assert!(dom.contains(">Rejected</span>"));
    assert!(!dom.contains("<div class=\"ssi mono\">"), "{dom}");

    // nobody: not found.
    let nobody = api(s.gateway, "nobody@example.com");
    assert_eq!(nobody["outcome"], "not_found", "{nobody}");
    let dom = rendered(&s, "nobody@example.com");
    shows_the_answer(&dom, &nobody);
    assert!(dom.contains(">Not found</span>"));

    // A hostile input is text, never markup.
    let hostile = "<img src=x onerror=alert(1)><script>alert(2)</script>@example.com";
    let bad = api(s.gateway, hostile);
    assert_eq!(bad["outcome"], "bad_input", "{bad}");
    let dom = rendered(&s, hostile);
    shows_the_answer(&dom, &bad);
    assert!(dom.contains(">Not a valid SII</span>"));
    assert!(
        dom.contains(&format!(
            "<span id=\"canonical\" class=\"mono\">input: {}</span>",
            html_text(hostile)
        )),
        "{dom}"
    );
    assert!(!dom.contains("<img"), "the input became markup:\n{dom}");
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "only the page's own script:\n{dom}"
    );

    // The screenshot of alice's result, kept as an artifact.
    let png = artifacts().join("gateway-page-alice.png");
    let _ = std::fs::remove_file(&png);
    chromium(
        &format!("http://{}/?sii=alice%40example.com", s.gateway),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1200,900".to_owned(),
            "--hide-scrollbars".to_owned(),
        ],
        &s.world.ws.path(""),
    );
    is_real_screenshot(&png);
}

#[test]
fn iso_utc_matches_known_dates() {
    assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
    assert_eq!(iso_utc(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(iso_utc(1_798_761_599), "2026-12-31T23:59:59Z");
}

#[test]
fn the_lookup_page_says_so_when_dns_fails() {
    // A gateway whose only name server is a loopback port nobody serves:
    // every lookup is a 200 with outcome dns_error, and the page says the
    // answer is unknown (not "not found").
    let world = World::new();
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (gateway, daemon) = start_gateway(&world, dead, "300ms");
    let s = Setup {
        _daemons: vec![daemon],
        gateway,
        world,
    };
    let v = api(s.gateway, "alice@example.com");
    assert_eq!(v["outcome"], "dns_error", "{v}");
    assert!(!v["errors"].as_array().unwrap().is_empty(), "{v}");
    let dom = rendered(&s, "alice@example.com");
    shows_the_answer(&dom, &v);
    assert!(dom.contains(">DNS error</span>"), "{dom}");
    assert!(dom.contains("does not know the answer"), "{dom}");
}

#[test]
fn the_lookup_page_shows_rate_limits_and_refused_keys() {
    let world = World::new();
    let (serve, dns) = world.serve_daemon();

    // One token, refilled once in 1000 s: the first lookup (curl) takes
    // it, so the page's lookup is answered 429 with a Retry-After.
    let (gateway, limited) =
        start_gateway_with(&world, dns, "5s", &["--rate", "0.001", "--burst", "1"]);
    let first = api(gateway, "alice@example.com");
    assert_eq!(first["outcome"], "verified", "{first}");
    let s = Setup {
        _daemons: vec![limited],
        gateway,
        world,
    };
    let dom = rendered(&s, "alice@example.com");
    assert!(dom.contains("Rate limited"), "{dom}");
    assert!(dom.contains("Too many lookups from this client"), "{dom}");
    let retry = dom
        .split("data-retry-after=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no data-retry-after:\n{dom}"));
    let secs: u64 = retry.parse().unwrap_or_else(|_| panic!("{retry:?}"));
    assert!((1..=1000).contains(&secs), "{secs}");
    assert!(
        !dom.contains("ssi-entry"),
        "an SSI shown for a refused lookup:\n{dom}"
    );

    // A gateway with an API keys file: the page without a key is refused
    // (401), and says so instead of showing a result.
    let world = s.world;
    let keys = world.ws.path("keys.txt");
    std::fs::write(&keys, "support:k3y-for-the-page-test\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (gateway, keyed) =
        start_gateway_with(&world, dns, "5s", &["--api-keys", keys.to_str().unwrap()]);
    let s = Setup {
        _daemons: vec![serve, keyed],
        gateway,
        world,
    };
    let dom = rendered(&s, "alice@example.com");
    assert!(dom.contains("Not allowed"), "{dom}");
    assert!(
        !dom.contains("ssi-entry"),
        "an SSI shown for a refused lookup:\n{dom}"
    );
}
