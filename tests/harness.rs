//! Test harness for the end-to-end tests: authorities with real keys, zone
//! directories on disk, trust stores, and the publisher's real server on an
//! ephemeral loopback port.
//!
//! Everything is real: keys are Ed25519 keys written as PKCS#8 PEM files,
//! zones are built by `mimi-publisher`'s library exactly as the binary does,
//! and lookups go over UDP/TCP to 127.0.0.1.

pub mod bind;
pub mod pki;
pub mod secondaries;
pub mod world;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use mimi_proto::{AuthorityName, PublicKey, Sii, UnixTime, UnsignedAssertion, UnsignedCertificate};

/// A mapping authority: a root key and, optionally, certified signing keys.
pub struct Authority {
    /// The authority's name.
    pub name: AuthorityName,
    /// Root key (pinned by clients).
    pub root: SigningKey,
}

impl Authority {
    /// A new authority with a fresh root key.
    pub fn new(name: &str) -> Self {
        Authority {
            name: AuthorityName::parse(name).unwrap(),
            root: mimi_publisher::input::keys::generate(),
        }
    }

    /// The root public key, base64url, as trust stores pin it.
    pub fn root_b64(&self) -> String {
        PublicKey::from_verifying_key(self.root.verifying_key())
            .unwrap()
            .to_base64url()
    }

    /// A certificate for `key`, valid from `from` for `days`.
    pub fn certify(&self, key: &SigningKey, from: UnixTime, days: u64) -> String {
        UnsignedCertificate {
            authority: self.name.clone(),
            key: PublicKey::from_verifying_key(key.verifying_key()).unwrap(),
            not_before: from,
            expires: from.plus(days * 86400),
        }
        .sign(&self.root)
        .unwrap()
        .text()
        .to_owned()
    }

    /// A pre-signed line (`SII RECORD`) for `sii → ssi`, signed by `key`.
    pub fn presign(
        &self,
        key: &SigningKey,
        sii: &str,
        ssi: &str,
        t: UnixTime,
        x: UnixTime,
    ) -> String {
        let sii = Sii::parse(sii, None).unwrap();
        let a = UnsignedAssertion {
            authority: self.name.clone(),
            ssi: mimi_proto::Ssi::parse(ssi).unwrap(),
            not_before: t,
            expires: x,
            include_label: false,
            extensions: vec![],
        }
        .sign(&sii.hash(), key)
        .unwrap();
        format!("{} {}", sii.as_str(), a.text())
    }
}

/// A trust-store entry: authority, root key, scopes.
pub struct Trust<'a> {
    /// The authority.
    pub authority: &'a Authority,
    /// `sii_scope`.
    pub sii_scope: &'a [&'a str],
    /// `ssi_scope`.
    pub ssi_scope: &'a [&'a str],
}

/// Trust-store TOML for the given entries.
pub fn trust_toml(min_authorities: usize, entries: &[Trust<'_>]) -> String {
    let mut s = format!(
        "[policy]\nmin_authorities = {min_authorities}\nmax_assertion_validity = \"90d\"\nmax_key_validity = \"400d\"\nclock_skew = \"5m\"\n"
    );
    let list = |v: &[&str]| {
        v.iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for e in entries {
        s.push_str(&format!(
            "\n[[authority]]\nname = \"{}\"\nroot_keys = [\"{}\"]\nsii_scope = [{}]\nssi_scope = [{}]\n",
            e.authority.name,
            e.authority.root_b64(),
            list(e.sii_scope),
            list(e.ssi_scope)
        ));
    }
    s
}

/// A directory with zone configurations and their inputs.
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Workspace {
    /// A fresh temporary directory.
    pub fn new() -> Self {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Path of a file in the workspace.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file atomically (temp + rename, as editors and generators
    /// do), creating parent directories.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let tmp = p.with_extension("tmp~");
        std::fs::File::create(&tmp)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        p
    }

    /// Writes a secret file (a TSIG key) with mode 0600, as `tsig-keygen`
    /// output must be for mimi-publisher to read it.
    pub fn write_secret(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.write(rel, text);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        p
    }

    /// Writes a private key file with mode 0600.
    pub fn write_key(&self, rel: &str, key: &SigningKey) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&p);
        mimi_publisher::input::keys::write_signing_key(&p, key).unwrap();
        p
    }

    /// Writes a zone configuration `rel` (e.g. `example.com/zone.toml`).
    pub fn zone(&self, rel: &str, spec: &ZoneSpec<'_>) -> PathBuf {
        let mut s = format!(
            "origin = \"{}\"\nrole = \"{}\"\nttl = 1\nns = [\"ns1.{}\"]\n",
            spec.origin, spec.role, spec.origin
        );
        if let Some(r) = spec.tel_root {
            s.push_str(&format!("tel_root = \"{r}\"\n"));
        }
        if let Some(m) = spec.mappings {
            s.push_str(&format!("mappings = \"{m}\"\n"));
        }
        if !spec.presigned.is_empty() {
            s.push_str(&format!("presigned = [{}]\n", quoted(spec.presigned)));
        }
        s.push_str(&format!(
            "[glue]\n\"ns1.{}\" = [\"192.0.2.53\"]\n",
            spec.origin
        ));
        s.push_str(&format!(
            "[soa]\nmname = \"ns1.{0}\"\nrname = \"hostmaster.{0}\"\nminimum = 1\nttl = 1\n",
            spec.origin
        ));
        if let Some(a) = spec.authority {
            s.push_str(&format!("[authority]\nname = \"{a}\"\n"));
            if let Some(k) = spec.key {
                s.push_str(&format!("key = \"{k}\"\n"));
            }
            s.push_str(&format!("certificates = [{}]\n", quoted(spec.certificates)));
        }
        if let Some(t) = spec.transfer {
            s.push_str(&format!("[transfer]\n{t}\n"));
        }
        self.write(rel, &s)
    }
}

fn quoted(v: &[&str]) -> String {
    v.iter()
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a zone configuration says (paths relative to the config file).
#[derive(Default, Clone, Copy)]
pub struct ZoneSpec<'a> {
    /// Origin.
    pub origin: &'a str,
    /// `home` or `distribution`.
    pub role: &'a str,
    /// Telephone root for home zones of numbers.
    pub tel_root: Option<&'a str>,
    /// Authority name.
    pub authority: Option<&'a str>,
    /// Signing key file.
    pub key: Option<&'a str>,
    /// Certificate files.
    pub certificates: &'a [&'a str],
    /// Mappings file.
    pub mappings: Option<&'a str>,
    /// Pre-signed files.
    pub presigned: &'a [&'a str],
    /// Body of a `[transfer]` table (TOML lines), if any.
    pub transfer: Option<&'a str>,
}

/// Path of a binary of this workspace, built by `cargo test --workspace`
/// (cargo builds every package's binaries for its integration tests).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/e2e-<hash> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not found: run the tests with `cargo test --workspace`, which builds it",
        p.display()
    );
    p
}

/// The workspace's target directory, where the test binary lives
/// (`target/<profile>/deps/<test>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// Removes the variables cargo sets for running a test (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_NAME`, `OUT_DIR`, …) from `cmd`'s environment. Build scripts
/// (ring's, for one) are re-run when such a variable in cargo's own
/// environment changes, so a cargo started from a test would otherwise
/// rebuild half the dependency tree, and the next ordinary `cargo build`
/// would rebuild it back.
pub fn without_test_env(cmd: &mut std::process::Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let set_by_cargo_for_tests = key == "OUT_DIR"
            || key == "CARGO"
            || key == "CARGO_PRIMARY_PACKAGE"
            || key == "CARGO_CRATE_NAME"
            || key == "CARGO_TARGET_TMPDIR"
            || key == "CARGO_RUSTC_CURRENT_DIR"
            || key.starts_with("CARGO_MANIFEST_")
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_");
        if set_by_cargo_for_tests {
            cmd.env_remove(key);
        }
    }
}

/// The C-ABI library `file` (e.g. `libmimi_dns.so`) of workspace package
/// `package`, built now with `cargo build -p PACKAGE --lib` into this
/// workspace's target directory. `cargo test --workspace` compiles such a
/// library but does not always copy it to `target/<profile>/`, and a
/// copy left there by an earlier build may be stale; building it here
/// (a no-op when nothing changed) makes the test use the library of the
/// source it runs with.
pub fn c_library(package: &str, file: &str) -> PathBuf {
    let target = target_dir();
    let profile_dir = std::env::current_exe()
        .unwrap()
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf();
    let mut cmd = std::process::Command::new("cargo");
    cmd.args(["build", "--quiet", "-p", package, "--lib"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("CARGO_TARGET_DIR", &target);
    without_test_env(&mut cmd);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("cannot run cargo");
    assert!(
        out.status.success(),
        "cargo build -p {package} --lib failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = profile_dir.join(file);
    assert!(lib.exists(), "{} was not built", lib.display());
    lib
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free TCP+UDP port on 127.0.0.1 (bound, checked, released: a server
/// started right after gets it unless another process races for it).
pub fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The path of a server binary, or a panic naming the Debian package to
/// install (tests never skip silently).
pub fn require(binary: &str, package: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ] {
        let p = Path::new(dir).join(binary);
        if p.exists() {
            return p;
        }
    }
    panic!("{binary} not found: install the Debian package {package} (tests/run.sh does)");
}

/// `mimi-publisher serve CONFIG --listen LISTEN [--state-dir STATE]` with
/// `RUST_LOG=rust_log`, logging to `log`: the hidden primary of the
/// interop tests.
pub fn publisher_serve(
    config: &Path,
    listen: std::net::SocketAddr,
    state: Option<&Path>,
    log: PathBuf,
    rust_log: &str,
) -> Daemon {
    let mut cmd = std::process::Command::new(bin("mimi-publisher"));
    cmd.arg("serve")
        .arg(config)
        .args(["--listen", &listen.to_string()]);
    if let Some(state) = state {
        cmd.arg("--state-dir").arg(state);
    }
    cmd.env("RUST_LOG", rust_log).env("NO_COLOR", "1");
    Daemon::spawn("mimi-publisher serve", cmd, log)
}

/// `log` without terminal colour sequences (tracing writes them only to
/// terminals, but a log may come from elsewhere).
pub fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A server process started by a test; killed (by PID) when dropped. Its
/// output goes to a log file in its directory, shown when a test fails.
pub struct Daemon {
    /// What it is, for messages.
    pub name: String,
    child: std::process::Child,
    log: PathBuf,
}

impl Daemon {
    /// Spawns `cmd` with stdout and stderr to `log`.
    pub fn spawn(name: &str, mut cmd: std::process::Command, log: PathBuf) -> Daemon {
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its output goes.
    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    /// Its log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }

    /// Sends SIGTERM and waits up to 10 s, then SIGKILL.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The SOA serial `server` answers for `zone` over UDP, or `None` when it
/// does not answer authoritatively (yet).
pub async fn soa_serial(server: std::net::SocketAddr, zone: &str) -> Option<u32> {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RData, RecordType};
    let mut m = Message::new(4711, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii(format!("{}.", zone.trim_end_matches('.'))).ok()?,
        RecordType::SOA,
    ));
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.ok()?;
    sock.send_to(&m.to_vec().ok()?, server).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_millis(500), sock.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    let resp = Message::from_vec(&buf[..n]).ok()?;
    if !resp.metadata.authoritative {
        return None;
    }
    resp.answers.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
}
