//! One client configuration for every front end.
//!
//! The `mimi-resolve` CLI, the C ABI (`resolver-ffi`), the Python, Kotlin and
//! Swift bindings and the HTTP gateway all build their [`Resolver`] from a
//! [`ClientConfig`], so a setting means the same thing everywhere and is
//! checked by the same code: a server spec, a zone name or a DNSSEC mode
//! that the CLI refuses is refused by the bindings with the same message.
//!
//! A `ClientConfig` is plain data (strings, numbers, paths) so that it can
//! cross a language boundary as JSON or as a generated record type;
//! [`ClientConfig::parse`] parses it into [`ResolverOptions`],
//! whose types cannot hold an invalid value. Every error names the field
//! (and, for lists, the element) it is about.
//!
//! [`Resolver`]: crate::Resolver

use std::path::PathBuf;
use std::time::Duration;

use mimi_proto::{DomainName, Region};
use serde::{Deserialize, Serialize};

use crate::dnssec::{DnssecMode, TrustAnchor};
use crate::lookup::{NameServers, ResolverOptions};
use crate::transport::{CaBundle, ServerSpec, TlsName, TlsOptions, TrustRoots};
use crate::trust::TrustStore;

/// The longest DNS request timeout a configuration may ask for. Longer
/// ones are almost certainly a unit mistake (milliseconds given as
/// seconds) and would make every failed lookup hang for minutes.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// The most retries a configuration may ask for.
pub const MAX_ATTEMPTS: usize = 10;

/// Everything needed to build a resolver, as plain data.
///
/// JSON form (every field optional except one of `trust_file` /
/// `trust_toml`; unknown fields are an error, so a misspelt setting is not
/// silently ignored):
///
/// ```json
/// { "trust_file": "zones/trust.toml",
///   "servers": ["127.0.0.1:5399", "tls://127.0.0.1:8853"],
///   "zones": ["dir.chat.example.org"], "tel_roots": ["e164.mimi.example"],
///   "region": "IT", "home": true, "private": false,
///   "timeout_ms": 2000, "attempts": 1, "dnssec": "off",
///   "tls_name": "dns.example.net", "ca_file": "ca.pem",
///   "trust_anchor_file": null, "endpoints": false }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Path of the trust store (TOML, SPEC §7). Exactly one of this and
    /// `trust_toml` must be given.
    pub trust_file: Option<PathBuf>,
    /// The trust store's text, for callers that keep it elsewhere (an app
    /// bundle, a configuration service).
    pub trust_toml: Option<String>,
    /// Distribution zones queried for every SII (at most 32, SPEC §11).
    pub zones: Vec<String>,
    /// Telephone roots.
    pub tel_roots: Vec<String>,
    /// Default region (ISO 3166 code) for national telephone numbers.
    pub region: Option<String>,
    /// Whether to query the SII's home zone(s); default `true`.
    pub home: Option<bool>,
    /// DNS servers: `IP[:PORT]`, `tls://…`, `https://…[/PATH]`,
    /// `quic://…` (see [`ServerSpec::parse`]). Empty: the trust store's
    /// `[dns] servers`, else the system's resolvers.
    pub servers: Vec<String>,
    /// The name encrypted servers' certificates must carry (default: the
    /// trust store's `dns.tls_name`, else each server's IP address).
    pub tls_name: Option<String>,
    /// PEM file of a private CA for encrypted servers (default: the trust
    /// store's `dns.ca`, else the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Private mode (SPEC §10); default: the trust store's
    /// `[policy] private`. `false` here cannot switch off a trust store's
    /// `private = true`: only a stricter setting overrides the store.
    pub private: Option<bool>,
    /// Timeout of one DNS request in milliseconds (default 2000, at most
    /// [`MAX_TIMEOUT`]).
    pub timeout_ms: Option<u64>,
    /// Retries after a failed request (default 1, at most [`MAX_ATTEMPTS`]).
    pub attempts: Option<usize>,
    /// DNSSEC policy: `off`, `prefer` or `require` (default: the trust
    /// store's).
    pub dnssec: Option<String>,
    /// File of DNSKEY and/or DS records to validate from.
    pub trust_anchor_file: Option<PathBuf>,
    /// Also look up the (unauthenticated) SRV endpoints of verified SSIs.
    pub endpoints: bool,
}

/// A configuration that cannot be used, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ClientConfigError {
    /// The field (`servers[1]`, `trust_file`, …), or `config` for the
    /// document as a whole.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ClientConfigError {
    fn new(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        ClientConfigError {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

/// A parsed configuration: the resolver's options and the default region
/// for national telephone numbers (which is about reading input, not about
/// resolving, so it is not a [`ResolverOptions`] field).
#[derive(Debug, Clone)]
pub struct ParsedConfig {
    /// The resolver's options.
    pub options: ResolverOptions,
    /// The default region of national telephone numbers.
    pub region: Option<Region>,
}

impl ClientConfig {
    /// A configuration from JSON text (see the type's documentation).
    pub fn from_json(text: &str) -> Result<Self, ClientConfigError> {
        serde_json::from_str(text).map_err(|e| ClientConfigError::new("config", e))
    }

    /// A configuration with this trust store file and every default.
    pub fn with_trust_file(path: impl Into<PathBuf>) -> Self {
        ClientConfig {
            trust_file: Some(path.into()),
            ..Default::default()
        }
    }

    /// Parses every field, reading the trust store, CA and anchor files.
    pub fn parse(&self) -> Result<ParsedConfig, ClientConfigError> {
        let trust = match (&self.trust_file, &self.trust_toml) {
            (Some(path), None) => {
                TrustStore::load(path).map_err(|e| ClientConfigError::new("trust_file", e))?
            }
            (None, Some(text)) => TrustStore::from_toml_str(text, "trust_toml")
                .map_err(|e| ClientConfigError::new("trust_toml", e))?,
            (None, None) => {
                return Err(ClientConfigError::new(
                    "trust_file",
                    "no trust store: give trust_file (a path) or trust_toml (its text)",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(ClientConfigError::new(
                    "trust_toml",
                    "both trust_file and trust_toml are given; give one",
                ))
            }
        };
        let zones = names("zones", &self.zones)?;
        let tel_roots = names("tel_roots", &self.tel_roots)?;
        let region = self
            .region
            .as_deref()
            .map(|r| r.parse::<Region>())
            .transpose()
            .map_err(|e| ClientConfigError::new("region", e))?;
        let servers = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                ServerSpec::parse(s).map_err(|e| ClientConfigError::new(format!("servers[{i}]"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls_name = self
            .tls_name
            .as_deref()
            .map(TlsName::parse)
            .transpose()
            .map_err(|e| ClientConfigError::new("tls_name", e))?;
        let ca = self
            .ca_file
            .as_ref()
            .map(CaBundle::load)
            .transpose()
            .map_err(|e| ClientConfigError::new("ca_file", e))?;
        let name_servers = name_servers(&trust, servers, tls_name, ca)?;

        let mut options = ResolverOptions::new(trust);
        options.distribution_zones = zones;
        options.tel_roots = tel_roots;
        options.home_lookup = self.home.unwrap_or(true);
        options.name_servers = name_servers;
        options.endpoints = self.endpoints;
        if let Some(ms) = self.timeout_ms {
            let t = Duration::from_millis(ms);
            if t.is_zero() || t > MAX_TIMEOUT {
                return Err(ClientConfigError::new(
                    "timeout_ms",
                    format!("{ms} ms: must be between 1 and {}", MAX_TIMEOUT.as_millis()),
                ));
            }
            options.timeout = t;
        }
        if let Some(n) = self.attempts {
            if n > MAX_ATTEMPTS {
                return Err(ClientConfigError::new(
                    "attempts",
                    format!("{n}: at most {MAX_ATTEMPTS}"),
                ));
            }
            options.attempts = n;
        }
        if let Some(mode) = &self.dnssec {
            options.dnssec.mode = mode
                .parse::<DnssecMode>()
                .map_err(|e| ClientConfigError::new("dnssec", e))?;
        }
        if let Some(file) = &self.trust_anchor_file {
            options.dnssec.anchor = TrustAnchor::load(file)
                .map_err(|e| ClientConfigError::new("trust_anchor_file", e))?;
        }
        options.private |= self.private.unwrap_or(false);
        Ok(ParsedConfig { options, region })
    }
}

fn names(field: &str, list: &[String]) -> Result<Vec<DomainName>, ClientConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            DomainName::parse(s).map_err(|e| ClientConfigError::new(format!("{field}[{i}]"), e))
        })
        .collect()
}

/// The servers and TLS settings: each given value overrides the trust
/// store's `[dns]` value of the same meaning. A TLS name or CA without any
/// encrypted server is a mistake (it would silently do nothing).
fn name_servers(
    trust: &TrustStore,
    servers: Vec<ServerSpec>,
    tls_name: Option<TlsName>,
    ca: Option<CaBundle>,
) -> Result<NameServers, ClientConfigError> {
    let defaults = trust.dns();
    let servers = if servers.is_empty() {
        defaults.servers.clone()
    } else {
        servers
    };
    if (tls_name.is_some() || ca.is_some()) && !servers.iter().any(|s| s.transport().is_encrypted())
    {
        let field = if tls_name.is_some() {
            "tls_name"
        } else {
            "ca_file"
        };
        return Err(ClientConfigError::new(
            field,
            "applies to tls://, https:// and quic:// servers, and none is configured",
        ));
    }
    if servers.is_empty() {
        return Ok(NameServers::System);
    }
    let roots = match ca {
        Some(bundle) => TrustRoots::Private(bundle),
        None => defaults
            .ca
            .clone()
            .map_or(TrustRoots::System, TrustRoots::Private),
    };
    let tls = TlsOptions {
        name: tls_name.or_else(|| defaults.tls_name.clone()),
        roots,
    };
    Ok(NameServers::Servers { servers, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUST: &str = r#"
[policy]
min_authorities = 1
[[authority]]
name = "example.com"
root_keys = ["IOnU6osCMikqU1s_Wr_guY9IVD2ijsLfaNTewQiYWMA"]
"#;

    fn cfg(json: &str) -> Result<ParsedConfig, ClientConfigError> {
        let mut c = ClientConfig::from_json(json)?;
        if c.trust_file.is_none() && c.trust_toml.is_none() {
            c.trust_toml = Some(TRUST.into());
        }
        c.parse()
    }

    #[test]
    fn defaults_match_the_cli() {
        let p = cfg("{}").unwrap();
        assert!(p.options.home_lookup);
        assert_eq!(p.options.timeout, Duration::from_secs(2));
        assert_eq!(p.options.attempts, 1);
        assert_eq!(p.options.name_servers, NameServers::System);
        assert!(!p.options.private);
        assert!(p.region.is_none());
    }

    #[test]
    fn errors_name_the_field_and_element() {
        let e = cfg(r#"{"servers": ["127.0.0.1:53", "tls://nonsense"]}"#).unwrap_err();
        assert_eq!(e.field, "servers[1]", "{e}");
        let e = cfg(r#"{"zones": ["ok.example", "bad..name"]}"#).unwrap_err();
        assert_eq!(e.field, "zones[1]", "{e}");
        let e = cfg(r#"{"region": "XX"}"#).unwrap_err();
        assert_eq!(e.field, "region", "{e}");
        let e = cfg(r#"{"timeout_ms": 0}"#).unwrap_err();
        assert_eq!(e.field, "timeout_ms", "{e}");
        let e = cfg(r#"{"timeout_ms": 600000}"#).unwrap_err();
        assert_eq!(e.field, "timeout_ms", "{e}");
        let e = cfg(r#"{"attempts": 11}"#).unwrap_err();
        assert_eq!(e.field, "attempts", "{e}");
        let e = cfg(r#"{"dnssec": "sometimes"}"#).unwrap_err();
        assert_eq!(e.field, "dnssec", "{e}");
        let e = cfg(r#"{"tls_name": "dns.example.net"}"#).unwrap_err();
        assert_eq!(e.field, "tls_name", "{e}");
        assert!(e.message.contains("none is configured"), "{e}");
    }

    #[test]
    fn unknown_fields_and_bad_json_are_refused() {
        let e = ClientConfig::from_json(r#"{"trust_fil": "x"}"#).unwrap_err();
        assert_eq!(e.field, "config");
        assert!(e.message.contains("trust_fil"), "{e}");
        let e = ClientConfig::from_json("{").unwrap_err();
        assert_eq!(e.field, "config");
        let e = ClientConfig::from_json(r#"{"zones": "one"}"#).unwrap_err();
        assert_eq!(e.field, "config");
    }

    #[test]
    fn exactly_one_trust_store() {
        let e = ClientConfig::default().parse().unwrap_err();
        assert_eq!(e.field, "trust_file");
        let c = ClientConfig {
            trust_file: Some("x.toml".into()),
            trust_toml: Some(TRUST.into()),
            ..Default::default()
        };
        assert_eq!(c.parse().unwrap_err().field, "trust_toml");
        let e = ClientConfig::with_trust_file("/nonexistent/trust.toml")
            .parse()
            .unwrap_err();
        assert_eq!(e.field, "trust_file");
        assert!(e.message.contains("/nonexistent/trust.toml"), "{e}");
    }

    #[test]
    fn settings_are_applied() {
        let p = cfg(
            r#"{"servers": ["127.0.0.1:5399"], "zones": ["dir.example.org"],
                "tel_roots": ["e164.example"], "region": "IT", "home": false,
                "private": true, "timeout_ms": 500, "attempts": 0, "endpoints": true}"#,
        )
        .unwrap();
        let o = &p.options;
        assert!(!o.home_lookup && o.private && o.endpoints);
        assert_eq!(o.timeout, Duration::from_millis(500));
        assert_eq!(o.attempts, 0);
        assert_eq!(o.distribution_zones[0].as_str(), "dir.example.org");
        assert_eq!(o.tel_roots[0].as_str(), "e164.example");
        assert!(p.region.is_some());
        match &o.name_servers {
            NameServers::Servers { servers, .. } => {
                assert_eq!(servers[0].addr(), "127.0.0.1:5399".parse().unwrap())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn round_trips_through_json() {
        let c = ClientConfig {
            trust_file: Some("t.toml".into()),
            servers: vec!["127.0.0.1:53".into()],
            timeout_ms: Some(100),
            ..Default::default()
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(ClientConfig::from_json(&text).unwrap(), c);
    }
}
