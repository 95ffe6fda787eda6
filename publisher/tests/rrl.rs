//! Response rate limiting on UDP, against the real server on loopback: a
//! flood from one network is held to the rate while another network gets
//! every answer; slipped answers are truncated and a real client (dig)
//! retries them over TCP, which is never limited; rate 0 answers
//! everything.
//!
//! No test depends on how fast anything runs: the flood is sent in
//! batches, each settled when every query is accounted for (a full
//! answer, a truncated one, or a drop the server counted), and the bound
//! on answers is derived from the token bucket and the measured elapsed
//! time.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use mimi_proto::name::discovery_name;
use mimi_proto::{DomainName, Sii};
use mimi_publisher::serve::rrl::{RrlConfig, RrlStats};
use mimi_publisher::serve::{self, RunningServer, ServeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Every test finishes well within this, or fails instead of hanging.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a settle may take before the test fails (a lost packet).
const SETTLE_BOUND: Duration = Duration::from_secs(10);

use common::CONFIG;

struct Fixture {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zone.toml");
    std::fs::write(&config, CONFIG).unwrap();
    std::fs::write(
        dir.path().join("mappings.csv"),
        "alice@example.com,mimi://chat.example.org/u/alice\n",
    )
    .unwrap();
    let key = mimi_publisher::input::keys::generate();
    mimi_publisher::input::keys::write_signing_key(&dir.path().join("signing.pem"), &key).unwrap();
    Fixture { _dir: dir, config }
}

async fn start(f: &Fixture, rrl: RrlConfig) -> RunningServer {
    let opts = ServeOptions {
        configs: vec![f.config.clone()],
        listen: "127.0.0.1:0".parse().unwrap(),
        rrl,
        ..ServeOptions::default()
    };
    serve::start(opts).await.expect("server starts")
}

/// Alice's discovery name, as text.
fn alice() -> String {
    let origin = DomainName::parse("example.com").unwrap();
    let sii = Sii::parse("mailto:alice@example.com", None).unwrap();
    discovery_name(&sii.label(), &origin).unwrap().fqdn()
}

/// A TXT query for `name` with id `id` and an EDNS OPT record.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 16, 0, 1]);
    q.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
    q
}

/// What came back for one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// The answer (TC clear, at least one answer record).
    Full,
    /// A truncated answer (TC set, no answer records).
    Truncated,
}

/// Reads one reply: its id and kind. Panics on anything else, so that a
/// wrong answer cannot pass for a right one.
fn read_reply(packet: &[u8]) -> (u16, Reply) {
    assert!(packet.len() >= 12, "short reply {packet:?}");
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let tc = packet[2] & 0x02 != 0;
    let rcode = packet[3] & 0x0f;
    let ancount = u16::from_be_bytes([packet[6], packet[7]]);
    assert_eq!(rcode, 0, "reply {id} has RCODE {rcode}");
    match (tc, ancount) {
        (false, n) if n > 0 => (id, Reply::Full),
        (true, 0) => {
            assert_eq!(
                &packet[8..12],
                &[0, 0, 0, 1],
                "a slipped answer keeps only OPT"
            );
            (id, Reply::Truncated)
        }
        _ => panic!("reply {id}: TC {tc} with {ancount} answers"),
    }
}

async fn bound(ip: Ipv4Addr) -> UdpSocket {
    UdpSocket::bind(SocketAddr::new(IpAddr::V4(ip), 0))
        .await
        .unwrap_or_else(|e| panic!("cannot bind {ip}: {e}"))
}

/// Sends one query from `socket` and waits for its reply.
async fn ask(socket: &UdpSocket, server: SocketAddr, id: u16, name: &str) -> Reply {
    socket.send_to(&query(id, name), server).await.unwrap();
    let mut buf = [0u8; 2048];
    loop {
        let (len, _) = tokio::time::timeout(SETTLE_BOUND, socket.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no reply to query {id}"))
            .unwrap();
        let (got, reply) = read_reply(&buf[..len]);
        if got == id {
            return reply;
        }
    }
}

/// Counts the flood's replies.
#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    full: u64,
    truncated: u64,
}

impl Tally {
    /// Reads replies on `socket` until every query sent is accounted for:
    /// answered, truncated, or dropped by the server (its counter).
    async fn settle(&mut self, socket: &UdpSocket, server: &RunningServer) {
        let deadline = Instant::now() + SETTLE_BOUND;
        let mut buf = [0u8; 2048];
        loop {
            let dropped = server.rrl_stats().map_or(0, |s| s.dropped);
            let accounted = self.full + self.truncated + dropped;
            assert!(
                accounted <= self.sent,
                "more replies than queries: {self:?}"
            );
            if accounted == self.sent {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "queries unaccounted for: {self:?}, {dropped} dropped"
            );
            // Short waits: a drop shows only in the server's counter.
            if let Ok(r) =
                tokio::time::timeout(Duration::from_millis(20), socket.recv_from(&mut buf)).await
            {
                let (len, _) = r.unwrap();
                match read_reply(&buf[..len]).1 {
                    Reply::Full => self.full += 1,
                    Reply::Truncated => self.truncated += 1,
                }
            }
        }
    }
}

/// Flood batches: small enough that a batch's replies fit any socket
/// buffer, so that no reply is lost on the way.
const BATCH: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_network_is_held_to_the_rate_while_another_gets_every_answer() {
    const RATE: u32 = 50;
    const QUERIES: u64 = 10_000;
    const OTHER_EVERY: u64 = QUERIES / BATCH / RATE as u64;
    let f = fixture();
    let config = RrlConfig::new(RATE, 2, 24, 56, RrlConfig::DEFAULT_TABLE_SIZE).unwrap();
    let server = start(&f, config).await;
    let addr = server.local_addr();
    let name = alice();
    tokio::time::timeout(TEST_TIMEOUT, async {
        let flood = bound(Ipv4Addr::new(127, 0, 0, 1)).await;
        // Another /24.
        let other = bound(Ipv4Addr::new(127, 0, 1, 1)).await;
        let mut tally = Tally::default();
        let mut other_answers = 0;
        let started = Instant::now();
        let mut id = 0u16;
        while tally.sent < QUERIES {
            for _ in 0..BATCH {
                id = id.wrapping_add(1);
                flood.send_to(&query(id, &name), addr).await.unwrap();
                tally.sent += 1;
            }
            // Interleaved: the other network asks once every few batches,
            // as many times in all as its bucket's burst (so that its own
            // rate cannot limit it, however fast the test runs), and
            // always gets the full answer.
            if (tally.sent / BATCH) % OTHER_EVERY == 0 {
                assert_eq!(
                    ask(&other, addr, id, &name).await,
                    Reply::Full,
                    "the other network was limited (after {} flood queries)",
                    tally.sent
                );
                other_answers += 1;
            }
            tally.settle(&flood, &server).await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let stats = server.rrl_stats().unwrap();
        let limited = tally.sent - tally.full;
        // The bucket starts full (one second's worth) and refills at the
        // rate; the slack covers the coarse clock's tick.
        let most = f64::from(RATE) * (1.0 + elapsed) + 2.0 + f64::from(RATE) * 0.02;
        eprintln!(
            "{tally:?} in {elapsed:.3}s (bound {most:.1}); {stats:?}; other network: {other_answers}"
        );
        assert!(
            tally.full >= u64::from(RATE),
            "fewer than the burst answered: {tally:?}"
        );
        assert!(
            (tally.full as f64) <= most,
            "{} answered in {elapsed:.3}s, more than {most:.1}",
            tally.full
        );
        // Slip 2: every second limited answer is truncated, the rest dropped.
        assert_eq!(tally.truncated, limited / 2, "{tally:?}");
        assert_eq!(
            stats,
            RrlStats {
                limited,
                slipped: tally.truncated,
                dropped: limited - tally.truncated,
            }
        );
        assert_eq!(other_answers, u64::from(RATE));
    })
    .await
    .expect("test timed out");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_zero_answers_everything() {
    let f = fixture();
    let server = start(&f, RrlConfig::new(0, 2, 24, 56, 1).unwrap()).await;
    assert_eq!(server.rrl_stats(), None);
    let addr = server.local_addr();
    let name = alice();
    tokio::time::timeout(TEST_TIMEOUT, async {
        let flood = bound(Ipv4Addr::LOCALHOST).await;
        let mut tally = Tally::default();
        for batch in 0..25u16 {
            for i in 0..BATCH as u16 {
                flood
                    .send_to(&query(batch * 100 + i, &name), addr)
                    .await
                    .unwrap();
                tally.sent += 1;
            }
            tally.settle(&flood, &server).await;
        }
        assert_eq!((tally.full, tally.truncated), (1_000, 0));
    })
    .await
    .expect("test timed out");
    server.shutdown().await.unwrap();
}

/// Queries `name` over TCP on one connection `n` times; every reply must
/// be the full answer.
async fn ask_tcp(addr: SocketAddr, name: &str, n: u16) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    for id in 0..n {
        let q = query(id, name);
        tcp.write_all(&(q.len() as u16).to_be_bytes())
            .await
            .unwrap();
        tcp.write_all(&q).await.unwrap();
        let len = tcp.read_u16().await.unwrap();
        let mut reply = vec![0; usize::from(len)];
        tcp.read_exact(&mut reply).await.unwrap();
        assert_eq!(read_reply(&reply), (id, Reply::Full), "TCP query {id}");
    }
}

/// With rate 1 and slip 1 every limited answer is truncated: a second
/// query from the same /24 gets TC, another /24 the answer, dig retries
/// the truncated answer over TCP and gets the records, and TCP is never
/// limited. A bucket refills one answer per second, so each round checks
/// that it ran within that second, and is repeated otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slipped_answers_are_truncated_and_dig_retries_them_over_tcp() {
    let f = fixture();
    let server = start(
        &f,
        RrlConfig::new(1, 1, 24, 56, RrlConfig::DEFAULT_TABLE_SIZE).unwrap(),
    )
    .await;
    let addr = server.local_addr();
    let name = alice();
    tokio::time::timeout(TEST_TIMEOUT, async {
        let one = bound(Ipv4Addr::new(127, 0, 0, 1)).await;
        let same_net = bound(Ipv4Addr::new(127, 0, 0, 2)).await;
        let other_net = bound(Ipv4Addr::new(127, 0, 2, 1)).await;
        let mut id = 0;
        let mut checked = false;
        for _ in 0..5 {
            id += 10;
            let round = Instant::now();
            // Empty the bucket of 127.0.0.0/24 (at most one answer left).
            let mut replies = vec![ask(&one, addr, id, &name).await];
            replies.push(ask(&one, addr, id + 1, &name).await);
            let shared = ask(&same_net, addr, id + 2, &name).await;
            let other = ask(&other_net, addr, id + 3, &name).await;
            let dig = Command::new("dig")
                .args(["-b", "127.0.0.1", "-p", &addr.port().to_string()])
                .args([
                    "+tries=1",
                    "+time=5",
                    "+norecurse",
                    &format!("@{}", addr.ip()),
                ])
                .args([name.as_str(), "TXT"])
                .output()
                .expect("dig runs (Debian package bind9-dnsutils)");
            if round.elapsed() >= Duration::from_millis(900) {
                continue; // the bucket may have refilled: not conclusive
            }
            let out = String::from_utf8_lossy(&dig.stdout);
            assert!(replies.contains(&Reply::Truncated), "{replies:?}");
            assert_eq!(shared, Reply::Truncated, "127.0.0.2 shares 127.0.0.0/24");
            assert_eq!(other, Reply::Full, "127.0.2.1 is another /24");
            assert!(
                out.contains("Truncated, retrying in TCP mode"),
                "dig did not get a truncated answer:\n{out}"
            );
            assert!(
                out.contains("status: NOERROR") && out.contains("ANSWER: 1,"),
                "dig did not get the answer over TCP:\n{out}"
            );
            checked = true;
            break;
        }
        assert!(checked, "no round ran within the bucket's refill time");
        // TCP is never limited, however empty the bucket.
        ask_tcp(addr, &name, 50).await;
        assert!(server.rrl_stats().unwrap().slipped >= 3);
    })
    .await
    .expect("test timed out");
    server.shutdown().await.unwrap();
}

#[test]
fn serve_rejects_out_of_range_rate_limit_flags() {
    let exe = env!("CARGO_BIN_EXE_mimi-publisher");
    for (flag, value) in [
        ("--rrl-ipv4-prefix", "33"),
        ("--rrl-ipv6-prefix", "129"),
        ("--rrl-rate", "-1"),
        ("--rrl-rate", "1000000001"),
        ("--rrl-table-size", "0"),
        ("--rrl-slip", "1001"),
    ] {
        let out = Command::new(exe)
            .args(["serve", "zone.toml", &format!("{flag}={value}")])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
}
