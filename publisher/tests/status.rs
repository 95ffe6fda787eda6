//! `mimi-publisher status` against real zones: a running `serve
//! --state-dir` checked with dig, a broken edit while it runs, a stopped
//! server, a damaged status file, a `build --out` zone file, and the exit
//! codes a monitoring system reads (0 OK, 1 WARNING, 2 CRITICAL, 3
//! UNKNOWN).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Every wait for the server gives up (and fails the test) after this.
const LIMIT: Duration = Duration::from_secs(30);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mimi-publisher")
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Polls `f` until it gives a value; fails after [`LIMIT`].
fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(started.elapsed() < LIMIT, "{what}: not within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A zone `example.com` with two mappings, signed with a key certified
/// for 30 days from now; the re-sign margin keeps every assertion valid
/// for more than the default `--warn-within` (7 days).
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let p = |n: &str| d.join(n).to_str().unwrap().to_owned();
        ok(&run(&["keygen", "--out", &p("root.pem")]));
        ok(&run(&["keygen", "--out", &p("signing.pem")]));
        let cert = ok(&run(&[
            "certify",
            "--root",
            &p("root.pem"),
            "--key",
            &p("signing.pem"),
            "--authority",
            "example.com",
            "--validity",
            "30d",
        ]));
        std::fs::write(d.join("certs"), cert).unwrap();
        std::fs::write(
            d.join("m.csv"),
            "alice@example.com,im:alice@chat.example.com\nbob@example.com,im:bob@chat.example.com\n",
        )
        .unwrap();
        std::fs::write(
            d.join("zone.toml"),
            r#"origin = "example.com"
role = "home"
ttl = 300
ns = ["ns1.example.com"]
mappings = "m.csv"

[soa]
mname = "ns1.example.com"
rname = "hostmaster.example.com"

[authority]
name = "example.com"
key = "signing.pem"
certificates = ["certs"]
# Every assertion expires 8 days or more from now: beyond --warn-within.
resign_margin = "8d"
"#,
        )
        .unwrap();
        Fixture { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> String {
        self.path("zone.toml").to_str().unwrap().to_owned()
    }
}

/// `status` with `args`: exit code, stdout, stderr (checked for panics).
fn status(args: &[&str]) -> (i32, String) {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    let o = run(&all);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        o.status.code().expect("exited"),
        String::from_utf8(o.stdout).unwrap(),
    )
}

fn status_json(args: &[&str]) -> (i32, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out) = status(&all);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["exit"], code, "{v:#}");
    (code, v)
}

fn codes(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .chain(
            v["zones"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|z| z["problems"].as_array().unwrap()),
        )
        .map(|p| {
            format!(
                "{}:{}",
                p["severity"].as_str().unwrap(),
                p["code"].as_str().unwrap()
            )
        })
        .collect();
    out.sort();
    out
}

/// A `mimi-publisher serve` process, killed if the test fails early.
struct Server {
    child: Child,
    log: PathBuf,
    addr: String,
}

impl Server {
    fn start(f: &Fixture, state: &Path) -> Server {
        Server::start_with(f, &f.config(), state)
    }

    fn start_with(f: &Fixture, config: &str, state: &Path) -> Server {
        let log = f.path("serve.log");
        let child = Command::new(bin())
            .args([
                "serve",
                config,
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
                state.to_str().unwrap(),
            ])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            log,
            addr: String::new(),
        };
        server.addr = until("the server's address in its log", || {
            assert!(
                server.child.try_wait().unwrap().is_none(),
                "serve exited: {}",
                server.log()
            );
            let log = server.log();
            let line = log
                .lines()
                .find(|l| l.contains("serving over UDP and TCP"))?;
            let addr = line.split("addr=").nth(1)?.split_whitespace().next()?;
            Some(addr.to_owned())
        });
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The serial dig gets for the SOA of `zone`.
    fn dig_serial(&self, zone: &str) -> Option<u32> {
        let (ip, port) = self.addr.rsplit_once(':').unwrap();
        let o = Command::new("dig")
            .args([
                &format!("@{ip}"),
                "-p",
                port,
                "+short",
                "+time=1",
                "+tries=1",
                zone,
                "SOA",
            ])
            .output()
            .expect("dig is installed (Debian package bind9-dnsutils)");
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .nth(2)?
            .parse()
            .ok()
    }

    /// SIGTERM, then waits for the process to end.
    fn stop(&mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: signalling our own child by pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status:?}: {}", self.log());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn now() -> u64 {
    mimi_proto::UnixTime::now().secs()
}

#[test]
fn a_served_zone_through_a_broken_edit_a_stop_and_a_damaged_record() {
    let f = Fixture::new();
    let state = f.path("state");
    let state_s = state.to_str().unwrap().to_owned();
    let config = f.config();
    let mut server = Server::start(&f, &state);
    let serial = until("dig answers", || server.dig_serial("example.com"));

    // Healthy: OK, and what status reads is what dig gets.
    let (code, v) = status_json(&[&config, "--state-dir", &state_s]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["status"], "ok");
    let z = &v["zones"][0];
    assert_eq!(z["origin"], "example.com");
    assert_eq!(z["source"], "state_dir");
    assert_eq!(z["figures"]["serial"], serial);
    assert_eq!(z["figures"]["assertions"], 2);
    assert_eq!(z["figures"]["certificates"], 1);
    assert_eq!(z["figures"]["records"], 3);
    assert_eq!(z["last_reload"]["outcome"], "installed");
    assert_eq!(z["last_reload"]["trigger"], "start");
    assert_eq!(z["last_reload"]["serial"], serial);
    assert_eq!(v["server"]["pid"], server.child.id());
    assert_eq!(v["server"]["running"], true);
    let x = z["assertion_expiry"]["at"]["unix"].as_u64().unwrap();
    assert!(x > now(), "{v:#}");
    assert!(z["assertion_expiry"]["at"]["rfc3339"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    // The plugin line, with the serial as performance data.
    let (code, text) = status(&[&config, "--state-dir", &state_s]);
    assert_eq!(code, 0);
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("MIMI OK - 1 zone, earliest expiry in "),
        "{text}"
    );
    assert!(
        first.contains(&format!(" | 'example.com serial'={serial} ")),
        "{text}"
    );
    assert!(first.contains("'example.com assertions'=2;;;0"), "{text}");

    // Far in the future every record has expired.
    let later = (now() + 400 * 86_400).to_string();
    let (code, v) = status_json(&[&config, "--state-dir", &state_s, "--now", &later]);
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(
        codes(&v),
        ["critical:assertion_expiry", "critical:certificate_expiry"]
    );
    // Closer, within --assertion-warn-within (2d) but not
    // --assertion-critical-within (1d): a warning.
    let soon = (x - 36 * 3600).to_string();
    let (code, v) = status_json(&[&config, "--state-dir", &state_s, "--now", &soon]);
    assert_eq!(
        (code, codes(&v)),
        (1, vec!["warning:assertion_expiry".to_owned()])
    );

    // A broken edit while it serves: the previous zone stays, status warns
    // with the reason and its line, and is critical once it is stale.
    let mut m = std::fs::read_to_string(f.path("m.csv")).unwrap();
    m.push_str("not-an-sii,im:x@chat.example.com\n");
    std::fs::write(f.path("m.csv"), m).unwrap();
    let v = until("the failed reload in status.json", || {
        let (_, v) = status_json(&[&config, "--state-dir", &state_s]);
        (v["zones"][0]["last_reload"]["outcome"] == "failed").then_some(v)
    });
    assert_eq!(v["exit"], 1, "{v:#}");
    assert_eq!(codes(&v), ["warning:reload_failing"]);
    let p = &v["zones"][0]["problems"][0]["message"];
    assert!(p.as_str().unwrap().contains("m.csv:3:"), "{v:#}");
    assert_eq!(v["zones"][0]["last_reload"]["consecutive_failures"], 1);
    assert_eq!(v["zones"][0]["figures"]["serial"], serial);
    assert_eq!(server.dig_serial("example.com"), Some(serial));
    let (code, text) = status(&[&config, "--state-dir", &state_s]);
    assert_eq!(code, 1);
    assert!(
        text.starts_with(
            "MIMI WARNING - 1 zone, 0 critical, 1 warning: example.com: reload failing for "
        ),
        "{text}"
    );
    assert!(text.contains("m.csv:3:"), "{text}");
    let (code, v) = status_json(&[&config, "--state-dir", &state_s, "--stale-after", "0s"]);
    assert_eq!(
        (code, codes(&v)),
        (2, vec!["critical:reload_failing".to_owned()])
    );

    // Stopped: critical, nothing re-signs.
    server.stop();
    let (code, v) = status_json(&[&config, "--state-dir", &state_s]);
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(
        codes(&v),
        ["critical:server_not_running", "warning:reload_failing"]
    );
    assert_eq!(v["server"]["running"], false);

    // A damaged record: a problem naming the file, not a panic.
    let record = state.join("status.json");
    let text = std::fs::read_to_string(&record).unwrap();
    std::fs::write(&record, &text[..text.len() / 2]).unwrap();
    let (code, v) = status_json(&[&config, "--state-dir", &state_s]);
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(codes(&v), ["critical:status_unreadable"]);
    let msg = v["problems"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("status.json:") && msg.contains("not a readable status file"),
        "{msg}"
    );
    std::fs::write(&record, "\u{0}\u{ff}garbage").unwrap();
    let (code, _) = status(&[&config, "--state-dir", &state_s]);
    assert_eq!(code, 2);
}

#[test]
fn zone_files_missing_zones_and_unknowns() {
    let f = Fixture::new();
    let config = f.config();
    let zone = f.path("z.zone");
    let zone_s = zone.to_str().unwrap().to_owned();

    // Not built yet: critical.
    let (code, v) = status_json(&[&config, "--zone-file", &zone_s]);
    assert_eq!(
        (code, codes(&v)),
        (2, vec!["critical:not_published".to_owned()])
    );

    let built: Value =
        serde_json::from_str(&ok(&run(&["build", &config, "--out", &zone_s, "--json"]))).unwrap();
    let (code, v) = status_json(&[&config, "--zone-file", &zone_s]);
    assert_eq!(code, 0, "{v:#}");
    let z = &v["zones"][0];
    assert_eq!(z["source"], "zone_file");
    assert_eq!(z["figures"]["serial"], built["serial"], "{built:#}");
    assert_eq!(z["figures"]["records"], 3);
    assert!(z["last_reload"].is_null());

    // An input edited after the build, long enough ago: a warning.
    let written = std::fs::metadata(&zone)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let edited = written + 600;
    let t = Command::new("touch")
        .args([
            "-d",
            &format!("@{edited}"),
            f.path("m.csv").to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(t.success());
    let at = (edited + 120).to_string();
    let (code, v) = status_json(&[&config, "--zone-file", &zone_s, "--now", &at]);
    assert_eq!(
        (code, codes(&v)),
        (1, vec!["warning:inputs_changed".to_owned()]),
        "{v:#}"
    );
    assert!(v["zones"][0]["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("m.csv changed at"));
    // Just after the edit the build may still be coming: no warning yet.
    let at = (edited + 5).to_string();
    let (code, _) = status_json(&[&config, "--zone-file", &zone_s, "--now", &at]);
    assert_eq!(code, 0);

    // Built in memory: fine too, and a broken input is critical with its line.
    let (code, v) = status_json(&[&config]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["zones"][0]["source"], "built");
    std::fs::write(
        f.path("m.csv"),
        "alice@example.com,im:alice@chat.example.com\nbroken\n",
    )
    .unwrap();
    let (code, v) = status_json(&[&config]);
    assert_eq!(code, 2, "{v:#}");
    assert!(
        codes(&v).iter().all(|c| c == "critical:config_invalid"),
        "{v:#}"
    );
    assert!(v["zones"][0]["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("m.csv:2:"));
    // A configuration that does not load at all.
    std::fs::write(f.path("bad.toml"), "origin = [\n").unwrap();
    let bad = f.path("bad.toml").to_str().unwrap().to_owned();
    let (code, v) = status_json(&[&bad]);
    assert_eq!(
        (code, codes(&v)),
        (2, vec!["critical:config_invalid".to_owned()])
    );

    // A state directory no server has used: no kept zone (critical), no
    // status file (warning).
    let empty = f.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, v) = status_json(&[&config, "--state-dir", empty.to_str().unwrap()]);
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(
        codes(&v),
        ["critical:not_published", "warning:status_unreadable"]
    );

    // UNKNOWN: status itself cannot tell.
    let (code, text) = status(&[&config, "--state-dir", f.path("none").to_str().unwrap()]);
    assert_eq!(code, 3);
    assert!(
        text.starts_with("MIMI UNKNOWN - state directory "),
        "{text}"
    );
    let (code, v) = status_json(&[&config, "--state-dir", f.path("none").to_str().unwrap()]);
    assert_eq!((code, &v["status"]), (3, &Value::from("unknown")));
    assert_eq!(status(&[&config, &config, "--zone-file", &zone_s]).0, 3);
    assert_eq!(status(&[&config, "--warn-within", "soon"]).0, 3);
    assert_eq!(status(&[&config, "--no-such-option"]).0, 3);
    assert_eq!(status(&[]).0, 3);
    // --help is not a failure.
    let o = run(&["status", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("slow for large ones"));
}

/// One configuration of many zones (`[domains]`): one report per zone, a
/// failed reload holds back (and is reported for) every zone of it, and a
/// zone that appears is reported once served.
#[test]
fn every_zone_of_a_configuration_of_many() {
    let f = Fixture::new();
    std::fs::write(
        f.path("many.toml"),
        r#"role = "home"
ttl = 300
ns = ["ns1.provider.example"]
mappings = "many.csv"

[domains]
origin = "_mimi.{domain}"

[soa]
mname = "ns1.provider.example"
rname = "hostmaster.provider.example"

[authority]
name = "example.com"
key = "signing.pem"
certificates = ["certs"]
# Every assertion expires 8 days or more from now: beyond --warn-within.
resign_margin = "8d"
"#,
    )
    .unwrap();
    let users = |domains: &[u32]| -> String {
        domains
            .iter()
            .map(|d| format!("u@d{d}.example,im:u{d}@chat.example.com\n"))
            .collect()
    };
    std::fs::write(f.path("many.csv"), users(&[1, 2])).unwrap();
    let config = f.path("many.toml").to_str().unwrap().to_owned();
    let state = f.path("state");
    let state_s = state.to_str().unwrap().to_owned();
    let server = Server::start_with(&f, &config, &state);
    until("dig answers", || server.dig_serial("_mimi.d2.example"));
    let origins = |v: &Value| -> Vec<String> {
        v["zones"]
            .as_array()
            .unwrap()
            .iter()
            .map(|z| z["origin"].as_str().unwrap().to_owned())
            .collect()
    };
    let (code, v) = status_json(&[&config, "--state-dir", &state_s]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(origins(&v), ["_mimi.d1.example", "_mimi.d2.example"]);
    for z in v["zones"].as_array().unwrap() {
        assert_eq!(z["figures"]["assertions"], 1, "{z:#}");
        assert_eq!(z["last_reload"]["outcome"], "installed");
    }

    // A broken line holds back both zones.
    let mut m = users(&[1, 2]);
    m.push_str("broken\n");
    std::fs::write(f.path("many.csv"), m).unwrap();
    let v = until("both zones failing", || {
        let (_, v) = status_json(&[&config, "--state-dir", &state_s]);
        v["zones"]
            .as_array()
            .unwrap()
            .iter()
            .all(|z| z["last_reload"]["outcome"] == "failed")
            .then_some(v)
    });
    assert_eq!(
        codes(&v),
        ["warning:reload_failing", "warning:reload_failing"]
    );
    assert!(v["zones"][1]["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("many.csv:3:"));

    // Fixed, with a third domain: every zone fine, the new one reported.
    std::fs::write(f.path("many.csv"), users(&[1, 2, 3])).unwrap();
    let v = until("three zones, all fine", || {
        let (code, v) = status_json(&[&config, "--state-dir", &state_s]);
        (code == 0 && v["zones"].as_array().unwrap().len() == 3).then_some(v)
    });
    assert_eq!(
        origins(&v),
        ["_mimi.d1.example", "_mimi.d2.example", "_mimi.d3.example"]
    );
    assert_eq!(v["zones"][2]["last_reload"]["outcome"], "installed");
    assert_eq!(
        v["zones"][2]["figures"]["serial"],
        server.dig_serial("_mimi.d3.example").unwrap()
    );
}
