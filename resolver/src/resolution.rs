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
    /// Service endpoints from SRV `_mimi._tcp.<provider host>.`, when
    /// requested and found (`None` when not requested, when the SSI has no
    /// provider host, or when the SRV lookup failed; failures are in
    /// [`Resolution::errors`]).
    pub endpoints: Option<Vec<Endpoint>>,
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
    /// Every discovery name queried, home name(s) first.
    pub names: Vec<DomainName>,
    /// Verified SSIs, sorted by SSI.
    pub verified: Vec<VerifiedSsi>,
    /// Rejected records with reasons.
    pub rejected: Vec<Rejected>,
    /// Failures that did not stop the lookup: sources that failed while
    /// others answered, certificate and SRV lookups that failed, limits of
    /// SPEC §11 that were hit.
    pub errors: Vec<String>,
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
