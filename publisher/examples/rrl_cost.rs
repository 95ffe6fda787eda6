//! The cost of response rate limiting per answer, measured on its own, for
//! the benchmark report (`bench/run.sh`): the end-to-end measurement (server
//! CPU per query with the limiter off and on) is only as precise as the
//! machine is quiet, this one is not disturbed by other load.
//!
//! Runs `Limiter::filter` on every core for about `SECONDS` (default 3, the
//! first argument; the second is the table size, default the server's) over
//! 100,000 answers shaped like the server's (a discovery name, one ~300-octet
//! TXT record, OPT; 10% NXDOMAIN), all from one source as dnsperf sends
//! them, at a rate that never limits, and prints
//! `{"threads": N, "calls": C, "ns_per_answer": X}` (thread CPU time per
//! call).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use mimi_publisher::serve::rrl::{Limiter, RrlConfig};

/// The calling thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// An answer to `<label>.<shard>._mimi.example.com TXT`.
fn answer(i: u32) -> Vec<u8> {
    let nx = i % 10 == 9;
    let label = format!("{:026x}", u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut m = vec![
        0x12,
        0x34,
        0x84,
        if nx { 3 } else { 0 },
        0,
        1,
        0,
        u8::from(!nx),
    ];
    m.extend_from_slice(&[0, u8::from(nx), 0, 1]);
    for l in [&label[..], &label[..2], "_mimi", "example", "com"] {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 16, 0, 1]);
    if nx {
        m.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 1, 44, 0, 40]);
        m.extend_from_slice(&[0; 40]);
    } else {
        m.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 1, 44, 1, 45, 255]);
        m.extend_from_slice(&[b'x'; 300]);
    }
    m.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
    m
}

/// Answers per timed block: long enough that reading the CPU clock (a
/// system call) does not count.
const BLOCK: usize = 16_384;

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let table: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(RrlConfig::DEFAULT_TABLE_SIZE);
    let config = RrlConfig::new(RrlConfig::MAX_RATE, 2, 24, 56, table).expect("valid settings");
    let limiter = Limiter::new(&config).expect("limiter on");
    let answers: Vec<Vec<u8>> = (0..100_000).map(answer).collect();
    let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let budget = Duration::from_secs_f64(secs);
    let started = Instant::now();
    let per_thread: Vec<(u64, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (limiter, answers) = (&limiter, &answers);
                s.spawn(move || {
                    let mut buf = Vec::with_capacity(512);
                    let (mut calls, mut spent) = (0u64, Duration::ZERO);
                    let mut i = t * 7919;
                    while started.elapsed() < budget {
                        // A block with the limiter, then the same block
                        // without it (the copy the encoder stands for):
                        // the difference is the limiter's.
                        let from = i;
                        let t0 = thread_cpu();
                        for _ in 0..BLOCK {
                            i = (i + 1) % answers.len();
                            buf.clear();
                            buf.extend_from_slice(&answers[i]);
                            std::hint::black_box(limiter.filter(source, &mut buf));
                        }
                        let t1 = thread_cpu();
                        i = from;
                        for _ in 0..BLOCK {
                            i = (i + 1) % answers.len();
                            buf.clear();
                            buf.extend_from_slice(&answers[i]);
                            std::hint::black_box(&mut buf);
                        }
                        let t2 = thread_cpu();
                        spent += (t1 - t0).saturating_sub(t2 - t1);
                        calls += BLOCK as u64;
                    }
                    (calls, spent)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let calls: u64 = per_thread.iter().map(|p| p.0).sum();
    let spent: f64 = per_thread.iter().map(|p| p.1.as_nanos() as f64).sum();
    assert_eq!(limiter.stats().limited, 0, "the rate must not limit");
    println!(
        "{{\"threads\": {threads}, \"calls\": {calls}, \"ns_per_answer\": {:.1}}}",
        spent / calls as f64
    );
}
