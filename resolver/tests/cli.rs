//! The `mimi-resolve` binary: output contract and exit codes.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mimi-resolve"));
    c.env_remove("RUST_LOG");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("spawn mimi-resolve")
}

fn vectors_dir() -> PathBuf {
    if let Ok(d) = std::env::var("MIMI_VECTORS_DIR") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors")
}

fn canonical_vectors() -> Value {
    let path = vectors_dir().join("canonical.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e} (set MIMI_VECTORS_DIR)", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn json_stdout(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

const TRUST: &str = r#"
[policy]
min_authorities = 1

[[authority]]
name = "ma.example.net"
root_keys = ["11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"]
"#;

#[test]
fn name_json_matches_the_vectors() {
    let v = canonical_vectors();
    let case = v["valid"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["input"] == "Alice@Example.COM")
        .unwrap();
    let out = run(&[
        "name",
        "Alice@Example.COM",
        "--zone",
        "dir.chat.example.org",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_stdout(&out);
    assert_eq!(j.as_object().unwrap().len(), 3, "{j}");
    assert_eq!(j["canonical"], case["canonical"]);
    assert_eq!(j["label"], case["label"]);
    assert_eq!(
        j["names"],
        serde_json::json!([case["home_name"], case["distribution_name"]])
    );
}

#[test]
fn name_json_for_telephone_numbers() {
    let v = canonical_vectors();
    let root = v["tel_root"].as_str().unwrap();
    assert_eq!(root, "e164.mimi.example");
    for case in v["valid"].as_array().unwrap() {
        let canonical = case["canonical"].as_str().unwrap();
        if !canonical.starts_with("tel:") {
            continue;
        }
        let input = case["input"].as_str().unwrap();
        let mut args = vec!["name", input, "--tel-root", root, "--json"];
        if let Some(r) = case["region"].as_str() {
            args.extend(["--region", r]);
        }
        let mut expected = vec![case["home_name"].clone()];
        if let Some(z) = case["distribution_zone"].as_str() {
            args.extend(["--zone", z]);
            expected.push(case["distribution_name"].clone());
        }
        let out = run(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{input}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j = json_stdout(&out);
        assert_eq!(j["canonical"], canonical, "{input}");
        assert_eq!(j["label"], case["label"], "{input}");
        assert_eq!(j["names"], Value::Array(expected), "{input}");
    }
}

#[test]
fn bad_sii_is_exit_2() {
    let out = run(&["name", "no-at-sign.example.com", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("not an email address"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.toml");
    std::fs::write(&trust, TRUST).unwrap();
    let out = run(&[
        "lookup",
        "alice@localhost",
        "--trust",
        trust.to_str().unwrap(),
        "--server",
        "127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad domain"));

    let out = run(&["name", "06 1234 5678", "--region", "ZZ"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--region"));
}

#[test]
fn bad_trust_file_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.toml");
    std::fs::write(
        &trust,
        "[[authority]]\nname = \"x.example\"\nroot_keys = [\"not-a-key\"]\n",
    )
    .unwrap();
    let path = trust.to_str().unwrap();
    let out = run(&[
        "lookup",
        "alice@example.com",
        "--trust",
        path,
        "--server",
        "127.0.0.1:1",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "error: trust store {path}: authority \"x.example\": root_keys[0]: "
        )),
        "{err}"
    );

    let missing = dir.path().join("missing.toml");
    let out = run(&[
        "lookup",
        "alice@example.com",
        "--trust",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));

    let out = run(&[
        "lookup",
        "alice@example.com",
        "--trust",
        path,
        "--server",
        "not-an-address",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// A `--server` that is not a server spec, `--tls-name` that is not a name
/// and `--ca` without an encrypted server are usage errors naming the
/// argument; no query is sent.
#[test]
fn bad_server_specs_and_tls_flags_are_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.toml");
    std::fs::write(
        &trust,
        "[[authority]]\nname = \"x.example\"\nroot_keys = [\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"]\n",
    )
    .unwrap();
    let path = trust.to_str().unwrap();
    for (args, expect) in [
        (
            &["--server", "tls://dns.example.net"][..],
            "\"tls://dns.example.net\": \"dns.example.net\" is not IP",
        ),
        (
            &["--server", "udp://127.0.0.1"][..],
            "unknown scheme \"udp\"",
        ),
        (
            &["--server", "quic://127.0.0.1:853/dns-query"][..],
            "takes no path",
        ),
        (
            &["--server", "tls://127.0.0.1", "--tls-name", "a b"][..],
            "is not a host name or IP address",
        ),
        (
            &["--server", "127.0.0.1:53", "--tls-name", "dns.example.net"][..],
            "--tls-name: applies to tls://, https:// and quic:// servers",
        ),
        (
            &["--server", "https://[::1]/dns-query"][..],
            "DNS over HTTPS to an IPv6 address needs a certificate name",
        ),
    ] {
        let mut all = vec!["lookup", "alice@example.com", "--trust", path];
        all.extend_from_slice(args);
        let out = run(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let out = run(&[
        "lookup",
        "alice@example.com",
        "--trust",
        path,
        "--server",
        "tls://127.0.0.1:1",
        "--ca",
        empty.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "--ca: CA file {}: no CERTIFICATE",
            empty.display()
        )),
        "{err}"
    );
}

#[test]
fn down_server_is_exit_3_with_dns_error_json() {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.toml");
    std::fs::write(&trust, TRUST).unwrap();
    // A port nothing listens on: bind, note the port, release it.
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let server = format!("127.0.0.1:{port}");
    let start = Instant::now();
    let out = run(&[
        "lookup",
        "Alice@Example.COM",
        "--trust",
        trust.to_str().unwrap(),
        "--server",
        &server,
        "--zone",
        "dir.chat.example.org",
        "--timeout",
        "1s",
        "--json",
    ]);
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_stdout(&out);
    assert_eq!(j["outcome"], "dns_error");
    assert_eq!(j["canonical"], "mailto:alice@example.com");
    assert_eq!(j["verified"], serde_json::json!([]));
    assert_eq!(j["rejected"], serde_json::json!([]));
    let errors = j["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[1]
        .as_str()
        .unwrap()
        .contains("._mimi.dir.chat.example.org.: "));

    // Human output says the same, on stdout, with the same exit code.
    let out = run(&[
        "lookup",
        "alice@example.com",
        "--trust",
        trust.to_str().unwrap(),
        "--server",
        &server,
        "--timeout",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("mailto:alice@example.com → DNS failure\n  error: "),
        "{text}"
    );
}

/// `batch` against a server that is down: one `dns_error` line per SII, a
/// `bad_input` line for a line that is not an SII, input order kept,
/// comments and blank lines skipped, and still exit 0 (every line was
/// processed). Then bad configuration: exit 2, nothing on stdout.
#[test]
fn batch_against_a_down_server() {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.toml");
    std::fs::write(&trust, TRUST).unwrap();
    let input = dir.path().join("siis.txt");
    std::fs::write(
        &input,
        "# address book\nAlice@Example.COM\n\n  not an address  \nbob@example.com\n+39 06 1234 5678\ncarol@example.org\n",
    )
    .unwrap();
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let server = format!("127.0.0.1:{port}");
    let start = Instant::now();
    let out = run(&[
        "batch",
        input.to_str().unwrap(),
        "--trust",
        trust.to_str().unwrap(),
        "--server",
        &server,
        "--zone",
        "dir.chat.example.org",
        "--timeout",
        "1s",
        "--concurrency",
        "3",
    ]);
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let got: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["input"].as_str().unwrap(), l["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("Alice@Example.COM", "dns_error"),
            ("not an address", "bad_input"),
            ("bob@example.com", "dns_error"),
            ("+39 06 1234 5678", "dns_error"),
            ("carol@example.org", "dns_error"),
        ]
    );
    // The fields of `lookup --json`, plus `input`.
    let alice = lines[0].as_object().unwrap();
    let mut keys: Vec<&str> = alice.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "canonical",
            "errors",
            "input",
            "outcome",
            "rejected",
            "verified"
        ]
    );
    assert_eq!(lines[0]["canonical"], "mailto:alice@example.com");
    assert_eq!(lines[0]["errors"].as_array().unwrap().len(), 2);
    assert_eq!(lines[3]["canonical"], "tel:+390612345678");
    assert!(lines[1].get("canonical").is_none());
    assert_eq!(lines[1]["errors"].as_array().unwrap().len(), 1);

    // The same from standard input, with `-`.
    let mut child = bin()
        .args([
            "batch",
            "-",
            "--trust",
            trust.to_str().unwrap(),
            "--server",
            &server,
            "--timeout",
            "1s",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"dave@example.com\nnope\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let outcomes: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["outcome"].to_string())
        .collect();
    assert_eq!(outcomes, ["\"dns_error\"", "\"bad_input\""]);

    // Bad configuration: exit 2, nothing on stdout.
    let missing = dir.path().join("missing.txt");
    for args in [
        vec![
            "batch",
            missing.to_str().unwrap(),
            "--trust",
            trust.to_str().unwrap(),
        ],
        vec![
            "batch",
            input.to_str().unwrap(),
            "--trust",
            dir.path().join("nope.toml").to_str().unwrap(),
        ],
        vec![
            "batch",
            input.to_str().unwrap(),
            "--trust",
            trust.to_str().unwrap(),
            "--region",
            "ZZ",
        ],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error: "),
            "{args:?}"
        );
    }
}

/// `batch` runs lookups on several threads; lines that finish at once (not
/// an SII) and lines that wait for DNS timeouts are still written in input
/// order, each exactly once, whatever the concurrency.
#[test]
fn batch_keeps_input_order_when_lines_finish_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.toml");
    std::fs::write(&trust, TRUST).unwrap();
    let mut text = String::new();
    let mut expected = Vec::new();
    for i in 0..40 {
        let line = if i % 3 == 0 {
            format!("user{i}@example.com")
        } else {
            format!("not an address {i}")
        };
        text.push_str(&line);
        text.push('\n');
        expected.push(line);
    }
    let input = dir.path().join("siis.txt");
    std::fs::write(&input, text).unwrap();
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let server = format!("127.0.0.1:{port}");
    for concurrency in ["1", "5", "64"] {
        let out = run(&[
            "batch",
            input.to_str().unwrap(),
            "--trust",
            trust.to_str().unwrap(),
            "--server",
            &server,
            "--timeout",
            "100ms",
            "--concurrency",
            concurrency,
        ]);
        assert_eq!(out.status.code(), Some(0), "{concurrency}");
        let got: Vec<(String, String)> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["input"].as_str().unwrap().to_owned(),
                    v["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|l| {
                let outcome = if l.starts_with("not") {
                    "bad_input"
                } else {
                    "dns_error"
                };
                (l.clone(), outcome.to_owned())
            })
            .collect();
        assert_eq!(got, want, "concurrency {concurrency}");
    }
}
