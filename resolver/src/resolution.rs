//! The result of resolving one SII (SPEC §8 step 5).
//!
//! Verified SSIs and rejected records are kept apart by type, so a caller
//! cannot mistake a rejected mapping for a result: SPEC §8 forbids returning
//! an unverified SSI.

use mimi_proto::{AuthorityName, DomainName, Label, Sii, Ssi, UnixTime};

/// An SSI that at least `min_authorities` trusted authorities vouch for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSsi {
    /// The SSI.
    pub ssi: Ssi,
    /// The distinct trusted authorities that vouch for it, sorted by name.
    pub authorities: Vec<AuthorityName>,
    /// When this result stops being verified: for each authority the latest
    /// expiry among its valid records (each capped by the expiry of the
    /// certificate it depends on), then the earliest over all authorities.
    pub expires: UnixTime,
}

/// The SRV endpoints (`_mimi._tcp.<host>.`) of one provider host of the
/// verified SSIs (SPEC §8 step 6).
///
/// **Unauthenticated.** SRV records are not signed by any mapping
/// authority: whoever answers the DNS query (a cache, a network on the
/// path) can change them. They are kept apart from [`VerifiedSsi`] so that
/// no caller mistakes them for verified data; a client must authenticate the
/// endpoint itself (e.g. TLS for the provider host) before trusting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnauthenticatedEndpoints {
    /// The provider host whose SRV records these are.
    pub host: DomainName,
    /// Targets in RFC 2782 order (see `sort_endpoints`); empty when the host
    /// has no SRV records or declares the service unavailable (a single
    /// `.` target, RFC 2782), which `unavailable` tells apart.
    pub endpoints: Vec<Endpoint>,
    /// The host published the RFC 2782 "service decidedly not available"
    /// record (target `.`).
    pub unavailable: bool,
}

/// A mimi record that was not accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The authority the record names, when the record is well-formed
    /// enough to tell.
    pub authority: Option<AuthorityName>,
    /// A specific, human-readable reason.
    pub reason: String,
    /// The record text as found.
    pub record: String,
    /// Where it was found (the discovery name, with trailing dot).
    pub source: String,
}

/// One SRV target of a provider (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// Priority: lower is tried first.
    pub priority: u16,
    /// Weight among equal priorities: higher is preferred.
    pub weight: u16,
    /// Target host name (absolute, trailing dot).
    pub target: String,
    /// Port.
    pub port: u16,
}

/// Everything one lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The canonical SII that was looked up.
    pub canonical: Sii,
    /// Its DNS label.
    pub label: Label,
    /// Every discovery name queried, home name(s) first; in private mode
    /// the bucket names queried instead (no discovery name is asked).
    pub names: Vec<DomainName>,
    /// Verified SSIs, sorted by SSI.
    pub verified: Vec<VerifiedSsi>,
    /// Rejected records with reasons.
    pub rejected: Vec<Rejected>,
    /// SRV endpoints of the provider hosts of the verified SSIs, when
    /// requested; not signed, see [`UnauthenticatedEndpoints`]. A failed SRV
    /// lookup is in [`Resolution::errors`] instead.
    pub unauthenticated_endpoints: Vec<UnauthenticatedEndpoints>,
    /// Failures that did not stop the lookup: sources that failed while
    /// others answered, certificate and SRV lookups that failed, limits of
    /// SPEC §11 that were hit.
    pub errors: Vec<String>,
    /// The smallest TTL (seconds) among the TXT records found at the
    /// discovery names, `None` when no source had any (a negative answer,
    /// or a private lookup, whose bucket answers are shared by many SIIs).
    /// A front end that caches whole results (the HTTP gateway) keeps one
    /// no longer than this, so it never serves an answer DNS has already
    /// replaced. Certificates have their own TTLs and their own cache.
    pub ttl: Option<u32>,
}

/// What a caller can tell apart (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// At least one SSI was verified.
    Verified,
    /// No mimi records at all (every source that answered had none).
    NotFound,
    /// Mimi records were found, but none led to a verified SSI.
    Rejected,
    /// Every DNS source failed. [`Resolution::outcome`] never returns this:
    /// such a lookup yields [`crate::LookupError::Dns`] instead; the variant
    /// exists so that callers can report all outcomes with one type.
    DnsError,
}

impl Outcome {
    /// The name used in JSON output (`verified`, `not_found`, `rejected`,
    /// `dns_error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Verified => "verified",
            Outcome::NotFound => "not_found",
            Outcome::Rejected => "rejected",
            Outcome::DnsError => "dns_error",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Verified => "verified",
            Outcome::NotFound => "not found",
            Outcome::Rejected => "no record verified",
            Outcome::DnsError => "DNS failure",
        })
    }
}

impl Resolution {
    /// Classifies the result.
    pub fn outcome(&self) -> Outcome {
        if !self.verified.is_empty() {
            Outcome::Verified
        } else if !self.rejected.is_empty() {
            Outcome::Rejected
        } else {
            Outcome::NotFound
        }
    }
}
