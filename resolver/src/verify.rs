//! DNS-free verification of the records found for one SII (SPEC §8 steps
//! 3–5, §11).
//!
//! Everything here is a pure function of its inputs — the canonical SII,
//! the current time, the trust store, and the record texts found — so the
//! whole trust decision can be tested against fixed vectors without a DNS
//! server, and the DNS code in [`crate::lookup`] only gathers texts.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use mimi_proto::text::is_mimi_text;
use mimi_proto::{
    Assertion, AuthorityName, Certificate, KeyId, PublicKey, RecordText, Sii, SiiHash, Ssi,
    UnixTime,
};

use crate::output::rfc3339;
use crate::resolution::{Rejected, VerifiedSsi};
use crate::trust::{Policy, TrustStore, TrustedAuthority};

/// At most this many mimi records are considered per discovery name
/// (SPEC §11); the excess is rejected.
pub const MAX_RECORDS_PER_NAME: usize = 64;
/// At most this many certificates are considered per authority (SPEC §11);
/// the excess is ignored and reported.
pub const MAX_CERTIFICATES_PER_AUTHORITY: usize = 16;
/// At most this many distribution zones may be configured (SPEC §11).
pub const MAX_DISTRIBUTION_ZONES: usize = 32;

/// The TXT texts found at one discovery name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecords {
    /// The discovery name (absolute, trailing dot), for reporting.
    pub source: String,
    /// The text of each TXT RR (character-strings concatenated). Texts that
    /// are not mimi records are ignored here, so callers may pass all.
    pub texts: Vec<String>,
}

/// The outcome of verifying one SII's records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verification {
    /// SSIs vouched for by enough trusted authorities, sorted by SSI.
    pub verified: Vec<VerifiedSsi>,
    /// Every record that did not count, with the reason.
    pub rejected: Vec<Rejected>,
    /// Limits hit and malformed certificates ignored (SPEC §11).
    pub notes: Vec<String>,
}

/// The authorities whose certificates are needed to verify these records:
/// trusted authorities named by well-formed assertions whose key id is not
/// one of the authority's pinned root keys. Used by the resolver to fetch
/// `_mimi-ma.<authority>.` only when needed.
pub fn authorities_needing_certificates(
    trust: &TrustStore,
    sources: &[SourceRecords],
) -> Vec<AuthorityName> {
    let mut out: Vec<AuthorityName> = Vec::new();
    for text in sources.iter().flat_map(|s| s.texts.iter()) {
        let Ok(a) = Assertion::parse(text) else {
            continue;
        };
        let Some(ta) = trust.authority(a.authority()) else {
            continue;
        };
        if ta.root_key(a.kid()).is_none() && !out.contains(a.authority()) {
            out.push(a.authority().clone());
        }
    }
    out.sort();
    out
}

/// A vouching that passed every check.
struct Vouch {
    ssi: Ssi,
    authority: AuthorityName,
    expires: UnixTime,
    record: String,
    source: String,
}

/// Verifies the records found for `sii` at `now` (SPEC §8 steps 3–5).
///
/// `certificates` holds, per authority, the TXT texts found at
/// `_mimi-ma.<authority>.`; authorities missing from the map simply have no
/// certificates (assertions signed directly by a root key need none).
pub fn verify(
    sii: &Sii,
    now: UnixTime,
    trust: &TrustStore,
    sources: &[SourceRecords],
    certificates: &BTreeMap<AuthorityName, Vec<String>>,
) -> Verification {
    let prepared: BTreeMap<AuthorityName, Arc<PreparedCertificates>> = certificates
        .iter()
        .map(|(a, texts)| {
            (
                a.clone(),
                Arc::new(PreparedCertificates::new(trust, a, texts)),
            )
        })
        .collect();
    verify_prepared(sii, now, trust, sources, &prepared)
}

/// A parsed certificate and the result of its time-independent checks.
type CheckedCertificate = (Certificate, Result<(), String>);

/// An authority's certificates as found at `_mimi-ma.<authority>.`:
/// deduplicated, limited (SPEC §11), parsed, and with every time-independent
/// check already made against the trust store (authority name, pinned root
/// key, root signature). Validity windows depend on the time and are checked
/// by [`verify_prepared`] on every use.
///
/// Building one costs an Ed25519 key decoding and a signature verification
/// per certificate; the resolver caches them per authority (for the TTL of
/// the DNS answer), so lookups sharing an authority pay that once. A
/// `PreparedCertificates` is only valid with the [`TrustStore`] it was built
/// with.
#[derive(Debug, Clone)]
pub struct PreparedCertificates {
    authority: AuthorityName,
    /// Each parsed certificate with the result of its time-independent checks.
    certificates: Vec<CheckedCertificate>,
    /// Limits hit and malformed certificates ignored, reported with every
    /// verification that uses these certificates.
    notes: Vec<String>,
}

impl PreparedCertificates {
    /// Prepares `authority`'s certificate texts (non-mimi texts are ignored).
    pub fn new(trust: &TrustStore, authority: &AuthorityName, texts: &[String]) -> Self {
        let mut notes = Vec::new();
        let certificates = prepare_certificates(authority, texts, &mut notes)
            .into_iter()
            .map(|c| {
                let checked = match trust.authority(authority) {
                    Some(ta) => check_certificate_signature(ta, &c),
                    None => Err(format!("authority {authority} is not in the trust store")),
                };
                (c, checked)
            })
            .collect();
        PreparedCertificates {
            authority: authority.clone(),
            certificates,
            notes,
        }
    }

    /// The authority these certificates were fetched for.
    pub fn authority(&self) -> &AuthorityName {
        &self.authority
    }
}

/// [`verify()`] with certificates already prepared (and possibly shared
/// between lookups): the same checks, the same result.
pub fn verify_prepared(
    sii: &Sii,
    now: UnixTime,
    trust: &TrustStore,
    sources: &[SourceRecords],
    certificates: &BTreeMap<AuthorityName, Arc<PreparedCertificates>>,
) -> Verification {
    let policy = trust.policy();
    let hash = sii.hash();
    let mut out = Verification::default();

    for prepared in certificates.values() {
        out.notes.extend(prepared.notes.iter().cloned());
    }
    let certs: BTreeMap<&AuthorityName, &[CheckedCertificate]> = certificates
        .iter()
        .map(|(a, p)| (a, p.certificates.as_slice()))
        .collect();

    let mut seen: HashSet<&str> = HashSet::new();
    let mut vouches: Vec<Vouch> = Vec::new();
    for src in sources {
        let mimi: Vec<&String> = src
            .texts
            .iter()
            .filter(|t| is_mimi_text(t.as_bytes()))
            .collect();
        if mimi.len() > MAX_RECORDS_PER_NAME {
            out.notes.push(format!(
                "{}: {} mimi records, only the first {MAX_RECORDS_PER_NAME} considered (SPEC §11)",
                src.source,
                mimi.len()
            ));
        }
        for (i, text) in mimi.into_iter().enumerate() {
            if i >= MAX_RECORDS_PER_NAME {
                out.rejected.push(Rejected {
                    authority: authority_hint(text),
                    reason: format!(
                        "more than {MAX_RECORDS_PER_NAME} mimi records at this name; excess ignored (SPEC §11)"
                    ),
                    record: text.clone(),
                    source: src.source.clone(),
                });
                continue;
            }
            // Identical records from several sources count once.
            if !seen.insert(text.as_str()) {
                continue;
            }
            match check_assertion(sii, &hash, now, trust, text, &certs) {
                Ok((assertion, expires)) => vouches.push(Vouch {
                    ssi: assertion.ssi().clone(),
                    authority: assertion.authority().clone(),
                    expires,
                    record: text.clone(),
                    source: src.source.clone(),
                }),
                Err((authority, reason)) => out.rejected.push(Rejected {
                    authority,
                    reason,
                    record: text.clone(),
                    source: src.source.clone(),
                }),
            }
        }
    }

    // Group by SSI, then by authority.
    let mut by_ssi: BTreeMap<Ssi, BTreeMap<AuthorityName, Vec<Vouch>>> = BTreeMap::new();
    for v in vouches {
        by_ssi
            .entry(v.ssi.clone())
            .or_default()
            .entry(v.authority.clone())
            .or_default()
            .push(v);
    }
    let required = policy.min_authorities.max(1);
    for (ssi, by_authority) in by_ssi {
        let independent = trust.independent_count(by_authority.keys());
        if independent >= required {
            let expires = by_authority
                .values()
                .map(|vs| vs.iter().map(|v| v.expires).max().expect("non-empty group"))
                .min()
                .expect("non-empty map");
            out.verified.push(VerifiedSsi {
                ssi,
                authorities: by_authority.keys().cloned().collect(),
                expires,
            });
        } else {
            let names: Vec<&str> = by_authority.keys().map(|a| a.as_str()).collect();
            let shared = if independent < by_authority.len() {
                " (authorities that share a root key count once)"
            } else {
                ""
            };
            let reason = format!(
                "only {independent} of {required} required independent authorities vouch for {ssi} ({}){shared}",
                names.join(", ")
            );
            for v in by_authority.into_values().flatten() {
                out.rejected.push(Rejected {
                    authority: Some(v.authority),
                    reason: reason.clone(),
                    record: v.record,
                    source: v.source,
                });
            }
        }
    }
    out
}

/// The authority a record claims, for reporting only (nothing about a
/// rejected record is believed): its `a=` field when the record parses,
/// else the first `a=` field of a malformed text if that is a valid name.
pub(crate) fn authority_hint(text: &str) -> Option<AuthorityName> {
    let a = match RecordText::parse(text) {
        Ok(rec) => rec.get("a")?.to_owned(),
        Err(_) => text
            .split(';')
            .find_map(|f| f.strip_prefix("a="))?
            .to_owned(),
    };
    AuthorityName::parse_canonical(&a).ok()
}

/// Parses, deduplicates and limits an authority's certificates.
fn prepare_certificates(
    authority: &AuthorityName,
    texts: &[String],
    notes: &mut Vec<String>,
) -> Vec<Certificate> {
    let owner = authority.certificate_name().fqdn();
    let mut unique: Vec<&String> = Vec::new();
    for t in texts.iter().filter(|t| is_mimi_text(t.as_bytes())) {
        if !unique.contains(&t) {
            unique.push(t);
        }
    }
    if unique.len() > MAX_CERTIFICATES_PER_AUTHORITY {
        notes.push(format!(
            "{owner}: {} certificates, only the first {MAX_CERTIFICATES_PER_AUTHORITY} considered (SPEC §11)",
            unique.len()
        ));
        unique.truncate(MAX_CERTIFICATES_PER_AUTHORITY);
    }
    unique
        .into_iter()
        .filter_map(|t| match Certificate::parse(t) {
            Ok(c) => Some(c),
            Err(e) => {
                notes.push(format!("{owner}: malformed certificate ignored: {e}"));
                None
            }
        })
        .collect()
}

type Failure = (Option<AuthorityName>, String);

/// All checks of SPEC §8 step 3 for one record. On success returns the
/// assertion and its effective expiry (capped by its certificate's).
fn check_assertion(
    sii: &Sii,
    hash: &SiiHash,
    now: UnixTime,
    trust: &TrustStore,
    text: &str,
    certs: &BTreeMap<&AuthorityName, &[CheckedCertificate]>,
) -> Result<(Assertion, UnixTime), Failure> {
    let policy = trust.policy();
    let assertion =
        Assertion::parse(text).map_err(|e| (authority_hint(text), format!("malformed: {e}")))?;
    let name = assertion.authority().clone();
    let fail = |reason: String| (Some(name.clone()), reason);
    let authority = trust
        .authority(&name)
        .ok_or_else(|| fail("authority not in trust store".to_owned()))?;
    let (key, cert_expiry) = signing_key(
        authority,
        assertion.kid(),
        certs.get(&name).copied().unwrap_or(&[]),
        now,
        policy,
    )
    .map_err(fail)?;
    assertion
        .verify(hash, &key)
        .map_err(|e| fail(e.to_string()))?;
    check_window(
        assertion.not_before(),
        assertion.expires(),
        now,
        policy.clock_skew,
        policy.max_assertion_validity,
    )
    .map_err(fail)?;
    if !authority.sii_scope().iter().any(|p| p.matches(sii)) {
        return Err(fail(format!(
            "SII outside authority's sii_scope ({})",
            join(authority.sii_scope())
        )));
    }
    let host = assertion.ssi().provider_host();
    if !authority
        .ssi_scope()
        .iter()
        .any(|p| p.matches(host.as_ref()))
    {
        return Err(fail(match host {
            Some(h) => format!(
                "SSI provider host {h} outside authority's ssi_scope ({})",
                join(authority.ssi_scope())
            ),
            None => format!(
                "SSI has no provider host, which only ssi_scope \"*\" allows (authority's ssi_scope: {})",
                join(authority.ssi_scope())
            ),
        }));
    }
    let expires = match cert_expiry {
        Some(c) => assertion.expires().min(c),
        None => assertion.expires(),
    };
    Ok((assertion, expires))
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The key that verifies assertions with key id `kid`: a pinned root key,
/// or the key of a valid certificate. Also returns the certificate's expiry.
fn signing_key(
    authority: &TrustedAuthority,
    kid: &KeyId,
    certs: &[CheckedCertificate],
    now: UnixTime,
    policy: &Policy,
) -> Result<(PublicKey, Option<UnixTime>), String> {
    if let Some(root) = authority.root_key(kid) {
        return Ok((*root, None));
    }
    let mut first_error = None;
    for (cert, checked) in certs.iter().filter(|(c, _)| c.kid() == kid) {
        let result = checked.clone().and_then(|()| {
            check_window(
                cert.not_before(),
                cert.expires(),
                now,
                policy.clock_skew,
                policy.max_key_validity,
            )
        });
        match result {
            Ok(()) => return Ok((*cert.key(), Some(cert.expires()))),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(match first_error {
        Some(e) => format!("certificate for signing key {kid}: {e}"),
        None => format!(
            "no certificate for signing key {kid} at {} (and it is not a pinned root key)",
            authority.name().certificate_name().fqdn()
        ),
    })
}

/// The time-independent checks of a certificate: it names this authority,
/// is signed by one of its pinned root keys, and the signature verifies.
fn check_certificate_signature(
    authority: &TrustedAuthority,
    cert: &Certificate,
) -> Result<(), String> {
    if cert.authority() != authority.name() {
        return Err(format!(
            "certificate names authority {}, not {}",
            cert.authority(),
            authority.name()
        ));
    }
    let root = authority.root_key(cert.root_kid()).ok_or_else(|| {
        format!(
            "signed by root key {}, which is not pinned for {}",
            cert.root_kid(),
            authority.name()
        )
    })?;
    cert.verify(root).map_err(|e| e.to_string())
}

/// A validity window `[t, x)` must contain `now` give or take `skew`, and
/// be no longer than `max`.
fn check_window(
    t: UnixTime,
    x: UnixTime,
    now: UnixTime,
    skew: Duration,
    max: Duration,
) -> Result<(), String> {
    let skew = skew.as_secs();
    if t.0 > now.0.saturating_add(skew) {
        return Err(format!("not valid before {} (t={t})", rfc3339(t)));
    }
    if x.0 <= now.0.saturating_sub(skew) {
        return Err(format!("expired at {} (x={x})", rfc3339(x)));
    }
    let len = x.0.saturating_sub(t.0);
    if len > max.as_secs() {
        return Err(format!(
            "validity window {} exceeds policy maximum {}",
            span(len),
            span(max.as_secs())
        ));
    }
    Ok(())
}

/// Whole days as "N days", anything else in humantime's notation.
fn span(secs: u64) -> String {
    if secs % 86400 == 0 {
        let d = secs / 86400;
        format!("{d} day{}", if d == 1 { "" } else { "s" })
    } else {
        humantime::format_duration(Duration::from_secs(secs)).to_string()
    }
}

#[cfg(test)]
mod tests;
