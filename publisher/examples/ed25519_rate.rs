//! The raw Ed25519 signing rate on all cores, for the benchmark report
//! (`bench/run.sh`): what `mimi-publisher build` is compared with.
//!
//! Signs messages shaped like assertion signing inputs (context, SII hash,
//! ~150-octet body) for about `SECONDS` (default 3) on every core with rayon
//! and prints `{"threads": N, "signatures_per_second": R}`.

use ed25519_dalek::{Signer, SigningKey};
use rayon::prelude::*;
use std::time::{Duration, Instant};

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let threads = rayon::current_num_threads();
    let budget = Duration::from_secs_f64(secs);
    let started = Instant::now();
    let counts: Vec<u64> = (0..threads)
        .into_par_iter()
        .map(|t| {
            let mut msg = vec![0u8; 22 + 32 + 150];
            let mut n = 0u64;
            while started.elapsed() < budget {
                for _ in 0..256 {
                    msg[0] = t as u8;
                    msg[1..9].copy_from_slice(&n.to_le_bytes());
                    std::hint::black_box(key.sign(&msg));
                    n += 1;
                }
            }
            n
        })
        .collect();
    let total: u64 = counts.iter().sum();
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!("{{\"threads\": {threads}, \"signatures_per_second\": {rate:.0}}}");
}
