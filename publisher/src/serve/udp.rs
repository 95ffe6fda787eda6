//! Serving DNS over UDP on plain threads.
//!
//! A UDP query is a few hundred octets in and out, answered from memory in
//! about a microsecond (`crate::serve::wire`); the rest is system calls. An async
//! runtime adds a task, a channel hop and a wake-up per query, which
//! dominated hickory-server's profile. Here each thread blocks in
//! `recv_from` on a shared socket (the kernel hands each datagram to one
//! waiting thread), answers into a buffer it reuses, and sends. One thread
//! per core keeps every core busy without contention: the only shared
//! state is the served zone list, read through an [`ArcSwap`] guard (no
//! lock, no reference count traffic on the hot path).
//!
//! Answers can be rate limited per source network ([`crate::serve::rrl`]): the
//! limiter looks at each encoded answer just before it is sent.
//!
//! The threads stop when [`UdpServer::stop`] is called: each wakes at
//! least every [`POLL`] to look at the stop flag.

use std::io;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use tracing::{debug, warn};

use crate::serve::installed::Served;
use crate::serve::rrl::Limiter;

/// How often a blocked thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// The largest datagram read (a UDP payload cannot be larger).
const MAX_DATAGRAM: usize = 65_535;

/// The zone list the server answers from, swapped whole on reload.
type ZoneList = ArcSwap<crate::zone::served::ZoneTable>;

/// UDP serving threads. Dropping the server tells them to stop without
/// waiting; [`UdpServer::stop`] also waits.
#[derive(Debug)]
pub(crate) struct UdpServer {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpServer {
    /// Starts `threads` threads answering queries on `socket` from `zones`.
    pub(crate) fn spawn(
        socket: UdpSocket,
        served: Arc<Served>,
        threads: usize,
        rrl: Option<Arc<Limiter>>,
    ) -> io::Result<Self> {
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(Some(POLL))?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads.max(1) {
            let socket = socket.try_clone()?;
            let served = served.clone();
            let stop = stop.clone();
            let rrl = rrl.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("mimi-udp-{i}"))
                    .spawn(move || serve(&socket, served.zone_list(), rrl.as_deref(), &stop))?,
            );
        }
        Ok(UdpServer {
            stop,
            threads: handles,
        })
    }

    /// Stops the threads and waits for them (at most about [`POLL`]).
    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs the answering of one datagram so that a panic in it (a bug: no
/// packet should cause one, and the fuzz target `udp` looks for them) costs
/// that one answer, not the thread: with one thread per core, a packet that
/// panics every thread it reaches would otherwise stop UDP service. The
/// answer buffers are rebuilt by the next call, so nothing half-written
/// survives. Returns whether there is an answer to send.
fn guarded(panics: &mut u64, answer: impl FnOnce() -> bool) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(answer)) {
        Ok(answered) => answered,
        Err(_) => {
            *panics += 1;
            if panics.is_power_of_two() {
                tracing::error!(
                    panics = *panics,
                    "answering a UDP query panicked (a bug, please report it); the query is dropped and the server goes on"
                );
            }
            false
        }
    }
}

/// One thread's loop.
fn serve(socket: &UdpSocket, zones: &ZoneList, rrl: Option<&Limiter>, stop: &AtomicBool) {
    let mut packet = vec![0u8; MAX_DATAGRAM];
    let mut out = Vec::with_capacity(4096);
    let mut scratch = crate::serve::wire::Scratch::default();
    let mut errors = 0u64;
    let mut panics = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (len, peer) = match socket.recv_from(&mut packet) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some
                // systems; never stop serving over them.
                errors += 1;
                if errors.is_power_of_two() {
                    warn!(errors, "UDP receive failed: {e}");
                }
                continue;
            }
        };
        let answered = guarded(&mut panics, || {
            use crate::serve::wire::{answer, Answer, Transport, MAX_UDP_PAYLOAD};
            let current = zones.load();
            let packet = &packet[..len];
            match answer(&current, packet, Transport::Udp, &mut out, &mut scratch) {
                Answer::Reply => true,
                Answer::None => false,
                // An IXFR (AXFR over UDP is refused by the encoder).
                Answer::Transfer => {
                    let zone = current
                        .iter()
                        .find(|z| z.origin().as_str() == scratch.qname());
                    crate::transfer::ixfr::answer_udp(
                        packet,
                        peer,
                        zone.map(|z| &**z),
                        MAX_UDP_PAYLOAD,
                        &mut out,
                    )
                }
            }
        });
        // Response rate limiting (crate::serve::rrl) judges the encoded answer.
        if answered {
            crate::serve::metrics::count_answer(crate::serve::metrics::Transport::Udp, &out);
        }
        if answered && rrl.is_none_or(|rrl| rrl.filter(peer.ip(), &mut out)) {
            if let Err(e) = socket.send_to(&out, peer) {
                debug!(%peer, "UDP send failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_answer_is_dropped_and_counted() {
        let mut panics = 0;
        assert!(guarded(&mut panics, || true));
        assert!(!guarded(&mut panics, || false));
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let answered = guarded(&mut panics, || panic!("a bug"));
        std::panic::set_hook(hook);
        assert!(!answered);
        assert_eq!(panics, 1);
        // The thread goes on answering.
        assert!(guarded(&mut panics, || true));
    }
}
