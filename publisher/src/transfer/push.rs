//! Pushing into an existing primary (RFC 2136 dynamic UPDATE).
//!
//! Many operators already run a primary (BIND, Knot, PowerDNS…) and will not
//! add a server. `push` makes the mimi records at such a primary equal to
//! what [`crate::build`] produces, sending only the difference:
//!
//! 1. [`read_current`] reads the zone's current content by AXFR over TCP
//!    (TSIG-signed, and every response message's TSIG is verified, so a
//!    forged transfer cannot make us delete records). What the server has is
//!    read, not guessed from the last push: someone may have edited the zone
//!    in between.
//! 2. [`diff`] compares the *managed* records — TXT records whose text starts
//!    with `v=mimi1;` at `…._mimi.…` discovery names and `_mimi-ma.…`
//!    certificate names, whose `a=` is an authority this configuration
//!    publishes ([`Managed`]) — with the built zone. Every other record of
//!    the zone (SOA, NS, addresses, other TXT, mimi records of other
//!    authorities, even at the same names) is never touched, so several
//!    publishers, each pushing its own authorities, can share one zone.
//! 3. Before anything is sent, the [shrink guard](crate::zone::shrink) compares
//!    the managed assertions on the server with the built zone: a push that
//!    would remove more than the limit (default 10%, and always when it
//!    would remove every one) is refused unless confirmed (`--allow-shrink`).
//! 4. [`apply`] sends deletions (class NONE, RFC 2136 §2.5.4: delete exactly
//!    this RR) and additions in UPDATE messages over TCP, TSIG-signed, and
//!    checks each response code.
//!
//! One UPDATE message is applied atomically by the server: if it is
//! rejected, nothing of it is applied. A difference too large for one
//! message (more than [`BATCH_BYTES`] or [`BATCH_RECORDS`]) is sent in
//! several; each is atomic on its own, and an error names the batches that
//! were already applied. The server increments its SOA serial itself.
//!
//! All records of one owner and type form an RRset with one TTL (RFC 2181
//! §5.2); servers such as BIND change the TTL of the *whole* RRset when an
//! RR with a different TTL is added. Adding a mimi record next to a non-mimi
//! TXT record with another TTL would therefore change that record, so
//! [`diff`] reports it as a [`TtlConflict`] and [`apply`] refuses to send
//! anything while there is one.
//!
//! No prerequisites are sent: deleting an RR that is already gone and adding
//! one that is already there are no-ops (RFC 2136 §3.4.2), so a concurrent
//! edit of the same records cannot make an update fail half-way.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use mimi_proto::text::split_txt;
use mimi_proto::{AuthorityName, DomainName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::input::config::ZoneConfig;
use crate::input::problem::Problem;
use crate::input::tsig::TsigKey;
use crate::zone::shrink::{Shrink, ShrinkLimit, ShrinkRefused};
use crate::zone::{Zone, ZoneRecord};

/// Size budget of one UPDATE message's records (estimated from the record
/// sizes without name compression, so the real message is smaller): well
/// under the 64 KiB DNS message limit.
pub const BATCH_BYTES: usize = 48 * 1024;

/// At most this many records in one UPDATE message.
pub const BATCH_RECORDS: usize = 500;

/// How long one step of an exchange with the server (connect, one UPDATE
/// and its answer, one message of the zone transfer) may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A managed record: owner (lowercase, no trailing dot), TTL, text (the
/// concatenated character-strings).
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
    /// Zone-file form, `owner. TTL IN TXT "…"`, with `"` and `\` escaped
    /// (one string; the wire form is split into ≤255-octet strings).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}. {} IN TXT \"", self.owner, self.ttl)?;
        for c in self.text.chars() {
            if c == '"' || c == '\\' {
                write!(f, "\\")?;
            }
            write!(f, "{c}")?;
        }
        write!(f, "\"")
    }
}

/// What the server holds, as far as push is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    /// The managed records.
    pub managed: Vec<ManagedRecord>,
    /// Owner → TTL of TXT RRs that are *not* managed (needed to avoid
    /// changing their TTL, see [`TtlConflict`]).
    pub other_txt: BTreeMap<String, u32>,
}

/// Adding a managed record at `owner` with TTL `ours` would change the TTL
/// of a non-mimi TXT record there (TTL `theirs`): records of one RRset share
/// one TTL, and the server would change the whole RRset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TtlConflict {
    /// The owner name.
    pub owner: String,
    /// TTL of the record to add.
    pub ours: u32,
    /// TTL of the non-mimi TXT record already there.
    pub theirs: u32,
}

impl std::fmt::Display for TtlConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: a non-mimi TXT record there has TTL {}; adding a mimi record with TTL {} would change it (one RRset has one TTL)",
            self.owner, self.theirs, self.ours
        )
    }
}

/// What a push changes. Each list is sorted (owner, TTL, text), so equal
/// inputs give identical output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Records to add.
    pub add: Vec<ManagedRecord>,
    /// Records to delete (a TTL change is a delete and an add).
    pub delete: Vec<ManagedRecord>,
    /// Managed records already as they should be.
    pub unchanged: usize,
    /// Additions that would change the TTL of records push does not manage;
    /// [`apply`] sends nothing while this is not empty.
    pub conflicts: Vec<TtlConflict>,
}

impl Diff {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.delete.is_empty()
    }

    /// How many UPDATE messages [`apply`] will send.
    pub fn batches(&self) -> usize {
        batches(&ops(self)).len()
    }
}

/// A response code and, when the response carried one, its TSIG error, as
/// the mnemonics operators know from server logs and dig
/// (`NOTAUTH (TSIG BADSIG)`).
fn rcode_label(rcode: &ResponseCode, tsig: &Option<TsigError>) -> String {
    let name = match rcode {
        ResponseCode::NoError => "NOERROR".to_owned(),
        ResponseCode::FormErr => "FORMERR".to_owned(),
        ResponseCode::ServFail => "SERVFAIL".to_owned(),
        ResponseCode::NXDomain => "NXDOMAIN".to_owned(),
        ResponseCode::NotImp => "NOTIMP".to_owned(),
        ResponseCode::Refused => "REFUSED".to_owned(),
        ResponseCode::YXDomain => "YXDOMAIN".to_owned(),
        ResponseCode::YXRRSet => "YXRRSET".to_owned(),
        ResponseCode::NXRRSet => "NXRRSET".to_owned(),
        ResponseCode::NotAuth => "NOTAUTH".to_owned(),
        ResponseCode::NotZone => "NOTZONE".to_owned(),
        other => format!("RCODE{}", u16::from(*other)),
    };
    match tsig {
        None => name,
        Some(e) => format!("{name} (TSIG {})", tsig_label(e)),
    }
}

fn tsig_label(e: &TsigError) -> String {
    match e {
        TsigError::BadSig => "BADSIG".into(),
        TsigError::BadKey => "BADKEY".into(),
        TsigError::BadTime => "BADTIME".into(),
        TsigError::BadTrunc => "BADTRUNC".into(),
        TsigError::Unknown(n) => format!("error {n}"),
    }
}

/// Why a push failed. Every variant names the server; those carrying a
/// response code also say what it means for a push.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Network failure, timeout or an unparsable response.
    #[error("{server}: {what}")]
    Network {
        /// The server.
        server: SocketAddr,
        /// What failed.
        what: String,
    },
    /// The zone transfer used to read the current state failed; nothing was
    /// sent.
    #[error("{server}: reading zone {zone} by AXFR failed: {}: {meaning}; nothing was changed", rcode_label(.rcode, .tsig_error))]
    Transfer {
        /// The server.
        server: SocketAddr,
        /// The zone.
        zone: String,
        /// Response code.
        rcode: ResponseCode,
        /// The TSIG error of the response, if it carried one.
        tsig_error: Option<TsigError>,
        /// What it means here.
        meaning: String,
    },
    /// The server rejected an update; that message changed nothing.
    #[error("{server}: the server rejected update {batch} of {batches}: {}: {meaning}; the zone's records are as they were before that update{applied}", rcode_label(.rcode, .tsig_error))]
    Rejected {
        /// The server.
        server: SocketAddr,
        /// 1-based batch number.
        batch: usize,
        /// Number of batches.
        batches: usize,
        /// Response code.
        rcode: ResponseCode,
        /// The TSIG error of the response, if it carried one.
        tsig_error: Option<TsigError>,
        /// What it means here.
        meaning: String,
        /// Which earlier batches were applied (empty for the first).
        applied: String,
    },
    /// A response's TSIG did not verify or was missing.
    #[error("{server}: the response's TSIG signature does not verify ({why}){context}")]
    Tsig {
        /// The server.
        server: SocketAddr,
        /// Details.
        why: String,
        /// What this means for the zone's state.
        context: String,
    },
    /// Sending the difference would change records push does not manage.
    #[error("{server}: nothing was sent: {}", .conflicts.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    TtlConflict {
        /// The server.
        server: SocketAddr,
        /// The conflicts.
        conflicts: Vec<TtlConflict>,
    },
}

/// The authorities whose records a push manages: the configuration's own
/// authority and the authorities of its pre-signed files.
///
/// Why not every mimi record: a zone may be shared. A provider's own
/// publisher and, say, a directory operator's may push into the same
/// primary, each with its own authority, and records at the same discovery
/// name belong to whichever authority signed them. A push that took every
/// `v=mimi1;` record for its own would delete the other publisher's records
/// on every run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Managed {
    authorities: BTreeSet<AuthorityName>,
}

impl Managed {
    /// Manages the records of exactly these authorities.
    pub fn new(authorities: impl IntoIterator<Item = AuthorityName>) -> Self {
        Managed {
            authorities: authorities.into_iter().collect(),
        }
    }

    /// The authorities `config` publishes: its `[authority]` and every
    /// authority with a well-formed line in one of its pre-signed files,
    /// expired lines included (their records are still to be removed from
    /// the server). Returns the problems of unreadable files too; a build of
    /// the same configuration reports them as errors.
    pub fn of_config(config: &ZoneConfig) -> (Self, Vec<Problem>) {
        let mut authorities: BTreeSet<AuthorityName> =
            config.authority.iter().map(|a| a.name.clone()).collect();
        let mut problems = Vec::new();
        for path in &config.presigned {
            let (items, p) = crate::input::presigned::read(path);
            problems.extend(p);
            authorities.extend(items.into_iter().map(|i| i.assertion.authority().clone()));
        }
        (Managed { authorities }, problems)
    }

    /// The managed authorities, sorted.
    pub fn authorities(&self) -> impl Iterator<Item = &AuthorityName> {
        self.authorities.iter()
    }

    /// Whether a TXT record at `owner` (lowercase, no trailing dot) with
    /// `text` is managed: its text starts with `v=mimi1;`, its `a=` is a
    /// managed authority, and its owner is that authority's certificate name
    /// `_mimi-ma.<a>` or a discovery name (one with a `_mimi` label).
    pub fn is_managed(&self, owner: &str, text: &str) -> bool {
        let Some(body) = text.strip_prefix("v=mimi1;") else {
            return false;
        };
        let Some(a) = body.split(';').find_map(|f| f.strip_prefix("a=")) else {
            return false;
        };
        let Some(authority) = self.authorities.iter().find(|n| n.as_str() == a) else {
            return false;
        };
        match owner.strip_prefix("_mimi-ma.") {
            Some(rest) => rest == authority.as_str(),
            None => owner.split('.').any(|l| l == "_mimi"),
        }
    }
}

/// A key's name as in named.conf (no trailing dot).
fn key_label(k: &TsigKey) -> String {
    k.name().to_string().trim_end_matches('.').to_owned()
}

/// What a response code means for a push (TSIG errors first: a server
/// that rejects the key answers NOTAUTH with the reason in the TSIG RR).
fn meaning(rcode: ResponseCode, tsig: Option<TsigError>, key: Option<&TsigKey>) -> String {
    let key_name = key.map_or_else(|| "(none)".to_owned(), key_label);
    match tsig {
        Some(TsigError::BadSig) => {
            return format!("the server knows TSIG key {key_name} but with a different secret")
        }
        Some(TsigError::BadKey) => {
            return format!(
                "the server does not know TSIG key {key_name} with algorithm hmac-sha256"
            )
        }
        Some(TsigError::BadTime) => {
            return "this machine's clock and the server's differ by more than the TSIG fudge (300 s)".into()
        }
        Some(_) => return "the server did not accept the TSIG signature".into(),
        None => {}
    }
    match rcode {
        ResponseCode::NotAuth if key.is_some() => format!("the server did not accept TSIG key {key_name}, or is not authoritative for the zone"),
        ResponseCode::NotAuth => "the server is not authoritative for the zone".into(),
        ResponseCode::Refused => "the server refuses updates from this key or address (check allow-update or update-policy)".into(),
        ResponseCode::NotZone => "a record is outside the zone".into(),
        ResponseCode::ServFail => "the server failed to apply it (see its log)".into(),
        ResponseCode::FormErr => "the server could not parse the message".into(),
        ResponseCode::NotImp => "the server does not implement dynamic update for this zone (is it a secondary?)".into(),
        ResponseCode::YXDomain | ResponseCode::YXRRSet | ResponseCode::NXRRSet | ResponseCode::NXDomain => "a prerequisite failed".into(),
        _ => "unexpected response code".into(),
    }
}

async fn send(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(bytes.len())
        .map_err(|_| std::io::Error::other("message longer than 65535 octets"))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await
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

/// Parses a response and checks that it answers request `id`.
fn parse_response(raw: &[u8], id: u16) -> Result<Message, String> {
    let m = Message::from_vec(raw).map_err(|e| format!("unparsable response: {e}"))?;
    if m.metadata.message_type != MessageType::Response || m.metadata.id != id {
        return Err(format!(
            "the response does not answer our request (id {} for {id})",
            m.metadata.id
        ));
    }
    Ok(m)
}

/// Reads the records of `origin` at `server` that `managed` manages by AXFR
/// over TCP, signed with `tsig` when given (then every response message's
/// TSIG is verified: the records read decide what is deleted).
///
/// Errors name the server and the response code; a refused transfer is
/// explained as an `allow-transfer` problem, NOTAUTH with a TSIG error as
/// a key problem.
pub async fn read_current(
    server: SocketAddr,
    origin: &DomainName,
    tsig: Option<&TsigKey>,
    managed: &Managed,
) -> Result<Current, PushError> {
    let net = |what: String| PushError::Network { server, what };
    let id = new_id();
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(origin_name(origin), RecordType::AXFR));
    let mut verifier = match tsig {
        Some(k) => msg
            .finalize(&k.signer(), now_secs())
            .map_err(|e| net(format!("signing the AXFR request: {e}")))?,
        None => None,
    };
    let bytes = msg.to_vec().map_err(|e| net(e.to_string()))?;
    // Each step is bounded, not the whole transfer: a large zone over a
    // slow link may take longer than TIMEOUT, but never stalls that long.
    let timed_out = |what: &str| net(format!("{what}: no progress within {TIMEOUT:?}"));
    let mut stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(server))
        .await
        .map_err(|_| timed_out("connect"))?
        .map_err(|e| net(format!("connect: {e}")))?;
    tokio::time::timeout(TIMEOUT, send(&mut stream, &bytes))
        .await
        .map_err(|_| timed_out("sending the AXFR request"))?
        .map_err(|e| net(format!("send: {e}")))?;
    let mut current = Current::default();
    let mut soas = 0;
    while soas < 2 {
        let raw = tokio::time::timeout(TIMEOUT, recv(&mut stream))
            .await
            .map_err(|_| timed_out("zone transfer"))?
            .map_err(|e| net(format!("zone transfer ended early: {e}")))?;
        let resp = parse_response(&raw, id).map_err(net)?;
        let rcode = resp.metadata.response_code;
        if rcode != ResponseCode::NoError {
            // Error responses to a bad key are not signed with it
            // (RFC 8945 §5.3.2); they carry the TSIG error instead.
            let tsig_error = resp.signature().and_then(|s| s.data.error);
            return Err(PushError::Transfer {
                server,
                zone: origin.to_string(),
                rcode,
                tsig_error,
                meaning: match (rcode, tsig_error) {
                    (ResponseCode::Refused, None) => match tsig {
                        None => "the server refused the zone transfer to this address without a TSIG key (give --tsig-key with a key that allow-transfer admits)".to_owned(),
                        Some(k) => format!(
                            "the server refused the zone transfer (does allow-transfer admit key {}?)",
                            key_label(k)
                        ),
                    },
                    (ResponseCode::NotAuth, None) if tsig.is_none() => {
                        "the server is not authoritative for the zone, or requires a TSIG key (--tsig-key)".into()
                    }
                    _ => meaning(rcode, tsig_error, tsig),
                },
            });
        }
        if let Some(v) = verifier.as_mut() {
            v.verify(&raw).map_err(|e| PushError::Tsig {
                server,
                why: e.to_string(),
                context: "; nothing was changed".into(),
            })?;
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
                    match String::from_utf8(text) {
                        Ok(text) if managed.is_managed(&owner, &text) => {
                            current.managed.push(ManagedRecord {
                                owner,
                                ttl: r.ttl,
                                text,
                            })
                        }
                        _ => {
                            current.other_txt.insert(owner, r.ttl);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    current.managed.sort();
    Ok(current)
}

/// The difference between the server's managed records and the built zone
/// (compared by owner, TTL and text; how the text is split into strings
/// does not matter).
pub fn diff(current: &Current, desired: &Zone) -> Diff {
    let want: BTreeSet<ManagedRecord> = desired
        .records
        .iter()
        .map(|r| ManagedRecord {
            owner: r.owner.as_str().to_ascii_lowercase(),
            ttl: r.ttl,
            text: r.text.clone(),
        })
        .collect();
    let have: BTreeSet<ManagedRecord> = current.managed.iter().cloned().collect();
    let add: Vec<ManagedRecord> = want.difference(&have).cloned().collect();
    let conflicts = add
        .iter()
        .filter_map(|r| {
            let theirs = *current.other_txt.get(&r.owner)?;
            (theirs != r.ttl).then(|| TtlConflict {
                owner: r.owner.clone(),
                ours: r.ttl,
                theirs,
            })
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Diff {
        add,
        delete: have.difference(&want).cloned().collect(),
        unchanged: want.intersection(&have).count(),
        conflicts,
    }
}

/// The shrink guard for a push: refuses a difference that would remove more
/// than `limit` of the managed assertions now on the server (see
/// [`crate::zone::shrink`]). Assertions are compared by owner, authority and SSI,
/// so re-signing and TTL changes remove nothing.
pub fn check_shrink(
    current: &Current,
    desired: &Zone,
    limit: ShrinkLimit,
) -> Result<Shrink, ShrinkRefused> {
    let old: Vec<ZoneRecord> = current
        .managed
        .iter()
        .filter_map(|r| {
            Some(ZoneRecord::new(
                DomainName::parse(&r.owner).ok()?,
                r.ttl,
                r.text.clone(),
            ))
        })
        .collect();
    let shrink = Shrink::between(&old, &desired.records);
    shrink.check(limit)?;
    Ok(shrink)
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
    /// UPDATE messages sent (each applied atomically on its own).
    pub batches: usize,
}

/// The operations in sending order: all deletions, then all additions (so
/// a TTL change, delete + add of the same text, ends with the new TTL).
fn ops(diff: &Diff) -> Vec<(bool, &ManagedRecord)> {
    let mut ops: Vec<(bool, &ManagedRecord)> = diff.delete.iter().map(|r| (false, r)).collect();
    ops.extend(diff.add.iter().map(|r| (true, r)));
    ops
}

/// Splits `ops` into UPDATE messages of at most [`BATCH_RECORDS`] records
/// and [`BATCH_BYTES`] estimated octets.
fn batches<'a, 'b>(ops: &'a [(bool, &'b ManagedRecord)]) -> Vec<&'a [(bool, &'b ManagedRecord)]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, (_, r)) in ops.iter().enumerate() {
        // owner + type, class, TTL, length + text + one length octet per string
        let estimate = r.owner.len() + 2 + 10 + r.text.len() + r.text.len() / 255 + 1;
        if i > start && (size + estimate > BATCH_BYTES || i - start >= BATCH_RECORDS) {
            out.push(&ops[start..i]);
            (start, size) = (i, 0);
        }
        size += estimate;
    }
    if start < ops.len() {
        out.push(&ops[start..]);
    }
    out
}

/// Sends the difference to `server` as RFC 2136 UPDATE messages over one
/// TCP connection, TSIG-signed when `tsig` is given: deletions as class NONE
/// (delete exactly this RR), additions as ordinary RRs with their TXT text
/// split into ≤255-octet strings.
///
/// Each message is applied atomically by the server. On the first rejected
/// message this stops and returns [`PushError::Rejected`], which says that
/// message changed nothing and which earlier messages were applied. Sends
/// nothing when `diff` has [`TtlConflict`]s.
pub async fn apply(
    server: SocketAddr,
    origin: &DomainName,
    diff: &Diff,
    tsig: Option<&TsigKey>,
) -> Result<Applied, PushError> {
    let net = |what: String| PushError::Network { server, what };
    if !diff.conflicts.is_empty() {
        return Err(PushError::TtlConflict {
            server,
            conflicts: diff.conflicts.clone(),
        });
    }
    let ops = ops(diff);
    let batches = batches(&ops);
    let total = batches.len();
    if total == 0 {
        return Ok(Applied {
            added: 0,
            deleted: 0,
            batches: 0,
        });
    }
    let applied_before = |i: usize| match i {
        0 => String::new(),
        1 => "; update 1 was applied".to_owned(),
        n => format!("; updates 1 to {n} were applied"),
    };
    let mut stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(server))
        .await
        .map_err(|_| net("connect timed out".into()))?
        .map_err(|e| net(format!("connect: {e}")))?;
    for (i, batch) in batches.iter().enumerate() {
        let id = new_id();
        let mut msg = Message::new(id, MessageType::Query, OpCode::Update);
        // RFC 2136 §2.3: the zone section names the zone, type SOA.
        let mut zone = Query::query(origin_name(origin), RecordType::SOA);
        zone.set_query_class(DNSClass::IN);
        msg.add_query(zone);
        for (add, r) in batch.iter() {
            let rec = if *add {
                txt_record(r, DNSClass::IN, r.ttl)
            } else {
                txt_record(r, DNSClass::NONE, 0)
            };
            // The update section is the authority section's slot.
            msg.authorities.push(rec.map_err(net)?);
        }
        let mut verifier = match tsig {
            Some(k) => msg
                .finalize(&k.signer(), now_secs())
                .map_err(|e| net(format!("signing: {e}")))?,
            None => None,
        };
        let bytes = msg.to_vec().map_err(|e| net(e.to_string()))?;
        let fail = |what: String| {
            net(format!(
                "update {} of {total}: {what}; whether it was applied is unknown: run push again to compare{}",
                i + 1,
                applied_before(i)
            ))
        };
        let raw = tokio::time::timeout(TIMEOUT, async {
            send(&mut stream, &bytes).await?;
            recv(&mut stream).await
        })
        .await
        .map_err(|_| fail(format!("no answer within {TIMEOUT:?}")))?
        .map_err(|e| fail(e.to_string()))?;
        let resp = parse_response(&raw, id).map_err(fail)?;
        let rcode = resp.metadata.response_code;
        if rcode != ResponseCode::NoError {
            let tsig_error = resp.signature().and_then(|s| s.data.error);
            return Err(PushError::Rejected {
                server,
                batch: i + 1,
                batches: total,
                rcode,
                tsig_error,
                meaning: meaning(rcode, tsig_error, tsig),
                applied: applied_before(i),
            });
        }
        if let Some(v) = verifier.as_mut() {
            v.verify(&raw).map_err(|e| PushError::Tsig {
                server,
                why: e.to_string(),
                context: format!(
                    "; the server answered that update {} of {total} was applied, but the answer is not authenticated: run push --dry-run to compare{}",
                    i + 1,
                    applied_before(i)
                ),
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

    fn r(o: &str, ttl: u32, t: &str) -> ManagedRecord {
        ManagedRecord {
            owner: o.into(),
            ttl,
            text: t.into(),
        }
    }

    fn zone(records: &[(&str, u32, &str)]) -> Zone {
        let d = |s: &str| DomainName::parse(s).unwrap();
        Zone {
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
            records: records
                .iter()
                .map(|(o, ttl, t)| crate::zone::ZoneRecord::new(d(o), *ttl, *t))
                .collect(),
            delegations: Vec::new(),
            ptrs: Vec::new(),
            next_resign: None,
            transfer: None,
            cache: Default::default(),
            ledger: Default::default(),
        }
    }

    #[test]
    fn managed_records_are_mimi_txt_of_managed_authorities_at_mimi_names() {
        let m = Managed::new([
            "example.com".parse().unwrap(),
            "ma.example".parse().unwrap(),
        ]);
        let is_managed = |o, t| m.is_managed(o, t);
        assert!(is_managed(
            "abc._mimi.example.com",
            "v=mimi1;a=example.com;k=x"
        ));
        assert!(is_managed(
            "abc.ab._mimi.example.com",
            "v=mimi1;a=ma.example;k=x"
        ));
        assert!(is_managed(
            "_mimi-ma.example.com",
            "v=mimi1;a=example.com;k=x"
        ));
        assert!(is_managed(
            "x._mimi.9.3.e164.example",
            "v=mimi1;a=example.com"
        ));
        assert!(!is_managed("abc._mimi.example.com", "v=spf1 -all"));
        assert!(!is_managed(
            "abc._mimi.example.com",
            "v=mimi2;a=example.com"
        ));
        assert!(!is_managed("www.example.com", "v=mimi1;a=example.com"));
        assert!(!is_managed("x_mimi.example.com", "v=mimi1;a=example.com"));
        assert!(!is_managed(
            "x._mimi-ma.example.com",
            "v=mimi1;a=example.com"
        ));
        // Other authorities' records, even at the same names, are not ours.
        assert!(!is_managed(
            "abc._mimi.example.com",
            "v=mimi1;a=other.example;k=x"
        ));
        assert!(!is_managed(
            "abc._mimi.example.com",
            "v=mimi1;a=example.com.evil;k=x"
        ));
        assert!(!is_managed("abc._mimi.example.com", "v=mimi1;k=x;s=im:a@b"));
        assert!(!is_managed(
            "_mimi-ma.other.example",
            "v=mimi1;a=other.example"
        ));
        // A certificate is managed only at its own authority's name.
        assert!(!is_managed("_mimi-ma.ma.example", "v=mimi1;a=example.com"));
        assert!(!Managed::default().is_managed("abc._mimi.example.com", "v=mimi1;a=example.com"));
    }

    #[test]
    fn the_shrink_guard_counts_managed_assertions_on_the_server() {
        let rec = |i: usize| {
            r(
                &format!("l{i}.l._mimi.example.com"),
                300,
                &format!("v=mimi1;a=example.com;k=x;s=im:u{i}@b.example;t=1;x=2;sig=y"),
            )
        };
        let current = Current {
            managed: (0..10).map(rec).collect(),
            other_txt: BTreeMap::new(),
        };
        let texts: Vec<(String, u32, String)> =
            (0..9).map(rec).map(|r| (r.owner, 60, r.text)).collect();
        let nine = zone(
            &texts
                .iter()
                .map(|(o, t, x)| (o.as_str(), *t, x.as_str()))
                .collect::<Vec<_>>(),
        );
        // 1 of 10 removed (and every TTL changed): allowed at 10%.
        let s = check_shrink(&current, &nine, ShrinkLimit::default()).unwrap();
        assert_eq!((s.before, s.after, s.removed), (10, 9, 1));
        let eight = zone(
            &texts[..8]
                .iter()
                .map(|(o, t, x)| (o.as_str(), *t, x.as_str()))
                .collect::<Vec<_>>(),
        );
        let e = check_shrink(&current, &eight, ShrinkLimit::default()).unwrap_err();
        assert_eq!(e.shrink.removed, 2);
        assert!(check_shrink(&current, &eight, ShrinkLimit::OFF).is_ok());
        // Emptying: refused whatever the limit, unless the guard is off.
        let empty = zone(&[]);
        assert!(check_shrink(&current, &empty, ShrinkLimit::parse("99%").unwrap()).is_err());
        assert!(check_shrink(&current, &empty, ShrinkLimit::OFF).is_ok());
    }

    #[test]
    fn diff_counts_adds_deletes_and_ttl_changes() {
        let zone = zone(&[
            ("a._mimi.example.com", 300, "v=mimi1;1"),
            ("b._mimi.example.com", 300, "v=mimi1;2"),
            ("c._mimi.example.com", 300, "v=mimi1;3"),
        ]);
        let current = Current {
            managed: vec![
                r("a._mimi.example.com", 300, "v=mimi1;1"),
                r("z._mimi.example.com", 300, "v=mimi1;old"),
                r("b._mimi.example.com", 60, "v=mimi1;2"),
            ],
            other_txt: BTreeMap::new(),
        };
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
        assert!(diff.conflicts.is_empty());
        assert_eq!(diff.batches(), 1);
        // Deletions go first, so the TTL change of b ends with TTL 300.
        let ops = ops(&diff);
        assert_eq!(
            ops.iter().map(|(add, _)| *add).collect::<Vec<_>>(),
            [false, false, true, true]
        );
    }

    #[test]
    fn an_addition_that_would_change_a_foreign_ttl_is_a_conflict() {
        let zone = zone(&[
            ("a._mimi.example.com", 300, "v=mimi1;1"),
            ("b._mimi.example.com", 300, "v=mimi1;2"),
        ]);
        let current = Current {
            managed: vec![],
            other_txt: [
                ("a._mimi.example.com".to_owned(), 60),
                ("b._mimi.example.com".to_owned(), 300),
            ]
            .into_iter()
            .collect(),
        };
        let d = diff(&current, &zone);
        assert_eq!(
            d.conflicts,
            vec![TtlConflict {
                owner: "a._mimi.example.com".into(),
                ours: 300,
                theirs: 60
            }]
        );
        let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt
            .block_on(apply(server, &zone.origin, &d, None))
            .unwrap_err();
        assert!(matches!(err, PushError::TtlConflict { .. }), "{err}");
        assert!(err.to_string().contains("nothing was sent"), "{err}");
    }

    #[test]
    fn large_differences_are_split_under_the_message_limits() {
        let many: Vec<ManagedRecord> = (0..1200)
            .map(|i| {
                r(
                    &format!("l{i:04}._mimi.example.com"),
                    300,
                    &"v=mimi1;".repeat(40),
                )
            })
            .collect();
        let d = Diff {
            add: many[..700].to_vec(),
            delete: many[700..].to_vec(),
            ..Default::default()
        };
        let ops = ops(&d);
        let b = batches(&ops);
        assert!(b.len() >= 3, "{}", b.len());
        assert_eq!(b.iter().map(|b| b.len()).sum::<usize>(), 1200);
        for batch in &b {
            assert!(batch.len() <= BATCH_RECORDS);
            let mut msg = Message::new(1, MessageType::Query, OpCode::Update);
            for (add, rec) in batch.iter() {
                let class = if *add { DNSClass::IN } else { DNSClass::NONE };
                msg.authorities.push(txt_record(rec, class, 0).unwrap());
            }
            let len = msg.to_vec().unwrap().len();
            assert!(len <= BATCH_BYTES + 512, "{len}");
        }
        // Small records: the record count limits.
        let small: Vec<ManagedRecord> = (0..1001)
            .map(|i| r(&format!("s{i}._mimi.example.com"), 1, "v=mimi1;x"))
            .collect();
        let d = Diff {
            add: small,
            ..Default::default()
        };
        assert_eq!(d.batches(), 3);
    }

    #[test]
    fn display_escapes_quotes_and_backslashes() {
        assert_eq!(
            r("a._mimi.example.com", 5, r#"v=mimi1;s=a"b\c"#).to_string(),
            r#"a._mimi.example.com. 5 IN TXT "v=mimi1;s=a\"b\\c""#
        );
        assert_eq!(
            rcode_label(&ResponseCode::NotAuth, &Some(TsigError::BadSig)),
            "NOTAUTH (TSIG BADSIG)"
        );
    }
}
