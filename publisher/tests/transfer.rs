//! Zone transfers on a real server over loopback, read by a raw TCP client:
//! a secondary that reads slowly gets the whole zone however long that
//! takes (neither the TCP idle timeout nor the connection lifetime cuts a
//! transfer that progresses); one that stops reading is cut after the
//! transfer idle timeout; and the concurrent-transfer limit refuses the
//! excess with REFUSED and gives places back when transfers end, fail or
//! are abandoned.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use mimi_proto::DomainName;
use mimi_publisher::serve::{self, RunningServer, ServeOptions, TcpOptions};
use mimi_publisher::transfer::TransferOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// Any single step (a read, a connection, a poll) finishes within this, or
/// the test fails.
const BOUND: Duration = Duration::from_secs(60);

/// The receive buffer of the test's clients: small, so that the server
/// feels a slow reader's pace at once instead of filling megabytes of
/// loopback buffers.
const CLIENT_RCVBUF: u32 = 32 * 1024;

struct Fixture {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

/// A zone of `n` mappings that 127.0.0.1 may transfer, without TSIG (the
/// signed stream is covered by `tcp.rs` and the interop tests).
fn fixture(n: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zone.toml");
    std::fs::write(
        &config,
        format!("{}\n[transfer]\nallow = [\"127.0.0.1\"]\n", common::CONFIG),
    )
    .unwrap();
    let mut mappings = String::with_capacity(n * 64);
    for i in 0..n {
        mappings.push_str(&format!(
            "user{i}@example.com,mimi://chat.example.com/u/user{i}\n"
        ));
    }
    std::fs::write(dir.path().join("mappings.csv"), mappings).unwrap();
    let key = mimi_publisher::input::keys::generate();
    mimi_publisher::input::keys::write_signing_key(&dir.path().join("signing.pem"), &key).unwrap();
    Fixture { _dir: dir, config }
}

async fn start(f: &Fixture, tcp: TcpOptions) -> RunningServer {
    let started = Instant::now();
    let server = serve::start(ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        tcp,
        ..ServeOptions::new(vec![f.config.clone()])
    })
    .await
    .unwrap();
    eprintln!("server built and started in {:.1?}", started.elapsed());
    server
}

fn origin() -> DomainName {
    DomainName::parse("example.com").unwrap()
}

/// TXT records the server holds for the zone: what a transfer must carry.
fn txt_count(server: &RunningServer) -> usize {
    server.zone(&origin()).unwrap().record_count()
}

fn axfr(id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("example.com.").unwrap(),
        RecordType::AXFR,
    ));
    framed(&m.to_vec().unwrap())
}

fn soa_query(id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("example.com.").unwrap(),
        RecordType::SOA,
    ));
    framed(&m.to_vec().unwrap())
}

fn framed(message: &[u8]) -> Vec<u8> {
    let mut f = (message.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(message);
    f
}

/// A DNS-over-TCP client reading at most `rate` octets per second (on
/// average since it connected), or as fast as it can.
struct Client {
    stream: TcpStream,
    pending: Vec<u8>,
    received: usize,
    since: Instant,
    rate: Option<f64>,
}

impl Client {
    async fn connect(addr: SocketAddr, rate: Option<f64>) -> Client {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(CLIENT_RCVBUF).unwrap();
        let stream = tokio::time::timeout(BOUND, socket.connect(addr))
            .await
            .expect("connects in time")
            .unwrap();
        Client {
            stream,
            pending: Vec::new(),
            received: 0,
            since: Instant::now(),
            rate,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next message, or `None` once the server has closed (or reset)
    /// the connection.
    async fn message(&mut self) -> Option<Message> {
        loop {
            if self.pending.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([self.pending[0], self.pending[1]]));
                if self.pending.len() >= 2 + len {
                    let m = Message::from_vec(&self.pending[2..2 + len]).unwrap();
                    self.pending.drain(..2 + len);
                    return Some(m);
                }
            }
            let mut buf = [0u8; 8192];
            let n = tokio::time::timeout(BOUND, self.stream.read(&mut buf))
                .await
                .expect("the server sends or closes in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.pending.extend_from_slice(&buf[..n]);
            self.received += n;
            if let Some(rate) = self.rate {
                let due = self.since + Duration::from_secs_f64(self.received as f64 / rate);
                tokio::time::sleep_until(due).await;
            }
        }
    }

    /// Reads a transfer to its closing SOA.
    async fn transfer(&mut self) -> Result<Transferred, Incomplete> {
        self.transfer_rest(Transferred::default()).await
    }

    /// Reads the rest of a transfer of which `t` has been read.
    async fn transfer_rest(&mut self, mut t: Transferred) -> Result<Transferred, Incomplete> {
        loop {
            let Some(m) = self.message().await else {
                return Err(Incomplete { got: t });
            };
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            t.messages += 1;
            for r in &m.answers {
                let opening = t.records == 0;
                assert_eq!(
                    opening,
                    opening && r.record_type() == RecordType::SOA,
                    "the transfer does not start with the SOA"
                );
                t.records += 1;
                match r.record_type() {
                    RecordType::SOA => t.soas += 1,
                    RecordType::NS => t.ns += 1,
                    RecordType::TXT => t.txt += 1,
                    other => panic!("unexpected {other} in the transfer"),
                }
                if t.soas == 2 {
                    assert!(self.pending.is_empty(), "bytes after the closing SOA");
                    return Ok(t);
                }
            }
        }
    }

    /// What reading `first`, a transfer's first message, has shown.
    fn seen(first: &Message) -> Transferred {
        let mut t = Transferred {
            messages: 1,
            ..Transferred::default()
        };
        for r in &first.answers {
            t.records += 1;
            match r.record_type() {
                RecordType::SOA => t.soas += 1,
                RecordType::NS => t.ns += 1,
                RecordType::TXT => t.txt += 1,
                other => panic!("unexpected {other} in the transfer"),
            }
        }
        assert_eq!(first.answers[0].record_type(), RecordType::SOA);
        t
    }

    /// Asks the zone's SOA on this connection: once answered, the server
    /// has finished whatever it was doing for this connection before.
    async fn ask_soa(&mut self, id: u16) {
        self.send(&soa_query(id)).await;
        let m = self.message().await.expect("an answer to the SOA query");
        assert_eq!(m.metadata.id, id);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }
}

#[derive(Debug, Default)]
struct Transferred {
    messages: usize,
    records: usize,
    soas: usize,
    ns: usize,
    txt: usize,
}

#[derive(Debug)]
struct Incomplete {
    #[allow(dead_code)]
    got: Transferred,
}

/// Starts an AXFR on a new connection and returns it with the first
/// message: REFUSED, or the first part of the zone.
async fn begin(addr: SocketAddr, rate: Option<f64>, id: u16) -> (Client, Message) {
    let mut c = Client::connect(addr, rate).await;
    c.send(&axfr(id)).await;
    let first = c.message().await.expect("a first message");
    assert_eq!(first.metadata.id, id);
    (c, first)
}

/// Polls, bounded, until a new transfer is admitted; returns it.
async fn admitted(addr: SocketAddr, id: u16) -> Client {
    let deadline = Instant::now() + BOUND;
    loop {
        let (mut c, first) = begin(addr, None, id).await;
        if first.metadata.response_code != ResponseCode::Refused {
            // Put the first message back, so that `transfer` reads it all.
            let mut bytes = framed(&first.to_vec().unwrap());
            bytes.append(&mut c.pending);
            c.pending = bytes;
            return c;
        }
        assert!(Instant::now() < deadline, "no transfer admitted in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `mimi-publisher serve`, killed (it is our child) when dropped.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The log line without its terminal colours (ESC [ ... letter).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
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

fn short_timeouts(transfers: TransferOptions) -> TcpOptions {
    TcpOptions {
        idle_timeout: Duration::from_secs(1),
        max_lifetime: Duration::from_secs(2),
        transfers,
        ..TcpOptions::DEFAULT
    }
}

/// A secondary reading at 1 MB/s gets every record of a zone whose transfer
/// lasts several times the TCP idle timeout (1 s), the transfer idle
/// timeout (2 s) and the connection's lifetime (2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_the_whole_zone() {
    let f = fixture(mappings_for_slow_reader());
    let server = start(
        &f,
        short_timeouts(TransferOptions {
            idle_timeout: Duration::from_secs(2),
            ..TransferOptions::DEFAULT
        }),
    )
    .await;
    let expected = txt_count(&server);
    let started = Instant::now();
    let mut c = Client::connect(server.local_addr(), Some(1_000_000.0)).await;
    c.send(&axfr(1)).await;
    let t = c.transfer().await.expect("the whole zone");
    let took = started.elapsed();
    eprintln!(
        "{} records, {} messages, {} octets in {took:.1?}",
        t.records, t.messages, c.received
    );
    assert_eq!((t.soas, t.ns, t.txt), (2, 1, expected));
    assert!(
        took >= Duration::from_secs(6),
        "the transfer took {took:?}: too short to show that the timeouts (1 s, 2 s, 2 s) spare it"
    );
    server.shutdown().await.unwrap();
}

/// How many mappings the slow-reader test transfers: 100,000 (27 MB, 27 s at
/// 1 MB/s) when `MIMI_TRANSFER_TEST_MAPPINGS` says so, else 25,000 (7 MB,
/// 7 s), which debug builds sign in reasonable time.
fn mappings_for_slow_reader() -> usize {
    std::env::var("MIMI_TRANSFER_TEST_MAPPINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25_000)
}

/// A secondary that stops reading is cut after the transfer idle timeout,
/// its place is given back, and the server goes on serving transfers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_is_cut_after_the_idle_timeout() {
    let f = fixture(5_000);
    let idle = Duration::from_secs(2);
    let server = start(
        &f,
        short_timeouts(TransferOptions {
            max_total: 1,
            idle_timeout: idle,
            ..TransferOptions::DEFAULT
        }),
    )
    .await;
    let addr = server.local_addr();
    let (mut stalled, first) = begin(addr, None, 1).await;
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    let stalled_at = Instant::now();
    // The only place is taken: others are refused while it lasts.
    let (_, other) = begin(addr, None, 2).await;
    assert_eq!(other.metadata.response_code, ResponseCode::Refused);
    // Not reading; the place comes back when the server cuts the transfer.
    let mut next = admitted(addr, 3).await;
    // The server's last progress was while the first message was read,
    // a few milliseconds before `stalled_at`.
    let waited = stalled_at.elapsed();
    assert!(
        waited >= idle - Duration::from_millis(250),
        "cut after {waited:?}, before the idle timeout"
    );
    assert!(
        waited < idle + Duration::from_secs(10),
        "cut only after {waited:?}"
    );
    let t = next.transfer().await.expect("the next transfer completes");
    assert_eq!(t.txt, txt_count(&server));
    // What the stalled reader got ends before the closing SOA.
    let cut = stalled.transfer_rest(Client::seen(&first)).await;
    assert!(cut.is_err(), "the stalled transfer was not cut: {cut:?}");
    server.shutdown().await.unwrap();
}

/// With at most two transfers, a third is REFUSED while two run; a client
/// that disconnects mid-transfer and a transfer that completes both give
/// their place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_are_limited_and_places_given_back() {
    let f = fixture(5_000);
    let server = start(
        &f,
        TcpOptions {
            transfers: TransferOptions {
                max_total: 2,
                ..TransferOptions::DEFAULT
            },
            ..TcpOptions::DEFAULT
        },
    )
    .await;
    let addr = server.local_addr();
    let expected = txt_count(&server);
    // Two transfers under way: each has sent its first message and waits
    // for its reader.
    let (a, first_a) = begin(addr, Some(100_000.0), 1).await;
    let (mut b, first_b) = begin(addr, Some(100_000.0), 2).await;
    assert_eq!(first_a.metadata.response_code, ResponseCode::NoError);
    assert_eq!(first_b.metadata.response_code, ResponseCode::NoError);
    assert!(!first_b.answers.is_empty());
    let (_, refused) = begin(addr, None, 3).await;
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    assert!(refused.answers.is_empty());
    // A leaves mid-transfer: its place comes back.
    drop(a);
    let mut c = admitted(addr, 4).await;
    assert_eq!(c.transfer().await.expect("C completes").txt, expected);
    c.ask_soa(5).await;
    // B finishes (its first message is already read).
    b.rate = None;
    let t = b
        .transfer_rest(Client::seen(&first_b))
        .await
        .expect("B completes");
    assert_eq!(t.txt, expected);
    b.ask_soa(6).await;
    // Both places are free: two transfers at once are admitted.
    let (mut d, first_d) = begin(addr, None, 7).await;
    let (mut e, first_e) = begin(addr, None, 8).await;
    assert_eq!(first_d.metadata.response_code, ResponseCode::NoError);
    assert_eq!(first_e.metadata.response_code, ResponseCode::NoError);
    for (client, first) in [(&mut d, &first_d), (&mut e, &first_e)] {
        let t = client.transfer_rest(Client::seen(first)).await;
        assert_eq!(t.expect("completes").txt, expected);
    }
    server.shutdown().await.unwrap();
}

/// The binary's `--max-transfers`: while one transfer runs, kdig's AXFR is
/// answered REFUSED, and the log says which limit refused it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_refuses_kdig_over_max_transfers_and_logs_why() {
    use std::io::BufRead;
    let f = fixture(5_000);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mimi-publisher"))
        .arg("serve")
        .arg(&f.config)
        .args(["--listen", "127.0.0.1:0", "--max-transfers", "1"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _serve = Serve(child);
    // Read the log as it comes, so that the server never blocks on it.
    let (tx, log) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(plain(&line)).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let addr: SocketAddr = loop {
        let line = log
            .recv_timeout(BOUND)
            .unwrap_or_else(|_| panic!("serve did not start:\n{}", lines.join("\n")));
        lines.push(line.clone());
        if line.contains("serving over UDP and TCP") {
            let at = line.find("addr=").expect("the address in the log") + 5;
            let addr = line[at..].split_whitespace().next().unwrap();
            break addr.parse().unwrap();
        }
    };
    let (held, first) = begin(addr, Some(100_000.0), 1).await;
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    let kdig = tokio::process::Command::new("kdig")
        .args([
            "-p",
            &addr.port().to_string(),
            "@127.0.0.1",
            "example.com",
            "AXFR",
        ])
        .output();
    let kdig = tokio::time::timeout(BOUND, kdig)
        .await
        .expect("kdig ends")
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&kdig.stdout),
        String::from_utf8_lossy(&kdig.stderr)
    );
    assert!(said.contains("REFUSED"), "kdig said:\n{said}");
    drop(held);
    // The refusal was logged before it was sent.
    let wanted = "zone transfer refused: 1 transfer running (max 1)";
    while !lines.iter().any(|l| l.contains(wanted)) {
        let line = log
            .recv_timeout(BOUND)
            .unwrap_or_else(|_| panic!("no {wanted:?} in the log:\n{}", lines.join("\n")));
        lines.push(line);
    }
}

/// A zone `origin` of `n` mappings in its own directory, transferable by
/// 127.0.0.1; `extra` is appended to its mappings (to change it later).
fn zone_of(dir: &std::path::Path, origin: &str, n: usize, extra: &str) -> PathBuf {
    let d = dir.join(origin);
    std::fs::create_dir_all(&d).unwrap();
    let config = d.join("zone.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[transfer]\nallow = [\"127.0.0.1\"]\n",
            common::CONFIG.replace("example.com", origin)
        ),
    )
    .unwrap();
    let mut mappings: String = (0..n)
        .map(|i| format!("user{i}@{origin},mimi://chat.{origin}/u/user{i}\n"))
        .collect();
    mappings.push_str(extra);
    std::fs::write(d.join("mappings.csv"), mappings).unwrap();
    if !d.join("signing.pem").exists() {
        let key = mimi_publisher::input::keys::generate();
        mimi_publisher::input::keys::write_signing_key(&d.join("signing.pem"), &key).unwrap();
    }
    config
}

/// Polls, bounded, until `zone` has been freed.
async fn freed(zone: &std::sync::Weak<mimi_publisher::Zone>, what: &str) {
    let deadline = Instant::now() + BOUND;
    while zone.strong_count() > 0 {
        assert!(Instant::now() < deadline, "{what} is still in memory");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits, bounded, until the server serves a serial other than `before`.
async fn reloaded(server: &RunningServer, origin: &DomainName, before: u32) {
    let deadline = Instant::now() + BOUND;
    while server.serial(origin) == Some(before) {
        assert!(Instant::now() < deadline, "{origin} was not reloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A transfer keeps the version of its zone it started with until it ends
/// (one consistent serial for the secondary), and nothing else: the old
/// version of another zone, replaced during the transfer, is freed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_keeps_its_own_zone_version_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let com = zone_of(dir.path(), "example.com", 5_000, "");
    let net = zone_of(dir.path(), "example.net", 10, "");
    let server = serve::start(ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServeOptions::new(vec![com, net])
    })
    .await
    .unwrap();
    let (com_origin, net_origin) = (origin(), DomainName::parse("example.net").unwrap());
    let old_com = std::sync::Arc::downgrade(&server.zone(&com_origin).unwrap());
    let old_net = std::sync::Arc::downgrade(&server.zone(&net_origin).unwrap());
    let (com_serial, net_serial) = (
        server.serial(&com_origin).unwrap(),
        server.serial(&net_origin).unwrap(),
    );
    let (held, first) = begin(server.local_addr(), None, 1).await;
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    // Both zones change while the transfer of example.com is under way.
    zone_of(
        dir.path(),
        "example.com",
        5_000,
        "new@example.com,mimi://chat.example.com/u/new\n",
    );
    zone_of(
        dir.path(),
        "example.net",
        10,
        "new@example.net,mimi://chat.example.net/u/new\n",
    );
    reloaded(&server, &com_origin, com_serial).await;
    reloaded(&server, &net_origin, net_serial).await;
    freed(&old_net, "the replaced example.net").await;
    assert!(
        old_com.strong_count() > 0,
        "the version of example.com being transferred was freed"
    );
    drop(held);
    freed(
        &old_com,
        "the replaced example.com, once its transfer ended",
    )
    .await;
    server.shutdown().await.unwrap();
}
