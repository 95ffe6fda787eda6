//! Python, Kotlin and Swift bindings of the mimi-dns resolver, from one
//! interface.
//!
//! This crate is the interface definition: uniffi's proc-macros turn the
//! types and the [`Resolver`] object below into a Python module, a Kotlin
//! file and a Swift file, so the three languages get the same API from the
//! same code, with no hand-written glue that could drift. Everything is a
//! thin layer over [`mimi_resolver::EmbeddedResolver`]: the verifier is
//! the library's, never re-implemented.
//!
//! The model is exactly the library's: a [`Resolution`] keeps `verified`
//! (signed by enough trusted authorities) and `rejected` (with the reason)
//! apart, and there is no call or field that yields an SSI that was not
//! verified. The `unauthenticated_endpoints` (SRV records, not signed) are
//! only filled in when the configuration asks for them, under a name that
//! says what they are.

use std::sync::Arc;

use mimi_resolver::{ClientConfig, EmbeddedResolver, Report};

uniffi::setup_scaffolding!();

/// How to build a [`Resolver`]: the fields of
/// [`mimi_resolver::ClientConfig`], with the same meaning and checks.
/// Exactly one of `trust_file` and `trust_toml` must be set.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct Config {
    /// Path of the trust store (TOML, SPEC §7).
    #[uniffi(default = None)]
    pub trust_file: Option<String>,
    /// The trust store's text.
    #[uniffi(default = None)]
    pub trust_toml: Option<String>,
    /// Distribution zones queried for every SII.
    #[uniffi(default = [])]
    pub zones: Vec<String>,
    /// Telephone roots.
    #[uniffi(default = [])]
    pub tel_roots: Vec<String>,
    /// Default region (ISO 3166 code) of national telephone numbers.
    #[uniffi(default = None)]
    pub region: Option<String>,
    /// Whether to query the SIIs' home zones (default true).
    #[uniffi(default = None)]
    pub home: Option<bool>,
    /// DNS servers: `IP[:PORT]`, `tls://…`, `https://…[/PATH]`, `quic://…`.
    /// Empty: the trust store's `[dns] servers`, else the system's.
    #[uniffi(default = [])]
    pub servers: Vec<String>,
    /// The name encrypted servers' certificates must carry.
    #[uniffi(default = None)]
    pub tls_name: Option<String>,
    /// PEM file of a private CA for encrypted servers.
    #[uniffi(default = None)]
    pub ca_file: Option<String>,
    /// Private mode (SPEC §10): ask privacy buckets, never exact names.
    /// Default: the trust store's `[policy] private`.
    #[uniffi(default = None)]
    pub private: Option<bool>,
    /// Timeout of one DNS request in milliseconds (default 2000).
    #[uniffi(default = None)]
    pub timeout_ms: Option<u32>,
    /// Retries after a failed request (default 1).
    #[uniffi(default = None)]
    pub attempts: Option<u32>,
    /// DNSSEC policy: `off`, `prefer` or `require`.
    #[uniffi(default = None)]
    pub dnssec: Option<String>,
    /// File of DNSKEY and/or DS records to validate from.
    #[uniffi(default = None)]
    pub trust_anchor_file: Option<String>,
    /// Also look up the (unauthenticated) SRV endpoints of verified SSIs.
    #[uniffi(default = false)]
    pub endpoints: bool,
}

impl Config {
    fn to_client_config(&self) -> ClientConfig {
        ClientConfig {
            trust_file: self.trust_file.clone().map(Into::into),
            trust_toml: self.trust_toml.clone(),
            zones: self.zones.clone(),
            tel_roots: self.tel_roots.clone(),
            region: self.region.clone(),
            home: self.home,
            servers: self.servers.clone(),
            tls_name: self.tls_name.clone(),
            ca_file: self.ca_file.clone().map(Into::into),
            private: self.private,
            timeout_ms: self.timeout_ms.map(u64::from),
            attempts: self.attempts.map(|n| n as usize),
            dnssec: self.dnssec.clone(),
            trust_anchor_file: self.trust_anchor_file.clone().map(Into::into),
            endpoints: self.endpoints,
        }
    }
}

/// How a lookup ended (the JSON `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Outcome {
    /// At least one SSI was verified.
    Verified,
    /// No mimi records at all.
    NotFound,
    /// Records were found, none verified (see `rejected`).
    Rejected,
    /// Every DNS source failed (see `errors`).
    DnsError,
    /// Private mode, and no zone publishes privacy buckets.
    NoBuckets,
    /// The input is not an SII, or nothing can be queried for it.
    BadInput,
    /// A bug in the library; only this lookup failed.
    InternalError,
}

/// An SSI that enough trusted authorities vouch for.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VerifiedSsi {
    /// The SSI, e.g. `mimi://chat.example.com/u/alice`.
    pub ssi: String,
    /// The trusted authorities that vouch for it, sorted.
    pub authorities: Vec<String>,
    /// Unix time (seconds) when this result stops being verified.
    pub expires: i64,
}

/// A record that was not accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Rejected {
    /// The authority the record names, when it is well-formed enough.
    pub authority: Option<String>,
    /// A specific, human-readable reason.
    pub reason: String,
    /// The record text as found.
    pub record: String,
}

/// One SRV target of a provider host. NOT authenticated.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Endpoint {
    /// Target host (absolute, trailing dot).
    pub target: String,
    /// Port.
    pub port: u16,
    /// Priority: lower first.
    pub priority: u16,
    /// Weight among equal priorities.
    pub weight: u16,
}

/// The SRV endpoints of one provider host of the verified SSIs. SRV
/// records are not signed: authenticate the endpoint (TLS for the host)
/// before trusting it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct UnauthenticatedEndpoints {
    /// The provider host.
    pub host: String,
    /// Its targets in RFC 2782 order.
    pub endpoints: Vec<Endpoint>,
    /// The host declared the service unavailable (target `.`).
    pub unavailable: bool,
}

/// Everything one lookup came to.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Resolution {
    /// The input as given.
    pub input: String,
    /// The canonical SII (`mailto:…`, `tel:+…`), when the input is one.
    pub canonical: Option<String>,
    /// How the lookup ended.
    pub outcome: Outcome,
    /// Verified SSIs, sorted by SSI.
    pub verified: Vec<VerifiedSsi>,
    /// Records not accepted, with reasons.
    pub rejected: Vec<Rejected>,
    /// Failures that did or did not stop the lookup.
    pub errors: Vec<String>,
    /// For `NoBuckets`: the zones consulted.
    pub zones: Vec<String>,
    /// SRV endpoints, only when the configuration asks (`endpoints`).
    pub unauthenticated_endpoints: Vec<UnauthenticatedEndpoints>,
    /// The same result as the JSON object `mimi-resolve lookup --json`
    /// prints (and the HTTP gateway returns), for logging or passing on.
    pub json: String,
}

/// Why a [`Resolver`] call failed. A lookup itself never fails: its
/// failures are [`Resolution`]s (`DnsError`, `BadInput`, …).
///
/// The text of a variant is in `reason`, not `message`: Kotlin exceptions
/// inherit `Throwable.message`, and a field of that name makes the
/// generated Kotlin fail to compile (uniffi-rs issue #1434).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ResolverError {
    /// The configuration is unusable; `field` names the setting.
    #[error("{field}: {reason}")]
    Config {
        /// The setting (`servers[1]`, `trust_file`, …).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The resolver could not start (its threads, its DNS client).
    #[error("{reason}")]
    Start {
        /// Why.
        reason: String,
    },
    /// More inputs in one batch than the library accepts.
    #[error("{count} inputs in one batch; at most {max} are accepted")]
    BatchTooLarge {
        /// Inputs given.
        count: u64,
        /// The limit.
        max: u64,
    },
}

/// A resolver: trust store, servers and caches, shared by every call.
/// Thread-safe; calls may overlap.
#[derive(uniffi::Object)]
pub struct Resolver {
    inner: EmbeddedResolver,
    endpoints: bool,
}

#[uniffi::export]
impl Resolver {
    /// Builds a resolver from `config` (reading its files).
    #[uniffi::constructor]
    pub fn new(config: Config) -> Result<Arc<Self>, ResolverError> {
        let client = config.to_client_config();
        let inner = EmbeddedResolver::from_config(&client).map_err(|e| match e {
            mimi_resolver::EmbeddedError::Config(c) => ResolverError::Config {
                field: c.field,
                reason: c.message,
            },
            other => ResolverError::Start {
                reason: other.to_string(),
            },
        })?;
        Ok(Arc::new(Resolver {
            inner,
            endpoints: config.endpoints,
        }))
    }

    /// Looks one SII up, blocking the calling thread.
    pub fn lookup(&self, sii: String) -> Resolution {
        let report = self.inner.lookup(&sii);
        resolution(&sii, &report, self.endpoints)
    }

    /// Looks many SIIs up concurrently, blocking; one result per input, in
    /// order.
    pub fn lookup_batch(&self, siis: Vec<String>) -> Result<Vec<Resolution>, ResolverError> {
        let reports = self.inner.lookup_batch(&siis).map_err(too_large)?;
        Ok(siis
            .iter()
            .zip(&reports)
            .map(|(s, r)| resolution(s, r, self.endpoints))
            .collect())
    }

    /// [`Resolver::lookup`] as a coroutine / suspend function / async
    /// function: the lookup runs on the resolver's own threads.
    pub async fn lookup_async(&self, sii: String) -> Resolution {
        let report = self.inner.lookup_async(&sii).await;
        resolution(&sii, &report, self.endpoints)
    }

    /// [`Resolver::lookup_batch`], asynchronously.
    pub async fn lookup_batch_async(
        &self,
        siis: Vec<String>,
    ) -> Result<Vec<Resolution>, ResolverError> {
        let reports = self
            .inner
            .lookup_batch_async(siis.clone())
            .map_err(too_large)?
            .await;
        Ok(siis
            .iter()
            .zip(&reports)
            .map(|(s, r)| resolution(s, r, self.endpoints))
            .collect())
    }
}

fn too_large(e: mimi_resolver::embedded::BatchTooLarge) -> ResolverError {
    ResolverError::BatchTooLarge {
        count: e.0 as u64,
        max: mimi_resolver::embedded::MAX_BATCH as u64,
    }
}

/// The record of a report: built from the report's JSON (the one
/// rendering, [`Report::to_json`]), so the fields and the `json` text can
/// never disagree.
fn resolution(input: &str, report: &Report, endpoints: bool) -> Resolution {
    let v = report.to_json(endpoints);
    let strings = |key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let outcome = match report.outcome() {
        "verified" => Outcome::Verified,
        "not_found" => Outcome::NotFound,
        "rejected" => Outcome::Rejected,
        "dns_error" => Outcome::DnsError,
        "no_buckets" => Outcome::NoBuckets,
        "bad_input" => Outcome::BadInput,
        _ => Outcome::InternalError,
    };
    let verified = v["verified"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| VerifiedSsi {
            ssi: o["ssi"].as_str().unwrap_or_default().to_owned(),
            authorities: o["authorities"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
            expires: o["expires"].as_i64().unwrap_or_default(),
        })
        .collect();
    let rejected = v["rejected"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| Rejected {
            authority: o["authority"].as_str().map(str::to_owned),
            reason: o["reason"].as_str().unwrap_or_default().to_owned(),
            record: o["record"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    let unauthenticated_endpoints = v["unauthenticated_endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| UnauthenticatedEndpoints {
            host: h["host"].as_str().unwrap_or_default().to_owned(),
            endpoints: h["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| Endpoint {
                    target: e["target"].as_str().unwrap_or_default().to_owned(),
                    port: e["port"].as_u64().unwrap_or_default() as u16,
                    priority: e["priority"].as_u64().unwrap_or_default() as u16,
                    weight: e["weight"].as_u64().unwrap_or_default() as u16,
                })
                .collect(),
            unavailable: h["unavailable"].as_bool().unwrap_or_default(),
        })
        .collect();
    Resolution {
        input: input.to_owned(),
        canonical: report.canonical().map(|s| s.as_str().to_owned()),
        outcome,
        verified,
        rejected,
        errors: strings("errors"),
        zones: strings("zones"),
        unauthenticated_endpoints,
        json: v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            trust_toml: Some(
                "[[authority]]\nname = \"example.com\"\nroot_keys = [\"IOnU6osCMikqU1s_Wr_guY9IVD2ijsLfaNTewQiYWMA\"]\n"
                    .into(),
            ),
            servers: vec!["127.0.0.1:9".into()],
            timeout_ms: Some(200),
            attempts: Some(0),
            ..Default::default()
        }
    }

    #[test]
    fn configuration_errors_name_the_field() {
        let mut c = config();
        c.servers = vec!["udp://x".into()];
        match Resolver::new(c) {
            Err(ResolverError::Config { field, .. }) => assert_eq!(field, "servers[0]"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn results_mirror_the_json() {
        let r = Resolver::new(config()).unwrap();
        let bad = r.lookup("not an sii".into());
        assert_eq!(bad.outcome, Outcome::BadInput);
        assert!(bad.canonical.is_none() && bad.verified.is_empty());
        let down = r.lookup("alice@example.com".into());
        assert_eq!(down.outcome, Outcome::DnsError);
        assert_eq!(down.canonical.as_deref(), Some("mailto:alice@example.com"));
        let v: serde_json::Value = serde_json::from_str(&down.json).unwrap();
        assert_eq!(v["outcome"], "dns_error");
        assert_eq!(v["errors"].as_array().unwrap().len(), down.errors.len());
        let batch = r
            .lookup_batch(vec!["bob@example.com".into(), "?".into()])
            .unwrap();
        assert_eq!(batch[0].outcome, Outcome::DnsError);
        assert_eq!(batch[1].outcome, Outcome::BadInput);
        assert_eq!(batch[1].input, "?");
    }
}
