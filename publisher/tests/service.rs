//! The service conventions of `mimi-publisher serve`, tested on the real
//! binary and with real clients: several `--listen` addresses (IPv4 and
//! IPv6), `--user` (refusals, and a real drop to `nobody` when run as
//! root), the systemd notification protocol against a real `NOTIFY_SOCKET`
//! listener (READY, RELOADING, STOPPING, WATCHDOG), SIGHUP, JSON logs, and
//! the shipped unit file under `systemd-analyze verify`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mimi_proto::name::discovery_name;
use mimi_proto::{DomainName, Sii};
use mimi_publisher::serve::{self, ServeOptions};

const BIN: &str = env!("CARGO_BIN_EXE_mimi-publisher");
/// Every wait of these tests ends within this, or the test fails.
const BOUND: Duration = Duration::from_secs(30);

const ALICE: &str = "alice@example.com,mimi://chat.example.org/u/alice\n";
const BOB: &str = "bob@example.com,mimi://chat.example.org/u/bob\n";
const CAROL: &str = "carol@example.com,mimi://chat.example.org/u/carol\n";

/// The discovery name of `sii` in example.com.
fn name_of(sii: &str) -> String {
    let origin = DomainName::parse("example.com").unwrap();
    discovery_name(&Sii::parse(sii, None).unwrap().label(), &origin)
        .unwrap()
        .fqdn()
}

/// A zone directory: `zone.toml` (common::CONFIG), `mappings.csv`, and
/// `signing.pem`.
struct Zone {
    dir: tempfile::TempDir,
}

impl Zone {
    fn new(mappings: &str) -> Zone {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("zone.toml"), common::CONFIG).unwrap();
        std::fs::write(dir.path().join("mappings.csv"), mappings).unwrap();
        let key = mimi_publisher::input::keys::generate();
        mimi_publisher::input::keys::write_signing_key(&dir.path().join("signing.pem"), &key)
            .unwrap();
        Zone { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> String {
        self.path("zone.toml").to_str().unwrap().to_owned()
    }
}

/// `dig` for the TXT records at `name` from `addr` (UDP, or TCP with
/// `tcp`): the status and the number of answers.
fn dig(addr: SocketAddr, name: &str, tcp: bool) -> (String, usize) {
    let mut cmd = Command::new("dig");
    cmd.args(["-p", &addr.port().to_string(), &format!("@{}", addr.ip())])
        .args(["+tries=1", "+time=5", "+norecurse", name, "TXT"]);
    if tcp {
        cmd.arg("+tcp");
    }
    let out = cmd
        .output()
        .expect("dig runs (Debian package bind9-dnsutils)");
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |key: &str| {
        out.split(key)
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or_else(|| panic!("no {key} in dig output:\n{out}"))
            .trim()
            .to_owned()
    };
    (field("status: "), field("ANSWER: ").parse().unwrap())
}

/// A started `mimi-publisher` whose stderr lines arrive on a channel; killed
/// (by its pid) if the test ends without stopping it.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    fn signal(&self, s: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), s).unwrap();
    }

    /// Waits for a stderr line containing `text`; panics with everything
    /// seen if the server exits or BOUND passes first.
    fn wait_line(&mut self, text: &str) -> String {
        let deadline = Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {text:?}; stderr:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Waits for the process to exit; its status and every stderr line.
    fn wait_exit(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + BOUND;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit; stderr:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        // The reader thread ends at EOF: take every line.
        while let Ok(line) = self.lines.recv_timeout(BOUND) {
            self.seen.push(line);
        }
        (status, std::mem::take(&mut self.seen))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address in a "serving over UDP and TCP" log line (text format).
fn served_addr(line: &str) -> SocketAddr {
    line.split("addr=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no addr in {line}"))
        .parse()
        .unwrap()
}

/// Whether `::1` can be bound here (some containers have no IPv6).
fn ipv6_available() -> bool {
    std::net::UdpSocket::bind("[::1]:0").is_ok()
}

#[tokio::test]
async fn listen_on_ipv4_and_ipv6_at_once() {
    let zone = Zone::new(ALICE);
    let v6 = ipv6_available();
    if !v6 {
        println!("::1 cannot be bound on this machine: testing IPv4 only");
    }
    let mut opts = ServeOptions::new(vec![zone.path("zone.toml")]);
    opts.listen = "127.0.0.1:0".parse().unwrap();
    opts.extra_listen = vec!["127.0.0.2:0".parse().unwrap()];
    if v6 {
        opts.extra_listen.push("[::1]:0".parse().unwrap());
    }
    let server = serve::start(opts).await.unwrap();
    let addrs = server.local_addrs().to_vec();
    assert_eq!(addrs.len(), if v6 { 3 } else { 2 });
    assert_eq!(server.local_addr(), addrs[0]);
    assert!(addrs.iter().all(|a| a.port() != 0), "{addrs:?}");
    let name = name_of("alice@example.com");
    for addr in addrs.clone() {
        for tcp in [false, true] {
            let name = name.clone();
            let got = tokio::task::spawn_blocking(move || dig(addr, &name, tcp))
                .await
                .unwrap();
            assert_eq!(got, ("NOERROR".to_owned(), 1), "{addr} tcp={tcp}");
        }
    }
    server.shutdown().await.unwrap();
}

/// `[::]:P` is IPv6-only: it can be bound next to `0.0.0.0:P` (a
/// dual-stack socket would find P taken), and each answers on its family.
#[tokio::test]
async fn ipv6_wildcard_binds_next_to_ipv4_wildcard() {
    if !ipv6_available() {
        println!("::1 cannot be bound on this machine: skipping the IPv6 half");
        return;
    }
    let zone = Zone::new(ALICE);
    let mut opts = ServeOptions::new(vec![zone.path("zone.toml")]);
    opts.listen = "0.0.0.0:0".parse().unwrap();
    let v4 = serve::start(opts.clone()).await.unwrap();
    let port = v4.local_addr().port();
    opts.listen = SocketAddr::new("::".parse().unwrap(), port);
    let v6 = serve::start(opts).await.unwrap();
    assert_eq!(v6.local_addr().port(), port);
    let name = name_of("alice@example.com");
    for ip in ["127.0.0.1", "::1"] {
        let addr = SocketAddr::new(ip.parse().unwrap(), port);
        let name = name.clone();
        let got = tokio::task::spawn_blocking(move || dig(addr, &name, false))
            .await
            .unwrap();
        assert_eq!(got, ("NOERROR".to_owned(), 1), "{addr}");
    }
    v6.shutdown().await.unwrap();
    v4.shutdown().await.unwrap();
}

/// The binary's `--listen` is repeatable and each address is served.
#[test]
fn listen_flag_is_repeatable() {
    let zone = Zone::new(ALICE);
    let mut server = Server::start(
        &[
            "serve",
            &zone.config(),
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.3:0",
        ],
        &[],
    );
    let first = served_addr(&server.wait_line("serving over UDP and TCP"));
    let second = served_addr(&server.wait_line("serving over UDP and TCP"));
    assert_eq!(first.ip().to_string(), "127.0.0.1");
    assert_eq!(second.ip().to_string(), "127.0.0.3");
    let name = name_of("alice@example.com");
    for addr in [first, second] {
        assert_eq!(dig(addr, &name, false), ("NOERROR".to_owned(), 1));
    }
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let (status, _) = server.wait_exit();
    assert!(status.success());
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn user_is_refused_when_it_cannot_be_honoured() {
    let zone = Zone::new(ALICE);
    let run = |user: &str| {
        let server = Server::start(
            &[
                "serve",
                &zone.config(),
                "--listen",
                "127.0.0.1:0",
                "--user",
                user,
            ],
            &[],
        );
        let (status, lines) = server.wait_exit();
        assert_eq!(status.code(), Some(1), "{lines:?}");
        lines.join("\n")
    };
    let err = run("no-such-user-mimi-dns");
    if is_root() {
        assert!(
            err.contains("--user no-such-user-mimi-dns: no such user"),
            "{err}"
        );
    } else {
        assert!(err.contains("is not running as root"), "{err}");
        let err = run("nobody");
        assert!(
            err.contains("--user nobody: the server is not running as root"),
            "{err}"
        );
    }
    assert!(!err.contains("zone loaded"), "{err}");
}

/// The uid and gid lines of /proc/PID/status (or PID/task/TID/status).
fn ids(pid: &str) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    (line("Uid:"), line("Gid:"))
}

/// As root: bind a port below 1024, become `nobody`, and keep answering;
/// the keys are read after the drop (a key only root can read is refused).
#[test]
fn user_drops_to_nobody_after_binding_a_privileged_port() {
    if !is_root() {
        println!("not root: the real privilege drop is tested only when run as root (CI)");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let zone = Zone::new(ALICE);
    let state = zone.path("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(zone.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = zone.config();
    let state_arg = state.to_str().unwrap().to_owned();

    // A key only root can read: refused, because it is read after the drop.
    let server = Server::start(
        &[
            "serve",
            &config,
            "--listen",
            "127.0.0.1:0",
            "--user",
            "nobody",
        ],
        &[],
    );
    let (status, lines) = server.wait_exit();
    assert_eq!(status.code(), Some(1), "{lines:?}");
    let err = lines.join("\n");
    assert!(err.contains("signing.pem"), "{err}");
    assert!(err.contains("privileges dropped"), "{err}");

    std::os::unix::fs::chown(
        zone.path("signing.pem"),
        Some(nobody.uid.as_raw()),
        Some(nobody.gid.as_raw()),
    )
    .unwrap();
    std::os::unix::fs::chown(&state, Some(nobody.uid.as_raw()), Some(nobody.gid.as_raw())).unwrap();
    // A free port below 1024 on 127.0.0.1 (for UDP and TCP), tried in turn.
    for port in (600u16..1000).step_by(7) {
        let listen = format!("127.0.0.1:{port}");
        let mut server = Server::start(
            &[
                "serve",
                &config,
                "--listen",
                &listen,
                "--user",
                "nobody",
                "--state-dir",
                &state_arg,
            ],
            &[],
        );
        let deadline = Instant::now() + BOUND;
        let mut serving = None;
        while Instant::now() < deadline {
            match server.lines.recv_timeout(BOUND) {
                Ok(line) => {
                    server.seen.push(line.clone());
                    if line.contains("serving over UDP and TCP") {
                        serving = Some(served_addr(&line));
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        let Some(addr) = serving else {
            let (_, lines) = server.wait_exit();
            let err = lines.join("\n");
            assert!(err.contains("Address already in use"), "{err}");
            continue;
        };
        assert_eq!(addr.port(), port);
        let u = nobody.uid.as_raw().to_string();
        let g = nobody.gid.as_raw().to_string();
        let pid = server.child.id();
        let (uid, gid) = ids(&pid.to_string());
        assert_eq!(uid, [u.as_str(); 4].join(" "));
        assert_eq!(gid, [g.as_str(); 4].join(" "));
        // Every thread, including those started before the drop.
        let mut threads = 0;
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let tid = task.unwrap().file_name().into_string().unwrap();
            let (uid, gid) = ids(&format!("{pid}/task/{tid}"));
            assert_eq!(uid, [u.as_str(); 4].join(" "), "thread {tid}");
            assert_eq!(gid, [g.as_str(); 4].join(" "), "thread {tid}");
            threads += 1;
        }
        assert!(threads > 1, "{threads} threads");
        assert_eq!(
            dig(addr, &name_of("alice@example.com"), false),
            ("NOERROR".to_owned(), 1)
        );
        assert_eq!(
            dig(addr, &name_of("alice@example.com"), true),
            ("NOERROR".to_owned(), 1)
        );
        assert!(state.join("example.com.zone").exists());
        server.signal(nix::sys::signal::Signal::SIGTERM);
        let (status, _) = server.wait_exit();
        assert!(status.success());
        return;
    }
    panic!("no free port below 1024 on 127.0.0.1");
}

/// The test's end of `NOTIFY_SOCKET`: every datagram received.
struct Manager {
    socket: UnixDatagram,
}

impl Manager {
    /// The next datagram within `wait`, as text.
    fn recv(&self, wait: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("recv: {e}"),
        }
    }

    /// The next datagram that is not a watchdog ping, within BOUND.
    fn next_state(&self) -> String {
        let deadline = Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self
                .recv(left.max(Duration::from_millis(1)))
                .expect("a notification within the bound");
            if msg != "WATCHDOG=1\n" {
                return msg;
            }
        }
    }

    /// Non-watchdog datagrams arriving within `wait`.
    fn states_within(&self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.recv(left.max(Duration::from_millis(1))) {
                Some(m) if m == "WATCHDOG=1\n" => {}
                Some(m) => got.push(m),
                None => break,
            }
        }
        got
    }
}

/// The value of `key` in a notification.
fn field<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    msg.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

/// The sd_notify protocol against a real listener: READY only when the
/// zone answers; RELOADING (with MONOTONIC_USEC) then READY around a file
/// change and around SIGHUP; the watchdog at half WATCHDOG_USEC; STOPPING
/// on SIGTERM.
///
/// SIGHUP must re-read inputs the file watcher cannot see: the zone's
/// `mappings.csv` is a symbolic link into another directory (`real/`),
/// and the watcher watches the directory holding the link, not the
/// target's. An in-place edit of the target is therefore invisible to it
/// (checked: no RELOADING within three seconds, ten debounce times), so
/// the new name is served only if SIGHUP reloaded the zone; without
/// SIGHUP handling the test fails (and without a handler at all, SIGHUP
/// would kill the server).
#[test]
fn systemd_notify_ready_reload_watchdog_stopping() {
    let zone = Zone::new("");
    let real = zone.path("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::write(real.join("a.csv"), ALICE).unwrap();
    std::fs::remove_file(zone.path("mappings.csv")).unwrap();
    std::os::unix::fs::symlink(real.join("a.csv"), zone.path("mappings.csv")).unwrap();

    let sock_path = zone.path("notify.sock");
    let manager = Manager {
        socket: UnixDatagram::bind(&sock_path).unwrap(),
    };
    // 200 ms: a ping every 100 ms.
    let mut server = Server::start(
        &["serve", &zone.config(), "--listen", "127.0.0.1:0"],
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let pid = server.child.id();

    let ready = manager.next_state();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert_eq!(field(&ready, "MAINPID"), Some(pid.to_string().as_str()));
    let status = field(&ready, "STATUS").unwrap();
    assert!(status.starts_with("serving 1 zones on "), "{status}");
    let addr: SocketAddr = status.rsplit(' ').next().unwrap().parse().unwrap();
    // Ready means answering, right now.
    assert_eq!(
        dig(addr, &name_of("alice@example.com"), false),
        ("NOERROR".to_owned(), 1)
    );
    server.wait_line("systemd watchdog on");

    // The watchdog: about ten pings a second, counted over two seconds.
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_secs(2) {
        match manager.recv(Duration::from_secs(2).saturating_sub(start.elapsed())) {
            Some(m) if m == "WATCHDOG=1\n" => pings += 1,
            Some(m) => panic!("unexpected notification {m:?}"),
            None => break,
        }
    }
    assert!((8..=30).contains(&pings), "{pings} watchdog pings in 2 s");

    // A file change the watcher sees: the link replaced by one to b.csv.
    std::fs::write(real.join("b.csv"), format!("{ALICE}{BOB}")).unwrap();
    let tmp = zone.path("mappings.link");
    std::os::unix::fs::symlink(real.join("b.csv"), &tmp).unwrap();
    std::fs::rename(&tmp, zone.path("mappings.csv")).unwrap();
    let reloading = manager.next_state();
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1"),
        "{reloading:?}"
    );
    let usec: u64 = field(&reloading, "MONOTONIC_USEC")
        .unwrap()
        .parse()
        .unwrap();
    let sd_notify::NotifyState::MonotonicUsec(now_usec) =
        sd_notify::NotifyState::monotonic_usec_now().unwrap()
    else {
        unreachable!()
    };
    let now_usec = now_usec as u64;
    assert!(
        usec <= now_usec && now_usec - usec < 30_000_000,
        "{usec} vs {now_usec}"
    );
    let ready = manager.next_state();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert_eq!(
        dig(addr, &name_of("bob@example.com"), false),
        ("NOERROR".to_owned(), 1)
    );

    // An edit the watcher cannot see (the link's target, in place).
    std::fs::write(real.join("b.csv"), format!("{ALICE}{BOB}{CAROL}")).unwrap();
    let unseen = manager.states_within(Duration::from_secs(3));
    assert!(unseen.is_empty(), "the watcher saw the target: {unseen:?}");
    assert_eq!(
        dig(addr, &name_of("carol@example.com"), false).0,
        "NXDOMAIN"
    );
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let reloading = manager.next_state();
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1"),
        "{reloading:?}"
    );
    assert!(field(&reloading, "MONOTONIC_USEC").is_some());
    let ready = manager.next_state();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert_eq!(
        dig(addr, &name_of("carol@example.com"), false),
        ("NOERROR".to_owned(), 1)
    );
    server.wait_line("SIGHUP: reloading every zone");

    server.signal(nix::sys::signal::Signal::SIGTERM);
    let stopping = manager.next_state();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let (status, _) = server.wait_exit();
    assert!(status.success());
}

/// `NOTIFY_SOCKET=@name` (the abstract namespace, as systemd uses in
/// containers) works too; a `WATCHDOG_PID` of another process turns the
/// watchdog off.
#[test]
fn systemd_notify_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let zone = Zone::new(ALICE);
    let name = format!("mimi-dns-test-{}-{}", std::process::id(), rand_suffix());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let manager = Manager {
        socket: UnixDatagram::bind_addr(&addr).unwrap(),
    };
    let server = Server::start(
        &["serve", &zone.config(), "--listen", "127.0.0.1:0"],
        &[
            ("NOTIFY_SOCKET", &format!("@{name}")),
            ("WATCHDOG_USEC", "100000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    let ready = manager.recv(BOUND).expect("READY");
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // No pings: the watchdog is another process's.
    assert_eq!(manager.recv(Duration::from_millis(500)), None);
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let stopping = manager.recv(BOUND).expect("STOPPING");
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let (status, _) = server.wait_exit();
    assert!(status.success());
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

/// Every stderr line of `--log-format json` is one JSON object, and the
/// zone-loaded event carries its fields.
#[test]
fn json_logs_are_one_object_per_line() {
    let zone = Zone::new(ALICE);
    let mut server = Server::start(
        &[
            "--log-format",
            "json",
            "serve",
            &zone.config(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    server.wait_line("serving over UDP and TCP");
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let (status, lines) = server.wait_exit();
    assert!(status.success(), "{lines:?}");
    assert!(lines.len() >= 3, "{lines:?}");
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let loaded = events
        .iter()
        .find(|e| e["fields"]["message"] == "zone loaded")
        .unwrap_or_else(|| panic!("no zone loaded event in {lines:?}"));
    assert_eq!(loaded["level"], "INFO");
    assert_eq!(loaded["fields"]["origin"], "example.com");
    assert!(loaded["fields"]["serial"].is_u64(), "{loaded}");
    assert!(
        loaded["fields"]["records"].as_u64().unwrap() > 0,
        "{loaded}"
    );
    assert!(loaded["timestamp"].is_string(), "{loaded}");
    assert!(events
        .iter()
        .any(|e| e["fields"]["message"] == "server stopped"));
}

/// The shipped unit passes `systemd-analyze verify` (with ExecStart
/// pointed at the binary just built: verify checks that it exists).
#[test]
fn systemd_unit_verifies() {
    let Ok(which) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("systemd-analyze is not installed: the unit file is not verified");
        return;
    };
    assert!(which.status.success());
    let unit_src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd/mimi-publisher.service");
    let unit = std::fs::read_to_string(&unit_src).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/mimi-publisher "),
        "{unit}"
    );
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("mimi-publisher.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/mimi-publisher ", &format!("{BIN} ")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Only complaints about this unit count (verify also reads the
    // machine's units it depends on).
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("mimi-publisher"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{err}");
}
