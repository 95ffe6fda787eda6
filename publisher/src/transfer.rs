//! Zone transfer out (AXFR) and NOTIFY, so that the DNS servers operators
//! already run can be secondaries of `mimi-publisher serve`.
//!
//! hickory's catalog answers AXFR with the whole zone in a single message,
//! which cannot hold more than 64 KiB: a few hundred mimi records. This
//! module answers transfers itself, streaming the zone as a sequence of
//! messages (RFC 5936 §2.2), each TSIG-signed when the zone has a key
//! (RFC 8945 §5.3.1: the first message's MAC covers the request's MAC, each
//! later one the previous MAC). IXFR requests get the full zone in AXFR form,
//! which RFC 1995 §4 allows when no incremental history is kept; we keep
//! none.
//!
//! Access is decided here too: the peer's address must be in the zone's
//! `transfer.allow` list and, when the zone has a TSIG key, the request must
//! be signed with it. Everything else gets REFUSED (or NOTAUTH for a bad
//! signature), and transfers over UDP are refused.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::{make_tsig_record, TSIG};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigResponseContext, TSigner};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponseBuilder, UpdateRequest};
use mimi_proto::text::split_txt;
use tracing::{debug, info, warn};

use crate::answer::{serve_failed, ServedZone};
use crate::tsig::TsigKey;
use crate::zone::Zone;

/// Who may transfer a zone, and whom to NOTIFY of its new serials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferPolicy {
    /// Peers allowed to transfer (address prefixes).
    pub allow: Vec<ipnet::IpNet>,
    /// Secondaries to NOTIFY.
    pub notify: Vec<SocketAddr>,
    /// TSIG key required on transfers and used to sign responses and NOTIFYs.
    pub key: Option<TsigKey>,
}

impl TransferPolicy {
    /// Whether `ip` is in the allow list (IPv4-mapped IPv6 counts as IPv4).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// Target size of one transfer message: below the 64 KiB TCP limit, large
/// enough that a million-record zone is about 5,000 messages.
const MESSAGE_BUDGET: usize = 60 * 1024;

/// Whether a request is a zone transfer that this module answers.
pub fn is_transfer(request: &Request) -> bool {
    request.metadata.message_type == MessageType::Query
        && request.metadata.op_code == OpCode::Query
        && request
            .queries
            .queries()
            .first()
            .is_some_and(|q| matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR))
}

/// Answers a zone-transfer request for `zone` (the served zone whose origin
/// is the query name, if any).
pub async fn answer<R: ResponseHandler>(
    request: &Request,
    served: Option<&ServedZone>,
    mut response_handle: R,
) -> ResponseInfo {
    let src = request.src();
    let qtype = request.queries.queries().first().map(|q| q.query_type());
    let refuse = |why: &str| {
        info!(%src, ?qtype, "zone transfer refused: {why}");
        ResponseCode::Refused
    };
    let decision = (|| {
        if request.protocol() != Protocol::Tcp {
            return Err(refuse("transfers are only served over TCP"));
        }
        let served = served.ok_or_else(|| refuse("not the apex of a served zone"))?;
        let policy = served
            .zone
            .transfer
            .as_deref()
            .ok_or_else(|| refuse("the zone has no [transfer] section"))?;
        if !policy.allows(src.ip()) {
            return Err(refuse("peer address not in transfer.allow"));
        }
        let signer = match &policy.key {
            None => None,
            Some(key) => Some(verify_request(request, key)?),
        };
        Ok((served, signer))
    })();
    let (served, signer) = match decision {
        Ok(d) => d,
        Err(rcode) => return error_response(request, rcode, &mut response_handle).await,
    };
    let zone = &*served.zone;
    match stream_zone(request, served, signer, &mut response_handle).await {
        Ok(info) => {
            info!(%src, origin = %zone.origin, serial = zone.soa.serial, records = zone.records.len(), "zone transferred");
            info
        }
        Err(e) => {
            warn!(%src, origin = %zone.origin, "zone transfer failed: {e}");
            serve_failed(request)
        }
    }
}

/// A verified request's signer, MAC and time, to sign the response stream.
struct RequestSignature {
    signer: TSigner,
    mac: Vec<u8>,
}

fn verify_request(request: &Request, key: &TsigKey) -> Result<RequestSignature, ResponseCode> {
    let src = request.src();
    let Some(tsig) = UpdateRequest::signature(&**request) else {
        info!(%src, "zone transfer refused: the zone requires TSIG and the request is unsigned");
        return Err(ResponseCode::Refused);
    };
    if tsig.name.to_lowercase() != *key.name() {
        info!(%src, key = %tsig.name, "zone transfer refused: unknown TSIG key");
        return Err(ResponseCode::NotAuth);
    }
    let signer = key.signer();
    match signer.verify_message_byte(request.as_slice(), None, true) {
        Ok((mac, _time, window)) => {
            let now = now_secs();
            if !window.contains(&now) {
                info!(%src, "zone transfer refused: TSIG time outside the fudge window");
                return Err(ResponseCode::NotAuth);
            }
            Ok(RequestSignature { signer, mac })
        }
        Err(e) => {
            info!(%src, "zone transfer refused: bad TSIG signature ({e})");
            Err(ResponseCode::NotAuth)
        }
    }
}

fn now_secs() -> u64 {
    mimi_proto::UnixTime::now().0
}

async fn error_response<R: ResponseHandler>(
    request: &Request,
    rcode: ResponseCode,
    response_handle: &mut R,
) -> ResponseInfo {
    let response =
        MessageResponseBuilder::new(&request.queries, None).error_msg(&request.metadata, rcode);
    match response_handle.send_response(response).await {
        Ok(info) => info,
        Err(_) => serve_failed(request),
    }
}

/// The zone as DNS records in transfer order: SOA, NS, glue, TXT…, SOA.
/// The apex records are the ones the zone answers queries with.
fn zone_records(served: &ServedZone) -> Result<Vec<Record>, String> {
    let zone = &served.zone;
    let (soa, apex) = served.apex_records();
    let mut all = Vec::with_capacity(zone.ns.len() + zone.records.len() + 4);
    all.push(soa.clone());
    all.extend(apex.cloned());
    for group in zone.records.chunk_by(|a, b| a.owner == b.owner) {
        let owner = Name::from_ascii(group[0].owner.fqdn())
            .map_err(|e| format!("{}: {e}", group[0].owner))?;
        for r in group {
            let strings: Vec<&[u8]> = split_txt(&r.text).into_iter().map(str::as_bytes).collect();
            all.push(Record::from_rdata(
                owner.clone(),
                r.ttl,
                RData::TXT(TXT::from_bytes(strings)),
            ));
        }
    }
    all.push(soa.clone());
    Ok(all)
}

async fn stream_zone<R: ResponseHandler>(
    request: &Request,
    served: &ServedZone,
    signature: Option<RequestSignature>,
    response_handle: &mut R,
) -> Result<ResponseInfo, String> {
    let all = zone_records(served)?;
    // Cut into messages by an estimate of their encoded size.
    let mut chunks: Vec<&[Record]> = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, r) in all.iter().enumerate() {
        let estimate = r.name.len() + 16 + rdata_len(&r.data);
        if i > start && size + estimate > MESSAGE_BUDGET {
            chunks.push(&all[start..i]);
            start = i;
            size = 0;
        }
        size += estimate;
    }
    chunks.push(&all[start..]);

    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.authoritative = true;
    metadata.response_code = ResponseCode::NoError;
    let time = now_secs();
    let mut previous_mac: Option<Vec<u8>> = None;
    let mut info = None;
    for chunk in chunks {
        let signature_record = match &signature {
            None => None,
            Some(sig) => {
                // The bytes to be signed: this message without its TSIG.
                let mut tbs = Vec::with_capacity(MESSAGE_BUDGET);
                let unsigned = MessageResponseBuilder::new(&request.queries, None).build(
                    metadata,
                    chunk.iter(),
                    std::iter::empty(),
                    std::iter::empty(),
                    std::iter::empty(),
                );
                unsigned
                    .destructive_emit(&mut BinEncoder::new(&mut tbs))
                    .map_err(|e| format!("encoding a transfer message: {e}"))?;
                let record = match &previous_mac {
                    None => TSigResponseContext::new(
                        request.metadata.id,
                        time,
                        sig.signer.clone(),
                        sig.mac.clone(),
                        None,
                    )
                    .sign(&tbs)
                    .map_err(|e| format!("signing a transfer message: {e}"))?,
                    Some(prev) => Box::new(sign_subsequent(
                        &sig.signer,
                        request.metadata.id,
                        time,
                        prev,
                        &tbs,
                    )?),
                };
                previous_mac = Some(record.data.mac.clone());
                Some(record)
            }
        };
        // hickory's TCP connection task writes queued messages only after
        // the handler returns, so the whole transfer is queued first; the
        // server's per-connection queue (TCP_RESPONSE_BUFFER in serve.rs)
        // is sized for that.
        let mut response = MessageResponseBuilder::new(&request.queries, None).build(
            metadata,
            chunk.iter(),
            std::iter::empty(),
            std::iter::empty(),
            std::iter::empty(),
        );
        if let Some(r) = signature_record {
            response.set_signature(r);
        }
        info = Some(response_handle.send_response(response).await.map_err(|e| {
            format!("sending a transfer message: {e} (the zone needs more messages than one TCP connection can queue)")
        })?);
    }
    Ok(info.expect("at least one message"))
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

/// The A or AAAA record data of an address.
pub fn glue_rdata(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(v4.into()),
        IpAddr::V6(v6) => RData::AAAA(v6.into()),
    }
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
/// secondaries also poll on the SOA refresh timer.
pub async fn notify_secondaries(zone: &Zone) {
    let Some(policy) = zone.transfer.as_deref() else {
        return;
    };
    let Ok(origin) = Name::from_ascii(zone.origin.fqdn()) else {
        return;
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
                        return;
                    }
                    Ok(rcode) => {
                        warn!(%target, %origin, serial, "NOTIFY answered {rcode}");
                        return;
                    }
                    Err(e) => debug!(%target, %origin, attempt, "NOTIFY not acknowledged: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            warn!(%target, %origin, serial, "NOTIFY not acknowledged after 3 attempts; the secondary will catch up at its refresh time");
        }
    });
    futures::future::join_all(tasks).await;
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
        None => msg.to_bytes().map_err(|e| e.to_string())?,
        Some(s) => {
            msg.finalize(s, now_secs()).map_err(|e| e.to_string())?;
            msg.to_bytes().map_err(|e| e.to_string())?
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
    sock.send_to(&bytes, target)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let resp = Message::from_vec(&buf[..n]).map_err(|e| e.to_string())?;
    Ok(resp.metadata.response_code)
}

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
        };
        assert!(p.allows("127.0.0.1".parse().unwrap()));
        assert!(p.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(p.allows("2001:db8::5".parse().unwrap()));
        assert!(!p.allows("127.0.0.2".parse().unwrap()));
        assert!(!p.allows("::1".parse().unwrap()));
    }
}
