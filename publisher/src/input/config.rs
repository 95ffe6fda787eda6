//! Zone configuration (TOML).
//!
//! One file describes one zone: its origin and SOA/NS settings, which
//! authority signs its assertions and with which key, and where the mappings
//! and pre-signed assertions come from. Relative paths are relative to the
//! configuration file, so a zone directory can be moved as a whole.
//!
//! ```toml
//! origin = "example.com"
//! role = "home"                 # or "distribution"
//! ttl = 300                     # TTL of mimi records
//! ns = ["ns1.example.com"]
//!
//! [soa]
//! mname = "ns1.example.com"
//! rname = "hostmaster.example.com"
//!
//! [authority]
//! name = "example.com"
//! key = "signing.pem"
//! certificates = ["signing.cert"]
//! root_keys = ["<base64url Ed25519 public key>"]   # optional, as clients pin them
//! validity = "14d"
//! resign_margin = "4d"
//! # or, instead of key and certificates, a key ceremony's bundle
//! # (crate::input::bundle): keys roll over by themselves
//! # bundle = "bundle/"
//! # propagation_delay = "1h"
//! # bundle_warning = "30d"
//!
//! mappings = "mappings.csv"     # (top level, before [soa])
//! presigned = ["ma.example.net.presigned"]
//! buckets = 3                   # privacy buckets (top level): see crate::input::buckets
//!
//! [[delegate]]                  # shards served by other name servers
//! shards = ["00-7v"]
//! ns = ["ns1.group-a.example.net"]
//! ```
//!
//! See [`crate::input::delegate`] for `[[delegate]]`.
//! One file may also describe many zones: with a `[domains]` table (see
//! [`crate::input::domains`]) there is no top-level `origin` and each email
//! domain of the mappings gets its own zone; with a `[shards]` table (see
//! [`crate::input::shards`]) the chosen shards `<shard>._mimi.<zone>` are
//! published as zones of their own. [`ZoneConfig::for_zone`] gives the
//! configuration of one of those zones.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::input::delegate::{shard_of, shard_parent, DelegateConfig, Shard, ShardSet};
use mimi_proto::window::WindowPolicy;
use mimi_proto::{AuthorityName, DomainName};
use serde::Deserialize;

/// Where a zone puts each SII's records (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ZoneRole {
    /// The SII's home zone: an email's own domain, or for telephone numbers
    /// the country-code subtree under `tel_root`. Every SII's home name must
    /// fall inside the zone.
    #[default]
    Home,
    /// A distribution point: `<label>._mimi.<origin>` for every SII.
    Distribution,
}

/// A loaded, checked zone configuration with absolute paths.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneConfig {
    /// The configuration file itself.
    pub path: PathBuf,
    /// Zone origin.
    pub origin: DomainName,
    /// Placement of records.
    pub role: ZoneRole,
    /// Telephone root for home zones that hold telephone numbers.
    pub tel_root: Option<DomainName>,
    /// TTL of mimi records (assertions, certificates).
    pub ttl: u32,
    /// SOA settings (serial is computed).
    pub soa: SoaConfig,
    /// NS names.
    pub ns: Vec<DomainName>,
    /// Addresses of name servers inside the zone (glue): a secondary or a
    /// zone checker warns about an in-zone NS without them.
    pub glue: Vec<(DomainName, Vec<std::net::IpAddr>)>,
    /// Signing authority, if this zone publishes its own assertions or
    /// certificates.
    pub authority: Option<AuthorityConfig>,
    /// Line-oriented `SII,SSI` mappings file.
    pub mappings: Option<PathBuf>,
    /// Files of pre-signed assertions from third-party authorities.
    pub presigned: Vec<PathBuf>,
    /// Zone transfer to secondaries and NOTIFY (absent: transfers refused).
    pub transfer: Option<TransferConfig>,
    /// `max_shrink`: the largest share of the published assertions a new
    /// zone may remove before it is held back for confirmation (see
    /// [`crate::zone::shrink`]; default 10%, `"100%"` turns the guard off).
    pub max_shrink: crate::input::shrink_limit::ShrinkLimit,
    /// Shards delegated to other name servers (`[[delegate]]`), at most
    /// one entry per shard.
    pub delegate: Vec<DelegateConfig>,
    /// `[domains]`: one zone per email domain (see
    /// [`crate::input::domains`]). With it, `origin` is the placeholder
    /// [`ZoneConfig::many`] until [`ZoneConfig::for_zone`] sets a zone's.
    pub domains: Option<crate::input::domains::DomainsConfig>,
    /// `[shards]`: the shards published as zones of their own (see
    /// [`crate::input::shards`]).
    pub shards: Option<crate::input::shards::ShardSet>,
    /// `buckets` (and `bucket_k`): whether and how the zone publishes
    /// privacy buckets (SPEC §10, see [`crate::input::buckets`]).
    pub buckets: Option<crate::input::buckets::BucketSetting>,
}

/// Who may transfer the zone (AXFR) and whom to NOTIFY of new serials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferConfig {
    /// Addresses or prefixes (`127.0.0.1`, `2001:db8::/32`) that may transfer.
    pub allow: Vec<ipnet::IpNet>,
    /// Secondaries (`IP:PORT`) sent a DNS NOTIFY on every new serial.
    pub notify: Vec<std::net::SocketAddr>,
    /// TSIG key file (tsig-keygen format): when set, transfers must be signed
    /// with it, responses and NOTIFYs are signed with it.
    pub tsig_key: Option<PathBuf>,
    /// How much change history is kept for incremental transfers (IXFR).
    pub journal: JournalLimits,
}

/// Bounds of a zone's IXFR journal (`[transfer]` keys `journal_max_records`
/// and `journal_max_age`): the oldest differences are dropped beyond them,
/// and a secondary holding a serial older than what is left gets the whole
/// zone instead (see `crate::zone::journal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalLimits {
    /// Most records (removed plus added, over all kept differences) held;
    /// `None`: twice the zone's record count, at least
    /// [`JournalLimits::MIN_DEFAULT_RECORDS`], enough for every record to
    /// be re-signed once. `Some(0)` keeps no history.
    pub max_records: Option<usize>,
    /// Differences older than this are dropped (default 7 days: beyond it
    /// a secondary is so far behind that a full transfer is the better
    /// resynchronisation anyway).
    pub max_age: Duration,
}

impl JournalLimits {
    /// The floor of the default record bound, so that small zones keep a
    /// useful history.
    pub const MIN_DEFAULT_RECORDS: usize = 1_000;

    /// The defaults: see the fields.
    pub const DEFAULT: JournalLimits = JournalLimits {
        max_records: None,
        max_age: Duration::from_secs(7 * 86_400),
    };

    /// The record bound for a zone of `zone_records` records.
    pub fn max_records_for(&self, zone_records: usize) -> usize {
        self.max_records.unwrap_or_else(|| {
            zone_records
                .saturating_mul(2)
                .max(Self::MIN_DEFAULT_RECORDS)
        })
    }
}

impl Default for JournalLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// SOA fields a zone operator sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoaConfig {
    /// Primary name server.
    pub mname: DomainName,
    /// Responsible mailbox in DNS form.
    pub rname: DomainName,
    /// Refresh (s).
    pub refresh: u32,
    /// Retry (s).
    pub retry: u32,
    /// Expire (s).
    pub expire: u32,
    /// Negative TTL (s).
    pub minimum: u32,
    /// TTL of the SOA and NS records.
    pub ttl: u32,
}

/// The authority that signs this zone's assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityConfig {
    /// `a=` of every assertion.
    pub name: AuthorityName,
    /// PKCS#8 PEM signing key (required when there are mappings).
    pub key: Option<PathBuf>,
    /// Files of certificate records to publish at `_mimi-ma.<name>`.
    pub certificates: Vec<PathBuf>,
    /// The authority's root public keys, as clients pin them (optional).
    /// With them a build verifies the published certificates, knows when the
    /// signing key is itself a root key, and refuses a signing key that
    /// neither they nor a currently valid certificate vouch for.
    pub root_keys: Vec<mimi_proto::PublicKey>,
    /// Validity and re-sign margin of assertions.
    pub window: WindowPolicy,
    /// A key ceremony's bundle (see [`crate::input::bundle`]) instead of
    /// `key` and `certificates`: the publisher then picks the signing key
    /// and the certificates to publish by itself, rolling keys over.
    pub bundle: Option<BundleConfig>,
}

/// How a zone rolls over the keys of a ceremony bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleConfig {
    /// The bundle directory.
    pub dir: PathBuf,
    /// How long after a certificate first appears in the zone its key may
    /// sign, on top of the certificate TTL: time for secondaries to load
    /// the zone (NOTIFY, transfer) and for resolvers to drop the cached
    /// certificate set without it. Default one hour (Knot's
    /// `propagation-delay`).
    pub propagation_delay: u64,
    /// How long before the bundle runs out a build warns. Default 30 days.
    pub warn_before: u64,
}

impl BundleConfig {
    /// Default [`BundleConfig::propagation_delay`].
    pub const DEFAULT_PROPAGATION_DELAY: u64 = 3600;
    /// Default [`BundleConfig::warn_before`].
    pub const DEFAULT_WARN_BEFORE: u64 = 30 * 86400;
}

/// A configuration problem, with the file it is in.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax or schema error (the message carries line and column).
    #[error("{path}: {message}")]
    Toml {
        /// File.
        path: PathBuf,
        /// toml's message, which includes line and column.
        message: String,
    },
    /// A value breaks a rule.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// Which setting.
        field: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    origin: Option<String>,
    #[serde(default)]
    role: ZoneRole,
    tel_root: Option<String>,
    #[serde(default = "default_ttl")]
    ttl: u32,
    ns: Vec<String>,
    #[serde(default)]
    glue: std::collections::BTreeMap<String, Vec<String>>,
    soa: RawSoa,
    authority: Option<RawAuthority>,
    mappings: Option<PathBuf>,
    #[serde(default)]
    presigned: Vec<PathBuf>,
    transfer: Option<RawTransfer>,
    max_shrink: Option<String>,
    #[serde(default)]
    delegate: Vec<RawDelegate>,
    domains: Option<RawDomains>,
    shards: Option<RawShards>,
    buckets: Option<toml::Value>,
    bucket_k: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomains {
    origin: String,
    list: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShards {
    zones: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelegate {
    shards: Vec<String>,
    ns: Vec<String>,
    #[serde(default)]
    glue: std::collections::BTreeMap<String, Vec<String>>,
}

/// A `[transfer]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTransfer {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    notify: Vec<String>,
    tsig_key: Option<PathBuf>,
    journal_max_records: Option<usize>,
    journal_max_age: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSoa {
    mname: String,
    rname: String,
    #[serde(default = "default_refresh")]
    refresh: u32,
    #[serde(default = "default_retry")]
    retry: u32,
    #[serde(default = "default_expire")]
    expire: u32,
    #[serde(default = "default_minimum")]
    minimum: u32,
    #[serde(default = "default_soa_ttl")]
    ttl: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthority {
    name: String,
    key: Option<PathBuf>,
    #[serde(default)]
    certificates: Vec<PathBuf>,
    #[serde(default)]
    root_keys: Vec<String>,
    validity: Option<String>,
    resign_margin: Option<String>,
    bundle: Option<PathBuf>,
    propagation_delay: Option<String>,
    bundle_warning: Option<String>,
}

fn default_ttl() -> u32 {
    300
}
fn default_refresh() -> u32 {
    3600
}
fn default_retry() -> u32 {
    600
}
fn default_expire() -> u32 {
    1_209_600
}
fn default_minimum() -> u32 {
    60
}
fn default_soa_ttl() -> u32 {
    3600
}

/// Parses a duration such as `14d`, `36h` or `90m` (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration like 14d or 36h ({e})"))
}

/// The text of the configuration file at `path`.
pub(crate) fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// `text` (of the file at `path`) as TOML of shape `T`; a syntax or shape
/// error names the file, line and column.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Toml {
        path: path.to_owned(),
        message: e.to_string().trim_end().replace('\n', "\n  "),
    })
}

impl ZoneConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(&read_text(path)?, path)
    }

    /// Parses configuration text; `path` locates relative paths and errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = parse_toml(text, path)?;
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            field: field.to_owned(),
            message,
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        let name =
            |field: &str, s: &str| DomainName::parse(s).map_err(|e| invalid(field, e.to_string()));

        let domains = raw
            .domains
            .as_ref()
            .map(|d| -> Result<_, ConfigError> {
                let origin = crate::input::domains::OriginPattern::parse(&d.origin)
                    .map_err(|m| invalid("domains.origin", m))?;
                Ok(crate::input::domains::DomainsConfig {
                    origin,
                    list: d.list.as_ref().map(resolve),
                })
            })
            .transpose()?;
        let origin = match (&raw.origin, &domains) {
            (Some(o), None) => name("origin", o)?,
            (None, Some(_)) => Self::many(),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "origin",
                    "with [domains] each zone's origin comes from domains.origin; remove the top-level origin".into(),
                ))
            }
            (None, None) => {
                return Err(invalid(
                    "origin",
                    "missing: name the zone (origin = \"example.com\"), or add [domains] for one zone per email domain".into(),
                ))
            }
        };
        if domains.is_some() && raw.role != ZoneRole::Home {
            return Err(invalid(
                "domains",
                "[domains] publishes each domain's home records: it needs role = \"home\"".into(),
            ));
        }
        if domains.is_some() && raw.tel_root.is_some() {
            return Err(invalid(
                "tel_root",
                "[domains] publishes email SIIs only; telephone numbers need a home configuration of their own".into(),
            ));
        }
        let shards = raw
            .shards
            .as_ref()
            .map(|s| {
                crate::input::shards::ShardSet::parse(&s.zones)
                    .map_err(|m| invalid("shards.zones", m))
            })
            .transpose()?;
        if (domains.is_some() || shards.is_some()) && !raw.glue.is_empty() {
            return Err(invalid(
                "glue",
                "a configuration of many zones ([domains] or [shards]) cannot have in-zone name servers; name servers outside the zones need no glue".into(),
            ));
        }
        let tel_root = raw
            .tel_root
            .as_deref()
            .map(|s| name("tel_root", s))
            .transpose()?;
        if raw.ns.is_empty() {
            return Err(invalid("ns", "at least one name server is required".into()));
        }
        let ns = raw
            .ns
            .iter()
            .enumerate()
            .map(|(i, s)| name(&format!("ns[{i}]"), s))
            .collect::<Result<Vec<_>, _>>()?;
        let mut glue = Vec::new();
        for (host, addrs) in &raw.glue {
            let field = format!("glue.{host:?}");
            let h = name(&field, host)?;
            if !ns.contains(&h) {
                return Err(invalid(
                    &field,
                    format!("{h} is not one of the zone's ns names"),
                ));
            }
            if !h.is_within(&origin) {
                return Err(invalid(
                    &field,
                    format!("{h} is outside the zone; glue is only for in-zone name servers"),
                ));
            }
            let ips = addrs
                .iter()
                .map(|a| {
                    a.parse::<std::net::IpAddr>()
                        .map_err(|_| invalid(&field, format!("{a:?} is not an IP address")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if ips.is_empty() {
                return Err(invalid(&field, "needs at least one address".into()));
            }
            glue.push((h, ips));
        }
        let soa = SoaConfig {
            mname: name("soa.mname", &raw.soa.mname)?,
            rname: name("soa.rname", &raw.soa.rname)?,
            refresh: raw.soa.refresh,
            retry: raw.soa.retry,
            expire: raw.soa.expire,
            minimum: raw.soa.minimum,
            ttl: raw.soa.ttl,
        };
        let authority = raw
            .authority
            .map(|a| -> Result<AuthorityConfig, ConfigError> {
                let an = AuthorityName::parse(&a.name)
                    .map_err(|e| invalid("authority.name", e.to_string()))?;
                let dur =
                    |field: &str, v: &Option<String>, default: u64| -> Result<u64, ConfigError> {
                        match v {
                            None => Ok(default),
                            Some(s) => parse_duration(s)
                                .map(|d| d.as_secs())
                                .map_err(|m| invalid(field, m)),
                        }
                    };
                let validity = dur(
                    "authority.validity",
                    &a.validity,
                    WindowPolicy::DEFAULT.validity(),
                )?;
                let margin = dur(
                    "authority.resign_margin",
                    &a.resign_margin,
                    WindowPolicy::DEFAULT.margin(),
                )?;
                let window = WindowPolicy::new(validity, margin)
                    .map_err(|e| invalid("authority.resign_margin", e.to_string()))?;
                let root_keys = a
                    .root_keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| {
                        mimi_proto::PublicKey::from_base64url(k).map_err(|e| {
                            invalid(
                                &format!("authority.root_keys[{i}]"),
                                format!("{k:?} is not a base64url Ed25519 public key: {e}"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let bundle = match &a.bundle {
                    None => {
                        for (field, given) in [
                            ("propagation_delay", a.propagation_delay.is_some()),
                            ("bundle_warning", a.bundle_warning.is_some()),
                        ] {
                            if given {
                                return Err(invalid(
                                    &format!("authority.{field}"),
                                    "applies only with authority.bundle".into(),
                                ));
                            }
                        }
                        None
                    }
                    Some(dir) => {
                        if a.key.is_some() || !a.certificates.is_empty() {
                            return Err(invalid(
                                "authority.bundle",
                                "a bundle holds the signing keys and their certificates: remove authority.key and authority.certificates".into(),
                            ));
                        }
                        Some(BundleConfig {
                            dir: resolve(dir),
                            propagation_delay: dur(
                                "authority.propagation_delay",
                                &a.propagation_delay,
                                BundleConfig::DEFAULT_PROPAGATION_DELAY,
                            )?,
                            warn_before: dur(
                                "authority.bundle_warning",
                                &a.bundle_warning,
                                BundleConfig::DEFAULT_WARN_BEFORE,
                            )?,
                        })
                    }
                };
                Ok(AuthorityConfig {
                    name: an,
                    key: a.key.as_ref().map(resolve),
                    certificates: a.certificates.iter().map(resolve).collect(),
                    root_keys,
                    window,
                    bundle,
                })
            })
            .transpose()?;
        let mappings = raw.mappings.as_ref().map(resolve);
        if mappings.is_some()
            && authority
                .as_ref()
                .is_none_or(|a| a.key.is_none() && a.bundle.is_none())
        {
            return Err(invalid(
                "mappings",
                "a mappings file needs [authority] with a signing key (key = …) or a key bundle (bundle = …) to sign them".into(),
            ));
        }
        if raw.ttl == 0 {
            return Err(invalid("ttl", "must be positive".into()));
        }
        let transfer = raw
            .transfer
            .as_ref()
            .map(|t| transfer_config(t, &base, &invalid))
            .transpose()?;
        let max_shrink = match &raw.max_shrink {
            None => crate::input::shrink_limit::ShrinkLimit::default(),
            Some(v) => crate::input::shrink_limit::ShrinkLimit::parse(v)
                .map_err(|e| invalid("max_shrink", e.to_string()))?,
        };
        let delegate = parse_delegates(&raw.delegate, &origin, &glue, &invalid)?;
        let buckets = match (&raw.buckets, raw.bucket_k) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(invalid(
                    "bucket_k",
                    "applies only with buckets = \"auto\"".into(),
                ))
            }
            (Some(v), k) => Some(
                crate::input::buckets::BucketSetting::parse(v, k)
                    .map_err(|m| invalid("buckets", m))?,
            ),
        };
        if buckets.is_some() {
            if let Some(d) = raw
                .domains
                .as_ref()
                .filter(|d| d.origin.starts_with("_mimi."))
            {
                return Err(invalid(
                    "buckets",
                    format!("domains.origin = {:?} puts each zone inside a _mimi subtree, but buckets are published at _mimi-b.<domain>, next to _mimi.<domain> and outside such zones: use domains.origin = \"{{domain}}\" to publish buckets", d.origin),
                ));
            }
            check_bucket_zone(&origin, !delegate.is_empty(), shards.is_some())
                .map_err(|m| invalid("buckets", m))?;
        }
        if authority.as_ref().is_some_and(|a| a.bundle.is_some())
            && (domains.is_some() || shards.is_some())
        {
            return Err(invalid(
                "authority.bundle",
                "a key bundle is supported for a configuration of one zone only (not with [domains] or [shards]) in this version: the zone that publishes the certificates must be the one that rolls the keys".into(),
            ));
        }
        Ok(ZoneConfig {
            path: path.to_owned(),
            origin,
            role: raw.role,
            tel_root,
            ttl: raw.ttl,
            soa,
            ns,
            glue,
            authority,
            mappings,
            presigned: raw.presigned.iter().map(resolve).collect(),
            transfer,
            max_shrink,
            delegate,
            domains,
            shards,
            buckets,
        })
    }

    /// The `_mimi` name under which this zone's shards are: see
    /// [`crate::input::delegate::shard_parent`].
    pub fn shard_parent(&self) -> Option<DomainName> {
        shard_parent(&self.origin)
    }

    /// Whether `name` is at or below a shard this configuration delegates:
    /// its records belong to the shard zone, not to this one.
    pub fn is_delegated(&self, name: &DomainName) -> bool {
        !self.delegate.is_empty()
            && self.shard_parent().is_some_and(|parent| {
                shard_of(name, &parent)
                    .is_some_and(|s| self.delegate.iter().any(|d| d.shards.contains(s)))
            })
    }

    /// Every address record of the zone: the apex name servers' glue, then
    /// that of the delegations' name servers not already listed.
    pub fn all_glue(&self) -> Vec<(DomainName, Vec<std::net::IpAddr>)> {
        let mut glue = self.glue.clone();
        for d in &self.delegate {
            for (h, ips) in &d.glue {
                if !glue.iter().any(|(g, _)| g == h) {
                    glue.push((h.clone(), ips.clone()));
                }
            }
        }
        glue
    }

    /// The `origin` of a configuration of many zones before
    /// [`ZoneConfig::for_zone`] names one: `invalid`, a name reserved
    /// never to be a zone (RFC 6761).
    pub fn many() -> DomainName {
        DomainName::parse("invalid").expect("a valid name")
    }

    /// Whether this configuration describes many zones (`[domains]` or
    /// `[shards]`) rather than the one zone `origin`.
    pub fn is_many(&self) -> bool {
        self.domains.is_some() || self.shards.is_some()
    }

    /// The configuration of the one zone `origin` of this configuration:
    /// the same settings with that origin.
    pub fn for_zone(&self, origin: &DomainName) -> ZoneConfig {
        ZoneConfig {
            origin: origin.clone(),
            ..self.clone()
        }
    }

    /// Every file whose change alters the zone: the configuration, mappings,
    /// pre-signed files, the key and the certificates. The server watches
    /// these.
    pub fn input_files(&self) -> Vec<PathBuf> {
        let mut v = vec![self.path.clone()];
        v.extend(self.mappings.iter().cloned());
        v.extend(self.presigned.iter().cloned());
        if let Some(a) = &self.authority {
            v.extend(a.key.iter().cloned());
            v.extend(a.certificates.iter().cloned());
        }
        if let Some(t) = &self.transfer {
            v.extend(t.tsig_key.iter().cloned());
        }
        if let Some(d) = &self.domains {
            v.extend(d.list.iter().cloned());
        }
        v
    }
}

/// Checks a `[transfer]` table; relative paths are relative to `base`.
pub(crate) fn transfer_config(
    t: &RawTransfer,
    base: &Path,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<TransferConfig, ConfigError> {
    let allow = t
        .allow
        .iter()
        .enumerate()
        .map(|(i, a)| {
            a.parse::<ipnet::IpNet>()
                .or_else(|_| a.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    invalid(
                        &format!("transfer.allow[{i}]"),
                        format!("{a:?} is not an IP address or prefix"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let notify = t
        .notify
        .iter()
        .enumerate()
        .map(|(i, a)| {
            a.parse::<std::net::SocketAddr>()
                .or_else(|_| {
                    a.parse::<std::net::IpAddr>()
                        .map(|ip| std::net::SocketAddr::new(ip, 53))
                })
                .map_err(|_| {
                    invalid(
                        &format!("transfer.notify[{i}]"),
                        format!("{a:?} is not IP:PORT"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let max_age = match &t.journal_max_age {
        None => JournalLimits::DEFAULT.max_age,
        Some(v) => parse_duration(v).map_err(|m| invalid("transfer.journal_max_age", m))?,
    };
    Ok(TransferConfig {
        allow,
        notify,
        tsig_key: t.tsig_key.as_ref().map(|p| base.join(p)),
        journal: JournalLimits {
            max_records: t.journal_max_records,
            max_age,
        },
    })
}

/// Whether every label of `name` is a host name label (RFC 1123 §2.1:
/// letters, digits, hyphens not at either end).
pub(crate) fn is_host_name(name: &DomainName) -> bool {
    name.as_str().split('.').all(|l| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    })
}

/// Whether a zone at `origin` can publish privacy buckets: they are at
/// `_mimi-b.<domain>`, a sibling of `_mimi.<domain>`, so a zone inside
/// `_mimi.<domain>` (the DKIM-like delegation of the discovery subtree, or
/// one shard) does not contain them; and a bucket gathers records of every
/// shard, so a zone whose shards are published elsewhere (`[[delegate]]`,
/// `[shards]`) does not hold what its buckets would need.
fn check_bucket_zone(origin: &DomainName, delegates: bool, shards: bool) -> Result<(), String> {
    let mut labels = origin.as_str().split('.');
    let first = labels.next();
    let second = labels.next();
    if first == Some("_mimi") || second == Some("_mimi") {
        return Err(format!(
            "zone {origin} is inside a _mimi subtree, but buckets are published at _mimi-b.<domain>, next to _mimi.<domain> and outside this zone: set buckets in the configuration of the zone that contains _mimi-b.<domain> (the parent), or publish the discovery records from there"
        ));
    }
    if delegates || shards {
        return Err(format!(
            "zone {origin} publishes some shards elsewhere ({}), but a bucket holds the records of every shard in one place: buckets need all of a domain's records in one zone; remove buckets or the shard split",
            if delegates { "[[delegate]]" } else { "[shards]" }
        ));
    }
    Ok(())
}

/// Checks the `[[delegate]]` entries of the zone at `origin` whose apex
/// glue is `apex_glue`.
fn parse_delegates(
    raw: &[RawDelegate],
    origin: &DomainName,
    apex_glue: &[(DomainName, Vec<std::net::IpAddr>)],
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<DelegateConfig>, ConfigError> {
    let mut out: Vec<DelegateConfig> = Vec::with_capacity(raw.len());
    // Every glue host seen so far, with its addresses and where.
    let mut hosts: Vec<(DomainName, Vec<std::net::IpAddr>, String)> = apex_glue
        .iter()
        .map(|(h, ips)| (h.clone(), ips.clone(), "glue".to_owned()))
        .collect();
    if !raw.is_empty()
        && shard_parent(origin)
            .and_then(|p| crate::input::delegate::shard_name(Shard::parse("vv").ok()?, &p))
            .is_none()
    {
        return Err(invalid(
            "delegate",
            format!("origin {origin} is too long for shard names <shard>._mimi.{origin} to fit in DNS (253 octets)"),
        ));
    }
    for (i, d) in raw.iter().enumerate() {
        let at = |f: &str| format!("delegate[{i}].{f}");
        let shards = ShardSet::parse(&d.shards).map_err(|m| invalid(&at("shards"), m))?;
        for (j, earlier) in out.iter().enumerate() {
            if let Some(s) = shards.iter().find(|s| earlier.shards.contains(*s)) {
                return Err(invalid(
                    &at("shards"),
                    format!("shard {s} is already delegated by delegate[{j}]"),
                ));
            }
        }
        if d.ns.is_empty() {
            return Err(invalid(
                &at("ns"),
                "at least one name server is required".into(),
            ));
        }
        let mut ns = Vec::with_capacity(d.ns.len());
        for (k, s) in d.ns.iter().enumerate() {
            let n = DomainName::parse(s)
                .map_err(|e| invalid(&at(&format!("ns[{k}]")), e.to_string()))?;
            if !is_host_name(&n) {
                return Err(invalid(
                    &at(&format!("ns[{k}]")),
                    format!("{n} is not a host name (letters, digits and inner hyphens, RFC 1123 §2.1): BIND refuses zones whose name servers have other names, such as ones under _mimi"),
                ));
            }
            if ns.contains(&n) {
                return Err(invalid(
                    &at(&format!("ns[{k}]")),
                    format!("{n} is listed twice"),
                ));
            }
            ns.push(n);
        }
        let mut glue = Vec::new();
        for (host, addrs) in &d.glue {
            let field = at(&format!("glue.{host:?}"));
            let h = DomainName::parse(host).map_err(|e| invalid(&field, e.to_string()))?;
            if !ns.contains(&h) {
                return Err(invalid(
                    &field,
                    format!("{h} is not one of this delegation's ns names"),
                ));
            }
            if !h.is_within(origin) {
                return Err(invalid(
                    &field,
                    format!(
                        "{h} is outside the zone {origin}; glue is only for name servers inside it"
                    ),
                ));
            }
            let ips = addrs
                .iter()
                .map(|a| {
                    a.parse::<std::net::IpAddr>()
                        .map_err(|_| invalid(&field, format!("{a:?} is not an IP address")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if ips.is_empty() {
                return Err(invalid(&field, "needs at least one address".into()));
            }
            if let Some((_, other, where_)) = hosts.iter().find(|(g, _, _)| *g == h) {
                if *other != ips {
                    return Err(invalid(
                        &field,
                        format!(
                            "{h} has other addresses in {where_}; a name has one set of addresses"
                        ),
                    ));
                }
            } else {
                hosts.push((h.clone(), ips.clone(), field.clone()));
            }
            glue.push((h, ips));
        }
        for (k, n) in ns.iter().enumerate() {
            if n.is_within(origin) && !hosts.iter().any(|(g, _, _)| g == n) {
                return Err(invalid(
                    &at(&format!("ns[{k}]")),
                    format!("{n} is inside the zone {origin}, so resolvers can only reach it through its addresses: add them under glue"),
                ));
            }
        }
        out.push(DelegateConfig { shards, ns, glue });
    }
    Ok(out)
}

/// Who may transfer a zone, and whom to NOTIFY of its new serials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferPolicy {
    /// Peers allowed to transfer (address prefixes).
    pub allow: Vec<ipnet::IpNet>,
    /// Secondaries to NOTIFY.
    pub notify: Vec<std::net::SocketAddr>,
    /// TSIG key required on transfers and used to sign responses and NOTIFYs.
    pub key: Option<crate::input::tsig::TsigKey>,
    /// Bounds of the IXFR journal.
    pub journal: JournalLimits,
}

impl TransferPolicy {
    /// Whether `ip` is in the allow list (IPv4-mapped IPv6 counts as IPv4).
    pub fn allows(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
origin = "Example.com."
ns = ["ns1.example.com"]
[soa]
mname = "ns1.example.com"
rname = "hostmaster.example.com"
"#;

    #[test]
    fn minimal_config_and_defaults() {
        let c = ZoneConfig::from_toml(MIN, Path::new("/z/zone.toml")).unwrap();
        assert_eq!(c.origin.as_str(), "example.com");
        assert_eq!(c.role, ZoneRole::Home);
        assert_eq!(c.ttl, 300);
        assert_eq!(c.input_files(), vec![PathBuf::from("/z/zone.toml")]);
    }

    #[test]
    fn journal_bounds() {
        let t = |extra: &str| {
            ZoneConfig::from_toml(
                &format!("{MIN}[transfer]\nallow = [\"127.0.0.1\"]\n{extra}"),
                Path::new("z.toml"),
            )
        };
        let c = t("").unwrap();
        assert_eq!(c.transfer.unwrap().journal, JournalLimits::DEFAULT);
        let c = t("journal_max_records = 5000\njournal_max_age = \"2d\"\n").unwrap();
        let j = c.transfer.unwrap().journal;
        assert_eq!(
            (j.max_records, j.max_age.as_secs()),
            (Some(5000), 2 * 86_400)
        );
        assert_eq!(j.max_records_for(1_000_000), 5000);
        let e = t("journal_max_age = \"soon\"\n").unwrap_err();
        assert!(e.to_string().contains("transfer.journal_max_age"), "{e}");
        let e = t("journal_max_records = -1\n").unwrap_err();
        assert!(e.to_string().contains("journal_max_records"), "{e}");
    }

    #[test]
    fn errors_name_the_setting() {
        let e =
            ZoneConfig::from_toml(&format!("{MIN}bogus = 1\n"), Path::new("z.toml")).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = ZoneConfig::from_toml(&MIN.replace("Example.com.", "a..b"), Path::new("z.toml"))
            .unwrap_err();
        assert!(e.to_string().starts_with("z.toml: origin:"), "{e}");
        let with_auth = format!(
            "mappings = \"m.csv\"\n{MIN}[authority]\nname = \"example.com\"\nvalidity = \"2d\"\nresign_margin = \"1d\"\n"
        );
        let e = ZoneConfig::from_toml(&with_auth, Path::new("z.toml")).unwrap_err();
        assert!(e.to_string().contains("mappings"), "{e}");
        let ok = with_auth.replace("validity", "key = \"k.pem\"\nvalidity");
        let bad = ok.replace("\"1d\"", "\"3d\"");
        let e = ZoneConfig::from_toml(&bad, Path::new("z.toml")).unwrap_err();
        assert!(e.to_string().contains("resign_margin"), "{e}");
        let c = ZoneConfig::from_toml(&ok, Path::new("/d/z.toml")).unwrap();
        assert_eq!(c.mappings, Some(PathBuf::from("/d/m.csv")));
        assert_eq!(c.authority.unwrap().window.validity(), 2 * 86400);
    }

    /// `buckets` parses, and is refused where the zone cannot hold
    /// `_mimi-b.<domain>` or not all of the domain's shards, with the
    /// reason.
    #[test]
    fn buckets_setting_and_where_it_is_refused() {
        use crate::input::buckets::BucketSetting;
        let load = |pre: &str, body: &str| {
            ZoneConfig::from_toml(&format!("{pre}{body}"), Path::new("z.toml"))
        };
        let c = load("buckets = 3\n", MIN).unwrap();
        assert_eq!(
            c.buckets,
            Some(BucketSetting::Fixed(
                mimi_proto::bucket::BucketLen::new(3).unwrap()
            ))
        );
        let c = load("buckets = \"auto\"\nbucket_k = 8\n", MIN).unwrap();
        assert_eq!(c.buckets, Some(BucketSetting::Auto { k: 8 }));
        assert_eq!(load("", MIN).unwrap().buckets, None);
        let e = load("buckets = 9\n", MIN).unwrap_err().to_string();
        assert!(e.contains("z.toml: buckets:") && e.contains("1..=8"), "{e}");
        let e = load("bucket_k = 9\n", MIN).unwrap_err().to_string();
        assert!(e.contains("bucket_k"), "{e}");
        for origin in ["_mimi.example.com", "3b._mimi.example.com"] {
            let e = load("buckets = 2\n", &MIN.replace("Example.com.", origin))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("_mimi-b.<domain>") && e.contains("outside this zone"),
                "{e}"
            );
        }
        let e = load(
            "buckets = 2\n",
            &format!("{MIN}[[delegate]]\nshards = [\"00\"]\nns = [\"ns1.other.example\"]\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("[[delegate]]") && e.contains("every shard"),
            "{e}"
        );
    }

    #[test]
    fn delegations_are_checked() {
        let with = |d: &str| format!("{MIN}[glue]\n\"ns1.example.com\" = [\"192.0.2.1\"]\n{d}");
        let ok = with(
            "[[delegate]]\nshards = [\"00-7v\"]\nns = [\"ns1.a.example.net\", \"ns2.example.com\"]\nglue = { \"ns2.example.com\" = [\"192.0.2.2\"] }\n[[delegate]]\nshards = [\"80\", \"vv\"]\nns = [\"ns1.example.com\"]\n",
        );
        let c = ZoneConfig::from_toml(&ok, Path::new("z.toml")).unwrap();
        assert_eq!(c.delegate.len(), 2);
        assert_eq!(c.delegate[0].shards.len(), 256);
        assert_eq!(c.all_glue().len(), 2);
        let d = |s: &str| DomainName::parse(s).unwrap();
        assert!(c.is_delegated(&d("7vabc.7v._mimi.example.com")));
        assert!(c.is_delegated(&d("80._mimi.example.com")));
        assert!(!c.is_delegated(&d("81abc.81._mimi.example.com")));
        assert!(!c.is_delegated(&d("_mimi.example.com")));
        for (bad, field, why) in [
            ("shards = [\"00-7w\"]\nns = [\"ns.example.net\"]", "delegate[0].shards", "0-9 and a-v"),
            ("shards = []\nns = [\"ns.example.net\"]", "delegate[0].shards", "no shard"),
            ("shards = [\"00\"]\nns = []", "delegate[0].ns", "at least one"),
            ("shards = [\"00\"]\nns = [\"ns.00._mimi.example.com\"]", "delegate[0].ns[0]", "not a host name"),
            ("shards = [\"00\"]\nns = [\"ns_1.example.net\"]", "delegate[0].ns[0]", "not a host name"),
            ("shards = [\"00\"]\nns = [\"ns.example.net\", \"ns.example.net\"]", "delegate[0].ns[1]", "twice"),
            ("shards = [\"00\"]\nns = [\"ns9.example.com\"]", "delegate[0].ns[0]", "add them under glue"),
            ("shards = [\"00\"]\nns = [\"ns.example.net\"]\nglue = { \"ns.example.net\" = [\"192.0.2.3\"] }", "glue", "outside the zone"),
            ("shards = [\"00\"]\nns = [\"ns.example.net\"]\nglue = { \"ns9.example.com\" = [\"192.0.2.3\"] }", "glue", "not one of this delegation's ns"),
            ("shards = [\"00\"]\nns = [\"ns1.example.com\"]\nglue = { \"ns1.example.com\" = [\"192.0.2.3\"] }", "glue", "other addresses in glue"),
            ("shards = [\"00\"]\nns = [\"ns2.example.com\"]\nglue = { \"ns2.example.com\" = [\"x\"] }", "glue", "not an IP address"),
            ("shards = [\"00\"]\nns = [\"ns.example.net\"]\n[[delegate]]\nshards = [\"0a-0b\", \"00\"]\nns = [\"ns.example.net\"]", "delegate[1].shards", "already delegated by delegate[0]"),
            ("shards = [\"00\"]\nns = [\"ns.example.net\"]\nbogus = 1", "bogus", "unknown field"),
        ] {
            let e = ZoneConfig::from_toml(&with(&format!("[[delegate]]\n{bad}\n")), Path::new("z.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(field) && e.contains(why), "{bad}: {e}");
        }
        // An origin with no room for `<shard>._mimi.` in front is refused,
        // not a panic when the shard names are made.
        let long = format!("{}.example", vec!["a".repeat(60); 4].join("."));
        let text = format!(
            "origin = \"{long}\"\nns = [\"ns.example.net\"]\n[soa]\nmname = \"ns.example.net\"\nrname = \"h.example.net\"\n[[delegate]]\nshards = [\"00\"]\nns = [\"ns.example.net\"]\n"
        );
        let e = ZoneConfig::from_toml(&text, Path::new("z.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("delegate") && e.contains("too long"), "{e}");
    }
}

#[cfg(test)]
mod many_tests {
    use super::*;

    const BASE: &str =
        "ns = [\"ns1.p.example\"]\n[soa]\nmname = \"ns1.p.example\"\nrname = \"h.p.example\"\n";

    fn load(top: &str, tables: &str) -> Result<ZoneConfig, String> {
        ZoneConfig::from_toml(&format!("{top}{BASE}{tables}"), Path::new("/c/z.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn domains_and_shards_tables() {
        let c = load(
            "",
            "[domains]\norigin = \"_mimi.{domain}\"\nlist = \"domains.txt\"\n[shards]\nzones = [\"00-7v\"]\n",
        )
        .unwrap();
        assert!(c.is_many());
        assert_eq!(c.origin, ZoneConfig::many());
        let d = c.domains.as_ref().unwrap();
        assert_eq!(d.list, Some(PathBuf::from("/c/domains.txt")));
        assert_eq!(c.shards.as_ref().unwrap().len(), 256);
        assert!(c.input_files().contains(&PathBuf::from("/c/domains.txt")));
        let one = c.for_zone(&DomainName::parse("_mimi.a.example").unwrap());
        assert_eq!(one.origin.as_str(), "_mimi.a.example");
        assert!(!load("origin = \"x.example\"\n", "").unwrap().is_many());
    }

    #[test]
    fn nonsense_is_refused_naming_the_setting() {
        for (top, tables, want) in [
            (
                "origin = \"x.example\"\n",
                "[domains]\norigin = \"_mimi.{domain}\"\n",
                "/c/z.toml: origin: with [domains]",
            ),
            ("", "", "/c/z.toml: origin: missing"),
            (
                "role = \"distribution\"\n",
                "[domains]\norigin = \"_mimi.{domain}\"\n",
                "/c/z.toml: domains: [domains] publishes",
            ),
            (
                "",
                "[domains]\norigin = \"_mimi\"\n",
                "/c/z.toml: domains.origin: \"_mimi\" must end with {domain}",
            ),
            (
                "tel_root = \"e164.example\"\n",
                "[domains]\norigin = \"{domain}\"\n",
                "/c/z.toml: tel_root:",
            ),
            (
                "origin = \"x.example\"\n",
                "[shards]\nzones = [\"00-zz\"]\n",
                "/c/z.toml: shards.zones: [0] \"00-zz\"",
            ),
            (
                "origin = \"x.example\"\n",
                "[shards]\nzones = []\n",
                "/c/z.toml: shards.zones: lists no shard",
            ),
            ("", "[domains]\norigin = \"{domain}\"\nbogus = 1\n", "bogus"),
        ] {
            let e = load(top, tables).unwrap_err();
            assert!(e.contains(want), "{top}{tables}: {e}");
        }
    }
}
