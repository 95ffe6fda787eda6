//! Pushing into an existing primary (RFC 2136 dynamic UPDATE).
//!
//! Many operators already run a primary (BIND, Knot, PowerDNS…) and will not
//! add a server. `push` makes the mimi records at such a primary equal to
//! what [`crate::build`] produces, sending only the difference:
//!
//! 1. read the zone's current content by AXFR (TSIG-signed, and the
//!    response's TSIG chain is verified);
//! 2. compare the *managed* records — TXT records whose text starts with
//!    `v=mimi1;` at `…._mimi.…` discovery names and `_mimi-ma.…` certificate
//!    names — with the built zone; every other record of the zone is never
//!    touched;
//! 3. send deletions (class NONE, RFC 2136 §2.5.4) and additions in UPDATE
//!    messages over TCP, TSIG-signed.
//!
//! One UPDATE message is applied atomically by the server: if it is
//! rejected, nothing of it is applied. A difference too large for one
//! message (more than [`BATCH_BYTES`] of records) is sent in several; each is
//! atomic on its own, and an error names the batches already applied. The
//! server increments its SOA serial itself.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use mimi_proto::text::split_txt;
use mimi_proto::DomainName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tsig::TsigKey;
use crate::zone::Zone;

/// Size budget of one UPDATE message (estimated from record sizes): well
/// under the 64 KiB DNS message limit.
pub const BATCH_BYTES: usize = 48 * 1024;

/// How long one exchange with the server may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A managed record: owner (lowercase, no trailing dot), TTL, text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ManagedRecord {
    /// Owner name.
    pub owner: String,
    /// TTL.
    pub ttl: u32,
    /// Record text.
    pub text: String,
}

impl std::fmt::Display for ManagedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}. {} IN TXT \"{}\"", self.owner, self.ttl, self.text)
    }
}

/// What a push changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Records to add.
    pub add: Vec<ManagedRecord>,
    /// Records to delete.
    pub delete: Vec<ManagedRecord>,
    /// Managed records already as they should be.
    pub unchanged: usize,
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Network failure or timeout.
    #[error("{server}: {what}")]
    Network {
        /// The server.
        server: SocketAddr,
        /// What failed.
        what: String,
    },
    /// The server refused the zone transfer used to read the current state.
    #[error("{server}: reading zone {zone} by AXFR failed: {rcode}: {meaning}")]
    Transfer {
        /// The server.
        server: SocketAddr,
        /// The zone.
        zone: String,
        /// Response code.
        rcode: ResponseCode,
        /// What it means here.
        meaning: String,
    },
    /// The server rejected an update; that message changed nothing.
    #[error("{server}: the server rejected update {batch} of {batches} ({rcode}: {meaning}); that update changed nothing{applied}")]
    Rejected {
        /// The server.
        server: SocketAddr,
        /// 1-based batch number.
        batch: usize,
        /// Number of batches.
        batches: usize,
        /// Response code.
        rcode: ResponseCode,
        /// What it means here.
        meaning: String,
        /// Which earlier batches were applied.
        applied: String,
    },
    /// A response's TSIG did not verify or was missing.
    #[error("{server}: the response's TSIG signature does not verify: {why}")]
    Tsig {
        /// The server.
        server: SocketAddr,
        /// Details.
        why: String,
    },
}

/// Whether a TXT record at `owner` with `text` is managed by push.
pub fn is_managed(owner: &str, text: &str) -> bool {
    text.starts_with("v=mimi1;")
        && (owner.starts_with("_mimi-ma.") || owner.split('.').any(|l| l == "_mimi"))
}

fn meaning(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::NotAuth => "the server is not authoritative for the zone or did not accept the TSIG key (wrong key name, secret or clock)".into(),
        ResponseCode::Refused => "the server refuses this from this key or address (check allow-update / allow-transfer or update-policy)".into(),
        ResponseCode::NotZone => "a record is outside the zone".into(),
        ResponseCode::ServFail => "the server failed to apply it (see its log)".into(),
        ResponseCode::FormErr => "the server could not parse the message".into(),
        ResponseCode::NotImp => "the server does not implement dynamic update for this zone".into(),
        ResponseCode::YXDomain | ResponseCode::YXRRSet | ResponseCode::NXRRSet | ResponseCode::NXDomain => "a prerequisite failed".into(),
        other => format!("response code {other}"),
    }
}

async fn send(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .await?;
    stream.write_all(bytes).await
}

async fn recv(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

fn now_secs() -> u64 {
    mimi_proto::UnixTime::now().0
}

fn new_id() -> u16 {
    let mut b = [0u8; 2];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    u16::from_be_bytes(b)
}

fn origin_name(origin: &DomainName) -> Name {
    Name::from_ascii(origin.fqdn()).expect("checked domain names are DNS names")
}

/// Reads the managed records of `origin` at `server` by AXFR.
pub async fn read_current(
    server: SocketAddr,
    origin: &DomainName,
    tsig: Option<&TsigKey>,
) -> Result<Vec<ManagedRecord>, PushError> {
    let net = |what: String| PushError::Network { server, what };
    let mut msg = Message::new(new_id(), MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(origin_name(origin), RecordType::AXFR));
    let mut verifier = match tsig {
        Some(k) => msg
            .finalize(&k.signer(), now_secs())
            .map_err(|e| net(format!("signing the AXFR request: {e}")))?,
        None => None,
    };
    let bytes = msg.to_vec().map_err(|e| net(e.to_string()))?;
    let work = async {
        let mut stream = TcpStream::connect(server)
            .await
            .map_err(|e| net(format!("connect: {e}")))?;
        send(&mut stream, &bytes)
            .await
            .map_err(|e| net(format!("send: {e}")))?;
        let mut out = Vec::new();
        let mut soas = 0;
        while soas < 2 {
            let raw = recv(&mut stream)
                .await
                .map_err(|e| net(format!("zone transfer ended early: {e}")))?;
            let resp = match verifier.as_mut() {
                Some(v) => {
                    let r =
                        Message::from_vec(&raw).map_err(|e| net(format!("bad response: {e}")))?;
                    if r.metadata.response_code != ResponseCode::NoError {
                        r
                    } else {
                        v.verify(&raw).map_err(|e| PushError::Tsig {
                            server,
                            why: e.to_string(),
                        })?;
                        r
                    }
                }
                None => Message::from_vec(&raw).map_err(|e| net(format!("bad response: {e}")))?,
            };
            let rcode = resp.metadata.response_code;
            if rcode != ResponseCode::NoError {
                return Err(PushError::Transfer {
                    server,
                    zone: origin.to_string(),
                    rcode,
                    meaning: if rcode == ResponseCode::Refused {
                        "the server refuses the transfer (allow-transfer must admit this key or address)".into()
                    } else {
                        meaning(rcode)
                    },
                });
            }
            if resp.answers.is_empty() {
                return Err(net("empty zone transfer response".into()));
            }
            for r in &resp.answers {
                match &r.data {
                    RData::SOA(_) => soas += 1,
                    RData::TXT(txt) => {
                        let text: Vec<u8> = txt
                            .txt_data
                            .iter()
                            .flat_map(|s| s.iter().copied())
                            .collect();
                        let owner = r.name.to_ascii().trim_end_matches('.').to_ascii_lowercase();
                        if let Ok(text) = String::from_utf8(text) {
                            if is_managed(&owner, &text) {
                                out.push(ManagedRecord {
                                    owner,
                                    ttl: r.ttl,
                                    text,
                                });
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| net("zone transfer timed out".into()))?
}

/// The difference between the server's managed records and the built zone.
pub fn diff(current: &[ManagedRecord], desired: &Zone) -> Diff {
    let want: BTreeSet<ManagedRecord> = desired
        .records
        .iter()
        .map(|r| ManagedRecord {
            owner: r.owner.as_str().to_owned(),
            ttl: r.ttl,
            text: r.text.clone(),
        })
        .collect();
    let have: BTreeSet<ManagedRecord> = current.iter().cloned().collect();
    Diff {
        add: want.difference(&have).cloned().collect(),
        delete: have.difference(&want).cloned().collect(),
        unchanged: want.intersection(&have).count(),
    }
}

fn txt_record(r: &ManagedRecord, class: DNSClass, ttl: u32) -> Result<Record, String> {
    let name =
        Name::from_ascii(format!("{}.", r.owner)).map_err(|e| format!("{}: {e}", r.owner))?;
    let strings: Vec<&[u8]> = split_txt(&r.text).into_iter().map(str::as_bytes).collect();
    let mut rec = Record::from_rdata(name, ttl, RData::TXT(TXT::from_bytes(strings)));
    rec.dns_class = class;
    Ok(rec)
}

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Records added.
    pub added: usize,
    /// Records deleted.
    pub deleted: usize,
    /// UPDATE messages sent.
    pub batches: usize,
}

/// Sends the difference as RFC 2136 UPDATE messages (deletions first within
/// each message, so a TTL change replaces the record).
pub async fn apply(
    server: SocketAddr,
    origin: &DomainName,
    diff: &Diff,
    tsig: Option<&TsigKey>,
) -> Result<Applied, PushError> {
    let net = |what: String| PushError::Network { server, what };
    let mut ops: Vec<(bool, &ManagedRecord)> = diff.delete.iter().map(|r| (false, r)).collect();
    ops.extend(diff.add.iter().map(|r| (true, r)));
    let mut batches: Vec<&[(bool, &ManagedRecord)]> = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, (_, r)) in ops.iter().enumerate() {
        let estimate = r.owner.len() + r.text.len() + 32;
        if i > start && size + estimate > BATCH_BYTES {
            batches.push(&ops[start..i]);
            (start, size) = (i, 0);
        }
        size += estimate;
    }
    if start < ops.len() {
        batches.push(&ops[start..]);
    }
    let total = batches.len();
    if total == 0 {
        return Ok(Applied {
            added: 0,
            deleted: 0,
            batches: 0,
        });
    }
    let mut stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(server))
        .await
        .map_err(|_| net("connect timed out".into()))?
        .map_err(|e| net(format!("connect: {e}")))?;
    for (i, batch) in batches.iter().enumerate() {
        let mut msg = Message::new(new_id(), MessageType::Query, OpCode::Update);
        let mut zone = Query::query(origin_name(origin), RecordType::SOA);
        zone.set_query_class(DNSClass::IN);
        msg.add_query(zone);
        for (add, r) in batch.iter() {
            let rec = if *add {
                txt_record(r, DNSClass::IN, r.ttl)
            } else {
                txt_record(r, DNSClass::NONE, 0)
            };
            msg.authorities.push(rec.map_err(net)?);
        }
        let mut verifier = match tsig {
            Some(k) => msg
                .finalize(&k.signer(), now_secs())
                .map_err(|e| net(format!("signing: {e}")))?,
            None => None,
        };
        let bytes = msg.to_vec().map_err(|e| net(e.to_string()))?;
        let raw = tokio::time::timeout(TIMEOUT, async {
            send(&mut stream, &bytes).await?;
            recv(&mut stream).await
        })
        .await
        .map_err(|_| net(format!("update {} of {total} timed out", i + 1)))?
        .map_err(|e| net(format!("update {} of {total}: {e}", i + 1)))?;
        let resp = Message::from_vec(&raw).map_err(|e| net(format!("bad response: {e}")))?;
        let rcode = resp.metadata.response_code;
        if rcode != ResponseCode::NoError {
            return Err(PushError::Rejected {
                server,
                batch: i + 1,
                batches: total,
                rcode,
                meaning: meaning(rcode),
                applied: if i == 0 {
                    String::new()
                } else {
                    format!("; updates 1 to {i} were applied")
                },
            });
        }
        if let Some(v) = verifier.as_mut() {
            v.verify(&raw).map_err(|e| PushError::Tsig {
                server,
                why: e.to_string(),
            })?;
        }
    }
    Ok(Applied {
        added: diff.add.len(),
        deleted: diff.delete.len(),
        batches: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_records_are_only_mimi_txt_at_mimi_names() {
        assert!(is_managed("abc._mimi.example.com", "v=mimi1;a=b"));
        assert!(is_managed("_mimi-ma.example.com", "v=mimi1;a=b"));
        assert!(is_managed("x._mimi.9.3.e164.example", "v=mimi1;a=b"));
        assert!(!is_managed("abc._mimi.example.com", "v=spf1 -all"));
        assert!(!is_managed("www.example.com", "v=mimi1;a=b"));
        assert!(!is_managed("x_mimi.example.com", "v=mimi1;a=b"));
    }

    #[test]
    fn diff_counts_adds_deletes_and_ttl_changes() {
        let r = |o: &str, ttl: u32, t: &str| ManagedRecord {
            owner: o.into(),
            ttl,
            text: t.into(),
        };
        let d = |s: &str| DomainName::parse(s).unwrap();
        let zone = Zone {
            origin: d("example.com"),
            ttl: 1,
            soa: crate::zone::Soa {
                mname: d("ns.example.com"),
                rname: d("h.example.com"),
                serial: 1,
                refresh: 1,
                retry: 1,
                expire: 1,
                minimum: 1,
            },
            ns: vec![],
            glue: vec![],
            records: vec![
                crate::zone::ZoneRecord {
                    owner: d("a._mimi.example.com"),
                    ttl: 300,
                    text: "v=mimi1;1".into(),
                },
                crate::zone::ZoneRecord {
                    owner: d("b._mimi.example.com"),
                    ttl: 300,
                    text: "v=mimi1;2".into(),
                },
                crate::zone::ZoneRecord {
                    owner: d("c._mimi.example.com"),
                    ttl: 300,
                    text: "v=mimi1;3".into(),
                },
            ],
            next_resign: None,
            transfer: None,
        };
        let current = vec![
            r("a._mimi.example.com", 300, "v=mimi1;1"),
            r("b._mimi.example.com", 60, "v=mimi1;2"),
            r("z._mimi.example.com", 300, "v=mimi1;old"),
        ];
        let diff = diff(&current, &zone);
        assert_eq!(diff.unchanged, 1);
        assert_eq!(
            diff.add,
            vec![
                r("b._mimi.example.com", 300, "v=mimi1;2"),
                r("c._mimi.example.com", 300, "v=mimi1;3")
            ]
        );
        assert_eq!(
            diff.delete,
            vec![
                r("b._mimi.example.com", 60, "v=mimi1;2"),
                r("z._mimi.example.com", 300, "v=mimi1;old")
            ]
        );
    }
}
