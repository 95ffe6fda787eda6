//! The DNS side of resolution (SPEC §8 steps 1, 2, 6), on hickory-resolver.
//!
//! This module only gathers record texts; every trust decision is made by
//! [`crate::verify::verify`]. It is configured to fail fast — a short
//! timeout, few attempts, an outer deadline per query — because a client
//! waiting on a dead distribution point should get an error in seconds,
//! never hang.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use hickory_resolver::config::{ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::proto::dnssec::TrustAnchors;
use hickory_resolver::proto::rr::{LowerName, Name, RData, RecordType};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};
use mimi_proto::name::{discovery_name, home_zones};
use mimi_proto::{AuthorityName, DomainName, Sii, UnixTime};
use tracing::debug;

use crate::dnssec::{self, DnssecPolicy};
use crate::resolution::{Endpoint, Resolution, UnauthenticatedEndpoints, VerifiedSsi};
use crate::transport::{
    check_servers, client_config, ServerSpec, TlsOptions, TlsSetupError, Transports,
};
use crate::trust::TrustStore;
use crate::verify::{
    authorities_needing_certificates, verify_prepared, PreparedCertificates, SourceRecords,
    MAX_DISTRIBUTION_ZONES,
};

/// Which DNS servers to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameServers {
    /// The operating system's configuration (`/etc/resolv.conf`).
    System,
    /// These servers, each with its own port, over UDP with TCP fallback
    /// for truncated answers (a shorthand for [`NameServers::Servers`] with
    /// plain servers only).
    Explicit(Vec<SocketAddr>),
    /// These servers, each over its own transport (plain, DoT, DoH, DoQ),
    /// encrypted ones authenticated as `tls` says. An encrypted server is
    /// only ever asked over its transport: there is no fallback to plain
    /// DNS.
    Servers {
        /// The servers, in the order given.
        servers: Vec<ServerSpec>,
        /// How encrypted servers are authenticated.
        tls: TlsOptions,
    },
}

/// Everything a [`Resolver`] needs to know.
#[derive(Debug, Clone)]
pub struct ResolverOptions {
    /// Whom to trust, and the policy.
    pub trust: TrustStore,
    /// Distribution zones queried for every SII (at most 32, SPEC §11).
    pub distribution_zones: Vec<DomainName>,
    /// Telephone roots: a telephone SII's home zone is looked up under each.
    pub tel_roots: Vec<DomainName>,
    /// Whether to query the SII's home zone(s) at all.
    pub home_lookup: bool,
    /// Which DNS servers to ask.
    pub name_servers: NameServers,
    /// Timeout of one DNS request.
    pub timeout: Duration,
    /// Retries after a failed request (0 = one try). Each query is also
    /// bounded by an outer deadline of `timeout × (attempts + 1) + 1 s`
    /// (at most an hour).
    pub attempts: usize,
    /// Whether to look up SRV endpoints of verified SSIs (SPEC §8 step 6).
    pub endpoints: bool,
    /// DNSSEC validation of every TXT answer (discovery names and
    /// certificates, positive and negative); from the trust store's
    /// `[policy]` by default. See [`crate::dnssec`].
    pub dnssec: DnssecPolicy,
    /// Private mode: ask privacy buckets, never discovery names (see
    /// [`crate::private`]). Defaults to the trust store's
    /// `[policy] private`.
    pub private: bool,
}

impl ResolverOptions {
    /// Defaults: home lookup on, no distribution zones or telephone roots,
    /// system name servers, 2 s timeout, 1 retry, no endpoints.
    pub fn new(trust: TrustStore) -> Self {
        ResolverOptions {
            dnssec: trust.dnssec().clone(),
            distribution_zones: Vec::new(),
            tel_roots: Vec::new(),
            home_lookup: true,
            name_servers: NameServers::System,
            timeout: Duration::from_secs(2),
            attempts: 1,
            endpoints: false,
            private: trust.policy().private,
            trust,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// More distribution zones than SPEC §11 allows.
    #[error("{0} distribution zones configured; at most {MAX_DISTRIBUTION_ZONES} are allowed (SPEC §11)")]
    TooManyZones(usize),
    /// `NameServers::Explicit` with an empty list.
    #[error("no name servers given")]
    NoNameServers,
    /// TLS cannot be set up (an unusable CA file, no system roots).
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    /// The system resolver configuration could not be read.
    #[error("cannot use the system resolver configuration: {0}")]
    SystemConfig(String),
    /// A zero timeout would fail every query.
    #[error("the DNS timeout must be positive")]
    ZeroTimeout,
    /// Nothing to query for this SII (a telephone number with no telephone
    /// root and no distribution zone, or home lookup off and no zones).
    #[error("no discovery names to query for {0}: configure a distribution zone{1}")]
    NoNames(String, &'static str),
}

/// Why a lookup produced no [`Resolution`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Every DNS source failed (timeouts, SERVFAIL, REFUSED, unreachable
    /// servers); one message per source.
    #[error("every DNS source failed: {}", .0.join("; "))]
    Dns(Vec<String>),
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A bug: the lookup panicked. Only this lookup failed; the resolver
    /// stays usable and other lookups (of a batch, of other threads) go on.
    /// Nothing a DNS server sends should ever cause this.
    #[error("internal error in mimi-resolver (please report it): {0}; only this lookup failed")]
    Internal(String),
    /// Private mode, and no zone publishes privacy buckets (SPEC §10):
    /// nothing was asked that names the SII. The caller decides whether
    /// a normal lookup, which asks the exact discovery names, is
    /// acceptable.
    #[error("no privacy buckets in {}: private mode does not ask for the exact discovery names; look up without private mode to ask them", .zones.iter().map(|z| z.as_str()).collect::<Vec<_>>().join(", "))]
    NoBuckets {
        /// The zones consulted, none of which publishes buckets.
        zones: Vec<DomainName>,
        /// Per zone, what its `_mimi-b` name held, and any other notes.
        errors: Vec<String>,
    },
}

/// The discovery names of `sii` (SPEC §3): the home name(s) first (one per
/// telephone root for telephone numbers; none when `home_lookup` is off),
/// then one per distribution zone, without duplicates.
pub fn discovery_names(
    sii: &Sii,
    home_lookup: bool,
    tel_roots: &[DomainName],
    distribution_zones: &[DomainName],
) -> Vec<DomainName> {
    let label = sii.label();
    let mut names: Vec<DomainName> = Vec::new();
    for zone in &zones_consulted(sii, home_lookup, tel_roots, distribution_zones) {
        // A name over 253 octets cannot be asked for; `unqueryable_zones`
        // reports those zones.
        let Ok(n) = discovery_name(&label, zone) else {
            continue;
        };
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// The zones among those [`discovery_names`] would consult whose discovery
/// name for `sii` would be longer than 253 octets (an SII on a very long
/// domain), so that a lookup can say why it did not query them.
pub fn unqueryable_zones(
    sii: &Sii,
    home_lookup: bool,
    tel_roots: &[DomainName],
    distribution_zones: &[DomainName],
) -> Vec<DomainName> {
    let label = sii.label();
    zones_consulted(sii, home_lookup, tel_roots, distribution_zones)
        .into_iter()
        .filter(|zone| discovery_name(&label, zone).is_err())
        .collect()
}

/// The home zone(s) of `sii` (unless `home_lookup` is off), then the
/// distribution zones: every zone a lookup consults.
pub(crate) fn zones_consulted(
    sii: &Sii,
    home_lookup: bool,
    tel_roots: &[DomainName],
    distribution_zones: &[DomainName],
) -> Vec<DomainName> {
    let mut zones = if home_lookup {
        home_zones(sii, tel_roots)
    } else {
        Vec::new()
    };
    zones.extend_from_slice(distribution_zones);
    zones
}

struct CachedCertificates {
    /// Parsed and signature-checked once, shared by every lookup until
    /// `until`.
    prepared: Arc<PreparedCertificates>,
    until: Instant,
}

/// Resolves SIIs to verified SSIs through DNS.
///
/// Cheap to share behind an `Arc`; lookups take `&self` and may run
/// concurrently. Certificates are cached per authority for the TTL of their
/// DNS answer, parsed and with their signatures checked, so a burst of
/// lookups fetches, decodes and verifies each authority's keys once.
pub struct Resolver {
    dns: Dns,
    /// The connection provider `dns` runs on, kept for the reasons of
    /// failed encrypted connections.
    transports: Transports,
    options: ResolverOptions,
    certificates: Mutex<HashMap<AuthorityName, CachedCertificates>>,
    /// Bucket prefix lengths of zones, for private mode.
    pub(crate) buckets: crate::private::BucketCache,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// Builds a resolver. Must be called within a Tokio runtime.
    pub fn new(options: ResolverOptions) -> Result<Self, ConfigError> {
        if options.distribution_zones.len() > MAX_DISTRIBUTION_ZONES {
            return Err(ConfigError::TooManyZones(options.distribution_zones.len()));
        }
        if options.timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        let transports = Transports::new(options.timeout);
        let anchors = Arc::new(options.dnssec.anchor.to_hickory());
        // Built here even with DS anchors (and then dropped) so that a
        // configuration that cannot work is an error now, not at a lookup.
        let dns = hickory(&options, transports.clone(), anchors)?;
        let dns = match options.dnssec.validates() && !options.dnssec.anchor.ds().is_empty() {
            false => Dns::Ready(dns),
            true => Dns::Anchored(Box::new(Anchored {
                fetch: fetch_pool(&options, transports.clone())?,
                ready: tokio::sync::OnceCell::new(),
            })),
        };
        Ok(Resolver {
            dns,
            transports,
            options,
            certificates: Mutex::new(HashMap::new()),
            buckets: Default::default(),
        })
    }

    /// The hickory resolver lookups go through. With DS anchors, it is
    /// built once they are established (the first call fetches and checks
    /// the DNSKEY sets); a failure is the reason, and the next call tries
    /// again.
    async fn dns(&self) -> Result<&hickory_resolver::Resolver<Transports>, String> {
        let anchored = match &self.dns {
            Dns::Ready(dns) => return Ok(dns),
            Dns::Anchored(a) => a,
        };
        anchored
            .ready
            .get_or_try_init(|| async {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as u32);
                let ds = self.options.dnssec.anchor.ds();
                let keys = tokio::time::timeout(
                    self.deadline(),
                    dnssec::establish(&anchored.fetch, ds, now),
                )
                .await
                .map_err(|_| {
                    format!(
                        "trust anchors from DS: the DNSKEY sets could not be fetched within {:?}",
                        self.deadline()
                    )
                })??;
                let mut anchors = self.options.dnssec.anchor.to_hickory();
                for (zone, key) in &keys {
                    anchors.insert_with_name(key, LowerName::from(zone));
                }
                hickory(&self.options, self.transports.clone(), Arc::new(anchors))
                    .map_err(|e| e.to_string())
            })
            .await
    }

    /// The options this resolver was built with.
    pub fn options(&self) -> &ResolverOptions {
        &self.options
    }

    /// The names a lookup of `sii` queries.
    pub fn names(&self, sii: &Sii) -> Vec<DomainName> {
        discovery_names(
            sii,
            self.options.home_lookup,
            &self.options.tel_roots,
            &self.options.distribution_zones,
        )
    }

    /// Resolves `sii` now.
    pub async fn lookup(&self, sii: &Sii) -> Result<Resolution, LookupError> {
        self.lookup_at(sii, UnixTime::now()).await
    }

    /// Resolves `sii`, judging validity windows at `now` (injectable for
    /// tests and for checking what a client would see at another time).
    ///
    /// A panic inside the lookup (a bug; no input should cause one) is
    /// caught and returned as [`LookupError::Internal`], so one hostile
    /// answer can never take down a batch or the caller's process.
    pub async fn lookup_at(&self, sii: &Sii, now: UnixTime) -> Result<Resolution, LookupError> {
        use futures::FutureExt;
        match std::panic::AssertUnwindSafe(self.lookup_unguarded(sii, now))
            .catch_unwind()
            .await
        {
            Ok(result) => result,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_owned());
                tracing::error!(sii = %sii, panic = %msg, "lookup panicked");
                Err(LookupError::Internal(msg))
            }
        }
    }

    async fn lookup_unguarded(&self, sii: &Sii, now: UnixTime) -> Result<Resolution, LookupError> {
        let names = self.names(sii);
        let mut errors: Vec<String> = unqueryable_zones(
            sii,
            self.options.home_lookup,
            &self.options.tel_roots,
            &self.options.distribution_zones,
        )
        .into_iter()
        .map(|zone| format!("{zone}: not queried: the discovery name of {sii} there would be longer than 253 octets"))
        .collect();
        if names.is_empty() {
            if !errors.is_empty() {
                return Err(LookupError::Dns(errors));
            }
            let hint = if sii.is_tel() {
                " or a telephone root"
            } else {
                ""
            };
            return Err(ConfigError::NoNames(sii.to_string(), hint).into());
        }
        // DS anchors are established before anything is asked: when that
        // fails, every source fails with the reason (retried next lookup).
        if let Err(reason) = self.dns().await {
            let mode = self.options.dnssec.mode;
            errors.push(format!("DNSSEC ({mode}): {reason}"));
            return Err(LookupError::Dns(errors));
        }
        // Private mode asks the zones' buckets instead of the names
        // (crate::private); the names are not asked at all.
        let private = match self.options.private {
            true => Some(self.private_sources(sii, &mut errors).await?),
            false => None,
        };
        let asked: &[DomainName] = if private.is_some() { &[] } else { &names };
        debug!(sii = %sii, names = ?asked, "querying discovery names");
        let answers = join_all(asked.iter().map(|n| self.query_txt(n))).await;
        let mut sources = Vec::new();
        let mut ttl: Option<u32> = None;
        for (name, answer) in asked.iter().zip(answers) {
            match answer {
                Ok((texts, answer_ttl)) => {
                    if let Some(t) = answer_ttl {
                        ttl = Some(ttl.map_or(t, |m| m.min(t)));
                    }
                    sources.push(SourceRecords {
                        source: name.fqdn(),
                        texts,
                    })
                }
                Err(e) => errors.push(e),
            }
        }
        let (names, bucket_rejected) = match private {
            Some(p) => {
                sources = p.sources;
                (p.names, p.rejected)
            }
            None => (names, Vec::new()),
        };
        if sources.is_empty() {
            return Err(LookupError::Dns(errors));
        }

        let needed = authorities_needing_certificates(&self.options.trust, &sources);
        let fetched = join_all(needed.iter().map(|a| self.certificates(a))).await;
        let mut certificates = BTreeMap::new();
        for (authority, result) in needed.into_iter().zip(fetched) {
            match result {
                Ok(prepared) => {
                    certificates.insert(authority, prepared);
                }
                Err(e) => errors.push(e),
            }
        }

        let verdict = verify_prepared(sii, now, &self.options.trust, &sources, &certificates);
        errors.extend(verdict.notes);
        let verified = verdict.verified;
        let unauthenticated_endpoints = if self.options.endpoints {
            self.endpoints(&verified, &mut errors).await
        } else {
            Vec::new()
        };
        Ok(Resolution {
            canonical: sii.clone(),
            label: sii.label(),
            names,
            verified,
            rejected: bucket_rejected
                .into_iter()
                .chain(verdict.rejected)
                .collect(),
            unauthenticated_endpoints,
            errors,
            ttl,
        })
    }

    /// An authority's certificates, prepared, from our cache or DNS.
    async fn certificates(
        &self,
        authority: &AuthorityName,
    ) -> Result<Arc<PreparedCertificates>, String> {
        {
            let cache = self
                .certificates
                .lock()
                // A panic elsewhere never takes the cache down with it: its
                // entries are whole values, valid whatever was interrupted.
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(c) = cache.get(authority) {
                if c.until > Instant::now() {
                    debug!(%authority, "certificates from cache");
                    return Ok(c.prepared.clone());
                }
            }
        }
        let (texts, ttl) = self.query_txt(&authority.certificate_name()).await?;
        let prepared = Arc::new(PreparedCertificates::new(
            &self.options.trust,
            authority,
            &texts,
        ));
        if let Some(ttl) = ttl {
            let mut cache = self
                .certificates
                .lock()
                // A panic elsewhere never takes the cache down with it: its
                // entries are whole values, valid whatever was interrupted.
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.retain(|_, c| c.until > Instant::now());
            cache.insert(
                authority.clone(),
                CachedCertificates {
                    prepared: prepared.clone(),
                    until: Instant::now() + Duration::from_secs(u64::from(ttl)),
                },
            );
        }
        Ok(prepared)
    }

    /// The outer deadline of one query.
    fn deadline(&self) -> Duration {
        let tries = u32::try_from(self.options.attempts)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        self.options
            .timeout
            .checked_mul(tries)
            .unwrap_or(Duration::MAX)
            .saturating_add(Duration::from_secs(1))
            .min(Duration::from_secs(3600))
    }

    /// TXT texts at `name` (each RR's character-strings concatenated) and
    /// the smallest TTL among them (`None` when there were none).
    /// NXDOMAIN and NODATA are an empty answer; anything else is an error
    /// message naming the name. Under a DNSSEC policy an answer (or
    /// negative answer) the policy does not accept is such an error too.
    pub(crate) async fn query_txt(
        &self,
        name: &DomainName,
    ) -> Result<(Vec<String>, Option<u32>), String> {
        let fqdn = name.fqdn();
        let qname = Name::from_ascii(&fqdn).map_err(|e| format!("{fqdn}: bad name: {e}"))?;
        let started = Instant::now();
        let mode = self.options.dnssec.mode;
        let dns = self
            .dns()
            .await
            .map_err(|reason| format!("{fqdn}: DNSSEC ({mode}): {reason}"))?;
        let result = tokio::time::timeout(self.deadline(), dns.lookup(qname, RecordType::TXT))
            .await
            .map_err(|_| {
                if mode == dnssec::DnssecMode::Off {
                    format!(
                        "{fqdn}: {}",
                        self.transports.explain_deadline(self.deadline(), started)
                    )
                } else {
                    dnssec::timed_out(mode, &fqdn, self.deadline())
                }
            })?;
        match result {
            Ok(lookup) => {
                dnssec::check_answer(mode, &fqdn, lookup.answers())?;
                let mut texts = Vec::new();
                let mut ttl: Option<u32> = None;
                for record in lookup.answers() {
                    if let RData::TXT(txt) = &record.data {
                        let bytes: Vec<u8> = txt
                            .txt_data
                            .iter()
                            .flat_map(|s| s.iter().copied())
                            .collect();
                        texts.push(String::from_utf8_lossy(&bytes).into_owned());
                        ttl = Some(ttl.map_or(record.ttl, |t| t.min(record.ttl)));
                    }
                }
                debug!(name = %fqdn, count = texts.len(), "TXT answer");
                Ok((texts, ttl))
            }
            Err(e) if e.is_no_records_found() => {
                debug!(name = %fqdn, nxdomain = e.is_nx_domain(), "no TXT records");
                dnssec::check_negative(mode, &fqdn, &e)?;
                Ok((Vec::new(), None))
            }
            Err(e) => {
                debug!(name = %fqdn, error = %e, "TXT lookup failed");
                match dnssec::describe_failure(mode, &fqdn, &e) {
                    Some(Ok(())) => Ok((Vec::new(), None)),
                    Some(Err(reason)) => Err(reason),
                    None => Err(format!("{fqdn}: {}", self.transports.explain(&e, started))),
                }
            }
        }
    }

    /// SRV `_mimi._tcp.<host>.` for each distinct provider host of the
    /// verified SSIs; unauthenticated (SRV records are not signed).
    async fn endpoints(
        &self,
        verified: &[VerifiedSsi],
        errors: &mut Vec<String>,
    ) -> Vec<UnauthenticatedEndpoints> {
        let mut hosts: Vec<DomainName> = Vec::new();
        for v in verified {
            if let Some(h) = v.ssi.provider_host() {
                if !hosts.contains(&h) {
                    hosts.push(h);
                }
            }
        }
        let found = join_all(hosts.iter().map(|h| self.query_srv(h))).await;
        let mut out = Vec::new();
        for (host, result) in hosts.into_iter().zip(found) {
            match result {
                Ok(srv) => out.push(usable_endpoints(host, srv)),
                Err(e) => errors.push(e),
            }
        }
        out
    }

    /// Endpoints of one provider host, in RFC 2782 order as far as it is
    /// deterministic: priority ascending, then weight descending (heavier
    /// first, instead of the RFC's weighted random choice), then target and
    /// port so that the order is stable.
    async fn query_srv(&self, host: &DomainName) -> Result<Vec<Endpoint>, String> {
        let fqdn = format!("_mimi._tcp.{}.", host.as_str());
        let qname = Name::from_ascii(&fqdn).map_err(|e| format!("{fqdn}: bad name: {e}"))?;
        let started = Instant::now();
        let mode = self.options.dnssec.mode;
        let dns = self
            .dns()
            .await
            .map_err(|reason| format!("{fqdn}: DNSSEC ({mode}): {reason}"))?;
        let result = tokio::time::timeout(self.deadline(), dns.lookup(qname, RecordType::SRV))
            .await
            .map_err(|_| {
                format!(
                    "{fqdn}: {}",
                    self.transports.explain_deadline(self.deadline(), started)
                )
            })?;
        match result {
            Ok(lookup) => {
                let mut eps: Vec<Endpoint> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::SRV(srv) => Some(Endpoint {
                            priority: srv.priority,
                            weight: srv.weight,
                            target: srv.target.to_ascii(),
                            port: srv.port,
                        }),
                        _ => None,
                    })
                    .collect();
                sort_endpoints(&mut eps);
                Ok(eps)
            }
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(format!("{fqdn}: {}", self.transports.explain(&e, started))),
        }
    }
}

/// What a host's SRV records say (RFC 2782): a single record with target
/// `.` means the service is decidedly not available there, so no endpoint
/// is returned for it; `.` targets are never returned as endpoints.
fn usable_endpoints(host: DomainName, srv: Vec<Endpoint>) -> UnauthenticatedEndpoints {
    let unavailable = srv.len() == 1 && srv[0].target == ".";
    let endpoints = srv.into_iter().filter(|e| e.target != ".").collect();
    UnauthenticatedEndpoints {
        host,
        endpoints,
        unavailable,
    }
}

/// Priority ascending, weight descending, then target and port.
pub(crate) fn sort_endpoints(eps: &mut [Endpoint]) {
    eps.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then(b.weight.cmp(&a.weight))
            .then_with(|| a.target.cmp(&b.target))
            .then(a.port.cmp(&b.port))
    });
}

/// The hickory resolver lookups go through: ready, or waiting for DS
/// anchors to be established.
#[allow(clippy::large_enum_variant)] // one per Resolver; boxing would add a hop per lookup
enum Dns {
    /// No DS anchors: built with the resolver.
    Ready(hickory_resolver::Resolver<Transports>),
    /// DS anchors (see [`dnssec::AnchorDs`]): the validating resolver is
    /// built from the keys they lead to, on first use.
    Anchored(Box<Anchored>),
}

struct Anchored {
    /// Asks the configured servers, over their transports, for the DNSKEY
    /// sets with the DO bit set and no validation.
    fetch: NameServerPool<Transports>,
    /// The validating resolver, once the anchors are established; an
    /// initialisation that fails leaves it empty for the next lookup.
    ready: tokio::sync::OnceCell<hickory_resolver::Resolver<Transports>>,
}

/// The hickory resolver for `options`, validating from `anchors` when the
/// policy validates.
fn hickory(
    options: &ResolverOptions,
    transports: Transports,
    anchors: Arc<TrustAnchors>,
) -> Result<hickory_resolver::Resolver<Transports>, ConfigError> {
    let mut builder = match &options.name_servers {
        NameServers::System => hickory_resolver::Resolver::builder(transports)
            .map_err(|e| ConfigError::SystemConfig(e.to_string()))?,
        NameServers::Explicit(addrs) => {
            let servers: Vec<ServerSpec> = addrs.iter().copied().map(ServerSpec::from).collect();
            explicit(&servers, &TlsOptions::default(), transports)?
        }
        NameServers::Servers { servers, tls } => explicit(servers, tls, transports)?,
    };
    if options.dnssec.validates() {
        // Sets the DO bit and validates every answer from these anchors.
        builder = builder.with_trust_anchor(anchors);
    }
    set_options(builder.options_mut(), options);
    builder
        .build()
        .map_err(|e| ConfigError::SystemConfig(e.to_string()))
}

fn set_options(o: &mut ResolverOpts, options: &ResolverOptions) {
    o.timeout = options.timeout;
    o.attempts = options.attempts;
    o.use_hosts_file = ResolveHosts::Never;
    o.try_tcp_on_error = true;
}

/// The configured servers as a bare pool (no cache, no validation), for
/// fetching the DNSKEY sets DS anchors lead to.
fn fetch_pool(
    options: &ResolverOptions,
    transports: Transports,
) -> Result<NameServerPool<Transports>, ConfigError> {
    let (configs, tls) = match &options.name_servers {
        NameServers::System => {
            let (config, _) = hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| ConfigError::SystemConfig(e.to_string()))?;
            (config.name_servers().to_vec(), None)
        }
        NameServers::Explicit(addrs) => (
            addrs
                .iter()
                .map(|a| ServerSpec::from(*a).name_server_config(None))
                .collect(),
            None,
        ),
        NameServers::Servers { servers, tls } => (
            servers
                .iter()
                .map(|s| s.name_server_config(tls.name.as_ref()))
                .collect(),
            servers
                .iter()
                .any(|s| s.transport().is_encrypted())
                .then_some(tls),
        ),
    };
    let tls = match tls {
        Some(tls) => TlsConfig {
            config: client_config(tls)?,
        },
        None => TlsConfig::new().map_err(|e| ConfigError::SystemConfig(e.to_string()))?,
    };
    let mut opts = ResolverOpts::default();
    set_options(&mut opts, options);
    let cx = Arc::new(PoolContext::new(opts, tls));
    Ok(NameServerPool::from_config(configs, cx, transports))
}

/// A resolver builder for explicitly given servers; the TLS client
/// configuration is built (and the CA file or system roots consulted) only
/// when one of them is encrypted.
fn explicit(
    servers: &[ServerSpec],
    tls: &TlsOptions,
    transports: Transports,
) -> Result<hickory_resolver::ResolverBuilder<Transports>, ConfigError> {
    if servers.is_empty() {
        return Err(ConfigError::NoNameServers);
    }
    check_servers(servers, tls)?;
    let configs = servers
        .iter()
        .map(|s| s.name_server_config(tls.name.as_ref()))
        .collect();
    let mut builder = hickory_resolver::Resolver::builder_with_config(
        ResolverConfig::from_name_servers(configs),
        transports,
    );
    if servers.iter().any(|s| s.transport().is_encrypted()) {
        builder = builder.with_tls_config(client_config(tls)?);
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{Policy, TrustedAuthority};
    use mimi_proto::PublicKey;

    fn trust() -> TrustStore {
        let mut t = TrustStore::new(Policy::default());
        t.add(
            TrustedAuthority::unscoped(
                AuthorityName::parse("ma.example.net").unwrap(),
                vec![
                    PublicKey::from_base64url("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
                        .unwrap(),
                ],
            )
            .unwrap(),
        )
        .unwrap();
        t
    }

    fn d(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    fn fqdns(names: &[DomainName]) -> Vec<String> {
        names.iter().map(|n| n.fqdn()).collect()
    }

    /// An SII on a very long domain has no discovery name there (it would
    /// exceed 253 octets): that zone is not queried, and a lookup says why.
    #[tokio::test]
    async fn zones_whose_discovery_name_would_not_fit_are_not_queried() {
        let long = format!(
            "{}.{}.{}.example",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63)
        );
        let sii = Sii::parse(&format!("alice@{long}"), None).unwrap();
        let dist = [d("dir.chat.example.org")];
        assert_eq!(
            discovery_names(&sii, true, &[], &dist),
            vec![discovery_name(&sii.label(), &dist[0]).unwrap()]
        );
        assert_eq!(unqueryable_zones(&sii, true, &[], &dist), vec![d(&long)]);
        assert!(discovery_names(&sii, true, &[], &[]).is_empty());
        let mut o = ResolverOptions::new(TrustStore::new(Policy::default()));
        o.name_servers = NameServers::Explicit(vec![SocketAddr::from(([127, 0, 0, 1], 9))]);
        let r = Resolver::new(o).unwrap();
        match r.lookup(&sii).await {
            Err(LookupError::Dns(msgs)) => {
                assert_eq!(msgs.len(), 1, "{msgs:?}");
                assert!(msgs[0].contains("longer than 253 octets"), "{msgs:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn srv_dot_target_means_unavailable_and_is_never_an_endpoint() {
        let ep = |target: &str| Endpoint {
            priority: 0,
            weight: 0,
            target: target.into(),
            port: 0,
        };
        let host = d("chat.example.org");
        let none = usable_endpoints(host.clone(), vec![ep(".")]);
        assert!(none.unavailable);
        assert!(none.endpoints.is_empty());
        // "." among other targets is not RFC 2782's "unavailable", but it
        // is still no endpoint.
        let mixed = usable_endpoints(host.clone(), vec![ep("."), ep("a.chat.example.org.")]);
        assert!(!mixed.unavailable);
        assert_eq!(mixed.endpoints, vec![ep("a.chat.example.org.")]);
        let empty = usable_endpoints(host, vec![]);
        assert!(!empty.unavailable && empty.endpoints.is_empty());
    }

    #[test]
    fn names_follow_the_vectors() {
        let alice = Sii::parse("Alice@Example.COM", None).unwrap();
        let l = "3b3qhrr4hku6f09cih8hemu3qt7u60q58uvh63lqcsjfgama37jg";
        assert_eq!(
            fqdns(&discovery_names(
                &alice,
                true,
                &[],
                &[d("dir.chat.example.org")]
            )),
            vec![
                format!("{l}.3b._mimi.example.com."),
                format!("{l}.3b._mimi.dir.chat.example.org.")
            ]
        );
        assert_eq!(
            fqdns(&discovery_names(
                &alice,
                false,
                &[],
                &[d("dir.chat.example.org")]
            )),
            vec![format!("{l}.3b._mimi.dir.chat.example.org.")]
        );
        // A distribution zone equal to the home zone is queried once.
        assert_eq!(
            discovery_names(&alice, true, &[], &[d("example.com")]).len(),
            1
        );

        let bob = Sii::parse("tel:+39 06 1234 5678", None).unwrap();
        let l = "uqiufnce0un4jbde0gqto43sm0jetrdrlhgnmm99cg9h2pnpvt1g";
        assert_eq!(
            fqdns(&discovery_names(
                &bob,
                true,
                &[d("e164.mimi.example"), d("e164.other.example")],
                &[d("dir.chat.example.org")]
            )),
            vec![
                format!("{l}.uq._mimi.9.3.e164.mimi.example."),
                format!("{l}.uq._mimi.9.3.e164.other.example."),
                format!("{l}.uq._mimi.dir.chat.example.org."),
            ]
        );
        assert!(discovery_names(&bob, true, &[], &[]).is_empty());
    }

    #[test]
    fn endpoint_order() {
        let ep = |priority, weight, target: &str| Endpoint {
            priority,
            weight,
            target: target.into(),
            port: 443,
        };
        let mut eps = vec![
            ep(20, 0, "c."),
            ep(10, 1, "b."),
            ep(10, 5, "a."),
            ep(10, 1, "a."),
        ];
        sort_endpoints(&mut eps);
        assert_eq!(
            eps,
            vec![
                ep(10, 5, "a."),
                ep(10, 1, "a."),
                ep(10, 1, "b."),
                ep(20, 0, "c.")
            ]
        );
    }

    #[tokio::test]
    async fn configuration_errors() {
        let mut o = ResolverOptions::new(trust());
        o.name_servers = NameServers::Explicit(vec![]);
        assert_eq!(
            Resolver::new(o.clone()).unwrap_err(),
            ConfigError::NoNameServers
        );
        o.name_servers = NameServers::Explicit(vec!["127.0.0.1:9".parse().unwrap()]);
        o.distribution_zones = (0..33).map(|i| d(&format!("z{i}.example"))).collect();
        assert_eq!(
            Resolver::new(o.clone()).unwrap_err(),
            ConfigError::TooManyZones(33)
        );
        o.distribution_zones.truncate(32);
        o.timeout = Duration::ZERO;
        assert_eq!(
            Resolver::new(o.clone()).unwrap_err(),
            ConfigError::ZeroTimeout
        );
        o.timeout = Duration::from_secs(1);
        o.distribution_zones.clear();
        let r = Resolver::new(o).unwrap();
        let bob = Sii::parse("+390612345678", None).unwrap();
        let e = r.lookup(&bob).await.unwrap_err();
        assert!(
            matches!(e, LookupError::Config(ConfigError::NoNames(..))),
            "{e}"
        );
        assert!(e.to_string().contains("telephone root"), "{e}");
    }

    /// A server that is down yields a DNS error in seconds, not a hang.
    #[tokio::test]
    async fn down_server_is_a_prompt_dns_error() {
        let port = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        let mut o = ResolverOptions::new(trust());
        o.name_servers = NameServers::Explicit(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
        o.timeout = Duration::from_millis(500);
        o.distribution_zones = vec![d("dir.chat.example.org")];
        let r = Resolver::new(o).unwrap();
        let alice = Sii::parse("alice@example.com", None).unwrap();
        let start = Instant::now();
        let e = r.lookup(&alice).await.unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "{:?}",
            start.elapsed()
        );
        match e {
            LookupError::Dns(msgs) => {
                assert_eq!(msgs.len(), 2, "{msgs:?}");
                assert!(
                    msgs[0].starts_with(
                        "3b3qhrr4hku6f09cih8hemu3qt7u60q58uvh63lqcsjfgama37jg.3b._mimi.example.com.: "
                    ),
                    "{msgs:?}"
                );
            }
            other => panic!("expected a DNS error, got {other}"),
        }
    }
}
