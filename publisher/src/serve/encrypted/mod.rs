//! The encrypted listeners of the server: DNS over TLS (RFC 7858), DNS
//! over HTTPS (RFC 8484, HTTP/2) and DNS over QUIC (RFC 9250), next to
//! plain UDP and TCP.
//!
//! Every answer comes from the one encoder (module `serve::wire`) with
//! the TCP size limit, so what is found, missing or referred is decided as
//! over UDP and TCP; on these transports answers to EDNS queries are
//! padded to a multiple of 468 octets (RFC 7830, RFC 8467), so that the
//! size of an answer does not tell a found name from a missing one.
//! Response rate limiting ([`crate::serve::rrl`]) applies to UDP only: it
//! protects against spoofed sources, which a completed handshake rules
//! out.
//!
//! * DNS over TLS listeners run the TCP accept loop of
//!   [`crate::serve::tcp`] with a TLS handshake in front (module `tls`):
//!   same connection limits (per listener), idle timeout, message limit
//!   and lifetime, pipelining, and zone transfers (XoT, RFC 9103) under
//!   the same transfer policy as over TCP.
//! * DNS over HTTPS: the same accept loop, then HTTP/2 (module `https`).
//! * DNS over QUIC: quinn (module `quic`).
//!
//! All of them present the certificate of one [`certs::CertStore`],
//! reloaded when its files change (module `certs`).

pub mod certs;
pub(crate) mod https;
pub(crate) mod quic;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use crate::serve::installed::Served;
use crate::serve::tcp::{TcpOptions, TcpServer};
use certs::{CertError, CertPaths, CertStore, CertWatcher};
use quic::{QuicLimits, QuicServer};
use tls::Handshaker;

/// Where and how to serve the encrypted transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedOptions {
    /// DNS over TLS addresses (RFC 7858; port 853 by convention).
    pub tls: Vec<SocketAddr>,
    /// DNS over HTTPS addresses (RFC 8484; port 443 by convention).
    pub https: Vec<SocketAddr>,
    /// DNS over QUIC addresses (RFC 9250; UDP port 853 by convention).
    pub quic: Vec<SocketAddr>,
    /// The certificate chain and key every listener presents; required as
    /// soon as one listener is given.
    pub certificate: Option<CertPaths>,
    /// How long a TLS or QUIC handshake may take before the connection is
    /// closed.
    pub handshake_timeout: Duration,
    /// Queries in flight at once on one HTTP/2 or QUIC connection (DNS
    /// over TLS answers one at a time, in order).
    pub max_streams: u32,
}

impl EncryptedOptions {
    /// No listener; a 5 s handshake timeout (a handshake is one or two
    /// round trips); 100 streams per connection (HTTP/2's recommended
    /// minimum for `SETTINGS_MAX_CONCURRENT_STREAMS`, RFC 9113 §6.5.2).
    pub const DEFAULT: EncryptedOptions = EncryptedOptions {
        tls: Vec::new(),
        https: Vec::new(),
        quic: Vec::new(),
        certificate: None,
        handshake_timeout: Duration::from_secs(5),
        max_streams: 100,
    };

    /// Whether any encrypted listener is asked for.
    pub fn any(&self) -> bool {
        !(self.tls.is_empty() && self.https.is_empty() && self.quic.is_empty())
    }
}

impl Default for EncryptedOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why the encrypted listeners cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EncryptedError {
    /// A listener was asked for without a certificate.
    #[error("an encrypted listener (--listen-tls, --listen-https, --listen-quic) needs a certificate and key (--tls-cert, --tls-key)")]
    NoCertificate,
    /// The certificate or key cannot be used.
    #[error(transparent)]
    Certificate(#[from] CertError),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A listening socket cannot be bound.
    #[error("cannot listen on {addr} ({what}): {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which transport.
        what: &'static str,
        /// The cause.
        reason: String,
    },
    /// The certificate files cannot be watched.
    #[error("cannot watch the TLS certificate files: {0}")]
    Watch(#[from] notify::Error),
}

/// Counters of the encrypted listeners.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) tls_answers: AtomicU64,
    pub(crate) https_answers: AtomicU64,
    pub(crate) quic_answers: AtomicU64,
    pub(crate) failed_handshakes: AtomicU64,
}

impl Stats {
    fn snapshot(&self) -> EncryptedStats {
        EncryptedStats {
            tls_answers: self.tls_answers.load(Ordering::Relaxed),
            https_answers: self.https_answers.load(Ordering::Relaxed),
            quic_answers: self.quic_answers.load(Ordering::Relaxed),
            failed_handshakes: self.failed_handshakes.load(Ordering::Relaxed),
        }
    }
}

/// What the encrypted listeners have done so far: for monitoring, and for
/// tests to prove that a client really used an encrypted transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncryptedStats {
    /// Answers over DNS over TLS (zone transfers not counted), counted as
    /// they are written (an answer the peer never read counts too).
    pub tls_answers: u64,
    /// Answers over DNS over HTTPS, counted as they are written.
    pub https_answers: u64,
    /// Answers over DNS over QUIC, counted as they are written.
    pub quic_answers: u64,
    /// Handshakes that failed or took too long (all transports).
    pub failed_handshakes: u64,
}

/// What a connection accepted by [`crate::serve::tcp`] speaks.
#[derive(Debug, Clone)]
pub(crate) enum Layer {
    /// Plain DNS over TCP.
    Plain,
    /// DNS over TLS.
    Tls(Arc<Handshaker>),
    /// DNS over HTTPS.
    Https(Arc<Handshaker>),
}

/// The running encrypted listeners.
pub(crate) struct Running {
    tls: Vec<(SocketAddr, TcpServer)>,
    https: Vec<(SocketAddr, TcpServer)>,
    quic: Vec<(SocketAddr, QuicServer)>,
    store: Arc<CertStore>,
    watcher: Arc<CertWatcher>,
    stats: Arc<Stats>,
}

impl Running {
    pub(crate) fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.tls.iter().map(|(a, _)| *a).collect()
    }
    pub(crate) fn https_addrs(&self) -> Vec<SocketAddr> {
        self.https.iter().map(|(a, _)| *a).collect()
    }
    pub(crate) fn quic_addrs(&self) -> Vec<SocketAddr> {
        self.quic.iter().map(|(a, _)| *a).collect()
    }
    pub(crate) fn stats(&self) -> EncryptedStats {
        self.stats.snapshot()
    }
    pub(crate) fn store(&self) -> &Arc<CertStore> {
        &self.store
    }

    /// Stops every listener and the certificate watcher.
    pub(crate) async fn stop(self) {
        let watcher = self.watcher.clone();
        let _ = tokio::task::spawn_blocking(move || watcher.stop()).await;
        for (_, s) in self.tls.into_iter().chain(self.https) {
            let _ = s.stop().await;
        }
        for (_, q) in self.quic {
            q.stop().await;
        }
    }
}

fn bind_tcp(addr: SocketAddr, what: &'static str) -> Result<std::net::TcpListener, EncryptedError> {
    crate::serve::tcp_listener(addr).map_err(|e| EncryptedError::Bind {
        addr,
        what,
        reason: e.to_string(),
    })
}

/// The sockets of the encrypted listeners, bound before anything is read
/// (and before privileges are dropped, see [`crate::serve::privileges`]).
#[derive(Debug, Default)]
pub(crate) struct Bound {
    tls: Vec<std::net::TcpListener>,
    https: Vec<std::net::TcpListener>,
    quic: Vec<(SocketAddr, std::net::UdpSocket)>,
}

/// Binds every listener `opts` asks for, in order.
pub(crate) fn bind(opts: &EncryptedOptions) -> Result<Bound, EncryptedError> {
    let mut bound = Bound::default();
    for &addr in &opts.tls {
        bound.tls.push(bind_tcp(addr, "DNS over TLS")?);
    }
    for &addr in &opts.https {
        bound.https.push(bind_tcp(addr, "DNS over HTTPS")?);
    }
    for &addr in &opts.quic {
        let s = crate::serve::udp_socket(addr).map_err(|e| EncryptedError::Bind {
            addr,
            what: "DNS over QUIC",
            reason: e.to_string(),
        })?;
        bound.quic.push((addr, s));
    }
    Ok(bound)
}

/// A bound std listener made a tokio one.
fn listener(
    l: std::net::TcpListener,
    what: &'static str,
) -> Result<(tokio::net::TcpListener, SocketAddr), EncryptedError> {
    let addr = l
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let err = |e: std::io::Error| EncryptedError::Bind {
        addr,
        what,
        reason: e.to_string(),
    };
    l.set_nonblocking(true).map_err(err)?;
    Ok((tokio::net::TcpListener::from_std(l).map_err(err)?, addr))
}

/// Loads the certificate, binds every encrypted listener of `opts` and
/// starts serving `served` on them; `None` when none is asked for.
pub(crate) async fn start(
    opts: &EncryptedOptions,
    bound: Bound,
    tcp: TcpOptions,
    served: &Arc<Served>,
    debounce: Duration,
) -> Result<Option<Running>, EncryptedError> {
    if !opts.any() {
        return Ok(None);
    }
    let paths = opts
        .certificate
        .clone()
        .ok_or(EncryptedError::NoCertificate)?;
    // Two small files, read once at start.
    let store = CertStore::open(paths)?;
    let stats = Arc::new(Stats::default());
    let mut running = Running {
        tls: Vec::new(),
        https: Vec::new(),
        quic: Vec::new(),
        watcher: Arc::new(CertWatcher::spawn(store.clone(), debounce)?),
        store: store.clone(),
        stats: stats.clone(),
    };
    let result = async {
        if !opts.tls.is_empty() {
            let config = tls::server_config(&store, tls::ALPN_DOT, false)?;
            let hs = Arc::new(Handshaker::new(
                config,
                opts.handshake_timeout,
                opts.max_streams,
                stats.clone(),
                "DNS over TLS",
            ));
            for l in bound.tls {
                let (l, bound) = listener(l, "DNS over TLS")?;
                let s = TcpServer::spawn(l, served.clone(), tcp, Layer::Tls(hs.clone()));
                info!(addr = %bound, "serving DNS over TLS");
                running.tls.push((bound, s));
            }
        }
        if !opts.https.is_empty() {
            let config = tls::server_config(&store, tls::ALPN_H2, false)?;
            let hs = Arc::new(Handshaker::new(
                config,
                opts.handshake_timeout,
                opts.max_streams,
                stats.clone(),
                "DNS over HTTPS",
            ));
            for l in bound.https {
                let (l, bound) = listener(l, "DNS over HTTPS")?;
                let s = TcpServer::spawn(l, served.clone(), tcp, Layer::Https(hs.clone()));
                info!(addr = %bound, path = https::PATH, "serving DNS over HTTPS");
                running.https.push((bound, s));
            }
        }
        if !opts.quic.is_empty() {
            let config = tls::server_config(&store, tls::ALPN_DOQ, true)?;
            let limits = QuicLimits {
                tcp,
                handshake_timeout: opts.handshake_timeout,
                max_streams: opts.max_streams,
            };
            for (addr, socket) in bound.quic {
                let q = QuicServer::spawn(
                    socket,
                    config.clone(),
                    served.clone(),
                    limits,
                    stats.clone(),
                )
                .map_err(|reason| EncryptedError::Bind {
                    addr,
                    what: "DNS over QUIC",
                    reason,
                })?;
                let bound = q.local_addr().unwrap_or(addr);
                info!(addr = %bound, "serving DNS over QUIC");
                running.quic.push((bound, q));
            }
        }
        Ok::<(), EncryptedError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(Some(running)),
        Err(e) => {
            running.stop().await;
            Err(e)
        }
    }
}
