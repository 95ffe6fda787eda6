//! The client's trust store and policy (SPEC §7).
//!
//! Trust is configuration, never DNS: the store pins each authority's root
//! keys and limits what it may vouch for. It is loaded from TOML strictly —
//! unknown keys, weak or malformed keys, bad scope patterns and duplicate
//! authorities are errors that name the file and the offending entry, since a
//! typo in a trust store silently widening or narrowing trust is worse than
//! refusing to start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mimi_proto::{AuthorityName, KeyId, PublicKey};
use serde::Deserialize;

use crate::dnssec::{AnchorError, DnssecMode, DnssecPolicy, TrustAnchor};
use crate::scope::{HostPattern, SiiPattern};
use crate::transport::{CaBundle, ServerSpec, TlsName};

/// Policy knobs of SPEC §7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// How many distinct trusted authorities must vouch for an SSI before it
    /// is returned (at least 1).
    pub min_authorities: usize,
    /// Longest assertion validity window (`x − t`) accepted.
    pub max_assertion_validity: Duration,
    /// Longest certificate validity window accepted.
    pub max_key_validity: Duration,
    /// Tolerated difference between our clock and the signer's, applied to
    /// both ends of every validity window.
    pub clock_skew: Duration,
    /// `private`: look up through privacy buckets only, never asking for
    /// a discovery name (see [`crate::private`]); default off.
    pub private: bool,
}

impl Default for Policy {
    /// SPEC §7 defaults: 1 authority, 90 days, 400 days, 5 minutes.
    fn default() -> Self {
        Policy {
            min_authorities: 1,
            max_assertion_validity: Duration::from_secs(90 * 86400),
            max_key_validity: Duration::from_secs(400 * 86400),
            clock_skew: Duration::from_secs(300),
            private: false,
        }
    }
}

/// One trusted mapping authority: its pinned root keys and its scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedAuthority {
    name: AuthorityName,
    root_keys: Vec<PublicKey>,
    /// The kid of each root key, in the same order (computed once: a kid is
    /// a SHA-256, and every verification looks keys up by kid).
    root_kids: Vec<KeyId>,
    sii_scope: Vec<SiiPattern>,
    ssi_scope: Vec<HostPattern>,
}

impl TrustedAuthority {
    /// An authority with at least one root key and at least one pattern per
    /// scope (an empty scope would make the authority useless; use `*`
    /// explicitly for "everything").
    pub fn new(
        name: AuthorityName,
        root_keys: Vec<PublicKey>,
        sii_scope: Vec<SiiPattern>,
        ssi_scope: Vec<HostPattern>,
    ) -> Result<Self, AuthorityError> {
        if root_keys.is_empty() {
            return Err(AuthorityError::NoRootKeys);
        }
        if sii_scope.is_empty() {
            return Err(AuthorityError::EmptyScope("sii_scope"));
        }
        if ssi_scope.is_empty() {
            return Err(AuthorityError::EmptyScope("ssi_scope"));
        }
        let root_kids = root_keys.iter().map(PublicKey::kid).collect();
        Ok(TrustedAuthority {
            name,
            root_keys,
            root_kids,
            sii_scope,
            ssi_scope,
        })
    }

    /// An authority trusted for every SII and every SSI (`*`, `*`).
    pub fn unscoped(
        name: AuthorityName,
        root_keys: Vec<PublicKey>,
    ) -> Result<Self, AuthorityError> {
        Self::new(
            name,
            root_keys,
            vec![SiiPattern::Any],
            vec![HostPattern::Any],
        )
    }

    /// The authority's name.
    pub fn name(&self) -> &AuthorityName {
        &self.name
    }

    /// The pinned root keys (never empty).
    pub fn root_keys(&self) -> &[PublicKey] {
        &self.root_keys
    }

    /// The pinned root key with this kid, if any.
    pub fn root_key(&self, kid: &KeyId) -> Option<&PublicKey> {
        self.root_kids
            .iter()
            .position(|k| k == kid)
            .map(|i| &self.root_keys[i])
    }

    /// Which SIIs it may vouch for.
    pub fn sii_scope(&self) -> &[SiiPattern] {
        &self.sii_scope
    }

    /// Which provider hosts its SSIs may point to.
    pub fn ssi_scope(&self) -> &[HostPattern] {
        &self.ssi_scope
    }
}

/// Why an authority entry is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    /// The name is not an authority name.
    #[error("name: {0}")]
    BadName(String),
    /// `root_keys` is empty.
    #[error("root_keys: at least one root key is required")]
    NoRootKeys,
    /// A root key is malformed or weak.
    #[error("root_keys[{index}]: {why}")]
    BadRootKey {
        /// Position in the list.
        index: usize,
        /// What is wrong.
        why: String,
    },
    /// A scope pattern is malformed.
    #[error("{field}[{index}]: {why}")]
    BadScope {
        /// `sii_scope` or `ssi_scope`.
        field: &'static str,
        /// Position in the list.
        index: usize,
        /// What is wrong.
        why: String,
    },
    /// A scope list is empty.
    #[error("{0}: must not be empty (use [\"*\"] to allow everything)")]
    EmptyScope(&'static str),
}

/// Why a trust store could not be loaded. The text always starts with
/// `trust store <origin>:` so that a user can find the file at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trust store {origin}: {kind}")]
pub struct TrustError {
    /// Where the text came from (usually the file path).
    pub origin: String,
    /// What is wrong.
    pub kind: TrustErrorKind,
}

/// The specific problem of a [`TrustError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustErrorKind {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(String),
    /// Not valid TOML, an unknown key, or a value of the wrong type.
    #[error("{0}")]
    Syntax(String),
    /// A policy value is unusable.
    #[error("policy.{field}: {why}")]
    Policy {
        /// The key under `[policy]`.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// An `[[authority]]` entry is unusable.
    #[error("authority {name:?}: {error}")]
    Authority {
        /// The name as written.
        name: String,
        /// What is wrong.
        error: AuthorityError,
    },
    /// The same authority appears twice.
    #[error("authority {0:?} is listed more than once")]
    Duplicate(String),
    /// No authorities at all.
    #[error("no [[authority]] entries: nothing could ever be verified")]
    NoAuthorities,
    /// The `policy.trust_anchor` file is unusable.
    #[error("policy.trust_anchor: {0}")]
    Anchor(AnchorError),
    /// A `[dns]` value is unusable.
    #[error("dns.{field}: {why}")]
    Dns {
        /// The key under `[dns]`, with the index for list entries
        /// (`servers[1]`).
        field: String,
        /// What is wrong.
        why: String,
    },
}

/// How to reach DNS by default, from the trust store's `[dns]` table, so
/// that a client's choice of private, authenticated servers lives next to
/// whom it trusts. Command-line flags override each value.
///
/// ```toml
/// [dns]
/// servers = ["tls://192.0.2.53:853", "https://192.0.2.53/dns-query"]
/// tls_name = "dns.example.net"   # default: each server's IP address
/// ca = "private-ca.pem"          # relative to the trust store; default: system roots
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsDefaults {
    /// Servers to ask (empty: the system's resolvers).
    pub servers: Vec<ServerSpec>,
    /// The name encrypted servers' certificates must carry.
    pub tls_name: Option<TlsName>,
    /// A private CA instead of the system's roots, read when the trust
    /// store is loaded.
    pub ca: Option<CaBundle>,
}

/// The authorities a client trusts, and its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustStore {
    policy: Policy,
    dnssec: DnssecPolicy,
    authorities: BTreeMap<AuthorityName, TrustedAuthority>,
    dns: DnsDefaults,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    authority: Vec<RawAuthority>,
    #[serde(default)]
    dns: RawDns,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDns {
    #[serde(default)]
    servers: Vec<String>,
    tls_name: Option<String>,
    ca: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    min_authorities: Option<i64>,
    max_assertion_validity: Option<String>,
    max_key_validity: Option<String>,
    clock_skew: Option<String>,
    /// `off`, `prefer` or `require` (see [`crate::dnssec`]).
    dnssec: Option<String>,
    /// A file of DNSKEY and/or DS records, relative to the trust store file.
    trust_anchor: Option<String>,
    private: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthority {
    name: String,
    root_keys: Vec<String>,
    sii_scope: Option<Vec<String>>,
    ssi_scope: Option<Vec<String>>,
}

fn duration(
    field: &'static str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, TrustErrorKind> {
    match value {
        None => Ok(default),
        Some(v) => humantime::parse_duration(&v).map_err(|e| TrustErrorKind::Policy {
            field,
            why: format!("{v:?} is not a duration like \"90d\" or \"5m\": {e}"),
        }),
    }
}

impl TrustStore {
    /// An empty store with `policy`; add authorities with
    /// [`TrustStore::add`].
    pub fn new(policy: Policy) -> Self {
        TrustStore {
            policy,
            dnssec: DnssecPolicy::default(),
            authorities: BTreeMap::new(),
            dns: DnsDefaults::default(),
        }
    }

    /// Adds an authority; a second entry for the same name is an error
    /// rather than a silent override.
    pub fn add(&mut self, authority: TrustedAuthority) -> Result<(), TrustErrorKind> {
        let name = authority.name.clone();
        if self.authorities.contains_key(&name) {
            return Err(TrustErrorKind::Duplicate(name.to_string()));
        }
        self.authorities.insert(name, authority);
        Ok(())
    }

    /// Reads and parses a trust store file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TrustError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TrustError {
            origin: origin.clone(),
            kind: TrustErrorKind::Io(e.to_string()),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Self::parse_inner(&text, base).map_err(|kind| TrustError { origin, kind })
    }

    /// Parses trust store TOML; `origin` names the source in errors. A
    /// relative `[dns] ca` path or `policy.trust_anchor` is read relative
    /// to the current directory ([`TrustStore::load`] reads them relative
    /// to the file).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, TrustError> {
        Self::parse_inner(text, Path::new("")).map_err(|kind| TrustError {
            origin: origin.to_owned(),
            kind,
        })
    }

    fn parse_inner(text: &str, base: &Path) -> Result<Self, TrustErrorKind> {
        let raw: RawStore = toml::from_str(text)
            .map_err(|e| TrustErrorKind::Syntax(e.to_string().trim().to_owned()))?;
        let defaults = Policy::default();
        let min_authorities = match raw.policy.min_authorities {
            None => defaults.min_authorities,
            Some(n) if n >= 1 => usize::try_from(n).map_err(|_| TrustErrorKind::Policy {
                field: "min_authorities",
                why: format!("{n} is too large"),
            })?,
            Some(n) => {
                return Err(TrustErrorKind::Policy {
                    field: "min_authorities",
                    why: format!("{n} is not at least 1"),
                })
            }
        };
        let policy = Policy {
            min_authorities,
            max_assertion_validity: duration(
                "max_assertion_validity",
                raw.policy.max_assertion_validity,
                defaults.max_assertion_validity,
            )?,
            max_key_validity: duration(
                "max_key_validity",
                raw.policy.max_key_validity,
                defaults.max_key_validity,
            )?,
            clock_skew: duration("clock_skew", raw.policy.clock_skew, defaults.clock_skew)?,
            private: raw.policy.private.unwrap_or(defaults.private),
        };
        let mode = match raw.policy.dnssec.as_deref() {
            None => DnssecMode::Off,
            Some(m) => DnssecMode::parse(m).map_err(|why| TrustErrorKind::Policy {
                field: "dnssec",
                why,
            })?,
        };
        let anchor = match raw.policy.trust_anchor {
            None => TrustAnchor::IanaRoot,
            Some(p) => TrustAnchor::load(&base.join(p)).map_err(TrustErrorKind::Anchor)?,
        };
        let mut store = TrustStore::new(policy);
        store.dns = Self::raw_dns(raw.dns, base)?;
        store.dnssec = DnssecPolicy { mode, anchor };
        if raw.authority.is_empty() {
            return Err(TrustErrorKind::NoAuthorities);
        }
        for a in raw.authority {
            let shown = a.name.clone();
            let entry = Self::raw_authority(a).map_err(|error| TrustErrorKind::Authority {
                name: shown.clone(),
                error,
            })?;
            store.add(entry)?;
        }
        Ok(store)
    }

    fn raw_dns(d: RawDns, base: &Path) -> Result<DnsDefaults, TrustErrorKind> {
        let servers = d
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                ServerSpec::parse(s).map_err(|e| TrustErrorKind::Dns {
                    field: format!("servers[{i}]"),
                    why: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls_name = d
            .tls_name
            .map(|n| {
                TlsName::parse(&n).map_err(|why| TrustErrorKind::Dns {
                    field: "tls_name".into(),
                    why,
                })
            })
            .transpose()?;
        let ca =
            d.ca.map(|p| {
                let path: PathBuf = base.join(p);
                CaBundle::load(&path).map_err(|e| TrustErrorKind::Dns {
                    field: "ca".into(),
                    why: e.to_string(),
                })
            })
            .transpose()?;
        Ok(DnsDefaults {
            servers,
            tls_name,
            ca,
        })
    }

    fn raw_authority(a: RawAuthority) -> Result<TrustedAuthority, AuthorityError> {
        let name =
            AuthorityName::parse(&a.name).map_err(|e| AuthorityError::BadName(e.to_string()))?;
        let root_keys = a
            .root_keys
            .iter()
            .enumerate()
            .map(|(index, k)| {
                PublicKey::from_base64url(k).map_err(|e| AuthorityError::BadRootKey {
                    index,
                    why: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sii_scope = a
            .sii_scope
            .unwrap_or_else(|| vec!["*".into()])
            .iter()
            .enumerate()
            .map(|(index, p)| {
                SiiPattern::parse(p).map_err(|e| AuthorityError::BadScope {
                    field: "sii_scope",
                    index,
                    why: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ssi_scope = a
            .ssi_scope
            .unwrap_or_else(|| vec!["*".into()])
            .iter()
            .enumerate()
            .map(|(index, p)| {
                HostPattern::parse(p).map_err(|e| AuthorityError::BadScope {
                    field: "ssi_scope",
                    index,
                    why: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        TrustedAuthority::new(name, root_keys, sii_scope, ssi_scope)
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The `[dns]` defaults (empty when the table is absent).
    pub fn dns(&self) -> &DnsDefaults {
        &self.dns
    }

    /// The `[dns]` defaults, for setting them in code.
    pub fn dns_mut(&mut self) -> &mut DnsDefaults {
        &mut self.dns
    }

    /// The policy, for adjusting it after loading (tests, command-line overrides).
    pub fn policy_mut(&mut self) -> &mut Policy {
        &mut self.policy
    }

    /// The DNSSEC policy (`[policy] dnssec` and `trust_anchor`; off by
    /// default).
    pub fn dnssec(&self) -> &DnssecPolicy {
        &self.dnssec
    }

    /// The DNSSEC policy, for command-line overrides.
    pub fn dnssec_mut(&mut self) -> &mut DnssecPolicy {
        &mut self.dnssec
    }

    /// The trusted authority of this name, if any.
    pub fn authority(&self, name: &AuthorityName) -> Option<&TrustedAuthority> {
        self.authorities.get(name)
    }

    /// All trusted authorities, sorted by name.
    pub fn authorities(&self) -> impl Iterator<Item = &TrustedAuthority> {
        self.authorities.values()
    }

    /// How many *independent* authorities `names` are, for
    /// `min_authorities`: entries that share a root key (directly or through
    /// a chain of shared keys) are one authority, since whoever holds that
    /// key can sign for all of them. Counting names instead would let one
    /// key holder satisfy `min_authorities = 2` by being listed twice.
    /// Names not in the store count for nothing.
    pub fn independent_count<'a>(
        &self,
        names: impl IntoIterator<Item = &'a AuthorityName>,
    ) -> usize {
        // Groups of root keys; each group is one independent authority.
        let mut groups: Vec<Vec<&PublicKey>> = Vec::new();
        for name in names {
            let Some(auth) = self.authorities.get(name) else {
                continue;
            };
            let mut merged: Vec<&PublicKey> = auth.root_keys.iter().collect();
            groups.retain(|g| {
                if g.iter().any(|k| merged.contains(k)) {
                    merged.extend(g.iter().copied());
                    false
                } else {
                    true
                }
            });
            groups.push(merged);
        }
        groups.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const PROVIDER: &str = "_FHNjmIYoaONpH7QAjDwWAgW7RO6MwOsXeuRFUiQgCU";

    fn parse(text: &str) -> Result<TrustStore, TrustError> {
        TrustStore::from_toml_str(text, "test.toml")
    }

    fn err(text: &str) -> String {
        parse(text).expect_err("should fail").to_string()
    }

    #[test]
    fn full_example_and_defaults() {
        let s = parse(&format!(
            r#"
[policy]
min_authorities = 2
max_assertion_validity = "30d"
max_key_validity = "1y"
clock_skew = "90s"

[[authority]]
name = "MA.example.net"
root_keys = ["{ROOT}"]
sii_scope = ["mailto:*@example.com", "mailto:*@*.example.com", "tel:+39*"]
ssi_scope = ["chat.example.org", "*.chat.example.org"]

[[authority]]
name = "chat.example.org"
root_keys = ["{PROVIDER}", "{ROOT}"]
"#
        ))
        .unwrap();
        let p = s.policy();
        assert_eq!(p.min_authorities, 2);
        assert_eq!(p.max_assertion_validity, Duration::from_secs(30 * 86400));
        assert_eq!(p.clock_skew, Duration::from_secs(90));
        assert!(p.max_key_validity > Duration::from_secs(365 * 86400));
        let ma = s
            .authority(&AuthorityName::parse("ma.example.net").unwrap())
            .unwrap();
        assert_eq!(ma.sii_scope().len(), 3);
        assert_eq!(ma.ssi_scope().len(), 2);
        assert!(ma
            .root_key(&KeyId::parse("47v33nt1aih62ojb").unwrap())
            .is_some());
        let chat = s
            .authority(&AuthorityName::parse("chat.example.org").unwrap())
            .unwrap();
        assert_eq!(chat.sii_scope(), &[SiiPattern::Any]);
        assert_eq!(chat.ssi_scope(), &[HostPattern::Any]);
        assert_eq!(chat.root_keys().len(), 2);
        assert_eq!(s.authorities().count(), 2);

        let d = parse(&format!(
            "[[authority]]\nname = \"ma.example.net\"\nroot_keys = [\"{ROOT}\"]\n"
        ))
        .unwrap();
        assert_eq!(d.policy(), &Policy::default());
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = err(&format!(
            "[[authority]]\nname = \"ma.example.net\"\nroot_keys = [\"{ROOT}\"]\nroot_key = \"x\"\n"
        ));
        assert!(e.starts_with("trust store test.toml: "), "{e}");
        assert!(e.contains("root_key"), "{e}");
        let e = err(&format!(
            "[policy]\nmin_authority = 2\n[[authority]]\nname = \"ma.example.net\"\nroot_keys = [\"{ROOT}\"]\n"
        ));
        assert!(e.contains("min_authority"), "{e}");
        let e = err(&format!(
            "[polcy]\n[[authority]]\nname = \"ma.example.net\"\nroot_keys = [\"{ROOT}\"]\n"
        ));
        assert!(e.contains("polcy"), "{e}");
    }

    #[test]
    fn bad_keys() {
        let e = err("[[authority]]\nname = \"x.example\"\nroot_keys = [\"abc\"]\n");
        assert!(
            e.starts_with("trust store test.toml: authority \"x.example\": root_keys[0]: "),
            "{e}"
        );
        // The identity point: a weak key.
        let e = err(
            "[[authority]]\nname = \"x.example\"\nroot_keys = [\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"]\n",
        );
        assert!(e.contains("root_keys[0]") && e.contains("weak"), "{e}");
        let e = err("[[authority]]\nname = \"x.example\"\nroot_keys = []\n");
        assert!(e.contains("at least one root key"), "{e}");
        let e = err("[[authority]]\nname = \"x.example\"\n");
        assert!(e.contains("root_keys"), "{e}");
    }

    #[test]
    fn bad_scopes_and_names() {
        let e = err(&format!(
            "[[authority]]\nname = \"x.example\"\nroot_keys = [\"{ROOT}\"]\nsii_scope = [\"*\", \"tel:+39\"]\n"
        ));
        assert!(e.contains("authority \"x.example\": sii_scope[1]"), "{e}");
        let e = err(&format!(
            "[[authority]]\nname = \"x.example\"\nroot_keys = [\"{ROOT}\"]\nssi_scope = [\"a.*.b\"]\n"
        ));
        assert!(e.contains("ssi_scope[0]"), "{e}");
        let e = err(&format!(
            "[[authority]]\nname = \"x.example\"\nroot_keys = [\"{ROOT}\"]\nssi_scope = []\n"
        ));
        assert!(e.contains("ssi_scope: must not be empty"), "{e}");
        let e = err(&format!(
            "[[authority]]\nname = \"localhost\"\nroot_keys = [\"{ROOT}\"]\n"
        ));
        assert!(e.contains("authority \"localhost\": name:"), "{e}");
    }

    #[test]
    fn duplicates_policy_and_empty() {
        let e = err(&format!(
            "[[authority]]\nname = \"x.example\"\nroot_keys = [\"{ROOT}\"]\n[[authority]]\nname = \"X.Example.\"\nroot_keys = [\"{PROVIDER}\"]\n"
        ));
        assert!(e.contains("\"x.example\" is listed more than once"), "{e}");
        let e = err(&format!(
            "[policy]\nmin_authorities = 0\n[[authority]]\nname = \"x.example\"\nroot_keys = [\"{ROOT}\"]\n"
        ));
        assert!(e.contains("policy.min_authorities"), "{e}");
        let e = err(&format!(
            "[policy]\nclock_skew = \"five minutes\"\n[[authority]]\nname = \"x.example\"\nroot_keys = [\"{ROOT}\"]\n"
        ));
        assert!(e.contains("policy.clock_skew"), "{e}");
        assert!(err("").contains("no [[authority]]"));
        assert!(err("this is not toml").starts_with("trust store test.toml: "));
    }

    #[test]
    fn dns_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["ca.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::create_dir_all(dir.path().join("certs")).unwrap();
        std::fs::write(dir.path().join("certs/ca.pem"), ca.pem()).unwrap();
        let auth = format!("[[authority]]\nname = \"x.example\"\nroot_keys = [\"{ROOT}\"]\n");
        let path = dir.path().join("trust.toml");
        std::fs::write(
            &path,
            format!("[dns]\nservers = [\"tls://127.0.0.1:8853\", \"https://[::1]/q\", \"192.0.2.1\"]\ntls_name = \"dns.example.net\"\nca = \"certs/ca.pem\"\n{auth}"),
        )
        .unwrap();
        // `ca` is relative to the trust store, not to the current directory.
        let s = TrustStore::load(&path).unwrap();
        let d = s.dns();
        let shown: Vec<String> = d.servers.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            shown,
            [
                "tls://127.0.0.1:8853",
                "https://[::1]:443/q",
                "192.0.2.1:53"
            ]
        );
        assert_eq!(d.tls_name.as_ref().unwrap().to_string(), "dns.example.net");
        let bundle = d.ca.as_ref().unwrap();
        assert_eq!(bundle.path(), dir.path().join("certs/ca.pem"));
        assert_eq!(bundle.certificates().len(), 1);

        // Absent: nothing.
        assert_eq!(parse(&auth).unwrap().dns(), &DnsDefaults::default());

        let e = err(&format!(
            "[dns]\nservers = [\"127.0.0.1\", \"tls://dns.example\"]\n{auth}"
        ));
        assert!(
            e.starts_with("trust store test.toml: dns.servers[1]: \"tls://dns.example\": "),
            "{e}"
        );
        let e = err(&format!("[dns]\ntls_name = \"a b\"\n{auth}"));
        assert!(e.contains("dns.tls_name: "), "{e}");
        let e = err(&format!("[dns]\nca = \"/nonexistent/ca.pem\"\n{auth}"));
        assert!(
            e.contains("dns.ca: CA file /nonexistent/ca.pem: cannot read"),
            "{e}"
        );
        // Unknown keys stay errors, in [dns] too.
        let e = err(&format!("[dns]\nserver = [\"127.0.0.1\"]\n{auth}"));
        assert!(e.contains("server"), "{e}");
    }

    #[test]
    fn dnssec_policy_and_anchor_relative_to_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let auth = format!("[[authority]]\nname = \"x.example\"\nroot_keys = [\"{ROOT}\"]\n");
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let d = TrustStore::load(write("plain.toml", &auth)).unwrap();
        assert_eq!(d.dnssec(), &DnssecPolicy::default());
        assert_eq!(d.dnssec().mode, DnssecMode::Off);
        assert_eq!(d.dnssec().anchor, TrustAnchor::IanaRoot);

        write(
            "anchors.txt",
            "example.com. 0 IN DNSKEY 257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=\n",
        );
        let s = TrustStore::load(write(
            "signed.toml",
            &format!("[policy]\ndnssec = \"require\"\ntrust_anchor = \"anchors.txt\"\n{auth}"),
        ))
        .unwrap();
        assert_eq!(s.dnssec().mode, DnssecMode::Require);
        match &s.dnssec().anchor {
            TrustAnchor::Keys { file, keys, .. } => {
                assert_eq!(file, &dir.path().join("anchors.txt"));
                assert_eq!(keys.len(), 1);
            }
            other => panic!("{other:?}"),
        }

        let e = TrustStore::load(write(
            "bad-mode.toml",
            &format!("[policy]\ndnssec = \"on\"\n{auth}"),
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("bad-mode.toml: policy.dnssec: \"on\" is not one of"),
            "{e}"
        );
        write("bad-anchor.txt", "example.com. 0 IN DNSKEY 257 3 15 AAAA\n");
        let e = TrustStore::load(write(
            "bad-anchor.toml",
            &format!("[policy]\ndnssec = \"prefer\"\ntrust_anchor = \"bad-anchor.txt\"\n{auth}"),
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("bad-anchor.toml: policy.trust_anchor: ")
                && e.contains("bad-anchor.txt:1: DNSKEY public key has 3 octets"),
            "{e}"
        );
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let e = TrustStore::load(&missing).unwrap_err().to_string();
        assert!(
            e.contains("missing.toml") && e.contains("cannot read"),
            "{e}"
        );
        let good = dir.path().join("trust.toml");
        std::fs::write(
            &good,
            format!("[[authority]]\nname = \"x.example\"\nroot_keys = [\"{ROOT}\"]\n"),
        )
        .unwrap();
        assert!(TrustStore::load(&good).is_ok());
    }
}
