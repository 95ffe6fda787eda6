//! The Python package (`bindings/python`, import name `mimi_dns`) end to
//! end: the wheel is built with maturin, installed into the test's virtual
//! environment and exercised by its pytest suite
//! (`bindings/python/tests/`) against the real `mimi-publisher serve`
//! serving the example world and the real `mimi-gateway`, whose JSON the
//! suite compares field by field with the Python results; it also runs the
//! `mimi-resolve` CLI and `mypy --strict`.
//!
//! `tests/run.sh` makes the virtual environment (`tests/.venv-py`, with
//! maturin, pytest and mypy from PyPI; or set `MIMI_TEST_PY_VENV`); without
//! it this test fails and says how to make it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use mimi_e2e::world::{listening, World};
use mimi_e2e::{bin, free_port, target_dir, without_test_env, Daemon};

fn venv() -> PathBuf {
    let dir = std::env::var_os("MIMI_TEST_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-py"));
    for tool in ["python", "maturin", "pytest", "mypy"] {
        assert!(
            dir.join("bin").join(tool).exists(),
            "{} not found: run tests/run.sh (it makes tests/.venv-py with maturin, pytest and \
             mypy), or set MIMI_TEST_PY_VENV to a virtual environment that has them",
            dir.join("bin").join(tool).display()
        );
    }
    dir
}

fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// `mimi-gateway serve` on a free loopback port, once it accepts
/// connections (it binds only after the resolver is built).
fn gateway(w: &World, trust: &Path, server: SocketAddr) -> (Daemon, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = Command::new(bin("mimi-gateway"));
    cmd.args(["serve", "--listen", &addr.to_string(), "--trust"])
        .arg(trust)
        .args(["--server", &server.to_string()])
        .args(["--zone", "dir.chat.example.org"])
        .args(["--tel-root", "e164.mimi.example"])
        .env("NO_COLOR", "1");
    let daemon = Daemon::spawn("mimi-gateway serve", cmd, w.ws.path("gateway.log"));
    listening(daemon, addr)
}

#[test]
fn the_python_wheel_passes_its_pytest_suite_against_serve_and_the_gateway() {
    let venv = venv();
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bindings/python");
    let w = World::new();

    // Build the wheel into the test's workspace (removed afterwards), and
    // install exactly that file: no index, no stale wheel.
    let wheels = w.ws.path("wheels");
    let mut maturin = Command::new(venv.join("bin/maturin"));
    maturin
        .args(["build", "--quiet", "--out"])
        .arg(&wheels)
        .current_dir(&package)
        .env("CARGO_TARGET_DIR", target_dir());
    without_test_env(&mut maturin);
    run("maturin build", &mut maturin);
    let wheel: Vec<PathBuf> = std::fs::read_dir(&wheels)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    assert_eq!(wheel.len(), 1, "maturin built {wheel:?}");
    run(
        "pip install",
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-index", "--no-deps", "--force-reinstall"])
            .arg(&wheel[0]),
    );

    let trust = w.write_trust(1);
    let (mut serve, server) = w.serve_daemon();
    let (mut gw, gw_addr) = gateway(&w, &trust, server);

    let out = Command::new(venv.join("bin/python"))
        .args(["-m", "pytest", "-v", "-p", "no:cacheprovider", "tests"])
        .current_dir(&package)
        .env("MIMI_DNS_SERVER", server.to_string())
        .env("MIMI_DNS_TRUST", &trust)
        .env("MIMI_GATEWAY_URL", format!("http://{gw_addr}"))
        .env("MIMI_RESOLVE", bin("mimi-resolve"))
        .env("MYPY_CACHE_DIR", w.ws.path("mypy-cache"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("runs pytest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    serve.assert_running();
    gw.assert_running();
    assert!(
        out.status.success(),
        "pytest failed ({}):\n{text}\n--- gateway log:\n{}",
        out.status,
        gw.log()
    );
    // The suite ran, not just collected nothing.
    assert!(text.contains(" passed"), "{text}");
    assert!(!text.contains(" skipped"), "{text}");
}
