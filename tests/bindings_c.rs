//! The C ABI (`bindings/c`, mimi-resolver-ffi) from a real C program.
//!
//! `bindings/c/tests/c/lookup.c` is compiled with the system C compiler
//! (`-Wall -Wextra -Werror -std=c11 -pthread`) against the committed
//! header and the built `libmimi_resolver_ffi.so`, and run against the
//! real `mimi-publisher serve` serving the example world: plainly, under
//! valgrind (definite and indirect leaks and every invalid access fail the
//! test) and built with AddressSanitizer (LeakSanitizer on). Its output is
//! one `LABEL<TAB>JSON` line per result, checked here with a real parser.
//!
//! `cargo test` does not put a cdylib into `target/<profile>/` (it links
//! the rlib into test binaries, and this crate does not depend on the C
//! ABI crate), so the test first runs `cargo build -p mimi-resolver-ffi -p
//! mimi-e2e --lib` into the same target directory: a no-op when it is up
//! to date, and never a stale library. `-p mimi-e2e` is there so that
//! features unify exactly as in `cargo test -p mimi-e2e`; building the C
//! ABI crate alone resolves some dependencies with other features, and
//! the two builds then rebuild each other's dependencies (ring, rustls,
//! hickory) on every run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mimi_e2e::world::World;
use mimi_e2e::{free_port, require};
use serde_json::Value;

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Builds the C ABI library and returns the directory holding it.
fn build_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/bindings_c-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    let target_dir = profile_dir.parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "mimi-resolver-ffi",
        "-p",
        "mimi-e2e",
        "--lib",
    ])
    .env("CARGO_TARGET_DIR", target_dir)
    .current_dir(root());
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "cargo build -p mimi-resolver-ffi failed");
    let lib = profile_dir.join("libmimi_resolver_ffi.so");
    assert!(lib.exists(), "{} was not built", lib.display());
    profile_dir
}

/// Compiles the C program with `extra` flags into `out`.
fn compile(lib_dir: &Path, out: &Path, extra: &[&str]) {
    let cc = require("cc", "gcc");
    let c_dir = root().join("bindings/c");
    let output = Command::new(cc)
        .args(["-Wall", "-Wextra", "-Werror", "-std=c11", "-pthread", "-g"])
        .args(extra)
        .arg("-I")
        .arg(c_dir.join("include"))
        .arg(c_dir.join("tests/c/lookup.c"))
        .arg("-o")
        .arg(out)
        .arg("-L")
        .arg(lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lmimi_resolver_ffi")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the C program does not compile:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `cmd` to its end, killing it (by pid) after `limit`.
fn run(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // A watchdog, not synchronisation: wait_with_output returns as soon as
    // the program ends; the watchdog only acts on a hung program.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            // Still running: SIGKILL the one process we started.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });
    let output = child.wait_with_output().unwrap();
    let _ = tx.send(());
    watchdog.join().unwrap();
    output
}

/// The program's results by label, after checking it succeeded.
fn results(what: &str, output: &Output) -> HashMap<String, Value> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout
        .lines()
        .map(|line| {
            let (label, json) = line
                .split_once('\t')
                .unwrap_or_else(|| panic!("{what}: not LABEL<TAB>JSON: {line:?}"));
            let v = serde_json::from_str(json)
                .unwrap_or_else(|e| panic!("{what}: {label}: {e}: {json}"));
            (label.to_owned(), v)
        })
        .collect()
}

/// Checks every result the C program reports.
fn check(what: &str, r: &HashMap<String, Value>) {
    let get = |label: &str| {
        r.get(label)
            .unwrap_or_else(|| panic!("{what}: no {label:?} line in {r:?}"))
    };
    assert_eq!(get("version"), env!("CARGO_PKG_VERSION"), "{what}");
    let alice = get("alice");
    assert_eq!(alice["outcome"], "verified", "{what}: {alice}");
    assert_eq!(alice["canonical"], "mailto:alice@example.com", "{what}");
    assert_eq!(
        alice["verified"].as_array().unwrap().len(),
        1,
        "{what}: {alice}"
    );
    assert_eq!(
        alice["verified"][0]["ssi"], "mimi://chat.example.com/u/alice",
        "{what}: {alice}"
    );
    let dave = get("dave");
    assert_eq!(dave["outcome"], "rejected", "{what}: {dave}");
    assert!(
        dave["verified"].as_array().unwrap().is_empty(),
        "{what}: {dave}"
    );
    assert!(
        !dave["rejected"].as_array().unwrap().is_empty(),
        "{what}: {dave}"
    );
    assert_eq!(get("nobody")["outcome"], "not_found", "{what}");
    let bad = get("bad_sii");
    assert_eq!(bad["outcome"], "bad_input", "{what}: {bad}");
    assert_eq!(bad["input"], "not an sii", "{what}: {bad}");
    let batch = get("batch").as_array().unwrap().clone();
    let outcomes: Vec<_> = batch
        .iter()
        .map(|v| v["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["verified", "rejected", "not_found", "bad_input", "verified"],
        "{what}"
    );
    assert_eq!(
        batch[4]["verified"].as_array().unwrap().len(),
        2,
        "{what}: the telephone number"
    );
    assert_eq!(get("threads")["ok"], 48, "{what}");
    let carol = get("async");
    assert_eq!(carol["outcome"], "verified", "{what}: {carol}");
    assert_eq!(carol["canonical"], "mailto:carol@mail.example", "{what}");
    assert_eq!(get("down")["outcome"], "dns_error", "{what}");
    let freed = get("freed_async")["outcome"].as_str().unwrap().to_owned();
    assert!(
        freed == "dns_error" || freed == "bad_input",
        "{what}: {freed}"
    );
    // Status codes are part of the ABI: their numbers must not move.
    assert_eq!(get("null_resolver")["status"], 1, "{what}");
    assert_eq!(get("invalid_utf8")["status"], 2, "{what}");
    for i in 0..5 {
        assert_eq!(get(&format!("bad_config_{i}"))["status"], 3, "{what}");
    }
    assert_eq!(get("bad_batch")["status"], 4, "{what}");
    assert!(r.contains_key("done"), "{what}");
}

/// The shape of what the C ABI returns is the CLI's: the same object as
/// `mimi-resolve lookup --json` for the same SII.
fn check_same_as_cli(r: &HashMap<String, Value>, trust: &Path, server: &str) {
    let out = Command::new(mimi_e2e::bin("mimi-resolve"))
        .args(["lookup", "dave@example.com", "--json", "--trust"])
        .arg(trust)
        .args(["--server", server, "--zone", "dir.chat.example.org"])
        .args(["--tel-root", "e164.mimi.example"])
        .output()
        .unwrap();
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "mimi-resolve: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(r["dave"], cli, "the C ABI and the CLI disagree");
}

#[test]
fn a_c_program_resolves_against_serve_without_leaks() {
    let lib_dir = build_library();
    let valgrind = require("valgrind", "valgrind");
    let w = World::new();
    let trust = w.write_trust(1);
    let (_serve, addr) = w.serve_daemon();
    let down = format!("127.0.0.1:{}", free_port());
    let work = tempfile::tempdir().unwrap();
    let args = [addr.to_string(), trust.display().to_string(), down.clone()];

    // Plain.
    let plain = work.path().join("lookup");
    compile(&lib_dir, &plain, &[]);
    let mut cmd = Command::new(&plain);
    cmd.args(&args);
    let started = Instant::now();
    let r = results("plain", &run(cmd, Duration::from_secs(120)));
    eprintln!("plain run: {:?}", started.elapsed());
    check("plain", &r);
    check_same_as_cli(&r, &trust, &addr.to_string());

    // Valgrind: definite and indirect leaks and every memory error fail.
    // "Possibly lost" and "still reachable" blocks are not counted: the
    // resolver's runtime threads are shut down in the background (that is
    // what makes freeing a handle inside a callback safe), so at exit they
    // may still hold their stacks and thread-locals, which valgrind reports
    // as reachable or, for pointers into the middle of a block, possibly
    // lost. A block nothing points to any more (definite) or only such
    // blocks point to (indirect) is a real leak.
    let mut cmd = Command::new(valgrind);
    cmd.args([
        "--quiet",
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect",
        "--errors-for-leak-kinds=definite,indirect",
        "--error-exitcode=97",
    ])
    .arg(&plain)
    .args(&args)
    // The longest timeout a configuration may ask for: under valgrind
    // every thread runs on one core, tens of times slower.
    .arg("60000");
    let started = Instant::now();
    let out = run(cmd, Duration::from_secs(600));
    eprintln!("valgrind run: {:?}", started.elapsed());
    assert_ne!(
        out.status.code(),
        Some(97),
        "valgrind found memory errors or leaks:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check("valgrind", &results("valgrind", &out));

    // AddressSanitizer on the C side (and its allocator under Rust's
    // allocations too), with LeakSanitizer.
    let asan = work.path().join("lookup-asan");
    compile(
        &lib_dir,
        &asan,
        &["-fsanitize=address", "-fno-omit-frame-pointer"],
    );
    let mut cmd = Command::new(&asan);
    cmd.args(&args).env(
        "ASAN_OPTIONS",
        "detect_leaks=1:abort_on_error=0:exitcode=98",
    );
    let started = Instant::now();
    let out = run(cmd, Duration::from_secs(300));
    eprintln!("asan run: {:?}", started.elapsed());
    assert_ne!(
        out.status.code(),
        Some(98),
        "AddressSanitizer found errors:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check("asan", &results("asan", &out));
}
