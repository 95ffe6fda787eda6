//! The server's TCP path on loopback: connection limits per source and in
//! total, idle and partial-message timeouts, pipelining, the per-connection
//! message limit, and one encoder for UDP and TCP as `dig` sees it.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use mimi_publisher::serve::{self, RunningServer, ServeOptions, TcpOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// Every step finishes well within this, or the test fails.
const BOUND: Duration = Duration::from_secs(20);

use common::CONFIG;

const TSIG_KEY: &str = "key \"xfr\" {\n\talgorithm hmac-sha256;\n\tsecret \"kXW841Sbu0aZFtjM/0NLeCiBM/jbq9bvxoQXun9bHro=\";\n};\n";

struct Fixture {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

fn fixture() -> Fixture {
    fixture_with("alice@example.com,mimi://chat.example.org/u/alice\n", "")
}

fn fixture_with(mappings: &str, extra_config: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zone.toml");
    std::fs::write(&config, format!("{CONFIG}{extra_config}")).unwrap();
    std::fs::write(dir.path().join("mappings.csv"), mappings).unwrap();
    let tsig = dir.path().join("transfer.key");
    std::fs::write(&tsig, TSIG_KEY).unwrap();
    // Key files are refused when others can read them.
    std::fs::set_permissions(&tsig, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let key = mimi_publisher::input::keys::generate();
    mimi_publisher::input::keys::write_signing_key(&dir.path().join("signing.pem"), &key).unwrap();
    Fixture { _dir: dir, config }
}

async fn start(f: &Fixture, tcp: TcpOptions) -> RunningServer {
    serve::start(ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        tcp,
        ..ServeOptions::new(vec![f.config.clone()])
    })
    .await
    .unwrap()
}

fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    m.set_edns(e);
    m.to_vec().unwrap()
}

fn framed(message: &[u8]) -> Vec<u8> {
    let mut f = (message.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(message);
    f
}

/// Reads one framed response; `None` if the server closed the connection.
async fn read_response(stream: &mut TcpStream) -> Option<Message> {
    let mut len = [0u8; 2];
    match tokio::time::timeout(BOUND, stream.read_exact(&mut len))
        .await
        .expect("the server answers or closes in time")
    {
        Ok(_) => {}
        Err(_) => return None,
    }
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).await.ok()?;
    Some(Message::from_vec(&buf).unwrap())
}

/// Asks one question on `stream`; `None` if the server closed it instead.
async fn ask(stream: &mut TcpStream, id: u16) -> Option<Message> {
    if stream
        .write_all(&framed(&query(id, "example.com.", RecordType::SOA)))
        .await
        .is_err()
    {
        return None;
    }
    let m = read_response(stream).await?;
    assert_eq!(m.metadata.id, id);
    Some(m)
}

async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Closes our side and waits for the server to close its side: then the
/// server has given the connection's slot back.
async fn close(mut stream: TcpStream) {
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(BOUND, stream.read_to_end(&mut rest))
        .await
        .expect("the server closes");
}

async fn udp_answers(addr: SocketAddr) -> bool {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&query(77, "example.com.", RecordType::SOA), addr)
        .await
        .unwrap();
    let mut buf = [0u8; 1500];
    let n = tokio::time::timeout(BOUND, sock.recv(&mut buf))
        .await
        .expect("UDP answer")
        .unwrap();
    Message::from_vec(&buf[..n]).unwrap().metadata.response_code == ResponseCode::NoError
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_source_limit_spares_udp_and_other_sources() {
    let f = fixture();
    let server = start(
        &f,
        TcpOptions {
            max_clients: 10,
            max_per_source: 3,
            ..TcpOptions::DEFAULT
        },
    )
    .await;
    let addr = server.local_addr();
    let mut held = Vec::new();
    for i in 0..3 {
        let mut s = connect_from("127.0.0.1", addr).await;
        assert!(ask(&mut s, i).await.is_some(), "connection {i} is served");
        held.push(s);
    }
    // One more from the same source is closed at once.
    let mut over = connect_from("127.0.0.1", addr).await;
    assert!(
        ask(&mut over, 9).await.is_none(),
        "over the per-source limit"
    );
    // UDP is unaffected, and so is another source.
    assert!(udp_answers(addr).await);
    let mut other = connect_from("127.0.0.2", addr).await;
    assert!(
        ask(&mut other, 10).await.is_some(),
        "another source is served"
    );
    // Once the first connections are closed, the source is served again.
    for s in held {
        close(s).await;
    }
    let mut again = connect_from("127.0.0.1", addr).await;
    assert!(ask(&mut again, 11).await.is_some(), "served again");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_limit_applies_across_sources() {
    let f = fixture();
    let server = start(
        &f,
        TcpOptions {
            max_clients: 2,
            max_per_source: 2,
            ..TcpOptions::DEFAULT
        },
    )
    .await;
    let addr = server.local_addr();
    let mut a = connect_from("127.0.0.1", addr).await;
    let mut b = connect_from("127.0.0.2", addr).await;
    assert!(ask(&mut a, 1).await.is_some());
    assert!(ask(&mut b, 2).await.is_some());
    let mut c = connect_from("127.0.0.3", addr).await;
    assert!(ask(&mut c, 3).await.is_none(), "over the total limit");
    close(a).await;
    let mut d = connect_from("127.0.0.3", addr).await;
    assert!(ask(&mut d, 4).await.is_some(), "a slot was freed");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_closed() {
    let f = fixture();
    let server = start(
        &f,
        TcpOptions {
            idle_timeout: Duration::from_millis(300),
            max_per_source: 2,
            ..TcpOptions::DEFAULT
        },
    )
    .await;
    let addr = server.local_addr();
    // Silent after connecting.
    let mut idle = connect_from("127.0.0.1", addr).await;
    // A length prefix promising 100 octets, then 10 of them.
    let mut partial = connect_from("127.0.0.1", addr).await;
    partial.write_all(&[0, 100]).await.unwrap();
    partial.write_all(&[0; 10]).await.unwrap();
    for s in [&mut idle, &mut partial] {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(BOUND, s.read(&mut buf))
            .await
            .expect("the server closes the connection");
        assert!(
            matches!(n, Ok(0) | Err(_)),
            "closed without an answer: {n:?}"
        );
    }
    // Both slots are free again: two more connections are served.
    for i in 0..2 {
        let mut s = connect_from("127.0.0.1", addr).await;
        assert!(ask(&mut s, i).await.is_some());
    }
    server.shutdown().await.unwrap();
}

/// A client that keeps a connection busy (one query well within each idle
/// timeout) is still closed once the connection reaches its lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_connections_end_at_their_lifetime() {
    let f = fixture();
    let server = start(
        &f,
        TcpOptions {
            idle_timeout: Duration::from_secs(30),
            max_lifetime: Duration::from_millis(400),
            ..TcpOptions::DEFAULT
        },
    )
    .await;
    let mut s = connect_from("127.0.0.1", server.local_addr()).await;
    let started = std::time::Instant::now();
    let mut answered = 0u32;
    let closed = loop {
        // Bounded: at 20 queries a second, 400 ms of life is ~8 answers;
        // 200 without the lifetime would take 10 s (under the idle timeout).
        if answered == 200 {
            break false;
        }
        s.write_all(&framed(&query(
            answered as u16,
            "example.com.",
            RecordType::SOA,
        )))
        .await
        .ok();
        match read_response(&mut s).await {
            Some(_) => answered += 1,
            None => break true,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(closed, "the server closed the busy connection");
    assert!(answered >= 1, "it was served before");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "not before its lifetime"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_are_answered_in_order_up_to_the_limit() {
    let f = fixture();
    let server = start(
        &f,
        TcpOptions {
            max_queries: 3,
            ..TcpOptions::DEFAULT
        },
    )
    .await;
    let mut s = connect_from("127.0.0.1", server.local_addr()).await;
    let mut burst = Vec::new();
    for id in 100..105 {
        burst.extend_from_slice(&framed(&query(id, "example.com.", RecordType::SOA)));
    }
    s.write_all(&burst).await.unwrap();
    for id in 100..103 {
        let m = read_response(&mut s).await.expect("answered");
        assert_eq!(m.metadata.id, id, "in order");
        assert_eq!(m.answers.len(), 1);
    }
    assert!(
        read_response(&mut s).await.is_none(),
        "closed after three messages"
    );
    server.shutdown().await.unwrap();
}

/// dig prints the same answer over UDP and TCP (the encoder is shared);
/// only the transport and timing lines differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_sees_the_same_answers_over_udp_and_tcp() {
    let f = fixture();
    let server = start(&f, TcpOptions::DEFAULT).await;
    let addr = server.local_addr();
    let port = addr.port().to_string();
    let dig = |args: &[&str]| {
        let out = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &port,
                "+norec",
                "+qid=4242",
                "+nocookie",
            ])
            .args(args)
            .output()
            .expect("dig is installed (bind9-dnsutils)");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| {
                !l.starts_with(";; Query time")
                    && !l.starts_with(";; SERVER")
                    && !l.starts_with(";; WHEN")
                    && !l.contains("DiG 9")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    for shape in [
        &["example.com", "SOA"][..],
        &["example.com", "NS"],
        &["example.com", "ANY"],
        &["ns1.example.com", "A"],
        &["_mimi.example.com", "TXT"],
        &["nope._mimi.example.com", "TXT"],
        &["example.com", "SOA", "+dnssec"],
        &["example.com", "SOA", "+edns=1", "+noednsnegotiation"],
        &["example.com", "SOA", "+cd", "+adflag"],
        &["example.com", "SOA", "+noedns"],
        &["example.org", "TXT"],
    ] {
        let udp = tokio::task::block_in_place(|| dig(&[shape, &["+notcp"]].concat()));
        let tcp = tokio::task::block_in_place(|| dig(&[shape, &["+tcp"]].concat()));
        assert!(udp.contains("status:"), "{shape:?}: {udp}");
        assert_eq!(udp, tcp, "{shape:?}");
        if shape.contains(&"+edns=1") {
            assert!(udp.contains("status: BADVERS"), "{udp}");
        }
        if shape.contains(&"+dnssec") {
            assert!(udp.contains("flags: do;"), "DO copied: {udp}");
        }
        if shape.contains(&"ANY") {
            assert!(udp.contains("ANSWER: 1,"), "minimal ANY: {udp}");
        }
    }
    server.shutdown().await.unwrap();
}

/// The server's CPU time so far (user + system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Out of file descriptors, the accept loop backs off instead of spinning,
/// logs the episode once, and serves again once descriptors are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_backs_off_and_recovers() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    use std::sync::{Arc, Mutex};

    let f = fixture();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mimi-publisher"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args([
            "--tcp-max-clients",
            "10000",
            "--tcp-max-per-source",
            "10000",
        ])
        .arg(&f.config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
    unsafe {
        cmd.pre_exec(|| {
            let rl = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    {
        let log = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("serving over UDP and TCP") {
                    let at = line.find("127.0.0.1:").unwrap();
                    let port: String = line[at + 10..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    let _ = addr_tx.send(SocketAddr::from(([127, 0, 0, 1], port.parse().unwrap())));
                }
                log.lock().unwrap().push(line);
            }
        });
    }
    let addr = tokio::task::block_in_place(|| addr_rx.recv_timeout(BOUND))
        .unwrap_or_else(|_| panic!("server starts: {:?}", log.lock().unwrap()));
    let episodes = |what: &str| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(what))
            .count()
    };
    // Far more connections than the server has descriptors.
    let mut held = Vec::new();
    for _ in 0..120 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Wait until the server has run out (it logs the episode).
    let deadline = std::time::Instant::now() + BOUND;
    while episodes("cannot accept TCP connections") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While out of descriptors, the accept loop does not spin: over a
    // second it uses a small fraction of a core.
    let before = cpu_time(pid);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_time(pid) - before;
    assert!(
        used < Duration::from_millis(300),
        "accept loop used {used:?} of CPU in 1 s"
    );
    assert!(udp_answers(addr).await, "UDP is served meanwhile");
    // One line for the episode, not one per failed accept.
    assert_eq!(episodes("cannot accept TCP connections"), 1, "logged once");
    // Free the descriptors: the server accepts and answers again. (The
    // closed connections still queued may run it out again briefly: each
    // episode logs its start and its end once.)
    drop(held);
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(ask(&mut s, 1).await.is_some(), "served again");
    drop(s);
    // An episode ends with the next accept that succeeds, so one that
    // began while the closed connections drained ends only when another
    // client comes: each round connects and is answered.
    let deadline = std::time::Instant::now() + BOUND;
    while episodes("accepting TCP connections again") != episodes("cannot accept TCP connections") {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert!(ask(&mut s, 1).await.is_some(), "served again");
    }
    // SAFETY: signals the child we started, by its pid.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = child.wait();
}

/// A zone of many messages is transferred over the new TCP path with a
/// TSIG signature on every message, chained (dig verifies each); transfer
/// requests and queries share a connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_multi_message_transfer_on_the_tcp_path() {
    let mappings: String = (0..1500)
        .map(|i| format!("user{i}@example.com,mimi://chat.example.org/u/user{i}\n"))
        .collect();
    let f = fixture_with(
        &mappings,
        "\n[transfer]\nallow = [\"127.0.0.1\"]\ntsig_key = \"transfer.key\"\n",
    );
    let server = start(&f, TcpOptions::DEFAULT).await;
    let port = server.local_addr().port().to_string();
    let dig = |key: &str| {
        let out = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &port,
                "example.com",
                "AXFR",
                "+tries=1",
                "+time=5",
            ])
            .args(["-y", key])
            .output()
            .expect("dig is installed (bind9-dnsutils)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = tokio::task::block_in_place(|| {
        dig("hmac-sha256:xfr:kXW841Sbu0aZFtjM/0NLeCiBM/jbq9bvxoQXun9bHro=")
    });
    let summary = text
        .lines()
        .find(|l| l.starts_with(";; XFR size"))
        .unwrap_or_else(|| panic!("transfer failed:\n{text}"));
    // SOA, NS, 1,500 assertions, SOA.
    assert!(summary.contains("XFR size: 1503 records"), "{summary}");
    let messages: usize = summary
        .split("messages ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(messages >= 5, "{summary}");
    assert!(!text.contains("failure"), "{text}");
    // A wrong secret is refused (NOTAUTH), the zone is not sent.
    let wrong = tokio::task::block_in_place(|| {
        dig("hmac-sha256:xfr:AAAA41Sbu0aZFtjM/0NLeCiBM/jbq9bvxoQXun9bHro=")
    });
    assert!(!wrong.contains("XFR size"), "{wrong}");
    // Query, unsigned AXFR (refused: the zone requires TSIG), query, on one
    // connection, pipelined.
    let mut s = connect_from("127.0.0.1", server.local_addr()).await;
    let mut burst = framed(&query(1, "example.com.", RecordType::SOA));
    burst.extend(framed(&query(2, "example.com.", RecordType::AXFR)));
    burst.extend(framed(&query(3, "example.com.", RecordType::NS)));
    s.write_all(&burst).await.unwrap();
    for (id, rcode) in [
        (1, ResponseCode::NoError),
        (2, ResponseCode::Refused),
        (3, ResponseCode::NoError),
    ] {
        let m = read_response(&mut s).await.expect("answered");
        assert_eq!((m.metadata.id, m.metadata.response_code), (id, rcode));
    }
    server.shutdown().await.unwrap();
}

/// Shutting down closes open connections and the listener before it
/// returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_open_connections() {
    let f = fixture();
    let server = start(&f, TcpOptions::DEFAULT).await;
    let addr = server.local_addr();
    let mut s = connect_from("127.0.0.1", addr).await;
    assert!(ask(&mut s, 1).await.is_some());
    tokio::time::timeout(BOUND, server.shutdown())
        .await
        .expect("shutdown in time")
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(BOUND, s.read(&mut buf)).await.unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "closed: {n:?}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

/// `serve` raises its soft open-file limit to the hard limit at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_raises_the_open_file_limit() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;

    let f = fixture();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mimi-publisher"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .arg(&f.config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
    unsafe {
        cmd.pre_exec(|| {
            let rl = libc::rlimit {
                rlim_cur: 100,
                rlim_max: 2000,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let started = tokio::task::block_in_place(|| {
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("serving over UDP and TCP"))
    });
    assert!(started, "server starts");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    // SAFETY: signals the child we started, by its pid.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = child.wait();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((fields[3], fields[4]), ("2000", "2000"), "{line}");
}
