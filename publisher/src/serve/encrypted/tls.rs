//! TLS for the encrypted listeners: the rustls server configurations (one
//! per protocol, for its ALPN, all presenting the [`CertStore`]'s pair)
//! and the bounded handshake of DNS over TLS and DNS over HTTPS
//! connections. Once the handshake is done, DNS over TLS is the TCP
//! conversation of [`crate::serve::tcp`] over the TLS stream.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use super::certs::CertStore;
use super::Stats;

/// ALPN of DNS over TLS (RFC 7858; IANA "dot"). A client offering no ALPN
/// is served too.
pub(crate) const ALPN_DOT: &[u8] = b"dot";
/// ALPN of DNS over HTTPS: HTTP/2 (RFC 8484 §5.2 recommends HTTP/2).
pub(crate) const ALPN_H2: &[u8] = b"h2";
/// ALPN of DNS over QUIC (RFC 9250 §4.1.1).
pub(crate) const ALPN_DOQ: &[u8] = b"doq";

/// A server configuration presenting `store`'s certificate and accepting
/// the protocols `alpn`; TLS 1.3 only with `tls13_only` (QUIC requires it),
/// otherwise TLS 1.2 and 1.3.
pub(crate) fn server_config(
    store: &Arc<CertStore>,
    alpn: &[u8],
    tls13_only: bool,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider);
    let builder = if tls13_only {
        builder.with_protocol_versions(&[&rustls::version::TLS13])?
    } else {
        builder.with_safe_default_protocol_versions()?
    };
    let mut config = builder
        .with_no_client_auth()
        .with_cert_resolver(store.clone());
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TLS sessions on TCP connections, within a time limit.
pub(crate) struct Handshaker {
    acceptor: TlsAcceptor,
    timeout: Duration,
    /// HTTP/2 streams at once per connection (DNS over HTTPS).
    pub(crate) max_streams: u32,
    /// Counts of the listeners this serves.
    pub(crate) stats: Arc<Stats>,
    /// For the log: "DNS over TLS" or "DNS over HTTPS".
    what: &'static str,
}

impl std::fmt::Debug for Handshaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshaker")
            .field("what", &self.what)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Handshaker {
    pub(crate) fn new(
        config: Arc<ServerConfig>,
        timeout: Duration,
        max_streams: u32,
        stats: Arc<Stats>,
        what: &'static str,
    ) -> Self {
        Handshaker {
            acceptor: TlsAcceptor::from(config),
            timeout,
            max_streams,
            stats,
            what,
        }
    }

    /// The TLS session on `stream`, or `None` (logged at debug, counted)
    /// if the handshake fails or does not end within the timeout: a failed
    /// handshake is the client's problem, never the listener's.
    pub(crate) async fn handshake(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<TlsStream<TcpStream>> {
        match tokio::time::timeout(self.timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                debug!(%peer, "{} handshake failed: {e}", self.what);
                self.stats.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(_) => {
                debug!(%peer, timeout = ?self.timeout, "{} handshake took too long", self.what);
                self.stats.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

/// Ends a TLS session with close_notify (RFC 8446 §6.1), waiting at most
/// `idle` for the peer to take it.
pub(crate) async fn close(mut stream: TlsStream<TcpStream>, idle: Duration) {
    let _ = tokio::time::timeout(idle, stream.shutdown()).await;
}
