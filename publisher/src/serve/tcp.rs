//! Serving DNS over TCP (RFC 7766): our own accept loop and connections,
//! bounded so that slow or hostile clients cannot take the server's
//! connection slots, file descriptors or memory.
//!
//! * At most [`TcpOptions::max_clients`] connections at once, and at most
//!   [`TcpOptions::max_per_source`] from one source (an IPv4 address, or an
//!   IPv6 /64, the smallest block a site is usually given). A connection
//!   over either limit is accepted and closed at once, so that the client
//!   learns immediately (it may retry elsewhere) and the kernel's backlog
//!   never fills with connections nobody will serve.
//! * A connection is closed when a whole message has not arrived within
//!   [`TcpOptions::idle_timeout`] (a client sending half a message and
//!   stalling included), when it accepts no byte of an answer for as long
//!   (a client that does not read), after [`TcpOptions::max_queries`]
//!   messages, and once it has been open for [`TcpOptions::max_lifetime`]
//!   (checked between messages, so a zone transfer under way is not cut):
//!   a client that asks one question just before each idle timeout cannot
//!   hold a slot for hours.
//! * A zone transfer is bounded by [`TcpOptions::transfers`] instead: how
//!   many run at once, and how long the secondary may read nothing
//!   ([`crate::transfer::limit`]); never by its total duration.
//! * A message is read into a buffer of exactly its length, which the
//!   16-bit length prefix bounds at 65,535 octets.
//! * Pipelined queries are answered in order, each by the encoder UDP uses
//!   (`crate::serve::wire`, with the TCP size limit); zone transfers go to
//!   [`crate::transfer`], which writes each message as it is made.
//! * When accepting fails for lack of file descriptors (EMFILE, ENFILE) or
//!   memory, the loop waits, 10 ms doubling to 1 s, instead of spinning on
//!   a listener that stays readable; it logs once when the episode starts
//!   and once when it ends. `raise_open_file_limit` makes that rare.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::serve::encrypted::{Layer, Stats};
use crate::serve::installed::Served;
use crate::serve::metrics;
use crate::serve::wire::{self, Answer, Scratch, Transport};
use crate::transfer::limit::{TransferOptions, Transfers};

/// Limits of the TCP server (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOptions {
    /// Connections served at once, from all sources.
    pub max_clients: usize,
    /// Connections served at once from one IPv4 address or IPv6 /64.
    pub max_per_source: usize,
    /// How long a connection may wait for a whole message, or for the
    /// client to accept any byte of a response, before it is closed.
    pub idle_timeout: Duration,
    /// Messages answered on one connection before it is closed (a zone
    /// transfer counts as one).
    pub max_queries: u32,
    /// How long a connection may stay open; no new message is read after
    /// that (one being answered, a transfer included, is finished).
    pub max_lifetime: Duration,
    /// Concurrent zone transfers and their idle timeout.
    pub transfers: TransferOptions,
}

impl TcpOptions {
    /// The defaults: 100 connections, as NSD's `tcp-count`; 10 per source;
    /// 10 s idle, as Knot's `tcp-idle-timeout`; 1,000 messages per
    /// connection; 120 s of life, as NSD's `tcp-timeout`; the transfer
    /// defaults of [`TransferOptions::DEFAULT`].
    pub const DEFAULT: TcpOptions = TcpOptions {
        max_clients: 100,
        max_per_source: 10,
        idle_timeout: Duration::from_secs(10),
        max_queries: 1000,
        max_lifetime: Duration::from_secs(120),
        transfers: TransferOptions::DEFAULT,
    };
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The first wait after accepting fails for lack of resources.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest wait between attempts.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    Total,
    Source,
}

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Full::Total => "the server has its maximum of TCP connections",
            Full::Source => "the source has its maximum of TCP connections",
        })
    }
}

/// Counts connections, in total and per source.
#[derive(Debug)]
pub(crate) struct Limiter {
    max_clients: usize,
    max_per_source: usize,
    /// `(total, per source)`; the map holds only sources with a
    /// connection, so it is bounded by `max_clients`.
    state: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// The source a connection counts against: IPv4 addresses (IPv4-mapped
/// IPv6 included) one by one, IPv6 by /64.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl Limiter {
    /// A limiter of `max_clients` connections, `max_per_source` from one
    /// source.
    pub(crate) fn new(max_clients: usize, max_per_source: usize) -> Arc<Self> {
        Arc::new(Limiter {
            max_clients,
            max_per_source,
            state: Mutex::new((0, HashMap::new())),
        })
    }

    /// A slot for a connection from `ip`, or which limit is reached.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Full> {
        let source = source_of(ip);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, per) = &mut *state;
        if *total >= self.max_clients {
            return Err(Full::Total);
        }
        let n = per.entry(source).or_insert(0);
        if *n >= self.max_per_source {
            return Err(Full::Source);
        }
        *n += 1;
        *total += 1;
        Ok(Permit {
            limiter: self.clone(),
            source,
        })
    }
}

/// One admitted connection's slot, given back on drop.
#[derive(Debug)]
pub(crate) struct Permit {
    limiter: Arc<Limiter>,
    source: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self
            .limiter
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (total, per) = &mut *state;
        *total -= 1;
        if let Some(n) = per.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.source);
            }
        }
    }
}

/// The running TCP server: the accept loop and its connections.
#[derive(Debug)]
pub(crate) struct TcpServer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TcpServer {
    /// Starts accepting on `listener` and answering from `served`, over
    /// `layer` (plain TCP, or TLS or HTTPS after a handshake).
    pub(crate) fn spawn(
        listener: TcpListener,
        served: Arc<Served>,
        opts: TcpOptions,
        layer: Layer,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, served, opts, layer, stopped));
        TcpServer { stop, task }
    }

    /// Stops accepting, closes every connection and waits for all of them
    /// (the listening socket and every connection are closed when this
    /// returns). Dropping the server without calling this also stops it,
    /// without waiting.
    pub(crate) async fn stop(self) -> Result<(), tokio::task::JoinError> {
        let _ = self.stop.send(true);
        self.task.await
    }
}

/// Whether an accept error is about one connection only (it went away
/// before we took it), so that the next accept may succeed at once.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || e.raw_os_error() == Some(libc::EPERM)
        || e.raw_os_error() == Some(libc::EPROTO)
}

async fn accept_loop(
    listener: TcpListener,
    served: Arc<Served>,
    opts: TcpOptions,
    layer: Layer,
    mut stop: watch::Receiver<bool>,
) {
    let limiter = Limiter::new(opts.max_clients, opts.max_per_source);
    let transfers = Transfers::new(opts.transfers);
    let mut backoff: Option<Duration> = None;
    let mut refused = 0u64;
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            r = listener.accept() => r,
        };
        // Forget the connections that have ended.
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok((stream, peer)) => {
                if backoff.take().is_some() {
                    info!("accepting TCP connections again");
                }
                match limiter.admit(peer.ip()) {
                    Ok(permit) => {
                        connections.spawn(connection(
                            stream,
                            peer,
                            permit,
                            served.clone(),
                            transfers.clone(),
                            opts,
                            layer.clone(),
                        ));
                    }
                    Err(full) => {
                        refused += 1;
                        if refused.is_power_of_two() {
                            warn!(%peer, refused, "TCP connection refused: {full}");
                        } else {
                            debug!(%peer, "TCP connection refused: {full}");
                        }
                        drop(stream);
                    }
                }
            }
            Err(e) if per_connection(&e) => debug!("TCP accept: {e}"),
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS, ENOMEM, or anything unknown:
                // the listener stays readable, so retrying at once would
                // spin. Wait, longer each time.
                let delay = match backoff {
                    None => {
                        warn!("cannot accept TCP connections ({e}); retrying every 10 ms to 1 s until it recovers");
                        ACCEPT_BACKOFF_MIN
                    }
                    Some(d) => (d * 2).min(ACCEPT_BACKOFF_MAX),
                };
                backoff = Some(delay);
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Serves one connection until the client closes it or a limit closes it
/// (or the server stops, which aborts it).
async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    permit: Permit,
    served: Arc<Served>,
    transfers: Arc<Transfers>,
    opts: TcpOptions,
    layer: Layer,
) {
    let _ = stream.set_nodelay(true);
    match layer {
        Layer::Plain => {
            if let Err(e) = converse(&mut stream, peer, &served, &transfers, opts, None).await {
                debug!(%peer, "TCP connection closed: {e}");
            }
            // The slot is free before the client sees the close, so that it can
            // connect again at once.
            drop(permit);
            drop(stream);
        }
        Layer::Tls(tls) => {
            let Some(mut stream) = tls.handshake(stream, peer).await else {
                return;
            };
            if let Err(e) = converse(
                &mut stream,
                peer,
                &served,
                &transfers,
                opts,
                Some(&*tls.stats),
            )
            .await
            {
                debug!(%peer, "TLS connection closed: {e}");
            }
            drop(permit);
            crate::serve::encrypted::tls::close(stream, opts.idle_timeout).await;
        }
        Layer::Https(tls) => {
            let Some(stream) = tls.handshake(stream, peer).await else {
                return;
            };
            crate::serve::encrypted::https::serve_connection(
                stream,
                peer,
                served,
                opts,
                tls.max_streams,
                &tls.stats,
            )
            .await;
            drop(permit);
        }
    }
}

/// A byte stream DNS messages are exchanged over: a TCP connection, or a
/// TLS session over one.
pub(crate) trait DnsStream: AsyncRead + AsyncWrite + Unpin + Send {
    /// The transport its queries are answered as.
    const TRANSPORT: Transport;
    /// The `transport` label its queries are counted under.
    const COUNTED_AS: metrics::Transport;
    /// The TCP connection underneath (for socket options).
    fn tcp(&self) -> &TcpStream;
}

impl DnsStream for TcpStream {
    const TRANSPORT: Transport = Transport::Tcp;
    const COUNTED_AS: metrics::Transport = metrics::Transport::Tcp;
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl DnsStream for tokio_rustls::server::TlsStream<TcpStream> {
    const TRANSPORT: Transport = Transport::Tls;
    const COUNTED_AS: metrics::Transport = metrics::Transport::Tls;
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Answers messages on one connection, in order; counts the answers in
/// `stats` (encrypted transports).
async fn converse<S: DnsStream>(
    stream: &mut S,
    peer: SocketAddr,
    served: &Served,
    transfers: &Arc<Transfers>,
    opts: TcpOptions,
    stats: Option<&Stats>,
) -> io::Result<()> {
    let mut packet = Vec::new();
    let mut out = Vec::with_capacity(4096);
    let mut scratch = Scratch::default();
    let end_of_life = tokio::time::Instant::now() + opts.max_lifetime;
    for _ in 0..opts.max_queries {
        let now = tokio::time::Instant::now();
        if now >= end_of_life {
            debug!(%peer, "TCP connection reached its maximum lifetime; closing");
            return Ok(());
        }
        let wait = opts.idle_timeout.min(end_of_life - now);
        match tokio::time::timeout(wait, read_message(stream, &mut packet)).await {
            Err(_) => {
                debug!(%peer, "TCP connection idle too long (or at the end of its lifetime); closing");
                return Ok(());
            }
            Ok(Ok(false)) => return Ok(()),
            Ok(Ok(true)) => {}
            Ok(Err(e)) => return Err(e),
        }
        let zones = served.zone_list().load_full();
        match wire::answer(&zones, &packet, S::TRANSPORT, &mut out, &mut scratch) {
            Answer::Reply => {
                // Counted before it is sent, so that a client holding the
                // answer always finds it counted.
                metrics::count_answer(S::COUNTED_AS, &out);
                if let Some(stats) = stats {
                    stats
                        .tls_answers
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                crate::transfer::framing::write_message(stream, &out, opts.idle_timeout).await?;
            }
            // Not a query: nothing a DNS client would send.
            Answer::None => return Ok(()),
            Answer::Transfer => {
                // Keep only the zone transferred, not the table: a long
                // transfer would otherwise keep the replaced versions of
                // every other zone that changes while it runs.
                let zone = zones.get(scratch.qname()).cloned();
                drop(zones);
                crate::transfer::framing::pace_by_reader(stream.tcp());
                let (report, written) = crate::transfer::serve(
                    &packet,
                    peer,
                    zone.as_deref(),
                    stream,
                    opts.idle_timeout,
                    transfers,
                )
                .await;
                metrics::count_transfer(S::COUNTED_AS, &report);
                written?;
            }
        }
    }
    debug!(%peer, "TCP connection reached its message limit; closing");
    Ok(())
}

/// Reads one length-prefixed message into `buf` (resized to its length);
/// `Ok(false)` if the client closed the connection between messages.
async fn read_message<R: AsyncRead + Unpin>(stream: &mut R, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = [0u8; 2];
    if stream.read(&mut len[..1]).await? == 0 {
        return Ok(false);
    }
    stream.read_exact(&mut len[1..]).await?;
    buf.clear();
    buf.resize(usize::from(u16::from_be_bytes(len)), 0);
    stream.read_exact(buf).await?;
    Ok(true)
}

/// Raises the soft limit on open files to the hard limit, so that the
/// connection limits, not the descriptor limit, bound the server (many
/// systems start processes at 1,024 soft with a much higher hard limit).
pub(crate) fn raise_open_file_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `rl`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 || rl.rlim_cur >= rl.rlim_max {
            return;
        }
        let from = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) == 0 {
            debug!(from, to = rl.rlim_max, "raised the open file limit");
        } else {
            warn!(
                from,
                "cannot raise the open file limit: {}",
                io::Error::last_os_error()
            );
        }
    }
}
