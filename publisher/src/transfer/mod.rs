//! Zone transfer out (AXFR) and NOTIFY, so that the DNS servers operators
//! already run can be secondaries of `mimi-publisher serve`.
//!
//! hickory's catalog answers AXFR with the whole zone in a single message,
//! which cannot hold more than 64 KiB: a few hundred mimi records. This
//! module answers transfers itself, streaming the zone as a sequence of
//! messages (RFC 5936 §2.2), each TSIG-signed when the zone has a key
//! (RFC 8945 §5.3.1: the first message's MAC covers the request's MAC, each
//! later one the previous MAC). IXFR requests are answered from the zone's
//! journal (`ixfr`, [`crate::zone::journal`]): the difference from the
//! secondary's serial, or the full zone in AXFR form when that serial is
//! not journaled (RFC 1995 §4).
//!
//! Access is decided here too: the peer's address must be in the zone's
//! `transfer.allow` list and, when the zone has a TSIG key, the request must
//! be signed with it. Everything else gets REFUSED (or NOTAUTH for a bad
//! signature). Over UDP only IXFR is answered (one message, see `ixfr`);
//! AXFR over UDP is refused. Ordinary queries signed with the zone's key
//! get signed answers (`signed_query`).
//!
//! A TCP request that passes those checks then needs a place among the
//! transfers running ([`limit`]): over the limit it is REFUSED. A transfer
//! holds its zone through an `Arc`, so a zone replaced by a reload meanwhile
//! stays in memory until the transfers of it end, and each secondary gets
//! one consistent serial.

pub(crate) mod framing;
pub(crate) mod ixfr;
pub mod limit;
pub mod push;
pub(crate) mod signed_query;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::{make_tsig_record, TSIG};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigResponseContext, TSigner};
use mimi_proto::text::split_txt;
use mimi_proto::DomainName;
use tokio::io::AsyncWrite;
use tracing::{debug, info, warn};

use crate::input::tsig::TsigKey;
use crate::zone::served::ServedZone;
use crate::zone::Zone;
use limit::Transfers;

pub use crate::input::config::TransferPolicy;
pub use limit::TransferOptions;

/// Target size of one transfer message: below the 64 KiB TCP limit, large
/// enough that a million-record zone is about 5,000 messages.
const MESSAGE_BUDGET: usize = 60 * 1024;

/// Answers the zone-transfer request `packet` (AXFR or IXFR, class IN,
/// as classified by `crate::serve::wire`) that `peer` sent over TCP, for
/// `served` (the served zone whose origin is the query name, if any).
///
/// Each message is written to `out` as soon as it is encoded and signed,
/// so that a transfer holds one message in memory, never the zone, and
/// goes at the pace the secondary reads. A refusal is written within
/// `write_timeout` of no progress (the TCP idle timeout), the transfer's
/// messages within [`TransferOptions::idle_timeout`] of `transfers`, which
/// also bounds how many run at once. An error is an I/O failure of the
/// connection, which the caller then closes; refusals are answers. The
/// report tells what became of the request, for the server's counters.
pub(crate) async fn serve<W: AsyncWrite + Unpin>(
    packet: &[u8],
    peer: SocketAddr,
    served: Option<&ServedZone>,
    out: &mut W,
    write_timeout: Duration,
    transfers: &Arc<Transfers>,
) -> (TransferReport, io::Result<()>) {
    // As classified by the encoder: AXFR or IXFR.
    let ixfr = packet.len() >= 12 && ixfr_question(packet);
    let report = |result| TransferReport { ixfr, result };
    let request = match Message::from_vec(packet) {
        Ok(m) => m,
        Err(e) => {
            info!(%peer, "zone transfer request cannot be decoded: {e}");
            let mut bytes = packet[..12].to_vec();
            bytes[2] = 0x80 | (bytes[2] & 0x79);
            bytes[3] = ResponseCode::FormErr.low();
            bytes[4..12].fill(0);
            return (
                report(TransferResult::Refused(Refusal::Malformed, None)),
                framing::write_message(out, &bytes, write_timeout).await,
            );
        }
    };
    let decision = authorize(&request, packet, peer, served).and_then(|(served, signer)| {
        // Only a request that may transfer counts against the limits.
        let permit = transfers.admit(peer.ip()).map_err(|busy| {
            info!(%peer, "zone transfer refused: {busy}");
            Refusal::Busy
        })?;
        Ok((served, signer, permit))
    });
    let (served, signer, _permit) = match decision {
        Ok(d) => d,
        Err(refusal) => {
            let mut response = response_to(&request);
            response.metadata.response_code = refusal.rcode();
            let zone = served.map(|s| s.zone.origin.clone());
            let written = match response.to_vec() {
                Ok(bytes) => framing::write_message(out, &bytes, write_timeout).await,
                Err(e) => Err(io::Error::other(e.to_string())),
            };
            return (report(TransferResult::Refused(refusal, zone)), written);
        }
    };
    let zone = &*served.zone;
    let plan = ixfr::Plan::new(&request, served);
    let idle = transfers.options().idle_timeout;
    match stream_records(&request, plan.records(served), signer, out, idle).await {
        Ok(messages) => {
            plan.log(peer, served, "TCP", messages);
            (
                report(TransferResult::Completed(zone.origin.clone())),
                Ok(()),
            )
        }
        Err(e) => {
            warn!(%peer, origin = %zone.origin, kind = plan.kind(), "zone transfer failed: {e}");
            (report(TransferResult::Failed(zone.origin.clone())), Err(e))
        }
    }
}

/// Whether the question of `packet` (a well-formed query, as the encoder
/// classified it) asks for IXFR.
fn ixfr_question(packet: &[u8]) -> bool {
    let mut pos = 12;
    while let Some(&len) = packet.get(pos) {
        if len == 0 {
            pos += 1;
            break;
        }
        if len & 0xc0 != 0 {
            pos += 2;
            break;
        }
        pos += 1 + usize::from(len);
    }
    packet.get(pos..pos + 2) == Some(&[0, 251])
}

/// What became of a zone transfer request, for the server's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TransferReport {
    /// IXFR asked (otherwise AXFR).
    pub(crate) ixfr: bool,
    /// The outcome.
    pub(crate) result: TransferResult,
}

/// The outcome of a zone transfer request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TransferResult {
    /// Every message of the zone was written.
    Completed(DomainName),
    /// The connection failed during the transfer.
    Failed(DomainName),
    /// Refused, with the served zone asked for if there is one.
    Refused(Refusal, Option<DomainName>),
}

/// Why a zone transfer request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The request cannot be decoded (FORMERR).
    Malformed,
    /// The query name is not the apex of a served zone.
    NotServed,
    /// The zone has no `[transfer]` section.
    NoTransfer,
    /// The peer is not in `transfer.allow`.
    NotAllowed,
    /// The zone requires TSIG and the request is unsigned.
    Unsigned,
    /// The request's TSIG key is unknown, its signature bad or its time
    /// outside the fudge window (NOTAUTH).
    BadTsig,
    /// Too many transfers run at once (in total or from this peer).
    Busy,
}

impl Refusal {
    /// The RCODE answered.
    pub(crate) fn rcode(self) -> ResponseCode {
        match self {
            Refusal::Malformed => ResponseCode::FormErr,
            Refusal::BadTsig => ResponseCode::NotAuth,
            _ => ResponseCode::Refused,
        }
    }

    /// The `reason` label of `mimi_transfers_refused_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::NotServed => "not_served",
            Refusal::NoTransfer => "no_transfer_section",
            Refusal::NotAllowed => "not_allowed",
            Refusal::Unsigned => "unsigned",
            Refusal::BadTsig => "bad_tsig",
            Refusal::Busy => "busy",
        }
    }
}

/// Whether `peer` may transfer `served` with `request` (`packet` in wire
/// form): the zone must be served and have a `[transfer]` section whose
/// allow list has the peer, and a request to a zone with a TSIG key must
/// be signed with it. On success, the verified signature to sign the
/// answer with; otherwise the RCODE to answer with (logged here).
fn authorize<'z>(
    request: &Message,
    packet: &[u8],
    peer: SocketAddr,
    served: Option<&'z ServedZone>,
) -> Result<(&'z ServedZone, Option<RequestSignature>), Refusal> {
    let qtype = request.queries.first().map(|q| q.query_type());
    let refuse = |why: &str, refusal| {
        info!(%peer, ?qtype, "zone transfer refused: {why}");
        refusal
    };
    let served =
        served.ok_or_else(|| refuse("not the apex of a served zone", Refusal::NotServed))?;
    let policy = served
        .zone
        .transfer
        .as_deref()
        .ok_or_else(|| refuse("the zone has no [transfer] section", Refusal::NoTransfer))?;
    if !policy.allows(peer.ip()) {
        return Err(refuse(
            "peer address not in transfer.allow",
            Refusal::NotAllowed,
        ));
    }
    let signer = match &policy.key {
        None => None,
        Some(key) => Some(verify_request(request, packet, peer, key)?),
    };
    Ok((served, signer))
}

/// The response skeleton for `request`: same ID and question, QR set, RD
/// copied.
fn response_to(request: &Message) -> Message {
    let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata = Metadata::response_from_request(&request.metadata);
    response.metadata.recursion_available = false;
    response.queries = request.queries.clone();
    response
}

/// A verified request's signer and MAC, to sign the response stream.
#[derive(Clone)]
struct RequestSignature {
    signer: TSigner,
    mac: Vec<u8>,
}

fn verify_request(
    request: &Message,
    packet: &[u8],
    src: SocketAddr,
    key: &TsigKey,
) -> Result<RequestSignature, Refusal> {
    let Some(tsig) = request.signature() else {
        info!(%src, "zone transfer refused: the zone requires TSIG and the request is unsigned");
        return Err(Refusal::Unsigned);
    };
    if tsig.name.to_lowercase() != *key.name() {
        info!(%src, key = %tsig.name, "zone transfer refused: unknown TSIG key");
        return Err(Refusal::BadTsig);
    }
    let signer = key.signer();
    match signer.verify_message_byte(packet, None, true) {
        Ok((mac, _time, window)) => {
            let now = now_secs();
            if !window.contains(&now) {
                info!(%src, "zone transfer refused: TSIG time outside the fudge window");
                return Err(Refusal::BadTsig);
            }
            Ok(RequestSignature { signer, mac })
        }
        Err(e) => {
            info!(%src, "zone transfer refused: bad TSIG signature ({e})");
            Err(Refusal::BadTsig)
        }
    }
}

fn now_secs() -> u64 {
    mimi_proto::UnixTime::now().0
}

/// The zone as DNS records in transfer order: SOA, NS, glue, delegation
/// NS…, TXT…, PTR…, SOA, made one at a time. The apex records are the ones
/// the zone answers queries with.
fn zone_records(served: &ServedZone) -> impl Iterator<Item = Result<Record, String>> + '_ {
    let (soa, apex) = served.apex_records();
    let name =
        |d: &mimi_proto::DomainName| Name::from_ascii(d.fqdn()).map_err(|e| format!("{d}: {e}"));
    let ttl = served.zone.ttl;
    let cuts = served.zone.delegations.iter().flat_map(move |d| {
        d.ns.iter().map(move |ns| {
            Ok(Record::from_rdata(
                name(&d.owner)?,
                ttl,
                RData::NS(hickory_proto::rr::rdata::NS(name(ns)?)),
            ))
        })
    });
    let ptrs = served.zone.ptrs.iter().map(move |p| {
        Ok(Record::from_rdata(
            name(&p.owner)?,
            p.ttl,
            RData::PTR(hickory_proto::rr::rdata::PTR(name(&p.target)?)),
        ))
    });
    std::iter::once(Ok(soa.clone()))
        .chain(apex.cloned().map(Ok))
        .chain(cuts)
        .chain(txt_records(&served.zone.records))
        .chain(ptrs)
        .chain(std::iter::once(Ok(soa.clone())))
}

/// `records` (sorted) as DNS TXT records, made one at a time; records of
/// one owner share its name.
fn txt_records(
    records: &[crate::zone::ZoneRecord],
) -> impl Iterator<Item = Result<Record, String>> + '_ {
    records
        .chunk_by(|a, b| a.owner == b.owner)
        .flat_map(|group| {
            let owner = Name::from_ascii(group[0].owner.fqdn())
                .map_err(|e| format!("{}: {e}", group[0].owner));
            group.iter().map(move |r| {
                let strings: Vec<&[u8]> =
                    split_txt(&r.text).into_iter().map(str::as_bytes).collect();
                owner.clone().map(|owner| {
                    Record::from_rdata(owner, r.ttl, RData::TXT(TXT::from_bytes(strings)))
                })
            })
        })
}

/// Makes the messages of one transfer answer, each TSIG-signed when the
/// request was: the first over the request's MAC, each later one over the
/// previous message's MAC.
struct Signer<'a> {
    request: &'a Message,
    signature: Option<RequestSignature>,
    previous_mac: Option<Vec<u8>>,
    time: u64,
}

impl<'a> Signer<'a> {
    fn new(request: &'a Message, signature: Option<RequestSignature>) -> Self {
        Signer {
            request,
            signature,
            previous_mac: None,
            time: now_secs(),
        }
    }

    /// The next message, holding `records` in its answer section, with
    /// `edns` if given, in wire form.
    fn message(
        &mut self,
        records: Vec<Record>,
        edns: Option<hickory_proto::op::Edns>,
    ) -> io::Result<Vec<u8>> {
        let mut message = response_to(self.request);
        message.metadata.authoritative = true;
        message.metadata.response_code = ResponseCode::NoError;
        message.answers = records;
        message.edns = edns;
        let encode = |m: &Message| {
            m.to_vec()
                .map_err(|e| io::Error::other(format!("encoding a transfer message: {e}")))
        };
        if let Some(sig) = &self.signature {
            // The bytes to be signed: this message without its TSIG.
            let tbs = encode(&message)?;
            let id = self.request.metadata.id;
            let record = match &self.previous_mac {
                None => TSigResponseContext::new(
                    id,
                    self.time,
                    sig.signer.clone(),
                    sig.mac.clone(),
                    None,
                )
                .sign(&tbs)
                .map_err(|e| io::Error::other(format!("signing a transfer message: {e}")))?,
                Some(prev) => Box::new(
                    sign_subsequent(&sig.signer, id, self.time, prev, &tbs)
                        .map_err(io::Error::other)?,
                ),
            };
            self.previous_mac = Some(record.data.mac.clone());
            message.set_signature(record);
        }
        encode(&message)
    }
}

/// Signs and writes one transfer message after another.
struct Stream<'a, W> {
    signer: Signer<'a>,
    out: &'a mut W,
    write_timeout: Duration,
    messages: usize,
}

impl<W: AsyncWrite + Unpin> Stream<'_, W> {
    async fn send(&mut self, records: Vec<Record>) -> io::Result<()> {
        let bytes = self.signer.message(records, None)?;
        framing::write_message(self.out, &bytes, self.write_timeout).await?;
        self.messages += 1;
        Ok(())
    }
}

/// Streams `records` (the answer of a transfer, in order) as messages of
/// at most about [`MESSAGE_BUDGET`] octets; returns how many were sent.
async fn stream_records<W: AsyncWrite + Unpin>(
    request: &Message,
    records: impl Iterator<Item = Result<Record, String>>,
    signature: Option<RequestSignature>,
    out: &mut W,
    write_timeout: Duration,
) -> io::Result<usize> {
    let mut stream = Stream {
        signer: Signer::new(request, signature),
        out,
        write_timeout,
        messages: 0,
    };
    let mut chunk = Vec::new();
    let mut size = 0;
    for record in records {
        let record = record.map_err(io::Error::other)?;
        // Cut by an estimate of the encoded size.
        let estimate = record.name.len() + 16 + rdata_len(&record.data);
        if !chunk.is_empty() && size + estimate > MESSAGE_BUDGET {
            stream.send(std::mem::take(&mut chunk)).await?;
            size = 0;
        }
        size += estimate;
        chunk.push(record);
    }
    stream.send(chunk).await?;
    Ok(stream.messages)
}

/// RFC 8945 §5.3.1: a later message of a multi-message response is signed
/// over the previous MAC, the message, and the TSIG timers only.
fn sign_subsequent(
    signer: &TSigner,
    id: u16,
    time: u64,
    previous_mac: &[u8],
    message: &[u8],
) -> Result<Record<TSIG>, String> {
    let mut tbs = Vec::with_capacity(previous_mac.len() + message.len() + 10);
    tbs.extend_from_slice(&(previous_mac.len() as u16).to_be_bytes());
    tbs.extend_from_slice(previous_mac);
    tbs.extend_from_slice(message);
    tbs.extend_from_slice(&time.to_be_bytes()[2..]);
    tbs.extend_from_slice(&signer.fudge().to_be_bytes());
    let mac = signer
        .sign(&tbs)
        .map_err(|e| format!("signing a transfer message: {e}"))?;
    let tsig = TSIG::new(
        signer.algorithm().clone(),
        time,
        signer.fudge(),
        mac,
        id,
        None,
        Vec::new(),
    );
    Ok(make_tsig_record(signer.signer_name().clone(), tsig))
}

fn rdata_len(data: &RData) -> usize {
    match data {
        RData::TXT(t) => t.txt_data.iter().map(|s| s.len() + 1).sum(),
        _ => 64,
    }
}

/// Sends DNS NOTIFY for `zone` to each of its secondaries (RFC 1996), over
/// UDP, signed with the zone's TSIG key when it has one; retried a few
/// times until the secondary acknowledges. Failures are logged, never fatal:
/// secondaries also poll on the SOA refresh timer. Returns each
/// secondary's outcome, in the order of the zone's `notify` list.
pub async fn notify_secondaries(zone: &Zone) -> Vec<NotifyOutcome> {
    let Some(policy) = zone.transfer.as_deref() else {
        return Vec::new();
    };
    let Ok(origin) = Name::from_ascii(zone.origin.fqdn()) else {
        return Vec::new();
    };
    let tasks = policy.notify.iter().map(|&target| {
        let origin = origin.clone();
        let signer = policy.key.as_ref().map(TsigKey::signer);
        let serial = zone.soa.serial;
        async move {
            for attempt in 1..=3u32 {
                match notify_once(target, &origin, signer.as_ref()).await {
                    Ok(ResponseCode::NoError) => {
                        debug!(%target, %origin, serial, "NOTIFY acknowledged");
                        return NotifyOutcome::Acknowledged;
                    }
                    Ok(rcode) => {
                        warn!(%target, %origin, serial, "NOTIFY answered {rcode}");
                        return NotifyOutcome::Rejected;
                    }
                    Err(e) => debug!(%target, %origin, attempt, "NOTIFY not acknowledged: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            warn!(%target, %origin, serial, "NOTIFY not acknowledged after 3 attempts; the secondary will catch up at its refresh time");
            NotifyOutcome::Unanswered
        }
    });
    futures::future::join_all(tasks).await
}

/// What one secondary made of a NOTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// Answered NOERROR.
    Acknowledged,
    /// Answered with another RCODE.
    Rejected,
    /// No answer after every attempt.
    Unanswered,
}

impl NotifyOutcome {
    /// The `outcome` label of `mimi_notifies_sent_total`.
    pub fn label(self) -> &'static str {
        match self {
            NotifyOutcome::Acknowledged => "acknowledged",
            NotifyOutcome::Rejected => "rejected",
            NotifyOutcome::Unanswered => "unanswered",
        }
    }
}

async fn notify_once(
    target: SocketAddr,
    origin: &Name,
    signer: Option<&TSigner>,
) -> Result<ResponseCode, String> {
    let mut msg = Message::new(rand_id(), MessageType::Query, OpCode::Notify);
    msg.metadata.authoritative = true;
    let mut q = Query::query(origin.clone(), RecordType::SOA);
    q.set_query_class(DNSClass::IN);
    msg.add_query(q);
    let bytes = match signer {
        None => msg.to_vec().map_err(|e| e.to_string())?,
        Some(s) => {
            msg.finalize(s, now_secs()).map_err(|e| e.to_string())?;
            msg.to_vec().map_err(|e| e.to_string())?
        }
    };
    let bind: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("static");
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| e.to_string())?;
    // A connected socket receives only datagrams from the secondary's
    // address and port; the ID check below drops stale or forged replies
    // from there. Neither stops the wait for the real reply.
    sock.connect(target).await.map_err(|e| e.to_string())?;
    sock.send(&bytes).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + NOTIFY_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| "timed out".to_string())?;
        let n = n.map_err(|e| e.to_string())?;
        match Message::from_vec(&buf[..n]) {
            Ok(resp)
                if resp.metadata.id == msg.metadata.id
                    && resp.metadata.message_type == MessageType::Response
                    && resp.metadata.op_code == OpCode::Notify =>
            {
                return Ok(resp.metadata.response_code);
            }
            Ok(resp) => {
                debug!(%target, id = resp.metadata.id, "ignoring a datagram that is not the reply to our NOTIFY")
            }
            Err(e) => debug!(%target, "ignoring an undecodable datagram: {e}"),
        }
    }
}

/// How long one NOTIFY attempt waits for its reply.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(2);

fn rand_id() -> u16 {
    let mut b = [0u8; 2];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    u16::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_prefixes_and_mapped_addresses() {
        let p = TransferPolicy {
            allow: vec![
                "127.0.0.1/32".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            notify: vec![],
            key: None,
            journal: Default::default(),
        };
        assert!(p.allows("127.0.0.1".parse().unwrap()));
        assert!(p.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(p.allows("2001:db8::5".parse().unwrap()));
        assert!(!p.allows("127.0.0.2".parse().unwrap()));
        assert!(!p.allows("::1".parse().unwrap()));
    }

    /// A reply from another address, or with another ID, is not the
    /// secondary's acknowledgement: the NOTIFY is sent again, and the real
    /// acknowledgement ends the retries.
    #[tokio::test]
    async fn notify_waits_for_the_secondarys_own_reply() {
        let secondary = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stray = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut zone = (*crate::zone::served::tests::zone().zone).clone();
        zone.transfer = Some(std::sync::Arc::new(TransferPolicy {
            allow: vec![],
            notify: vec![secondary.local_addr().unwrap()],
            key: None,
            journal: Default::default(),
        }));
        let notifier = tokio::spawn(async move { notify_secondaries(&zone).await });
        let bound = Duration::from_secs(10);
        let mut buf = [0u8; 512];
        let mut receive = async || {
            let (n, from) = tokio::time::timeout(bound, secondary.recv_from(&mut buf))
                .await
                .expect("a NOTIFY arrives")
                .unwrap();
            let m = Message::from_vec(&buf[..n]).unwrap();
            assert_eq!(m.metadata.op_code, OpCode::Notify);
            assert_eq!(m.queries[0].name().to_string(), "example.com.");
            (m, from)
        };
        let ack = |request: &Message, id: u16| {
            let mut m = Message::new(id, MessageType::Response, OpCode::Notify);
            m.metadata.authoritative = true;
            m.queries = request.queries.clone();
            m.to_vec().unwrap()
        };
        let (first, from) = receive().await;
        // A forged acknowledgement from another port, then one with another
        // ID from the secondary's own address.
        stray
            .send_to(&ack(&first, first.metadata.id), from)
            .await
            .unwrap();
        secondary
            .send_to(&ack(&first, first.metadata.id.wrapping_add(1)), from)
            .await
            .unwrap();
        let (second, from) = receive().await;
        secondary
            .send_to(&ack(&second, second.metadata.id), from)
            .await
            .unwrap();
        tokio::time::timeout(bound, notifier)
            .await
            .expect("acknowledged NOTIFY ends")
            .unwrap();
        // It ended on the acknowledgement, not by giving up after three.
        let mut rest = [0u8; 512];
        assert_eq!(
            secondary.try_recv_from(&mut rest).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }
}
