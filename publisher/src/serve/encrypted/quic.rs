//! DNS over QUIC (RFC 9250) with [`quinn`]: ALPN `doq`, one query per
//! client-initiated bidirectional stream, each message with a two-octet
//! length prefix (RFC 9250 §4.2), the answer written on the same stream,
//! which is then finished.
//!
//! * The message id of a query MUST be 0 (RFC 9250 §4.2.1); a query with
//!   another id, a stream whose length prefix does not match what it
//!   carries, or a message that is not a DNS query closes the connection
//!   with `DOQ_PROTOCOL_ERROR` (RFC 9250 §4.3). The answer carries the
//!   query's id, 0.
//! * Bounds: connections at once in total and per source as for TCP
//!   ([`TcpOptions::max_clients`], [`TcpOptions::max_per_source`]; a
//!   connection over them is refused before its handshake), the handshake
//!   within the handshake timeout, at most
//!   [`super::EncryptedOptions::max_streams`] streams open at once per
//!   connection (QUIC stream credit; no unidirectional streams), a stream
//!   of at most 2 + 65,535 octets that must be complete within the idle
//!   timeout, and the connection closed after the idle timeout without
//!   packets (QUIC's idle timeout). No limit of queries per connection:
//!   QUIC connections are meant to last.
//! * Zone transfers (RFC 9250 §4.2 allows them) are REFUSED here.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::debug;

use super::Stats;
use crate::serve::installed::Served;
use crate::serve::tcp::{Limiter, Permit, TcpOptions};
use crate::serve::wire::{self, Answer, Scratch, Transport, MAX_TCP_MESSAGE};

/// RFC 9250 §4.3: no error (a connection closed when it is done).
const DOQ_NO_ERROR: u32 = 0x0;
/// RFC 9250 §4.3: the peer violated the protocol.
const DOQ_PROTOCOL_ERROR: u32 = 0x2;

/// The limits of a QUIC listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuicLimits {
    pub(crate) tcp: TcpOptions,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_streams: u32,
}

/// A running DNS over QUIC listener.
#[derive(Debug)]
pub(crate) struct QuicServer {
    endpoint: Endpoint,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl QuicServer {
    /// Serves from `served` on the bound `socket`.
    pub(crate) fn spawn(
        socket: std::net::UdpSocket,
        tls: Arc<rustls::ServerConfig>,
        served: Arc<Served>,
        limits: QuicLimits,
        stats: Arc<Stats>,
    ) -> Result<Self, String> {
        let crypto = QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_concurrent_bidi_streams(VarInt::from_u32(limits.max_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            // A stream carries one query: it never needs more credit than
            // its length prefix allows. Data read out of quinn frees
            // credit, so what a connection holds is bounded by
            // `max_streams` queries of at most 65,537 octets.
            .stream_receive_window(VarInt::from_u32(2 + MAX_TCP_MESSAGE as u32))
            .receive_window(VarInt::from_u32(
                limits
                    .max_streams
                    .saturating_mul(2 + MAX_TCP_MESSAGE as u32),
            ))
            .max_idle_timeout(Some(
                quinn::IdleTimeout::try_from(limits.tcp.idle_timeout)
                    .map_err(|e| format!("idle timeout: {e}"))?,
            ));
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(Arc::new(transport));
        // Handshakes not yet taken by the accept loop.
        config.max_incoming(limits.tcp.max_clients.max(1));
        let runtime = quinn::default_runtime().ok_or("no async runtime for QUIC")?;
        let endpoint = Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(config),
            socket,
            runtime,
        )
        .map_err(|e| e.to_string())?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            endpoint.clone(),
            served,
            limits,
            stats,
            stopped,
        ));
        Ok(QuicServer {
            endpoint,
            stop,
            task,
        })
    }

    /// The address bound.
    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Closes every connection and the socket.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.endpoint
            .close(VarInt::from_u32(DOQ_NO_ERROR), b"server stopping");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

async fn accept_loop(
    endpoint: Endpoint,
    served: Arc<Served>,
    limits: QuicLimits,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) {
    let limiter = Limiter::new(limits.tcp.max_clients, limits.tcp.max_per_source);
    let mut connections = JoinSet::new();
    loop {
        let incoming = tokio::select! {
            _ = stop.changed() => break,
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
        };
        while connections.try_join_next().is_some() {}
        let peer = incoming.remote_address();
        match limiter.admit(peer.ip()) {
            Ok(permit) => {
                connections.spawn(connection(
                    incoming,
                    peer,
                    permit,
                    served.clone(),
                    limits,
                    stats.clone(),
                ));
            }
            Err(full) => {
                debug!(%peer, "QUIC connection refused: {full}");
                incoming.refuse();
            }
        }
    }
    connections.shutdown().await;
}

/// Serves one connection: a task per stream, at most `max_streams` at
/// once (the client gets no more stream credit).
async fn connection(
    incoming: quinn::Incoming,
    peer: SocketAddr,
    _permit: Permit,
    served: Arc<Served>,
    limits: QuicLimits,
    stats: Arc<Stats>,
) {
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            debug!(%peer, "QUIC connection not accepted: {e}");
            return;
        }
    };
    let conn = match tokio::time::timeout(limits.handshake_timeout, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            debug!(%peer, "DNS over QUIC handshake failed: {e}");
            stats.failed_handshakes.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(_) => {
            debug!(%peer, "DNS over QUIC handshake took too long");
            stats.failed_handshakes.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let mut streams = JoinSet::new();
    loop {
        while streams.try_join_next().is_some() {}
        let (send, recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(e) => {
                debug!(%peer, "QUIC connection closed: {e}");
                break;
            }
        };
        streams.spawn(stream(
            conn.clone(),
            send,
            recv,
            served.clone(),
            limits.tcp.idle_timeout,
            stats.clone(),
        ));
    }
    streams.shutdown().await;
}

/// Answers the query on one stream.
async fn stream(
    conn: Connection,
    mut send: SendStream,
    mut recv: RecvStream,
    served: Arc<Served>,
    idle: Duration,
    stats: Arc<Stats>,
) {
    let protocol_error = |why: &'static str| {
        debug!(peer = %conn.remote_address(), "DNS over QUIC protocol error: {why}");
        conn.close(VarInt::from_u32(DOQ_PROTOCOL_ERROR), why.as_bytes());
    };
    let data = match tokio::time::timeout(idle, recv.read_to_end(2 + MAX_TCP_MESSAGE)).await {
        Ok(Ok(d)) => d,
        Ok(Err(quinn::ReadToEndError::TooLong)) => {
            return protocol_error("message longer than 65,535 octets")
        }
        Ok(Err(e)) => {
            debug!("DNS over QUIC stream failed: {e}");
            return;
        }
        Err(_) => {
            let _ = recv.stop(VarInt::from_u32(DOQ_NO_ERROR));
            debug!("DNS over QUIC stream idle too long");
            return;
        }
    };
    let Some((prefix, packet)) = data.split_first_chunk::<2>() else {
        return protocol_error("stream shorter than its length prefix");
    };
    if usize::from(u16::from_be_bytes(*prefix)) != packet.len() {
        return protocol_error("length prefix does not match the message");
    }
    if packet.len() >= 2 && packet[..2] != [0, 0] {
        return protocol_error("message id is not 0");
    }
    let zones = served.zone_list().load_full();
    let mut out = Vec::new();
    let mut scratch = Scratch::default();
    match wire::answer(&zones, packet, Transport::Message, &mut out, &mut scratch) {
        Answer::Reply => {}
        Answer::None | Answer::Transfer => return protocol_error("not a DNS query"),
    }
    drop(zones);
    let mut frame = Vec::with_capacity(out.len() + 2);
    frame.extend_from_slice(&(out.len() as u16).to_be_bytes());
    frame.extend_from_slice(&out);
    // Counted before it is sent, so that a client holding the answer
    // always finds it counted.
    stats.quic_answers.fetch_add(1, Ordering::Relaxed);
    crate::serve::metrics::count_answer(crate::serve::metrics::Transport::Quic, &out);
    match tokio::time::timeout(idle, send.write_all(&frame)).await {
        Ok(Ok(())) => {
            let _ = send.finish();
        }
        Ok(Err(e)) => debug!("DNS over QUIC answer not sent: {e}"),
        Err(_) => debug!("DNS over QUIC peer read nothing for the idle timeout"),
    }
}
