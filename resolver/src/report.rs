//! What one lookup of one input came to, for every front end.
//!
//! A caller holding user input (a line of a batch file, a C string, a Python
//! `str`, an HTTP query parameter) needs more outcomes than
//! [`Resolver::lookup_at`] has: the input may not be an SII at all, or
//! this configuration may have nothing to query for it. [`Report`] names
//! every case, and [`Report::to_json`] is the one rendering of it: the
//! object `mimi-resolve lookup --json` prints, which `mimi-resolve batch`,
//! the C ABI, the bindings and the HTTP gateway return too. There is no
//! rendering that puts an unverified SSI where a verified one belongs.

use mimi_proto::{DomainName, Region, Sii, UnixTime};
use serde_json::{json, Value};

use crate::lookup::{LookupError, Resolver};
use crate::output::{bad_input_json, dns_error_json, no_buckets_json, resolution_json};
use crate::resolution::Resolution;

/// The JSON `outcome` of an input that is not an SII, or that this
/// configuration has no discovery name to query for.
pub const BAD_INPUT: &str = "bad_input";
/// The JSON `outcome` of a lookup that failed inside the library (a bug).
pub const INTERNAL_ERROR: &str = "internal_error";

/// Every way a lookup of one input can end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The lookup ran: `verified`, `not_found` or `rejected`.
    Resolved(Resolution),
    /// Every DNS source failed.
    DnsError {
        /// The SII looked up.
        canonical: Sii,
        /// One message per failed source.
        errors: Vec<String>,
    },
    /// Private mode, and no zone publishes privacy buckets: nothing naming
    /// the SII was asked.
    NoBuckets {
        /// The SII.
        canonical: Sii,
        /// The zones consulted.
        zones: Vec<DomainName>,
        /// What each zone's bucket apex held.
        errors: Vec<String>,
    },
    /// Not an SII, or nothing to query for it (`canonical` then set).
    BadInput {
        /// The input as given.
        input: String,
        /// The canonical SII when the input is one.
        canonical: Option<Sii>,
        /// Why it cannot be looked up.
        error: String,
    },
    /// A bug inside the library; only this lookup failed.
    Internal {
        /// The SII.
        canonical: Sii,
        /// The message.
        error: String,
    },
}

impl Report {
    /// The report of a finished [`Resolver::lookup_at`].
    pub fn from_lookup(sii: &Sii, result: Result<Resolution, LookupError>) -> Self {
        match result {
            Ok(res) => Report::Resolved(res),
            Err(LookupError::Dns(errors)) => Report::DnsError {
                canonical: sii.clone(),
                errors,
            },
            Err(LookupError::NoBuckets { zones, errors }) => Report::NoBuckets {
                canonical: sii.clone(),
                zones,
                errors,
            },
            Err(LookupError::Config(e)) => Report::BadInput {
                input: sii.to_string(),
                canonical: Some(sii.clone()),
                error: e.to_string(),
            },
            Err(e @ LookupError::Internal(_)) => Report::Internal {
                canonical: sii.clone(),
                error: e.to_string(),
            },
        }
    }

    /// The JSON `outcome`: `verified`, `not_found`, `rejected`,
    /// `dns_error`, `no_buckets`, `bad_input` or `internal_error`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Report::Resolved(r) => r.outcome().as_str(),
            Report::DnsError { .. } => crate::Outcome::DnsError.as_str(),
            Report::NoBuckets { .. } => "no_buckets",
            Report::BadInput { .. } => BAD_INPUT,
            Report::Internal { .. } => INTERNAL_ERROR,
        }
    }

    /// The canonical SII, when the input was one.
    pub fn canonical(&self) -> Option<&Sii> {
        match self {
            Report::Resolved(r) => Some(&r.canonical),
            Report::DnsError { canonical, .. }
            | Report::NoBuckets { canonical, .. }
            | Report::Internal { canonical, .. } => Some(canonical),
            Report::BadInput { canonical, .. } => canonical.as_ref(),
        }
    }

    /// The JSON object of this report, the shape `mimi-resolve lookup
    /// --json` prints: `canonical`, `outcome`, `verified`, `rejected`,
    /// `errors` (plus `zones` for `no_buckets`, `input` for `bad_input`,
    /// `unauthenticated_endpoints` with `with_endpoints`).
    pub fn to_json(&self, with_endpoints: bool) -> Value {
        match self {
            Report::Resolved(res) => resolution_json(res, with_endpoints),
            Report::DnsError { canonical, errors } => dns_error_json(canonical, errors),
            Report::NoBuckets {
                canonical,
                zones,
                errors,
            } => no_buckets_json(canonical, zones, errors),
            Report::BadInput {
                input,
                canonical,
                error,
            } => bad_input_json(input, canonical.as_ref(), error),
            Report::Internal { canonical, error } => json!({
                "canonical": canonical.as_str(),
                "outcome": INTERNAL_ERROR,
                "verified": [],
                "rejected": [],
                "errors": [error],
            }),
        }
    }
}

impl Resolver {
    /// Parses `input` as an SII (national telephone numbers in `region`)
    /// and looks it up at `now`; never fails, every case is a [`Report`].
    pub async fn lookup_input(&self, input: &str, region: Option<Region>, now: UnixTime) -> Report {
        let sii = match Sii::parse(input, region) {
            Ok(sii) => sii,
            Err(e) => {
                return Report::BadInput {
                    input: input.to_owned(),
                    canonical: None,
                    error: e.to_string(),
                }
            }
        };
        let result = self.lookup_at(&sii, now).await;
        match Report::from_lookup(&sii, result) {
            Report::BadInput {
                canonical, error, ..
            } => Report::BadInput {
                input: input.to_owned(),
                canonical,
                error,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sii() -> Sii {
        Sii::parse("alice@example.com", None).unwrap()
    }

    #[test]
    fn every_report_renders_the_cli_shape() {
        let reports = [
            Report::DnsError {
                canonical: sii(),
                errors: vec!["a.: timed out".into()],
            },
            Report::NoBuckets {
                canonical: sii(),
                zones: vec![DomainName::parse("example.com").unwrap()],
                errors: vec![],
            },
            Report::BadInput {
                input: "not an sii".into(),
                canonical: None,
                error: "bad".into(),
            },
            Report::Internal {
                canonical: sii(),
                error: "bug".into(),
            },
        ];
        for r in &reports {
            let v = r.to_json(false);
            assert_eq!(v["outcome"], r.outcome(), "{v}");
            assert!(v["verified"].as_array().unwrap().is_empty(), "{v}");
            assert!(v["rejected"].is_array() && v["errors"].is_array(), "{v}");
            assert_eq!(
                v.get("canonical").and_then(|c| c.as_str()),
                r.canonical().map(|s| s.as_str()),
                "{v}"
            );
        }
        assert_eq!(reports[2].to_json(false)["input"], "not an sii");
        assert_eq!(reports[1].to_json(false)["zones"][0], "example.com");
    }
}
