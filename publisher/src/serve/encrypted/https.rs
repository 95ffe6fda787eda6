//! DNS over HTTPS (RFC 8484) over HTTP/2 ([`h2`]): `GET
//! /dns-query?dns=<base64url>` and `POST /dns-query` with
//! `content-type: application/dns-message`.
//!
//! Answers are `200` with `application/dns-message` and, when the answer
//! holds records, `cache-control: max-age=<smallest TTL>` (RFC 8484
//! §5.1); `404` for any other path, `405` for any other method, `415` for
//! a POST of another content type, `400` for a query that is missing, not
//! base64url, larger than 65,535 octets, or not a DNS query at all. Zone
//! transfers are not served over HTTPS (REFUSED, as the encoder answers
//! AXFR and IXFR on [`Transport::Message`]).
//!
//! Bounds: at most [`super::EncryptedOptions::max_streams`] requests in
//! flight per connection (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`),
//! headers of at most [`MAX_HEADER_LIST`] octets, a body read in full of
//! at most 65,535 octets within the idle timeout, and the connection
//! closed once it has had no request in flight for the idle timeout. There
//! is no limit of requests per connection: HTTP/2 connections are meant
//! to last, and clients (dnsperf 2.11, for one) stall rather than
//! reconnect after a GOAWAY.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{header, Method, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;
use tracing::debug;

use super::Stats;
use crate::serve::installed::Served;
use crate::serve::tcp::TcpOptions;
use crate::serve::wire::{self, Answer, Scratch, Transport, MAX_TCP_MESSAGE};

/// The path DNS queries are served at (RFC 8484 §4.1's example, and what
/// every client uses by default).
pub const PATH: &str = "/dns-query";
/// The media type of DNS messages (RFC 8484 §6).
pub const DNS_MESSAGE: &str = "application/dns-message";
/// The largest header list accepted: a GET query of 65,535 octets is
/// 87,380 in base64url, so this bounds GET queries too (larger ones must
/// be POSTed).
pub const MAX_HEADER_LIST: u32 = 96 * 1024;

/// What h2 writes is gathered up to this much before it goes to TLS: one
/// TLS record's worth (RFC 8446 §5.1).
const WRITE_BUFFER: usize = 16 * 1024;

/// Serves HTTP/2 requests on `stream` (a TLS session) until the client
/// closes it or it is idle for `opts.idle_timeout`.
pub(crate) async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    served: Arc<Served>,
    opts: TcpOptions,
    max_streams: u32,
    stats: &Arc<Stats>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let idle = opts.idle_timeout;
    // h2 writes each frame head and payload separately; through a buffer
    // they reach TLS as one write per flush, so that the frames written
    // together leave in one TLS record (see below).
    let stream = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, stream);
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(max_streams)
        .max_header_list_size(MAX_HEADER_LIST)
        .handshake::<_, Bytes>(stream);
    let mut conn = match tokio::time::timeout(idle, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            debug!(%peer, "HTTP/2 handshake failed: {e}");
            return;
        }
        Err(_) => {
            debug!(%peer, "HTTP/2 handshake took too long");
            return;
        }
    };
    // Bodies are read by one task per request; the answers are written by
    // this task, between two polls of the connection, so that a
    // response's HEADERS and DATA frames leave in one write (one TLS
    // record). Clients that poll the socket after each TLS record (dnsperf
    // 2.11) otherwise stall on a DATA record already read into their TLS
    // buffer.
    let mut requests = JoinSet::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<Ready>();
    loop {
        while requests.try_join_next().is_some() {}
        // `accept` drives the connection (it must be polled while requests
        // are in flight) and is cancel-safe.
        let next = tokio::select! {
            biased;
            Some(ready) = ready_rx.recv() => {
                respond(ready, &served, stats);
                continue;
            }
            next = tokio::time::timeout(idle, conn.accept()) => next,
        };
        let next = match next {
            Err(_) if requests.is_empty() => {
                debug!(%peer, "HTTPS connection idle too long; closing");
                break;
            }
            Err(_) => continue,
            Ok(next) => next,
        };
        match next {
            None => break,
            Some(Err(e)) => {
                debug!(%peer, "HTTPS connection closed: {e}");
                break;
            }
            Some(Ok((request, sender))) => {
                let (parts, mut body) = request.into_parts();
                if body.is_end_stream() {
                    // Nothing to wait for (GET, or an empty body).
                    let query = query_of(&parts, &mut body, idle).await;
                    respond(
                        Ready {
                            sender,
                            body,
                            query,
                        },
                        &served,
                        stats,
                    );
                } else {
                    let tx = ready_tx.clone();
                    requests.spawn(async move {
                        let query = query_of(&parts, &mut body, idle).await;
                        // A request refused before its body was read: read
                        // the rest (without keeping it, at most
                        // MAX_DISCARDED octets, within the idle timeout), so
                        // that the client, still sending, sees the response
                        // and not a reset stream.
                        if !body.is_end_stream() {
                            let _ = tokio::time::timeout(idle, discard(&mut body)).await;
                        }
                        let _ = tx.send(Ready {
                            sender,
                            body,
                            query,
                        });
                    });
                }
            }
        }
    }
    requests.shutdown().await;
}

/// A request read in full (or refused), waiting for its response.
struct Ready {
    sender: SendResponse<Bytes>,
    body: RecvStream,
    query: Result<Vec<u8>, StatusCode>,
}

/// A response without a body.
fn status(code: StatusCode) -> (StatusCode, Vec<u8>, Option<u32>) {
    (code, Vec::new(), None)
}

/// Answers one request (queues its frames; the connection writes them).
fn respond(ready: Ready, served: &Served, stats: &Stats) {
    let Ready {
        mut sender,
        body: request_body,
        query,
    } = ready;
    let (code, body, ttl) = match query {
        Err(code) => status(code),
        Ok(packet) => {
            let zones = served.zone_list().load_full();
            let mut out = Vec::new();
            let mut scratch = Scratch::default();
            match wire::answer(&zones, &packet, Transport::Message, &mut out, &mut scratch) {
                Answer::Reply => {
                    stats.https_answers.fetch_add(1, Ordering::Relaxed);
                    crate::serve::metrics::count_answer(
                        crate::serve::metrics::Transport::Https,
                        &out,
                    );
                    let ttl = wire::min_ttl(&out);
                    (StatusCode::OK, out, ttl)
                }
                // Not a DNS query (or a transfer, which the encoder never
                // hands on for this transport).
                Answer::None | Answer::Transfer => status(StatusCode::BAD_REQUEST),
            }
        }
    };
    let mut response = Response::builder().status(code);
    if code == StatusCode::OK {
        response = response
            .header(header::CONTENT_TYPE, DNS_MESSAGE)
            .header(header::CONTENT_LENGTH, body.len());
        if let Some(ttl) = ttl {
            response = response.header(header::CACHE_CONTROL, format!("max-age={ttl}"));
        }
    } else if code == StatusCode::METHOD_NOT_ALLOWED {
        response = response.header(header::ALLOW, "GET, POST");
    }
    let Ok(response) = response.body(()) else {
        return;
    };
    match sender.send_response(response, body.is_empty()) {
        Ok(mut send) if !body.is_empty() => {
            if let Err(e) = send.send_data(Bytes::from(body), true) {
                debug!("HTTPS response not sent: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => debug!("HTTPS response not sent: {e}"),
    }
    // Still more body: it is not wanted (RFC 9113 §8.1: the response is
    // complete; RST_STREAM with NO_ERROR ends the request).
    if !request_body.is_end_stream() {
        sender.send_reset(h2::Reason::NO_ERROR);
    }
}

/// The most of a refused request's body read and thrown away before the
/// stream is reset.
const MAX_DISCARDED: usize = 1 << 20;

/// Reads and drops the rest of a body, up to [`MAX_DISCARDED`] octets.
async fn discard(body: &mut RecvStream) {
    let mut seen = 0;
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        seen += chunk.len();
        if seen > MAX_DISCARDED {
            return;
        }
    }
}

/// The DNS query a request carries, or the status that refuses it.
async fn query_of(
    request: &http::request::Parts,
    body: &mut RecvStream,
    idle: Duration,
) -> Result<Vec<u8>, StatusCode> {
    if request.uri.path() != PATH {
        return Err(StatusCode::NOT_FOUND);
    }
    match request.method {
        Method::GET => {
            let query = request.uri.query().unwrap_or("");
            let dns = query
                .split('&')
                .find_map(|p| p.strip_prefix("dns="))
                .ok_or(StatusCode::BAD_REQUEST)?;
            // RFC 8484 §4.1: base64url without padding; padding is
            // tolerated.
            let packet = data_encoding::BASE64URL_NOPAD
                .decode(dns.trim_end_matches('=').as_bytes())
                .map_err(|_| StatusCode::BAD_REQUEST)?;
            if packet.len() > MAX_TCP_MESSAGE {
                return Err(StatusCode::BAD_REQUEST);
            }
            Ok(packet)
        }
        Method::POST => {
            let media = request
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(str::trim);
            if !media.is_some_and(|m| m.eq_ignore_ascii_case(DNS_MESSAGE)) {
                return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            let declared = request
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > MAX_TCP_MESSAGE as u64) {
                return Err(StatusCode::BAD_REQUEST);
            }
            tokio::time::timeout(idle, read_body(body))
                .await
                .map_err(|_| StatusCode::BAD_REQUEST)?
        }
        _ => Err(StatusCode::METHOD_NOT_ALLOWED),
    }
}

/// Reads a request body of at most 65,535 octets.
async fn read_body(body: &mut RecvStream) -> Result<Vec<u8>, StatusCode> {
    let mut packet = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if packet.len() + chunk.len() > MAX_TCP_MESSAGE {
            return Err(StatusCode::BAD_REQUEST);
        }
        packet.extend_from_slice(&chunk);
    }
    Ok(packet)
}
