//! Incremental zone transfer (IXFR, RFC 1995) from the zone's journal
//! ([`crate::zone::journal`]).
//!
//! An IXFR request carries the secondary's SOA in its authority section.
//! The answer ([`Plan`]) is:
//!
//! * the secondary's serial is the current one or newer (RFC 1982): the
//!   current SOA alone (§4: it is up to date);
//! * the serial is journaled: the condensed difference (§5), `SOA(new)`,
//!   `SOA(old)`, the removed records, `SOA(new)`, the added records,
//!   `SOA(new)`; over TCP streamed and signed like an AXFR, over UDP in one
//!   message if it fits the client's UDP size;
//! * otherwise (unknown or too old a serial, no SOA in the request): over
//!   TCP the whole zone in AXFR form (§4 allows it), over UDP the current
//!   SOA alone, which tells the client to ask again over TCP (§2).
//!
//! Access (allow list, TSIG) is decided exactly as for AXFR, over both
//! transports; AXFR over UDP stays refused (`crate::serve::wire`).

use std::net::SocketAddr;

use hickory_proto::op::{Edns, Message};
use hickory_proto::rr::{RData, Record, RecordType};
use tracing::info;

use crate::zone::journal::{serial_newer, Condensed};
use crate::zone::served::ServedZone;

/// How a transfer request is answered.
#[derive(Debug)]
pub(crate) enum Plan {
    /// An AXFR: the whole zone.
    Axfr,
    /// An IXFR from the current serial or a newer one: the SOA alone.
    UpToDate {
        /// The secondary's serial.
        client: u32,
    },
    /// An IXFR from a journaled serial: the net difference.
    Incremental {
        /// The secondary's serial.
        from: u32,
        /// What changed since.
        diff: Condensed,
    },
    /// An IXFR answered with the whole zone (AXFR form over TCP, the SOA
    /// alone over UDP).
    Full {
        /// The secondary's serial, if the request had one.
        client: Option<u32>,
        /// Why not incrementally.
        why: &'static str,
    },
}

/// The serial of the SOA in the authority section of an IXFR `request`.
fn client_serial(request: &Message) -> Option<u32> {
    request.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) if r.record_type() == RecordType::SOA => Some(soa.serial),
        _ => None,
    })
}

impl Plan {
    /// The answer to `request` (AXFR or IXFR) for `served`.
    pub(crate) fn new(request: &Message, served: &ServedZone) -> Plan {
        let ixfr = request
            .queries
            .first()
            .is_some_and(|q| q.query_type() == RecordType::IXFR);
        if !ixfr {
            return Plan::Axfr;
        }
        let Some(client) = client_serial(request) else {
            return Plan::Full {
                client: None,
                why: "the request has no SOA in its authority section",
            };
        };
        let serial = served.zone.soa.serial;
        if client == serial || serial_newer(client, serial) {
            return Plan::UpToDate { client };
        }
        let journal = served.journal();
        if journal.last_serial() != Some(serial) {
            return Plan::Full {
                client: Some(client),
                why: "the journal holds no change (none since the server started without state, a reset, or the bounds dropped them all)",
            };
        }
        match journal.condense(client) {
            Some(diff) => Plan::Incremental { from: client, diff },
            None => Plan::Full {
                client: Some(client),
                why:
                    "the serial is not in the journal (unknown, or older than what the bounds keep)",
            },
        }
    }

    /// What is sent, in the log's words.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Plan::Axfr => "AXFR",
            Plan::UpToDate { .. } => "IXFR up to date",
            Plan::Incremental { .. } => "IXFR",
            Plan::Full { .. } => "AXFR-style IXFR",
        }
    }

    /// The records of the answer over TCP, in order, made one at a time.
    pub(crate) fn records<'a>(
        &'a self,
        served: &'a ServedZone,
    ) -> Box<dyn Iterator<Item = Result<Record, String>> + Send + 'a> {
        let soa = served.apex_records().0;
        match self {
            Plan::Axfr | Plan::Full { .. } => Box::new(super::zone_records(served)),
            Plan::UpToDate { .. } => Box::new(std::iter::once(Ok(soa.clone()))),
            Plan::Incremental { from, diff } => Box::new(incremental(soa, *from, diff)),
        }
    }

    /// How many records the answer holds (SOAs included).
    fn record_count(&self, served: &ServedZone) -> usize {
        let zone = &served.zone;
        match self {
            Plan::Axfr | Plan::Full { .. } => {
                zone.records.len()
                    + 2
                    + zone.ns.len()
                    + zone.glue.iter().map(|(_, a)| a.len()).sum::<usize>()
            }
            Plan::UpToDate { .. } => 1,
            Plan::Incremental { diff, .. } => diff.removed.len() + diff.added.len() + 4,
        }
    }

    /// Logs a transfer sent to `peer` over `transport` in `messages`
    /// messages.
    pub(crate) fn log(
        &self,
        peer: SocketAddr,
        served: &ServedZone,
        transport: &str,
        messages: usize,
    ) {
        let zone = &served.zone;
        let (origin, serial) = (&zone.origin, zone.soa.serial);
        let records = self.record_count(served);
        let kind = self.kind();
        match self {
            Plan::Axfr => {
                info!(%peer, %origin, kind, transport, serial, records, messages, "zone transferred")
            }
            Plan::UpToDate { client } => {
                info!(%peer, %origin, kind, transport, from = client, serial, records, messages, "zone transferred: the secondary is up to date")
            }
            Plan::Incremental { from, diff } => {
                info!(%peer, %origin, kind, transport, from, serial, removed = diff.removed.len(), added = diff.added.len(), records, messages, "zone transferred incrementally")
            }
            Plan::Full { client, why } => {
                let first = served.journal().first_serial();
                info!(%peer, %origin, kind, transport, from = ?client, serial, journal_from = ?first, records, messages, "zone transferred whole (fallback): {why}")
            }
        }
    }
}

/// The incremental answer from `from`: `SOA(new)`, `SOA(old)`, removed…,
/// `SOA(new)`, added…, `SOA(new)` (RFC 1995 §4). The old SOA is the
/// current one with the old serial: anything else changed resets the
/// journal.
fn incremental<'a>(
    soa: &'a Record,
    from: u32,
    diff: &'a Condensed,
) -> impl Iterator<Item = Result<Record, String>> + Send + 'a {
    let mut old = soa.clone();
    if let RData::SOA(s) = &mut old.data {
        s.serial = from;
    }
    std::iter::once(Ok(soa.clone()))
        .chain(std::iter::once(Ok(old)))
        .chain(super::txt_records(&diff.removed))
        .chain(std::iter::once(Ok(soa.clone())))
        .chain(super::txt_records(&diff.added))
        .chain(std::iter::once(Ok(soa.clone())))
}

/// The octets of record text in `diff`: a lower bound of its encoded size.
fn text_len(diff: &Condensed) -> usize {
    diff.removed
        .iter()
        .chain(&diff.added)
        .map(|r| r.text.len())
        .sum()
}

/// Answers the IXFR `packet` that `peer` sent over UDP, for `served` (the
/// served zone whose origin is the query name, if any), into `out`; false
/// means no answer. The answer is at most the client's EDNS size (512
/// without EDNS), and at most `max_payload`.
///
/// Access is decided as over TCP. The incremental answer is sent if it fits;
/// otherwise, and for any serial it cannot answer incrementally, the SOA
/// alone (RFC 1995 §2), which makes the client retry over TCP.
pub(crate) fn answer_udp(
    packet: &[u8],
    peer: SocketAddr,
    served: Option<&ServedZone>,
    max_payload: u16,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    let Ok(request) = Message::from_vec(packet) else {
        // The wire reader accepted it, so this is only hickory being
        // stricter; no answer rather than a guess.
        return false;
    };
    let limit = usize::from(request.max_payload().clamp(512, max_payload.max(512)));
    let edns = request.edns.as_ref().map(|_| {
        let mut e = Edns::new();
        e.set_max_payload(max_payload);
        e
    });
    let (served, signature) = match super::authorize(&request, packet, peer, served) {
        Ok(d) => d,
        Err(refusal) => {
            let mut response = super::response_to(&request);
            response.metadata.response_code = refusal.rcode();
            response.edns = edns;
            return match response.to_vec() {
                Ok(bytes) => {
                    *out = bytes;
                    true
                }
                Err(_) => false,
            };
        }
    };
    let plan = Plan::new(&request, served);
    let soa = served.apex_records().0;
    let encode = |records: Vec<Record>, signature| {
        super::Signer::new(&request, signature).message(records, edns.clone())
    };
    let reply = match &plan {
        // Not encoded at all when its text alone is over the limit, so
        // that a large difference costs a UDP query nothing.
        Plan::Incremental { diff, .. } if text_len(diff) > limit => None,
        Plan::Incremental { from, diff } => {
            let records: Result<Vec<_>, _> = incremental(soa, *from, diff).collect();
            match records.map(|r| encode(r, signature.clone())) {
                Ok(Ok(bytes)) if bytes.len() <= limit => Some(bytes),
                _ => None,
            }
        }
        _ => None,
    };
    let (bytes, sent) = match reply {
        Some(bytes) => (bytes, &plan),
        None => match encode(vec![soa.clone()], signature) {
            Ok(bytes) => (bytes, &Plan::UpToDate { client: 0 }),
            Err(e) => {
                info!(%peer, origin = %served.zone.origin, "IXFR over UDP: cannot encode the answer: {e}");
                return false;
            }
        },
    };
    match (sent, &plan) {
        (Plan::Incremental { .. }, _) | (_, Plan::UpToDate { .. }) => {
            plan.log(peer, served, "UDP", 1)
        }
        _ => {
            info!(%peer, origin = %served.zone.origin, kind = plan.kind(), serial = served.zone.soa.serial, limit, "IXFR over UDP answered with the SOA alone (the answer does not fit, or is not incremental): the client retries over TCP")
        }
    }
    *out = bytes;
    true
}
