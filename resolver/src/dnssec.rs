//! DNSSEC as an additional layer under the mapping signatures.
//!
//! Assertions are signed by mapping authorities (SPEC §4), so a server or
//! path cannot forge a mapping; but without DNSSEC it can *hide* one: answer
//! NXDOMAIN, NODATA, or an older, still valid record set in place of the
//! real answer. With a [`DnssecPolicy`] of [`DnssecMode::Require`], every
//! answer a source depends on — the TXT records at a discovery name, the
//! `_mimi-ma` certificates, and NXDOMAIN/NODATA (proven by NSEC/NSEC3) —
//! must be proven Secure from the configured trust anchors, or that source
//! fails with the reason. Nothing is ever silently downgraded.
//!
//! hickory-resolver validates but *annotates* rather than filters: each
//! record carries a [`Proof`], and only Bogus answers become errors. This
//! module turns those annotations into the policy's decision, for
//! positive answers, negative answers and validation errors alike.

use std::path::{Path, PathBuf};

mod ds;
pub(crate) use ds::establish;
pub use ds::AnchorDs;

use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::rdata::DNSSECRData;
use hickory_resolver::proto::dnssec::{Algorithm, Proof, PublicKeyBuf, TrustAnchors};
use hickory_resolver::proto::rr::{LowerName, Name, RData, Record, RecordType};

/// How much DNSSEC a lookup demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnssecMode {
    /// No validation and no DO bit: today's behaviour; the mapping
    /// signatures are the only protection (a path can hide mappings).
    #[default]
    Off,
    /// Validate; a Bogus (or undeterminable) answer fails its source, an
    /// answer proven Insecure (an unsigned zone) is accepted. Protects signed
    /// zones against tampering while still reaching unsigned ones.
    Prefer,
    /// Validate; every answer, positive or negative, must be proven Secure.
    /// Nobody on the path can suppress a mapping undetected.
    Require,
}

impl DnssecMode {
    /// Parses `off`, `prefer` or `require`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(DnssecMode::Off),
            "prefer" => Ok(DnssecMode::Prefer),
            "require" => Ok(DnssecMode::Require),
            other => Err(format!(
                "{other:?} is not one of \"off\", \"prefer\", \"require\""
            )),
        }
    }

    /// The name as written in a trust store.
    pub fn as_str(self) -> &'static str {
        match self {
            DnssecMode::Off => "off",
            DnssecMode::Prefer => "prefer",
            DnssecMode::Require => "require",
        }
    }
}

impl std::fmt::Display for DnssecMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DnssecMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

/// One trusted DNSKEY: the zone it is the key of, and the key. Only made
/// by parsing an anchor file, so it is always a usable zone key of a
/// supported algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorKey {
    zone: String,
    flags: u16,
    algorithm: u8,
    public_key: Vec<u8>,
}

impl AnchorKey {
    /// The zone (absolute, lowercase, e.g. `example.com.`; `.` for the root).
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// DNSKEY flags (256 ZSK, 257 KSK).
    pub fn flags(&self) -> u16 {
        self.flags
    }

    /// DNSSEC algorithm number (one the validator supports).
    pub fn algorithm(&self) -> u8 {
        self.algorithm
    }

    /// The public key as in the DNSKEY RDATA.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }
}

/// Where validation starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TrustAnchor {
    /// The IANA root KSKs (2017 and 2024) built into hickory.
    #[default]
    IanaRoot,
    /// DNSKEYs and DS records read from a file; they replace the IANA root
    /// anchors.
    Keys {
        /// The file they came from, for messages.
        file: PathBuf,
        /// The keys, trusted as they are.
        keys: Vec<AnchorKey>,
        /// DS records: each zone's DNSKEY set is fetched and verified
        /// against them before the first validated lookup (see
        /// [`AnchorDs`]). `keys` and `ds` are never both empty.
        ds: Vec<AnchorDs>,
    },
}

impl TrustAnchor {
    /// Reads a file of DNSKEY and DS records in zone-file presentation
    /// format, one per line, mixed as needed:
    /// `name [ttl] [IN] DNSKEY flags 3 algorithm base64…` (as `kdig ZONE
    /// DNSKEY` prints them) or `name [ttl] [IN] DS keytag algorithm
    /// digesttype hex…` (as `keymgr ZONE ds` or `dnssec-dsfromkey` print
    /// them); `;` starts a comment.
    ///
    /// The validator (hickory 0.26) trusts exactly the keys listed at a
    /// name: when a zone's DNSKEY set holds keys not in the file (a ZSK
    /// next to the listed KSK), it looks for a DS in the parent and, finding
    /// none, judges the zone Bogus. So DNSKEY lines must list *every* DNSKEY
    /// of the zone. A DS line needs only the KSK's digest: the zone's whole
    /// DNSKEY set is fetched and, once verified against the DS, trusted
    /// (see [`AnchorDs`]). DS digests must be SHA-256 (2) or SHA-384 (4);
    /// SHA-1 is refused.
    pub fn load(path: &Path) -> Result<Self, AnchorError> {
        let text = std::fs::read_to_string(path).map_err(|e| AnchorError {
            file: path.to_owned(),
            line: 0,
            why: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses anchor text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Self, AnchorError> {
        let mut keys = Vec::new();
        let mut ds = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let err = |why: String| AnchorError {
                file: file.to_owned(),
                line: i + 1,
                why,
            };
            let line = raw.split(';').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            match parse_line(line).map_err(err)? {
                Line::Key(k) => keys.push(k),
                Line::Ds(d) => ds.push(d),
            }
        }
        if keys.is_empty() && ds.is_empty() {
            return Err(AnchorError {
                file: file.to_owned(),
                line: 0,
                why: "no DNSKEY or DS records: nothing could ever be validated".into(),
            });
        }
        Ok(TrustAnchor::Keys {
            file: file.to_owned(),
            keys,
            ds,
        })
    }

    /// The DS anchors, which must be established (turned into keys by
    /// fetching and verifying the zones' DNSKEY sets) before validating.
    pub fn ds(&self) -> &[AnchorDs] {
        match self {
            TrustAnchor::IanaRoot => &[],
            TrustAnchor::Keys { ds, .. } => ds,
        }
    }

    /// The key anchors in hickory's form (DS anchors are not among them:
    /// see [`TrustAnchor::ds`]).
    pub fn to_hickory(&self) -> TrustAnchors {
        match self {
            TrustAnchor::IanaRoot => TrustAnchors::default(),
            TrustAnchor::Keys { keys, .. } => {
                let mut anchors = TrustAnchors::empty();
                for k in keys {
                    let key =
                        PublicKeyBuf::new(k.public_key.clone(), Algorithm::from_u8(k.algorithm));
                    // The zone was parsed as a name when the file was read.
                    if let Ok(name) = Name::from_ascii(&k.zone) {
                        anchors.insert_with_name(&key, LowerName::from(&name));
                    }
                }
                anchors
            }
        }
    }
}

/// One parsed anchor line.
enum Line {
    Key(AnchorKey),
    Ds(AnchorDs),
}

fn parse_line(line: &str) -> Result<Line, String> {
    let mut tokens = line.split_whitespace().peekable();
    let owner = tokens.next().ok_or("empty line")?;
    if !owner.ends_with('.') {
        return Err(format!(
            "owner {owner:?} is not absolute (end it with a dot)"
        ));
    }
    let zone = Name::from_ascii(owner)
        .map_err(|e| format!("owner {owner:?} is not a domain name: {e}"))?
        .to_lowercase()
        .to_ascii();
    // Optional TTL and class, in either order.
    for _ in 0..2 {
        match tokens.peek() {
            Some(t) if t.bytes().all(|b| b.is_ascii_digit()) => {
                tokens.next();
            }
            Some(t) if t.eq_ignore_ascii_case("IN") => {
                tokens.next();
            }
            _ => {}
        }
    }
    let rtype = tokens.next().ok_or("no record type")?;
    if rtype.eq_ignore_ascii_case("DS") {
        return ds::parse_ds(zone, tokens).map(Line::Ds);
    }
    if !rtype.eq_ignore_ascii_case("DNSKEY") {
        return Err(format!(
            "{rtype:?} record: only DNSKEY and DS records are anchors"
        ));
    }
    let number = |what: &str, t: Option<&str>| -> Result<u64, String> {
        let t = t.ok_or_else(|| format!("DNSKEY without {what}"))?;
        t.parse::<u64>()
            .map_err(|_| format!("DNSKEY {what} {t:?} is not a number"))
    };
    let flags = number("flags", tokens.next())?;
    let flags = u16::try_from(flags).map_err(|_| format!("DNSKEY flags {flags} out of range"))?;
    if flags & 0x0100 == 0 {
        return Err(format!(
            "DNSKEY flags {flags}: not a zone key (bit 7 unset), cannot sign a zone"
        ));
    }
    if flags & 0x0080 != 0 {
        return Err(format!(
            "DNSKEY flags {flags}: the key is revoked (RFC 5011)"
        ));
    }
    let protocol = number("protocol", tokens.next())?;
    if protocol != 3 {
        return Err(format!("DNSKEY protocol {protocol}: must be 3"));
    }
    let algorithm = number("algorithm", tokens.next())?;
    let algorithm = u8::try_from(algorithm)
        .map_err(|_| format!("DNSKEY algorithm {algorithm} out of range"))?;
    let alg = Algorithm::from_u8(algorithm);
    if !alg.is_supported() {
        return Err(format!(
            "DNSKEY algorithm {algorithm} ({alg:?}) is not supported by the validator"
        ));
    }
    let b64: String = tokens.collect();
    if b64.is_empty() {
        return Err("DNSKEY without a public key".into());
    }
    if b64.contains('(') || b64.contains(')') {
        return Err(
            "multi-line (parenthesised) records are not supported: one record per line".into(),
        );
    }
    let public_key = data_encoding::BASE64
        .decode(b64.as_bytes())
        .map_err(|e| format!("DNSKEY public key is not base64: {e}"))?;
    let expected = match alg {
        Algorithm::ED25519 => Some(32),
        Algorithm::ECDSAP256SHA256 => Some(64),
        Algorithm::ECDSAP384SHA384 => Some(96),
        _ => None,
    };
    if let Some(n) = expected {
        if public_key.len() != n {
            return Err(format!(
                "DNSKEY public key has {} octets; algorithm {algorithm} keys have {n}",
                public_key.len()
            ));
        }
    }
    Ok(Line::Key(AnchorKey {
        zone,
        flags,
        algorithm,
        public_key,
    }))
}

/// Why a trust-anchor file is unusable; names the file and line (0: the
/// file as a whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {why}", file.display(), if *line > 0 { format!(":{line}") } else { String::new() })]
pub struct AnchorError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, 0 for the whole file.
    pub line: usize,
    /// What is wrong.
    pub why: String,
}

/// The DNSSEC policy: a mode and where validation starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnssecPolicy {
    /// How much DNSSEC a lookup demands.
    pub mode: DnssecMode,
    /// The anchors validation starts from (unused when `mode` is off).
    pub anchor: TrustAnchor,
}

impl DnssecPolicy {
    /// Whether answers are validated at all.
    pub fn validates(&self) -> bool {
        self.mode != DnssecMode::Off
    }
}

/// The proof hickory attached to the records of an answer that matter (all
/// but RRSIGs): the weakest one, `None` when there are none.
fn weakest(records: &[Record]) -> Option<Proof> {
    records
        .iter()
        .filter(|r| r.record_type() != RecordType::RRSIG)
        .map(|r| r.proof)
        .min_by_key(|p| match p {
            Proof::Bogus => 0,
            Proof::Indeterminate => 1,
            Proof::Insecure => 2,
            Proof::Secure => 3,
        })
}

fn proof_reason(proof: Proof) -> String {
    match proof {
        Proof::Secure => "secure".into(),
        Proof::Insecure => "not signed (Insecure)".into(),
        Proof::Bogus => format!("bogus: {BOGUS}"),
        Proof::Indeterminate => {
            "DNSSEC state undeterminable (Indeterminate): the signatures or keys could not be fetched".into()
        }
    }
}

const BOGUS: &str =
    "the signatures or the chain of trust from the anchor do not verify (tampered or misconfigured)";

/// Judges a positive answer at `fqdn`: `Err` with the reason when the
/// policy does not accept the weakest proof among its records.
pub(crate) fn check_answer(mode: DnssecMode, fqdn: &str, answers: &[Record]) -> Result<(), String> {
    let Some(proof) = weakest(answers) else {
        return Ok(());
    };
    if accepted(mode, proof) {
        Ok(())
    } else {
        Err(format!("{fqdn}: DNSSEC ({mode}): {}", proof_reason(proof)))
    }
}

fn accepted(mode: DnssecMode, proof: Proof) -> bool {
    match mode {
        DnssecMode::Off => true,
        DnssecMode::Prefer => matches!(proof, Proof::Secure | Proof::Insecure),
        DnssecMode::Require => proof == Proof::Secure,
    }
}

/// Judges an NXDOMAIN/NODATA answer at `fqdn` (`error` is hickory's
/// `NoRecordsFound`). Hickory only lets a negative answer through a
/// validating resolver when its NSEC/NSEC3 proof verified — or when it
/// judged the name Insecure (unsigned zone, or no denial records at all).
/// Under `require`, a Secure NSEC or NSEC3 record must be among the
/// answer's authority records; under `prefer` an Insecure one is accepted.
pub(crate) fn check_negative(mode: DnssecMode, fqdn: &str, error: &NetError) -> Result<(), String> {
    if mode == DnssecMode::Off {
        return Ok(());
    }
    let NetError::Dns(DnsError::NoRecordsFound(no)) = error else {
        return Ok(());
    };
    let authorities: &[Record] = no.authorities.as_deref().unwrap_or(&[]);
    let denial_proven = authorities.iter().any(|r| {
        r.proof == Proof::Secure
            && matches!(
                &r.data,
                RData::DNSSEC(DNSSECRData::NSEC(_)) | RData::DNSSEC(DNSSECRData::NSEC3(_))
            )
    });
    if denial_proven {
        return Ok(());
    }
    let proof = if authorities.iter().any(|r| r.proof == Proof::Secure) {
        // A signed zone (its SOA verified) but no verified denial: never
        // taken for an unsigned one.
        Proof::Indeterminate
    } else {
        weakest(authorities).unwrap_or(Proof::Insecure)
    };
    if mode == DnssecMode::Prefer && proof == Proof::Insecure {
        return Ok(());
    }
    Err(format!(
        "{fqdn}: DNSSEC ({mode}): negative answer not proven ({})",
        proof_reason(proof)
    ))
}

/// The reason for a failed query when it is a DNSSEC failure, else `None`;
/// `Some(Ok(()))` when the error is an Insecure negative answer that the
/// policy accepts (an empty answer).
pub(crate) fn describe_failure(
    mode: DnssecMode,
    fqdn: &str,
    error: &NetError,
) -> Option<Result<(), String>> {
    match error {
        NetError::Dns(DnsError::DnssecBogus) => {
            Some(Err(format!("{fqdn}: DNSSEC ({mode}): bogus: {BOGUS}")))
        }
        NetError::Dns(DnsError::Nsec { proof, .. }) => {
            if accepted(mode, *proof) && *proof != Proof::Secure {
                return Some(Ok(()));
            }
            Some(Err(format!(
                "{fqdn}: DNSSEC ({mode}): negative answer not proven ({})",
                proof_reason(*proof)
            )))
        }
        _ => None,
    }
}

/// The reason for a query that did not finish within `deadline`. Under a
/// validating policy the wait may be the validator's: with signatures
/// stripped on the path, hickory 0.26 searches for a proof of an unsigned
/// delegation query after query (up to its depth limit of 26) instead of
/// failing at once, so the deadline is what ends it — still a failed
/// source, and said to be one of DNSSEC.
pub(crate) fn timed_out(mode: DnssecMode, fqdn: &str, deadline: std::time::Duration) -> String {
    if mode == DnssecMode::Off {
        format!("{fqdn}: no answer within {deadline:?}")
    } else {
        format!(
            "{fqdn}: DNSSEC ({mode}): no validated answer within {deadline:?} \
             (no answer, or validation did not finish: signatures missing or unreachable)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=";
    const ED: &str =
        "example.com. 3600 IN DNSKEY 257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=";

    fn parse(text: &str) -> Result<TrustAnchor, String> {
        TrustAnchor::parse(text, Path::new("anchors.txt")).map_err(|e| e.to_string())
    }

    #[test]
    fn dnskey_lines_in_the_forms_tools_print() {
        let a = parse(&format!(
            "; from kdig\n{ED}\n\nExample.COM.\tIN\t3600 DNSKEY 256 3 13 {} ; zsk\n",
            data_encoding::BASE64.encode(&[7u8; 64])
        ))
        .unwrap();
        let TrustAnchor::Keys { keys, .. } = &a else {
            panic!()
        };
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].zone, "example.com.");
        assert_eq!(keys[0].flags, 257);
        assert_eq!(keys[0].algorithm, 15);
        assert_eq!(keys[1].zone, "example.com.");
        assert_eq!(keys[1].algorithm, 13);
        assert!(
            a.to_hickory().is_empty(),
            "non-root keys are not root anchors"
        );
        let root = parse(&format!(". DNSKEY 257 3 15 {KEY}")).unwrap();
        assert_eq!(root.to_hickory().len(), 1);
    }

    #[test]
    fn bad_anchor_lines_name_file_and_line() {
        let e = parse("example.com DNSKEY 257 3 15 AAAA").unwrap_err();
        assert!(
            e.starts_with("anchors.txt:1: ") && e.contains("not absolute"),
            "{e}"
        );
        let e = parse("example.com. DNSKEY 257 3 16 AwEAAQ==").unwrap_err();
        assert!(
            e.contains("algorithm 16") && e.contains("not supported"),
            "{e}"
        );
        let e = parse("example.com. DNSKEY 257 3 15 AAAA").unwrap_err();
        assert!(e.contains("3 octets; algorithm 15 keys have 32"), "{e}");
        let e = parse("example.com. DNSKEY 257 3 15 not*base64").unwrap_err();
        assert!(e.contains("not base64"), "{e}");
        let e = parse("example.com. DNSKEY 257 2 15 AAAA").unwrap_err();
        assert!(e.contains("protocol 2"), "{e}");
        let e = parse("example.com. DNSKEY 1 3 15 AAAA").unwrap_err();
        assert!(e.contains("not a zone key"), "{e}");
        let e = parse("example.com. DNSKEY 385 3 15 AAAA").unwrap_err();
        assert!(e.contains("revoked"), "{e}");
        let e = parse("example.com. A 192.0.2.1").unwrap_err();
        assert!(e.contains("only DNSKEY"), "{e}");
        let e = parse("example.com. DNSKEY 257 3 15 ( AAAA").unwrap_err();
        assert!(e.contains("multi-line"), "{e}");
        let e = parse("; nothing\n\n").unwrap_err();
        assert_eq!(
            e,
            "anchors.txt: no DNSKEY or DS records: nothing could ever be validated"
        );
        let e = TrustAnchor::load(Path::new("/nonexistent/anchors")).unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/anchors: cannot read"),
            "{e}"
        );
    }

    const SHA256: &str = "D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A";

    /// DS lines as `keymgr ZONE ds` and `dnssec-dsfromkey` print them,
    /// mixed with DNSKEY lines; the digest may be split by blanks and in
    /// either case.
    #[test]
    fn ds_lines_mixed_with_dnskey_lines() {
        let sha384 = "ab".repeat(48);
        let a = parse(&format!(
            "{ED}\nExample.COM. DS 12345 13 2 {SHA256}\nother.example. 3600 IN DS 7 15 4 {} {}\n",
            &sha384[..40],
            &sha384[40..]
        ))
        .unwrap();
        let TrustAnchor::Keys { keys, ds, .. } = &a else {
            panic!()
        };
        assert_eq!(keys.len(), 1);
        assert_eq!(ds.len(), 2);
        assert_eq!(a.ds(), &ds[..]);
        assert_eq!(ds[0].zone(), "example.com.");
        assert_eq!(ds[0].key_tag(), 12345);
        assert_eq!(ds[0].algorithm(), 13);
        assert_eq!(ds[0].digest_type(), 2);
        assert_eq!(
            data_encoding::HEXUPPER.encode(ds[0].digest()),
            SHA256.to_ascii_uppercase()
        );
        assert_eq!(ds[1].zone(), "other.example.");
        assert_eq!(ds[1].digest(), &[0xab; 48][..]);
        assert!(a.to_hickory().is_empty(), "DS are not keys");
        // DS lines alone are an anchor file.
        let only = parse(&format!(
            "example.com. IN DS 12345 13 2 {}\n",
            SHA256.to_lowercase()
        ))
        .unwrap();
        assert_eq!(only.ds().len(), 1);
        assert_eq!(TrustAnchor::IanaRoot.ds(), &[]);
    }

    #[test]
    fn bad_ds_lines_name_file_and_line() {
        let e = parse(&format!(
            "{ED}\nexample.com. DS 12345 13 1 {}\n",
            "ab".repeat(20)
        ))
        .unwrap_err();
        assert!(
            e.starts_with("anchors.txt:2: DS digest type 1 (SHA-1) is refused: SHA-1 is broken"),
            "{e}"
        );
        let e = parse(&format!("example.com. DS 12345 13 3 {SHA256}")).unwrap_err();
        assert_eq!(
            e,
            "anchors.txt:1: DS digest type 3 is not supported: only SHA-256 (2) and SHA-384 (4)"
        );
        let e = parse("example.com. DS 12345 13 2 D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA5").unwrap_err();
        assert_eq!(
            e,
            "anchors.txt:1: DS digest has 31 octets; digest type 2 digests have 32"
        );
        let e = parse(&format!("example.com. DS 12345 13 4 {SHA256}")).unwrap_err();
        assert!(
            e.contains("32 octets; digest type 4 digests have 48"),
            "{e}"
        );
        let e = parse(&format!(
            "example.com. DS 12345 13 2 {}",
            SHA256.replace('D', "G")
        ))
        .unwrap_err();
        assert!(
            e.starts_with("anchors.txt:1: DS digest is not hexadecimal"),
            "{e}"
        );
        let e = parse("example.com. DS 12345 13 2 ABC").unwrap_err();
        assert!(e.contains("not hexadecimal"), "{e}");
        let e = parse(&format!("example.com. DS 12345 16 2 {SHA256}")).unwrap_err();
        assert!(
            e.contains("DS algorithm 16") && e.contains("not supported"),
            "{e}"
        );
        let e = parse(&format!("example.com. DS 65536 13 2 {SHA256}")).unwrap_err();
        assert!(e.contains("key tag 65536 out of range"), "{e}");
        let e = parse("example.com. DS 12345 13 2").unwrap_err();
        assert!(e.contains("DS without a digest"), "{e}");
        let e = parse("example.com. DS 12345 x 2 AB").unwrap_err();
        assert!(e.contains("DS algorithm \"x\" is not a number"), "{e}");
        let e = parse("example.com. DS 12345 13").unwrap_err();
        assert!(e.contains("DS without digest type"), "{e}");
        let e = parse(&format!("example.com. DS 12345 13 2 ( {SHA256} )")).unwrap_err();
        assert!(e.contains("multi-line"), "{e}");
        let e = parse(&format!("example.com DS 12345 13 2 {SHA256}")).unwrap_err();
        assert!(e.contains("not absolute"), "{e}");
    }

    fn record(data: RData, proof: Proof) -> Record {
        let mut r = Record::from_rdata(Name::from_ascii("a.example.com.").unwrap(), 60, data);
        r.proof = proof;
        r
    }

    fn txt(proof: Proof) -> Record {
        use hickory_resolver::proto::rr::rdata::TXT;
        record(RData::TXT(TXT::new(vec!["v=mimi1".into()])), proof)
    }

    fn nsec(proof: Proof) -> Record {
        use hickory_resolver::proto::dnssec::rdata::NSEC;
        let next = Name::from_ascii("b.example.com.").unwrap();
        record(
            RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(next, [RecordType::A]))),
            proof,
        )
    }

    fn soa(proof: Proof) -> Record {
        use hickory_resolver::proto::rr::rdata::SOA;
        let n = Name::from_ascii("example.com.").unwrap();
        record(RData::SOA(SOA::new(n.clone(), n, 1, 1, 1, 1, 1)), proof)
    }

    fn no_records(authorities: Vec<Record>) -> NetError {
        use hickory_resolver::net::NoRecords;
        use hickory_resolver::proto::op::{Query, ResponseCode};
        let q = Query::query(Name::from_ascii("a.example.com.").unwrap(), RecordType::TXT);
        let mut no = NoRecords::new(q, ResponseCode::NXDomain);
        if !authorities.is_empty() {
            no.authorities = Some(authorities.into());
        }
        NetError::Dns(DnsError::NoRecordsFound(no))
    }

    /// Every answer record counts, the weakest decides; RRSIGs carry no
    /// proof of their own and are skipped.
    #[test]
    fn positive_answers_by_mode() {
        use DnssecMode::*;
        let secure = [txt(Proof::Secure), txt(Proof::Secure)];
        let mixed = [txt(Proof::Secure), txt(Proof::Insecure)];
        for m in [Off, Prefer, Require] {
            assert_eq!(check_answer(m, "n.", &secure), Ok(()));
            assert_eq!(check_answer(m, "n.", &[]), Ok(()));
        }
        assert_eq!(check_answer(Off, "n.", &mixed), Ok(()));
        assert_eq!(check_answer(Prefer, "n.", &mixed), Ok(()));
        assert_eq!(
            check_answer(Require, "n.", &mixed).unwrap_err(),
            "n.: DNSSEC (require): not signed (Insecure)"
        );
        let bogus = [txt(Proof::Secure), txt(Proof::Bogus)];
        assert!(check_answer(Prefer, "n.", &bogus)
            .unwrap_err()
            .starts_with("n.: DNSSEC (prefer): bogus: "));
        let unknown = [txt(Proof::Indeterminate)];
        assert!(check_answer(Prefer, "n.", &unknown)
            .unwrap_err()
            .contains("Indeterminate"));
    }

    /// NXDOMAIN/NODATA under require needs a verified NSEC/NSEC3 denial;
    /// a signed SOA alone, or nothing at all, is not a proof.
    #[test]
    fn negative_answers_by_mode() {
        use DnssecMode::*;
        let proven = no_records(vec![soa(Proof::Secure), nsec(Proof::Secure)]);
        for m in [Off, Prefer, Require] {
            assert_eq!(check_negative(m, "n.", &proven), Ok(()));
        }
        let unsigned = no_records(vec![soa(Proof::Insecure)]);
        assert_eq!(check_negative(Off, "n.", &unsigned), Ok(()));
        assert_eq!(check_negative(Prefer, "n.", &unsigned), Ok(()));
        assert_eq!(
            check_negative(Require, "n.", &unsigned).unwrap_err(),
            "n.: DNSSEC (require): negative answer not proven (not signed (Insecure))"
        );
        let bare = no_records(vec![]);
        assert_eq!(check_negative(Prefer, "n.", &bare), Ok(()));
        assert!(check_negative(Require, "n.", &bare)
            .unwrap_err()
            .contains("negative answer not proven (not signed (Insecure))"));
        let soa_only = no_records(vec![soa(Proof::Secure), nsec(Proof::Insecure)]);
        for m in [Prefer, Require] {
            assert!(check_negative(m, "n.", &soa_only)
                .unwrap_err()
                .contains("negative answer not proven (DNSSEC state undeterminable"));
        }
    }

    #[test]
    fn failures_by_mode() {
        use DnssecMode::*;
        let bogus = NetError::Dns(DnsError::DnssecBogus);
        assert!(describe_failure(Require, "n.", &bogus)
            .unwrap()
            .unwrap_err()
            .starts_with("n.: DNSSEC (require): bogus: "));
        let other = NetError::from("connection refused");
        assert_eq!(describe_failure(Require, "n.", &other), None);
        assert!(
            timed_out(Off, "n.", std::time::Duration::from_secs(5)) == "n.: no answer within 5s"
        );
        assert!(timed_out(Require, "n.", std::time::Duration::from_secs(5))
            .starts_with("n.: DNSSEC (require): no validated answer within 5s"));
    }

    #[test]
    fn modes() {
        assert_eq!(DnssecMode::parse("require"), Ok(DnssecMode::Require));
        assert_eq!(DnssecMode::parse("prefer"), Ok(DnssecMode::Prefer));
        assert_eq!(DnssecMode::parse("off"), Ok(DnssecMode::Off));
        assert!(DnssecMode::parse("on").unwrap_err().contains("\"on\""));
        assert_eq!(DnssecMode::default(), DnssecMode::Off);
        for p in [
            Proof::Secure,
            Proof::Insecure,
            Proof::Bogus,
            Proof::Indeterminate,
        ] {
            assert!(accepted(DnssecMode::Off, p));
            assert_eq!(accepted(DnssecMode::Require, p), p == Proof::Secure);
        }
        assert!(accepted(DnssecMode::Prefer, Proof::Insecure));
        assert!(!accepted(DnssecMode::Prefer, Proof::Bogus));
        assert!(!accepted(DnssecMode::Prefer, Proof::Indeterminate));
    }
}
