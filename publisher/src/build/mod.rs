//! Building a zone: read every input, sign, and assemble a [`Zone`].
//!
//! A build reads all inputs of one zone configuration, reports *every*
//! problem it finds (with file and line), and produces a zone only when there
//! are none, so a broken input never replaces a good zone. Signing runs on
//! all cores; records whose signed content did not change since the
//! `previous` zone are copied from it instead of being signed again, which
//! makes rebuilding a large zone after a small change cheap.
//!
//! A rebuild is also *incremental*: a zone keeps (in [`Zone::cache`]) the
//! mappings file text it was built from and, per mapping line, its record
//! and when that record's window next rolls over, sorted like the zone's
//! records. The next build of the same configuration compares the new text
//! with the old one (common prefix and suffix, at line boundaries), parses
//! and signs only the lines in between and those whose window rolled over,
//! and merges them into the kept entries, whose line numbers shift past the
//! change. Every other derived value (duplicate warnings, serial floor,
//! next re-sign time) is recomputed from the entries with linear passes
//! over compact arrays, so the result is exactly what a full build gives.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use mimi_proto::name::{discovery_name, home_zone};
use mimi_proto::window::WindowPolicy;
use mimi_proto::{AuthorityName, DomainName, KeyId, Sii, UnixTime, UnsignedAssertion};
use rayon::prelude::*;

use crate::input::config::{AuthorityConfig, ZoneConfig, ZoneRole};

pub(crate) mod buckets;
pub mod rollover;
pub mod zones;
use crate::input::problem::Problem;
use crate::input::{certs, keys, mappings, presigned};
use crate::zone::{next_serial, BuildCache, Soa, Zone, ZoneRecord};

/// A successful build: the zone and non-fatal problems.
#[derive(Debug)]
pub struct BuildOutput {
    /// The zone.
    pub zone: Zone,
    /// Warnings (duplicate mappings, expired pre-signed records skipped…).
    pub warnings: Vec<Problem>,
    /// The key that seals the zone file written from this zone (derived
    /// from the signing key; `None` without one), see [`crate::zone::seal`].
    pub seal: Option<crate::zone::seal::SealKey>,
    /// The configuration's `max_shrink`: how much of the zone it replaces
    /// this zone may remove before it needs confirmation (the build itself
    /// does not compare; installing it does, see [`crate::zone::shrink`]).
    pub max_shrink: crate::zone::shrink::ShrinkLimit,
    /// With a key bundle: what the rollover decided (active key, steps
    /// taken, next step).
    pub rollover: Option<rollover::RolloverReport>,
}

/// A failed build: every problem found, each with its file and line.
#[derive(Debug, thiserror::Error)]
pub struct BuildError {
    /// The problems.
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 50;
        let n = self.problems.len();
        write!(f, "{n} problem{}", if n == 1 { "" } else { "s" })?;
        for p in self.problems.iter().take(SHOWN) {
            write!(f, "\n  {p}")?;
        }
        if n > SHOWN {
            write!(f, "\n  … and {} more", n - SHOWN)?;
        }
        Ok(())
    }
}

impl BuildError {
    /// The problems that say an input file is incomplete (does not end
    /// with a newline, see [`crate::input::complete`]): a server waits for such a
    /// file to be completed instead of treating the build as failed.
    pub fn incomplete(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| crate::input::complete::is_incomplete(p))
    }

    /// Whether some input file is incomplete.
    pub fn is_incomplete(&self) -> bool {
        self.incomplete().next().is_some()
    }
}

impl From<Problem> for BuildError {
    fn from(p: Problem) -> Self {
        BuildError { problems: vec![p] }
    }
}

/// Progress callback: called with the number of mappings signed so far.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// Loads the configuration at `config_path` and builds its zone.
pub fn build_from_path(
    config_path: &Path,
    now: UnixTime,
    previous: Option<&Zone>,
    progress: Option<Progress<'_>>,
) -> Result<BuildOutput, BuildError> {
    let config = ZoneConfig::load(config_path)
        .map_err(|e| Problem::in_file(config_path, strip_path(&e.to_string(), config_path)))?;
    build_zone(&config, now, previous, progress)
}

/// The transfer policy of `t`, loading its TSIG key (the key file's
/// problem if it does not load).
pub(crate) fn transfer_policy(
    t: &crate::input::config::TransferConfig,
) -> Result<std::sync::Arc<crate::input::config::TransferPolicy>, Problem> {
    let key = match &t.tsig_key {
        None => None,
        Some(p) => Some(
            crate::input::tsig::TsigKey::load(p)
                .map_err(|e| Problem::in_file(p, strip_path(&e.to_string(), p)))?,
        ),
    };
    Ok(std::sync::Arc::new(crate::input::config::TransferPolicy {
        allow: t.allow.clone(),
        notify: t.notify.clone(),
        key,
        journal: t.journal,
    }))
}

fn strip_path(msg: &str, path: &Path) -> String {
    msg.strip_prefix(&format!("{}: ", path.display()))
        .unwrap_or(msg)
        .to_owned()
}

/// How SIIs are placed in the zone being built: the configuration's role
/// and telephone root, the zone its distribution names are under (`base`,
/// the configuration's origin), and the zone being built (`zone`: the same
/// origin, or one zone of a configuration of many, see [`zones`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Placement {
    pub(crate) role: ZoneRole,
    pub(crate) tel_root: Option<DomainName>,
    pub(crate) base: DomainName,
    pub(crate) zone: DomainName,
    /// The shards the zone delegates (`[[delegate]]`): their SIIs are the
    /// shard zones' to publish.
    pub(crate) delegated: crate::input::delegate::ShardSet,
}

impl Placement {
    /// The placement of the one zone of a single-zone configuration.
    pub(crate) fn of(config: &ZoneConfig) -> Self {
        Placement {
            role: config.role,
            tel_root: config.tel_root.clone(),
            base: config.origin.clone(),
            zone: config.origin.clone(),
            delegated: delegated_shards(config),
        }
    }

    /// Whether `owner` is at or below a shard this zone delegates.
    pub(crate) fn is_delegated(&self, owner: &DomainName) -> bool {
        !self.delegated.is_empty()
            && crate::input::delegate::shard_parent(&self.zone).is_some_and(|parent| {
                crate::input::delegate::shard_of(owner, &parent)
                    .is_some_and(|s| self.delegated.contains(s))
            })
    }
}

/// Every shard `config` delegates.
pub(crate) fn delegated_shards(config: &ZoneConfig) -> crate::input::delegate::ShardSet {
    config
        .delegate
        .iter()
        .fold(Default::default(), |acc, d| acc.union(&d.shards))
}

/// Where an SII's records go (its discovery name), or why they cannot.
pub(crate) fn owner_for(place: &Placement, sii: &Sii) -> Result<DomainName, String> {
    let label = sii.label();
    let too_long = |zone: &DomainName| {
        format!(
            "{sii}: its discovery name in zone {zone} would be longer than 253 octets, which DNS cannot carry"
        )
    };
    let name = match place.role {
        ZoneRole::Distribution => {
            discovery_name(&label, &place.base).map_err(|_| too_long(&place.base))?
        }
        ZoneRole::Home => {
            let home = home_zone(sii, place.tel_root.as_ref()).ok_or_else(|| {
                format!("{sii}: a telephone number in a home zone needs tel_root in the zone configuration")
            })?;
            let name = discovery_name(&label, &home).map_err(|_| too_long(&home))?;
            if !name.is_within(&place.base) {
                return Err(format!(
                    "{sii}: its home zone {home} is not inside zone {} (use role = \"distribution\" to publish any SII here)",
                    place.base
                ));
            }
            name
        }
    };
    if name.is_within(&place.zone) {
        Ok(name)
    } else {
        Err(format!(
            "{sii}: its discovery name {name} is not inside zone {}",
            place.zone
        ))
    }
}

/// What every zone of one configuration shares: the signing key, the
/// authority's certificates and known keys, and the transfer policy. Read
/// once per build of a configuration, however many zones it has.
pub(crate) struct Shared {
    pub(crate) key: Option<SigningKey>,
    pub(crate) ring: Option<certs::KeyRing>,
    /// Certificate records (with the zone TTL); a zone publishes those
    /// inside it.
    pub(crate) certs: Vec<ZoneRecord>,
    pub(crate) transfer: Option<Arc<crate::input::config::TransferPolicy>>,
    /// Keys other than `key` whose assertions in the previous zone may
    /// stay (a rollover in progress, see [`rollover`]).
    pub(crate) reusable: Vec<KeyId>,
    /// The rollover's decision, with a key bundle.
    pub(crate) rollover: Option<RolloverShare>,
}

/// What a rollover decided that the built zone carries.
pub(crate) struct RolloverShare {
    pub(crate) ledger: crate::zone::ledger::Ledger,
    pub(crate) next_event: Option<UnixTime>,
    pub(crate) report: rollover::RolloverReport,
}

impl Shared {
    /// Loads the key, certificates and TSIG key of `config`; `cert_zone`
    /// is the configuration whose origin the certificates must be inside,
    /// `previous` the zone built last time (its rollover ledger).
    pub(crate) fn load(
        config: &ZoneConfig,
        cert_zone: &ZoneConfig,
        previous: Option<&Zone>,
        now: UnixTime,
        errors: &mut Vec<Problem>,
        warnings: &mut Vec<Problem>,
    ) -> Shared {
        let mut reusable = Vec::new();
        let mut rollover_share = None;
        let mut records = Vec::new();
        let (key, ring) = match config.authority.as_ref() {
            Some(auth) if auth.bundle.is_some() => {
                let b = auth.bundle.as_ref().expect("matched");
                match crate::input::bundle::read(&b.dir, &auth.name, &auth.root_keys) {
                    Err(problems) => {
                        errors.extend(problems);
                        (None, None)
                    }
                    Ok(bundle) => {
                        let owner = auth.name.certificate_name();
                        let publishes_here = owner.is_within(&cert_zone.origin);
                        let empty = crate::zone::ledger::Ledger::default();
                        let ledger = previous.map_or(&empty, |p| &p.ledger);
                        let previously_published = previous.is_some_and(|p| {
                            p.records
                                .iter()
                                .any(|r| r.owner == owner && r.text.contains(";pk="))
                        });
                        let timing = rollover::Timing {
                            lead: u64::from(config.ttl) + b.propagation_delay,
                            margin: auth.window.margin(),
                            validity: auth.window.validity(),
                            warn_before: b.warn_before,
                        };
                        match rollover::decide(
                            &bundle,
                            ledger,
                            previously_published,
                            publishes_here,
                            now,
                            timing,
                            errors,
                            warnings,
                        ) {
                            None => (None, None),
                            Some(d) => {
                                let key = d.active.key.as_ref().ok().cloned();
                                let active_pk = key.as_ref().map(|k| {
                                    keys::public_key(k).expect("loaded keys are not weak")
                                });
                                // The bundle's root is a root key of the
                                // authority, whether or not it is pinned.
                                let mut with_root = auth.clone();
                                if !with_root.root_keys.contains(&bundle.root) {
                                    with_root.root_keys.push(bundle.root);
                                }
                                let path = bundle.certificates_path();
                                let list = d
                                    .publish
                                    .iter()
                                    .map(|k| (path.as_path(), k.line, k.cert.clone()))
                                    .collect();
                                let certs = certs::check(
                                    cert_zone,
                                    &with_root,
                                    true,
                                    list,
                                    active_pk.as_ref(),
                                    now,
                                    errors,
                                    warnings,
                                );
                                if publishes_here {
                                    records.extend(certs.records.into_iter().map(
                                        |(owner, text)| ZoneRecord::new(owner, config.ttl, text),
                                    ));
                                }
                                reusable = d.reusable;
                                rollover_share = Some(RolloverShare {
                                    ledger: d.ledger,
                                    next_event: d.next_event,
                                    report: d.report,
                                });
                                (key, Some(certs.ring))
                            }
                        }
                    }
                }
            }
            _ => {
                let key: Option<SigningKey> = config
                    .authority
                    .as_ref()
                    .and_then(|a| a.key.as_ref())
                    .and_then(|p| match keys::load_signing_key(p) {
                        Ok(k) => Some(k),
                        Err(e) => {
                            errors.push(Problem::in_file(p, strip_path(&e.to_string(), p)));
                            None
                        }
                    });
                let signing_pk = key
                    .as_ref()
                    .map(|k| keys::public_key(k).expect("loaded keys are not weak"));
                let ring = config.authority.as_ref().map(|auth| {
                    let certs =
                        certs::read(cert_zone, auth, signing_pk.as_ref(), now, errors, warnings);
                    records.extend(
                        certs
                            .records
                            .into_iter()
                            .map(|(owner, text)| ZoneRecord::new(owner, config.ttl, text)),
                    );
                    certs.ring
                });
                (key, ring)
            }
        };
        let transfer = config
            .transfer
            .as_ref()
            .and_then(|t| transfer_policy(t).map_err(|p| errors.push(p)).ok());
        // BIND's check-names refuses a zone whose NS targets are not host
        // names (an underscore, as in `ns1._mimi.example.com`): secondaries
        // running BIND would never load this zone.
        if transfer.is_some() {
            for ns in config
                .ns
                .iter()
                .filter(|n| !crate::input::config::is_host_name(n))
            {
                warnings.push(Problem::in_file(
                    &config.path,
                    format!("ns {ns} is not a host name (RFC 1123: letters, digits, inner hyphens); BIND secondaries refuse a zone with such NS records (check-names)"),
                ));
            }
        }
        Shared {
            key,
            ring,
            certs: records,
            transfer,
            reusable,
            rollover: rollover_share,
        }
    }
}

/// The zone cuts of `config`'s `[[delegate]]` entries, one per shard,
/// sorted by owner.
///
/// The configuration refuses an origin whose shard names would not fit in
/// DNS; for such an origin (only possible for a zone of a configuration of
/// many, named by its inputs) there are no cuts, as no discovery name fits
/// below it either.
fn delegations(config: &ZoneConfig) -> Vec<crate::zone::Delegation> {
    let Some(parent) = config.shard_parent() else {
        return Vec::new();
    };
    let mut cuts: Vec<_> = config
        .delegate
        .iter()
        .flat_map(|d| {
            let parent = &parent;
            d.shards.iter().filter_map(move |s| {
                Some(crate::zone::Delegation {
                    owner: crate::input::delegate::shard_name(s, parent)?,
                    ns: d.ns.clone(),
                })
            })
        })
        .collect();
    cuts.sort();
    cuts
}

/// Reads an input file that must be complete (end with a newline).
pub(crate) fn read_complete(path: &Path, what: &str, errors: &mut Vec<Problem>) -> Option<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(Problem::in_file(path, format!("cannot read {what}: {e}")));
            return None;
        }
    };
    if let Err(p) = crate::input::complete::check(path, &text) {
        errors.push(p);
        return None;
    }
    Some(text)
}

/// The pre-signed files of `config`, parsed.
pub(crate) fn read_presigned(
    config: &ZoneConfig,
    errors: &mut Vec<Problem>,
) -> Vec<(PathBuf, Vec<presigned::Presigned>)> {
    let mut out = Vec::new();
    for path in &config.presigned {
        let Some(text) = read_complete(path, "pre-signed assertions", errors) else {
            continue;
        };
        let (items, problems) = presigned::parse(&text, path);
        errors.extend(problems);
        out.push((path.clone(), items));
    }
    out
}

/// One zone's share of the mappings file: its lines, in file order, as a
/// text of their own, and the file line of each (`None`: the whole file,
/// lines as they are).
pub(crate) struct MappingsShare {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
    pub(crate) lines: Option<Arc<[u32]>>,
}

/// Builds the zone described by `config` at time `now`.
///
/// `previous`, the zone currently published, serves twice: records whose
/// text would be identical are reused rather than re-signed, and the serial
/// is kept when nothing changed or increased when something did.
pub fn build_zone(
    config: &ZoneConfig,
    now: UnixTime,
    previous: Option<&Zone>,
    progress: Option<Progress<'_>>,
) -> Result<BuildOutput, BuildError> {
    let mut errors: Vec<Problem> = Vec::new();
    let mut warnings: Vec<Problem> = Vec::new();
    let shared = Shared::load(config, config, previous, now, &mut errors, &mut warnings);
    let mappings = config.mappings.as_ref().and_then(|path| {
        read_complete(path, "mappings", &mut errors).map(|text| MappingsShare {
            path: path.clone(),
            text,
            lines: None,
        })
    });
    let presigned = read_presigned(config, &mut errors);
    let items: Vec<(&Path, &presigned::Presigned)> = presigned
        .iter()
        .flat_map(|(p, items)| items.iter().map(move |i| (p.as_path(), i)))
        .collect();
    assemble(
        config,
        &Placement::of(config),
        &shared,
        mappings,
        &items,
        now,
        previous,
        progress,
        errors,
        warnings,
    )
}

/// Builds one zone from its share of the inputs: `config` is the zone's
/// configuration (its origin is the zone's), `place` where its SIIs go.
/// Problems on mapping lines name the file's own lines.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble(
    config: &ZoneConfig,
    place: &Placement,
    shared: &Shared,
    mappings: Option<MappingsShare>,
    presigned_items: &[(&Path, &presigned::Presigned)],
    now: UnixTime,
    previous: Option<&Zone>,
    progress: Option<Progress<'_>>,
    mut errors: Vec<Problem>,
    mut warnings: Vec<Problem>,
) -> Result<BuildOutput, BuildError> {
    let ttl = config.ttl;
    let key = shared.key.as_ref();
    let ring = shared.ring.as_ref();
    let mut records: Vec<ZoneRecord> = shared
        .certs
        .iter()
        .filter(|r| r.owner.is_within(&config.origin))
        .cloned()
        .collect();
    let line_map = mappings.as_ref().and_then(|m| m.lines.clone());
    let mappings_path = mappings.as_ref().map(|m| m.path.clone());

    // Mappings: find what changed since the previous build, parse it.
    let signer = match (key, &config.authority) {
        (Some(key), Some(auth)) => Some(Signer {
            kid: keys::public_key(key)
                .expect("loaded keys are not weak")
                .kid(),
            key,
            auth,
            also: &shared.reusable,
            ttl,
            now,
            labels: config.buckets.is_some(),
        }),
        _ => None,
    };
    let plan = mappings.and_then(|m| {
        plan_mappings(
            place,
            &m.path,
            m.text,
            signer.as_ref(),
            previous,
            &mut errors,
            &mut warnings,
        )
    });

    // Pre-signed assertions.
    for &(path, p) in presigned_items {
        if p.assertion.expires() <= now {
            warnings.push(Problem::at(
                path,
                p.line,
                format!(
                    "assertion by {} expired at {}; not published",
                    p.assertion.authority(),
                    p.assertion.expires()
                ),
            ));
            continue;
        }
        let own = config
            .authority
            .as_ref()
            .zip(ring)
            .map(|(a, r)| (&a.name, r));
        if let Err(msg) = presigned::check(p, now, own) {
            errors.push(Problem::at(path, p.line, msg));
            continue;
        }
        // A bucket copy without h= could not be told apart from the
        // other labels' records in its bucket: refuse rather than publish
        // an assertion that private lookups cannot find.
        if config.buckets.is_some() && p.assertion.label().is_none() {
            errors.push(Problem::at(
                path,
                p.line,
                format!(
                    "assertion by {} has no h= field, but this zone publishes privacy buckets (buckets = …), where every assertion needs h=<label> (SPEC §10): have it signed again with h= (mimi-publisher sign --with-label), or turn buckets off",
                    p.assertion.authority()
                ),
            ));
            continue;
        }
        match owner_for(place, &p.sii) {
            // A delegated shard's records belong to the shard zone.
            Ok(owner) if place.is_delegated(&owner) => {}
            Ok(owner) => records.push(ZoneRecord::new(owner, ttl, p.assertion.text())),
            Err(msg) => errors.push(Problem::at(path, p.line, msg)),
        }
    }
    let transfer = shared.transfer.clone();

    for ns in &config.ns {
        if ns.is_within(&config.origin) && !config.glue.iter().any(|(h, _)| h == ns) {
            warnings.push(Problem::in_file(
                &config.path,
                format!("name server {ns} is inside the zone but has no address: add it under [glue] (secondaries and zone checkers warn about missing glue)"),
            ));
        }
    }

    let remap = |problems: &mut Vec<Problem>| {
        if let (Some(lines), Some(path)) = (&line_map, &mappings_path) {
            for p in problems.iter_mut().filter(|p| &p.file == path) {
                if let Some(l) = p.line {
                    if let Some(&real) = lines.get(l.wrapping_sub(1)) {
                        p.line = Some(real as usize);
                    }
                }
            }
        }
    };
    if !errors.is_empty() {
        remap(&mut errors);
        return Err(BuildError { problems: errors });
    }

    // Sign (all cores), reusing unchanged records of the previous zone.
    let mut next_resign: Option<UnixTime> = records
        .iter()
        .filter_map(|r| record_expiry(&r.text))
        .chain(shared.rollover.as_ref().and_then(|r| r.next_event))
        .min();
    let mut floor_t: Option<UnixTime> = records
        .iter()
        .filter_map(|r| record_not_before(&r.text))
        .max();
    records.sort_unstable();
    records.dedup();
    let mut mappings_cache: Option<MappingsCache> = None;
    if let (Some(signer), Some(plan), Some(path)) = (&signer, plan, &mappings_path) {
        let mut parents = plan.parents;
        for (_, owner) in &plan.todo {
            let parent = parent_of(owner.as_str());
            match parents.get_mut(parent) {
                Some(n) => *n += 1,
                None => {
                    parents.insert(parent.to_owned(), 1);
                }
            }
        }
        let mut owner_parents: BTreeSet<String> = parents.keys().cloned().collect();
        owner_parents.extend(
            records
                .iter()
                .map(|r| parent_of(r.owner.as_str()).to_owned()),
        );
        tracing::debug!(
            reused = plan.kept.len(),
            to_sign = plan.todo.len(),
            "mappings planned"
        );
        let fresh =
            sign_mappings(path, signer, plan.todo, previous, progress).map_err(|mut e| {
                remap(&mut e.problems);
                e
            })?;
        let signed = fresh.len();
        let prev_records: &[ZoneRecord] = previous.map_or(&[], |p| &p.records);
        let merged = merge_records(prev_records, plan.kept, fresh, records);
        let period = signer.auth.window.period();
        if let (Some(earliest), Some(latest)) = (merged.earliest, merged.latest) {
            next_resign = next_resign.into_iter().chain([UnixTime(earliest)]).min();
            floor_t = floor_t.into_iter().chain([UnixTime(latest - period)]).max();
        }
        warnings.splice(
            plan.warnings_at..plan.warnings_at,
            duplicate_warnings(&plan.text, path, merged.dups, line_map.as_deref()),
        );
        records = merged.records;
        let entries = merged.entries;
        mappings_cache = Some(MappingsCache {
            params: CacheParams::of(place, path, signer),
            now,
            text: plan.text,
            records: records.len(),
            entries,
            parents,
            owner_parents: owner_parents.into_iter().collect(),
            signed,
        });
    }
    if let Some(setting) = config.buckets {
        let with = buckets::add_buckets(
            setting,
            &config.path,
            &config.origin,
            ttl,
            records,
            previous,
        )
        .map_err(|problems| BuildError { problems })?;
        records = with.records;
        if let Some(c) = &mut mappings_cache {
            for e in &mut c.entries {
                e.idx = with.moved[e.idx as usize];
            }
            c.records = records.len();
            c.owner_parents.extend(with.parents);
            c.owner_parents.sort();
            c.owner_parents.dedup();
        }
    }
    let cache =
        BuildCache(mappings_cache.map(|c| Arc::new(c) as Arc<dyn crate::zone::BuildMemory>));

    let floor = floor_t
        .map(|t| u32::try_from(t.0).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let mut zone = Zone {
        origin: config.origin.clone(),
        ttl: config.soa.ttl,
        soa: Soa {
            mname: config.soa.mname.clone(),
            rname: config.soa.rname.clone(),
            serial: floor,
            refresh: config.soa.refresh,
            retry: config.soa.retry,
            expire: config.soa.expire,
            minimum: config.soa.minimum,
        },
        ns: config.ns.clone(),
        glue: config.all_glue(),
        records,
        delegations: delegations(config),
        ptrs: Vec::new(),
        next_resign,
        transfer,
        cache,
        ledger: shared
            .rollover
            .as_ref()
            .map(|r| r.ledger.clone())
            .unwrap_or_default(),
    };
    if let Some(prev) = previous {
        zone.soa.serial = if zone.same_content(prev) {
            prev.soa.serial
        } else {
            next_serial(prev.soa.serial, floor)
        };
    }
    let seal = match &config.authority {
        Some(a) if a.bundle.is_some() => crate::zone::seal::key_for(config),
        _ => key.map(crate::zone::seal::SealKey::from_signing_key),
    };
    remap(&mut warnings);
    Ok(BuildOutput {
        zone,
        warnings,
        seal,
        max_shrink: config.max_shrink,
        rollover: shared.rollover.as_ref().map(|r| r.report.clone()),
    })
}

/// Builds `config` from scratch as [`build_zone`] with no previous zone
/// does, except that a key bundle's rollover continues from `ledger`
/// instead of starting anew.
///
/// For `push`: the zone at the primary has no rollover ledger (the
/// primary writes its own zone file), so the ledger of the last push is
/// kept in a file of its own and given here; without it every push would
/// look like the first one and sign at once with a key whose certificate
/// resolvers may not have yet. No records are reused (there is no previous
/// zone of ours); signatures are deterministic, so unchanged assertions
/// come out the same.
pub fn build_zone_continuing(
    config: &ZoneConfig,
    now: UnixTime,
    ledger: crate::zone::ledger::Ledger,
) -> Result<BuildOutput, BuildError> {
    if ledger.is_empty() {
        return build_zone(config, now, None, None);
    }
    let history = Zone {
        origin: config.origin.clone(),
        ttl: config.soa.ttl,
        soa: Soa {
            mname: config.soa.mname.clone(),
            rname: config.soa.rname.clone(),
            serial: 0,
            refresh: config.soa.refresh,
            retry: config.soa.retry,
            expire: config.soa.expire,
            minimum: config.soa.minimum,
        },
        ns: Vec::new(),
        glue: Vec::new(),
        records: Vec::new(),
        delegations: Vec::new(),
        ptrs: Vec::new(),
        next_resign: None,
        transfer: None,
        cache: Default::default(),
        ledger,
    };
    build_zone(config, now, Some(&history), None)
}

/// What signing mappings needs besides the configuration.
struct Signer<'a> {
    key: &'a SigningKey,
    auth: &'a AuthorityConfig,
    kid: KeyId,
    /// Other keys whose signatures in the previous zone may stay.
    also: &'a [KeyId],
    ttl: u32,
    now: UnixTime,
    /// Whether records carry `h=` (a zone with privacy buckets).
    labels: bool,
}

/// Everything a mapping line's record depends on besides the line: a
/// cache is used only by a build with equal parameters.
#[derive(Debug, PartialEq)]
struct CacheParams {
    path: PathBuf,
    origin: DomainName,
    base: DomainName,
    role: ZoneRole,
    tel_root: Option<DomainName>,
    ttl: u32,
    authority: AuthorityName,
    window: WindowPolicy,
    kid: KeyId,
    /// Other keys whose records may stay: a change may drop some.
    also: Vec<KeyId>,
    /// Which shards are delegated: a change decides which lines publish.
    delegated: crate::input::delegate::ShardSet,
    /// Whether records carry `h=`.
    labels: bool,
}

impl CacheParams {
    fn of(place: &Placement, path: &Path, signer: &Signer<'_>) -> Self {
        CacheParams {
            path: path.to_owned(),
            origin: place.zone.clone(),
            base: place.base.clone(),
            role: place.role,
            tel_root: place.tel_root.clone(),
            ttl: signer.ttl,
            authority: signer.auth.name.clone(),
            window: signer.auth.window,
            kid: signer.kid.clone(),
            also: signer.also.to_vec(),
            delegated: place.delegated.clone(),
            labels: signer.labels,
        }
    }
}

/// One mapping line's record (duplicate lines included), kept in the
/// cache of the zone holding the record.
#[derive(Clone, Copy)]
struct Entry {
    /// The record's index in the zone's records.
    idx: u32,
    /// 1-based line.
    line: u32,
    /// When the record's window rolls over (it must be signed again).
    next_change: u64,
}

/// A mapping line signed (or reused) by this build.
struct Fresh {
    rec: ZoneRecord,
    line: u32,
    next_change: u64,
}

/// What a build keeps of the mappings file for the next build: see the
/// module documentation.
pub(crate) struct MappingsCache {
    params: CacheParams,
    /// The build's time: the cached windows hold from then until each
    /// entry's `next_change`.
    now: UnixTime,
    /// The mappings file's text.
    text: String,
    /// Number of records of the zone (a consistency check).
    records: usize,
    /// One entry per mapping line, sorted by record, then line.
    entries: Vec<Entry>,
    /// Number of entries per owner's parent name.
    parents: HashMap<String, u64>,
    /// The parent names of every owner in the zone (mappings and the other
    /// records), sorted: what the empty non-terminals derive from.
    owner_parents: Vec<String>,
    /// How many records this build signed (the rest were reused).
    signed: usize,
}

impl crate::zone::BuildMemory for MappingsCache {
    fn owner_parents(&self) -> &[String] {
        &self.owner_parents
    }
    fn signed(&self) -> usize {
        self.signed
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The mappings read and parsed, ready to sign.
struct Plan {
    text: String,
    /// Entries of the previous build still valid, renumbered, sorted.
    kept: Vec<Entry>,
    /// Lines to sign: parsed mappings and their owners.
    todo: Vec<(mappings::Mapping, DomainName)>,
    /// Where duplicate warnings go in the build's warnings.
    warnings_at: usize,
    /// Number of kept entries per owner's parent name.
    parents: HashMap<String, u64>,
}

/// Reads the mappings file and parses the lines that need signing: every
/// line, or with a usable cache in `previous`, only the changed lines and
/// those whose window rolled over. Without a signer, parses and checks the
/// whole file (there is nothing to sign).
fn plan_mappings(
    place: &Placement,
    path: &Path,
    text: String,
    signer: Option<&Signer<'_>>,
    previous: Option<&Zone>,
    errors: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Option<Plan> {
    let Some(signer) = signer else {
        let f = mappings::parse(&text, path, None);
        errors.extend(f.errors);
        warnings.extend(f.warnings);
        for m in f.mappings {
            if let Err(msg) = owner_for(place, &m.sii) {
                errors.push(Problem::at(path, m.line, msg));
            }
        }
        return None;
    };
    let period = signer.auth.window.period();
    let cache = previous
        .and_then(|p| p.cache.0.as_deref())
        .and_then(|c| c.as_any().downcast_ref::<MappingsCache>())
        .filter(|c| {
            let usable = c.now <= signer.now
                && signer.now.0 >= period
                && previous.is_some_and(|p| p.records.len() == c.records)
                && c.params == CacheParams::of(place, path, signer);
            if !usable {
                tracing::debug!(
                    time = c.now <= signer.now,
                    records = previous.map(|p| p.records.len()) == Some(c.records),
                    params = c.params == CacheParams::of(place, path, signer),
                    "mappings cache not usable: parsing every line"
                );
            }
            usable
        });
    if previous.is_some() && cache.is_none() {
        tracing::debug!(
            has_cache = previous.is_some_and(|p| p.cache.0.is_some()),
            "no mappings cache from the previous zone"
        );
    }
    let (kept, lines, parents) = match cache {
        Some(c) => {
            let prev_records = previous.map_or(&[][..], |p| &p.records[..]);
            let (kept, lines, dropped) = changed_lines(c, prev_records, &text, signer.now);
            let mut parents = c.parents.clone();
            for r in dropped {
                if let Some(n) = parents.get_mut(parent_of(r.owner.as_str())) {
                    *n -= 1;
                }
            }
            parents.retain(|_, n| *n > 0);
            (kept, lines, parents)
        }
        None => (
            Vec::new(),
            text.lines().enumerate().map(|(i, l)| (i + 1, l)).collect(),
            HashMap::new(),
        ),
    };
    let parsed: Vec<Result<(mappings::Mapping, DomainName), Problem>> = lines
        .par_iter()
        .with_min_len(1024)
        .filter_map(|&(line, l)| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            match mappings::parse_line(l, line, path, None) {
                Ok(m) => match owner_for(place, &m.sii) {
                    // A delegated shard's records belong to the shard zone.
                    Ok(owner) if place.is_delegated(&owner) => None,
                    Ok(owner) => Some(Ok((m, owner))),
                    Err(msg) => Some(Err(Problem::at(path, m.line, msg))),
                },
                Err(p) => Some(Err(p)),
            }
        })
        .collect();
    let mut todo = Vec::with_capacity(parsed.len());
    for r in parsed {
        match r {
            Ok(x) => todo.push(x),
            Err(p) => errors.push(p),
        }
    }
    drop(lines);
    Some(Plan {
        text,
        kept,
        todo,
        warnings_at: warnings.len(),
        parents,
    })
}

/// Compares `text` with the cached text: returns the cached entries of the
/// unchanged lines (renumbered for `text`) whose windows still hold at
/// `now`, and the lines of `text` to parse again: those between the common
/// prefix and suffix, and those whose window rolled over.
#[allow(clippy::type_complexity)]
fn changed_lines<'c, 't>(
    c: &MappingsCache,
    records: &'c [ZoneRecord],
    text: &'t str,
    now: UnixTime,
) -> (Vec<Entry>, Vec<(usize, &'t str)>, Vec<&'c ZoneRecord>) {
    let (old, new) = (c.text.as_bytes(), text.as_bytes());
    let p = common_prefix(old, new);
    // Whole lines of the common prefix.
    let pre_end = old[..p]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let max_s = old.len().min(new.len()) - pre_end;
    let s = common_suffix(&old[old.len() - max_s..], &new[new.len() - max_s..]);
    // Whole lines of the common suffix: those starting after a newline
    // inside it (so at a line start in both texts).
    let (old_suf, new_suf) = match old[old.len() - s..].iter().position(|&b| b == b'\n') {
        Some(i) => (old.len() - s + i + 1, new.len() - s + i + 1),
        None => (old.len(), new.len()),
    };
    let prefix_lines = count_newlines(&old[..pre_end]);
    let old_mid = c.text[pre_end..old_suf].lines().count();
    let new_mid: Vec<(usize, &str)> = text[pre_end..new_suf]
        .lines()
        .enumerate()
        .map(|(i, l)| (prefix_lines + 1 + i, l))
        .collect();
    let (lo, hi) = (prefix_lines as u64, (prefix_lines + old_mid) as u64);
    let delta = new_mid.len() as i64 - old_mid as i64;
    let mut rolled = Vec::new();
    let mut dropped = Vec::new();
    let mut kept = Vec::with_capacity(c.entries.len());
    for e in &c.entries {
        let line = u64::from(e.line);
        if line > lo && line <= hi {
            dropped.push(&records[e.idx as usize]);
            continue;
        }
        let line = if line > hi {
            (line as i64 + delta) as u32
        } else {
            e.line
        };
        if e.next_change <= now.0 {
            rolled.push(line as usize);
            dropped.push(&records[e.idx as usize]);
            continue;
        }
        kept.push(Entry { line, ..*e });
    }
    let mut lines = new_mid;
    lines.extend(lines_numbered(text, rolled));
    (kept, lines, dropped)
}

/// Length of the common prefix of `a` and `b`.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const CHUNK: usize = 256;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + CHUNK <= n && a[i..i + CHUNK] == b[i..i + CHUNK] {
        i += CHUNK;
    }
    i + a[i..n]
        .iter()
        .zip(&b[i..n])
        .take_while(|(x, y)| x == y)
        .count()
}

/// Length of the common suffix of `a` and `b`.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    const CHUNK: usize = 256;
    let n = a.len().min(b.len());
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    let mut i = 0;
    while i + CHUNK <= n && a[n - i - CHUNK..n - i] == b[n - i - CHUNK..n - i] {
        i += CHUNK;
    }
    i + a[..n - i]
        .iter()
        .rev()
        .zip(b[..n - i].iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

fn count_newlines(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

/// The name an owner is directly below.
fn parent_of(owner: &str) -> &str {
    owner.split_once('.').map_or("", |(_, p)| p)
}

/// The lines numbered `wanted` (1-based) of `text`, in line order.
fn lines_numbered(text: &str, mut wanted: Vec<usize>) -> Vec<(usize, &str)> {
    if wanted.is_empty() {
        return Vec::new();
    }
    wanted.sort_unstable();
    wanted.dedup();
    const CHUNK: usize = 4096;
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(wanted.len());
    // `pos` is the start of line `line` (1-based).
    let (mut pos, mut line) = (0usize, 1usize);
    for w in wanted {
        // Skip whole chunks whose newlines do not reach line `w`.
        while pos + CHUNK <= b.len() {
            let n = count_newlines(&b[pos..pos + CHUNK]);
            if line + n >= w {
                break;
            }
            line += n;
            pos += CHUNK;
        }
        while line < w {
            match b[pos..].iter().position(|&c| c == b'\n') {
                Some(i) => {
                    pos += i + 1;
                    line += 1;
                }
                None => return out,
            }
        }
        if pos >= b.len() {
            return out;
        }
        let end = b[pos..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |i| pos + i);
        let l = &text[pos..end];
        out.push((w, l.strip_suffix('\r').unwrap_or(l)));
    }
    out
}

/// Signs the planned mappings (all cores), reusing records of `previous`
/// with the same owner and body, and merges them into the kept entries.
fn sign_mappings(
    path: &Path,
    signer: &Signer<'_>,
    todo: Vec<(mappings::Mapping, DomainName)>,
    previous: Option<&Zone>,
    progress: Option<Progress<'_>>,
) -> Result<Vec<Fresh>, BuildError> {
    let reuse = match previous {
        Some(p) if todo.len() > 4096 => Reuse::Index(signature_index(p)),
        Some(p) => Reuse::Search(&p.records),
        None => Reuse::Nothing,
    };
    let done = std::sync::atomic::AtomicU64::new(0);
    let auth = signer.auth;
    let signed: Vec<Result<Fresh, Problem>> = todo
        .par_iter()
        .with_min_len(256)
        .map(|(m, owner)| {
            let hash = m.sii.hash();
            let (t, x) = auth.window.window(&hash, signer.now);
            let unsigned = UnsignedAssertion {
                authority: auth.name.clone(),
                ssi: m.ssi.clone(),
                not_before: t,
                expires: x,
                include_label: signer.labels,
                extensions: vec![],
            };
            let body = unsigned.body(&hash, &signer.kid);
            // The active key's record, else (a rollover under way) an
            // older key's that may stay until its window rolls over.
            let found = reuse.find(owner.as_str(), &body, signer.ttl).or_else(|| {
                signer.also.iter().find_map(|kid| {
                    reuse.find(owner.as_str(), &unsigned.body(&hash, kid), signer.ttl)
                })
            });
            let rec = match found {
                Some(r) => r,
                None => ZoneRecord::new(
                    owner.clone(),
                    signer.ttl,
                    sign_body(&unsigned, &hash, &body, signer.key)
                        .map_err(|e| Problem::at(path, m.line, e.to_string()))?,
                ),
            };
            if let Some(cb) = progress {
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if n % 1024 == 0 {
                    cb(n);
                }
            }
            Ok(Fresh {
                rec,
                next_change: t.0 + auth.window.period(),
                line: u32::try_from(m.line).unwrap_or(u32::MAX),
            })
        })
        .collect();
    drop(reuse);
    let mut problems = Vec::new();
    let mut fresh = Vec::with_capacity(signed.len());
    for r in signed {
        match r {
            Ok(e) => fresh.push(e),
            Err(p) => problems.push(p),
        }
    }
    if !problems.is_empty() {
        return Err(BuildError { problems });
    }
    if let Some(cb) = progress {
        cb(todo.len() as u64);
    }
    fresh.par_sort_unstable_by(|a, b| a.rec.cmp(&b.rec).then(a.line.cmp(&b.line)));
    Ok(fresh)
}

/// The zone's records and the mapping entries pointing into them.
struct Merged {
    records: Vec<ZoneRecord>,
    entries: Vec<Entry>,
    /// Duplicate mapping lines: `(line, first line with that record)`.
    dups: Vec<(usize, usize)>,
    earliest: Option<u64>,
    latest: Option<u64>,
}

/// Merges the kept entries (records in `prev`), the fresh ones and the
/// other records (sorted, without duplicates) into the zone's sorted,
/// duplicate-free records, and the entries for the next build.
fn merge_records(
    prev: &[ZoneRecord],
    kept: Vec<Entry>,
    fresh: Vec<Fresh>,
    others: Vec<ZoneRecord>,
) -> Merged {
    let n = kept.len() + fresh.len();
    let mut m = Merged {
        records: Vec::with_capacity(n + others.len()),
        entries: Vec::with_capacity(n),
        dups: Vec::new(),
        earliest: None,
        latest: None,
    };
    let (mut earliest, mut latest) = (u64::MAX, 0u64);
    let mut others = others.into_iter().peekable();
    let mut kept = kept.into_iter().peekable();
    let mut fresh = fresh.into_iter().peekable();
    // The line of the first mapping entry of the last record pushed, if a
    // mapping entry pushed it.
    let mut first: Option<u32> = None;
    loop {
        let take_kept = match (kept.peek(), fresh.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(k), Some(f)) => (&prev[k.idx as usize], k.line) < (&f.rec, f.line),
        };
        let (line, next_change, rec) = if take_kept {
            let k = kept.next().expect("peeked");
            (k.line, k.next_change, Err(&prev[k.idx as usize]))
        } else {
            let f = fresh.next().expect("peeked");
            (f.line, f.next_change, Ok(f.rec))
        };
        let r: &ZoneRecord = match &rec {
            Ok(r) => r,
            Err(r) => r,
        };
        earliest = earliest.min(next_change);
        latest = latest.max(next_change);
        while let Some(o) = others.next_if(|o| o < r) {
            if m.records.last() != Some(&o) {
                m.records.push(o);
                first = None;
            }
        }
        if m.records.last() == Some(r) {
            if let Some(first) = first {
                m.dups.push((line as usize, first as usize));
            }
        } else {
            m.records.push(match rec {
                Ok(r) => r,
                Err(r) => r.clone(),
            });
            first = Some(line);
        }
        m.entries.push(Entry {
            idx: (m.records.len() - 1) as u32,
            line,
            next_change,
        });
    }
    for o in others {
        if m.records.last() != Some(&o) {
            m.records.push(o);
        }
    }
    if n > 0 {
        m.earliest = Some(earliest);
        m.latest = Some(latest);
    }
    m
}

/// The record text of `unsigned`, whose body for `hash` is `body`: what
/// [`UnsignedAssertion::sign`] returns, without computing the key id and
/// the body again and parsing the result back (a body of valid fields
/// makes a valid record; a body too long for one goes through `sign`
/// for its error).
fn sign_body(
    unsigned: &UnsignedAssertion,
    hash: &mimi_proto::label::SiiHash,
    body: &str,
    key: &SigningKey,
) -> Result<String, mimi_proto::assertion::SignError> {
    use ed25519_dalek::Signer as _;
    const SIG: &str = ";sig=";
    if unsigned.expires <= unsigned.not_before
        || body.len() + SIG.len() + 86 > mimi_proto::MAX_RECORD_LEN
    {
        return unsigned.sign(hash, key).map(|a| a.text().to_owned());
    }
    let sig = key.sign(&mimi_proto::assertion::signed_bytes(hash, body));
    let encoded = mimi_proto::text::encode_signature(&sig);
    let mut text = String::with_capacity(body.len() + SIG.len() + encoded.len());
    text.push_str(body);
    text.push_str(SIG);
    text.push_str(&encoded);
    Ok(text)
}

/// Where to look for records of the previous zone to reuse.
enum Reuse<'z> {
    Nothing,
    /// Binary search in the sorted records (for a few lookups).
    Search(&'z [ZoneRecord]),
    /// A hash index (for many).
    Index(HashMap<(&'z str, &'z str), &'z ZoneRecord>),
}

impl Reuse<'_> {
    /// A record at `owner` whose text is `body` and a signature.
    fn find(&self, owner: &str, body: &str, ttl: u32) -> Option<ZoneRecord> {
        let found = match self {
            Reuse::Nothing => None,
            Reuse::Index(index) => index.get(&(owner, body)).copied(),
            Reuse::Search(records) => {
                let k = crate::zone::owner_key(owner);
                let start =
                    records.partition_point(|r| (r.owner_key(), r.owner.as_str()) < (k, owner));
                records[start..]
                    .iter()
                    .take_while(|r| r.owner.as_str() == owner)
                    .find(|r| body_of(&r.text) == Some(body))
            }
        }?;
        Some(if found.ttl == ttl {
            found.clone()
        } else {
            ZoneRecord::new(found.owner.clone(), ttl, found.text.clone())
        })
    }
}

/// A record's text before `;sig=`.
fn body_of(text: &str) -> Option<&str> {
    text.rfind(";sig=").map(|cut| &text[..cut])
}

/// The warnings for duplicate lines `(line, first line)` of `text`.
fn duplicate_warnings(
    text: &str,
    path: &Path,
    mut dups: Vec<(usize, usize)>,
    line_map: Option<&[u32]>,
) -> Vec<Problem> {
    dups.sort_unstable();
    let lines = lines_numbered(text, dups.iter().map(|d| d.0).collect());
    dups.iter()
        .zip(lines)
        .map(|(&(line, first), (_, l))| {
            let what = match mappings::parse_line(l.trim(), line, path, None) {
                Ok(m) => format!(" ({} → {})", m.sii, m.ssi),
                Err(_) => String::new(),
            };
            let first = line_map
                .and_then(|m| m.get(first.wrapping_sub(1)))
                .map_or(first, |&l| l as usize);
            Problem::at(
                path,
                line,
                format!("duplicate of line {first}{what}; ignored"),
            )
        })
        .collect()
}

/// `(owner, body) → record` for every record of a zone.
fn signature_index(zone: &Zone) -> HashMap<(&str, &str), &ZoneRecord> {
    zone.records
        .iter()
        .filter_map(|r| Some(((r.owner.as_str(), body_of(&r.text)?), r)))
        .collect()
}

fn field_time(text: &str, key: &str) -> Option<UnixTime> {
    text.split(';')
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .map(UnixTime)
}

fn record_expiry(text: &str) -> Option<UnixTime> {
    field_time(text, "x")
}

fn record_not_before(text: &str) -> Option<UnixTime> {
    field_time(text, "t")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new(role: &str, mappings: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let f = Fixture { dir };
            keys::write_signing_key(&f.path("k.pem"), &SigningKey::from_bytes(&[7u8; 32])).unwrap();
            f.write("m.csv", mappings);
            f.write(
                "zone.toml",
                &format!(
                    "origin = \"example.com\"\nrole = \"{role}\"\ntel_root = \"e164.example.com\"\nns = [\"ns1.example.com\"]\nmappings = \"m.csv\"\n[soa]\nmname = \"ns1.example.com\"\nrname = \"hostmaster.example.com\"\n[authority]\nname = \"example.com\"\nkey = \"k.pem\"\n"
                ),
            );
            f
        }
        fn path(&self, n: &str) -> std::path::PathBuf {
            self.dir.path().join(n)
        }
        fn write(&self, n: &str, text: &str) {
            std::fs::File::create(self.path(n))
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        fn build(&self, now: u64, prev: Option<&Zone>) -> Result<BuildOutput, BuildError> {
            build_from_path(&self.path("zone.toml"), UnixTime(now), prev, None)
        }
    }

    const NOW: u64 = 1_765_000_000;

    #[test]
    fn home_zone_places_emails_and_phones() {
        let f = Fixture::new("home", "alice@example.com,mimi://chat.example.com/u/alice\n+39 06 1234 5678,im:bob@chat.example.com\n");
        let z = f.build(NOW, None).unwrap().zone;
        let owners: Vec<_> = z
            .records
            .iter()
            .map(|r| r.owner.as_str().to_owned())
            .collect();
        let alice = Sii::parse("alice@example.com", None).unwrap();
        let l = alice.label();
        assert!(owners.contains(&format!("{l}.{}._mimi.example.com", l.shard())));
        assert!(owners
            .iter()
            .any(|o| o.ends_with("._mimi.9.3.e164.example.com")
                && o.split('.').nth(1) == Some(&o[..2])));
        assert!(z.next_resign.is_some());
    }

    #[test]
    fn ns_names_bind_would_refuse_are_warned_of_when_transferred() {
        let f = Fixture::new(
            "home",
            "alice@example.com,mimi://chat.example.com/u/alice\n",
        );
        let text = std::fs::read_to_string(f.path("zone.toml")).unwrap();
        let check_names = |out: BuildOutput| {
            out.warnings
                .iter()
                .filter(|w| w.to_string().contains("check-names"))
                .count()
        };
        assert_eq!(check_names(f.build(NOW, None).unwrap()), 0);
        let underscored = text.replace(
            "ns = [\"ns1.example.com\"]",
            "ns = [\"ns1._mimi.example.com\"]",
        );
        // Without [transfer] nobody transfers the zone: nothing to say.
        f.write("zone.toml", &underscored);
        assert_eq!(check_names(f.build(NOW, None).unwrap()), 0);
        f.write(
            "zone.toml",
            &format!("{underscored}[transfer]\nallow = [\"127.0.0.1\"]\n"),
        );
        assert_eq!(check_names(f.build(NOW, None).unwrap()), 1);
    }

    #[test]
    fn home_zone_rejects_foreign_domains_with_line_numbers() {
        let f = Fixture::new(
            "home",
            "# c\nalice@example.com,mimi://a.example/x\nbob@other.org,mimi://a.example/y\n",
        );
        let e = f.build(NOW, None).unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].line, Some(3));
        assert!(e.to_string().contains("not inside zone example.com"), "{e}");
    }

    /// A mapping in a delegated shard is skipped (the shard zone publishes
    /// it), the zone holds the cut and its glue, and a rebuild that reuses
    /// the previous zone agrees with a build from scratch, also after the
    /// delegation changes.
    #[test]
    fn delegated_shards_are_cut_and_skipped() {
        let siis: Vec<String> = (0..40).map(|i| format!("u{i}@example.com")).collect();
        let lines: String = siis
            .iter()
            .map(|s| format!("{s},mimi://chat.example.com/u/x\n"))
            .collect();
        let f = Fixture::new("home", &lines);
        let shard_of = |s: &str| Sii::parse(s, None).unwrap().label().shard().to_owned();
        let cut = shard_of(&siis[0]);
        let base = std::fs::read_to_string(f.path("zone.toml")).unwrap();
        let delegate = |shards: &str| {
            format!("{base}[[delegate]]\nshards = [{shards}]\nns = [\"ns1.shards.example.com\", \"ns.example.net\"]\nglue = {{ \"ns1.shards.example.com\" = [\"192.0.2.9\"] }}\n")
        };
        f.write("zone.toml", &delegate(&format!("\"{cut}\"")));
        let z = f.build(NOW, None).unwrap().zone;
        let in_cut = siis.iter().filter(|s| shard_of(s) == cut).count();
        assert!(in_cut >= 1);
        assert_eq!(z.records.len(), siis.len() - in_cut);
        assert!(z.records.iter().all(|r| !r
            .owner
            .as_str()
            .ends_with(&format!(".{cut}._mimi.example.com"))));
        assert_eq!(z.delegations.len(), 1);
        assert_eq!(
            z.delegations[0].owner.as_str(),
            format!("{cut}._mimi.example.com")
        );
        assert_eq!(z.delegations[0].ns.len(), 2);
        assert!(z
            .glue
            .iter()
            .any(|(h, _)| h.as_str() == "ns1.shards.example.com"));
        // Its zone file reads back the same.
        let text = crate::zone::zonefile::render(&z);
        assert!(
            text.contains(&format!(
                "{cut}._mimi.example.com. 3600 IN NS ns.example.net."
            )),
            "{text}"
        );
        let back = crate::zone::zonefile::parse(&text).unwrap();
        assert!(back.same_content(&Zone {
            transfer: None,
            ..z.clone()
        }));
        // Incremental rebuilds: more lines, then the delegation widened to
        // every shard, then removed.
        let more = format!("{lines}v1@example.com,mimi://chat.example.com/u/y\n");
        f.write("m.csv", &more);
        let inc = f.build(NOW + 1, Some(&z)).unwrap().zone;
        let full = f.build(NOW + 1, None).unwrap().zone;
        assert!(inc.same_content(&full));
        f.write("zone.toml", &delegate("\"00-vv\""));
        let all = f.build(NOW + 2, Some(&inc)).unwrap().zone;
        assert!(all.records.is_empty() && all.delegations.len() == 1024);
        assert!(all.soa.serial > inc.soa.serial);
        f.write("zone.toml", &base);
        let none = f.build(NOW + 3, Some(&all)).unwrap().zone;
        assert_eq!(none.records.len(), siis.len() + 1);
        assert!(none.delegations.is_empty());
    }

    #[test]
    fn distribution_zone_takes_everything() {
        let f = Fixture::new("distribution", "bob@other.org,mimi://a.example/y\n");
        let z = f.build(NOW, None).unwrap().zone;
        let bob = Sii::parse("bob@other.org", None).unwrap();
        assert_eq!(
            z.records[0].owner.as_str(),
            format!("{}.{}._mimi.example.com", bob.label(), bob.label().shard())
        );
    }

    #[test]
    fn deterministic_reusing_and_serials() {
        let f = Fixture::new("home", "alice@example.com,mimi://a.example/x\n");
        let a = f.build(NOW, None).unwrap().zone;
        let b = f.build(NOW + 10, None).unwrap().zone;
        assert_eq!(
            crate::zone::zonefile::render(&a),
            crate::zone::zonefile::render(&b)
        );
        // Same content with a previous zone: serial kept.
        let c = f.build(NOW + 20, Some(&a)).unwrap().zone;
        assert_eq!(c.soa.serial, a.soa.serial);
        // A change: serial increases.
        f.write(
            "m.csv",
            "alice@example.com,mimi://a.example/x\ncarol@example.com,mimi://a.example/c\n",
        );
        let d = f.build(NOW + 30, Some(&c)).unwrap().zone;
        assert!(d.soa.serial > c.soa.serial);
        assert_eq!(d.records.len(), 2);
        // A removal: serial increases again.
        f.write("m.csv", "carol@example.com,mimi://a.example/c\n");
        let e = f.build(NOW + 40, Some(&d)).unwrap().zone;
        assert!(e.soa.serial > d.soa.serial);
        assert_eq!(e.records.len(), 1);
    }

    #[test]
    fn records_are_reused_from_the_previous_zone() {
        let f = Fixture::new("home", "alice@example.com,mimi://a.example/x\n");
        let mut a = f.build(NOW, None).unwrap().zone;
        // Mark the previous record: an index hit copies it verbatim. (The
        // cache would be inconsistent with the marked zone: drop it, so this
        // tests reuse by the full build.)
        let cut = a.records[0].text.rfind(";sig=").unwrap();
        let marked = format!("{};sig={}", &a.records[0].text[..cut], "A".repeat(86));
        a.records[0] =
            ZoneRecord::new(a.records[0].owner.clone(), a.records[0].ttl, marked.clone());
        a.cache = BuildCache::default();
        let b = f.build(NOW, Some(&a)).unwrap().zone;
        assert_eq!(b.records[0].text, marked);
        // After the window rolls over the record is signed afresh.
        let later = f.build(NOW + 30 * 86400, Some(&a)).unwrap().zone;
        assert_ne!(later.records[0].text, marked);
    }

    fn lines_of(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("user{i}@example.com,mimi://chat.example.com/u/user{i}"))
            .collect()
    }

    /// Builds `text` incrementally from `prev` and from scratch, and checks
    /// that both give the same zone, warnings and errors.
    fn same_as_full(f: &Fixture, prev: &Zone, text: &str, now: u64) -> Result<Zone, Vec<String>> {
        f.write("m.csv", text);
        let inc = f.build(now, Some(prev));
        let full = f.build(now, None);
        let msgs = |w: &[Problem]| w.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        match (inc, full) {
            (Ok(inc), Ok(full)) => {
                assert!(inc.zone.same_content(&full.zone), "{text}");
                // The index from the cached owner parents equals the one
                // from reading every owner.
                let mut bare = inc.zone.clone();
                bare.cache = BuildCache::default();
                assert_eq!(
                    crate::zone::index::OwnerIndex::new(&inc.zone).empty_non_terminals(),
                    crate::zone::index::OwnerIndex::new(&bare).empty_non_terminals()
                );
                assert_eq!(inc.zone.next_resign, full.zone.next_resign);
                assert_eq!(msgs(&inc.warnings), msgs(&full.warnings));
                let mut z = full.zone.clone();
                z.soa.serial = inc.zone.soa.serial;
                assert_eq!(
                    crate::zone::zonefile::render(&inc.zone),
                    crate::zone::zonefile::render(&z)
                );
                if !inc.zone.same_content(prev) {
                    assert!(inc.zone.soa.serial != prev.soa.serial);
                }
                Ok(inc.zone)
            }
            (Err(a), Err(b)) => {
                assert_eq!(msgs(&a.problems), msgs(&b.problems));
                Err(msgs(&a.problems))
            }
            (a, b) => panic!("incremental {:?} vs full {:?}", a.is_ok(), b.is_ok()),
        }
    }

    #[test]
    fn incremental_rebuilds_equal_full_builds() {
        let mut lines = lines_of(40);
        lines.insert(3, "# comment".into());
        lines.insert(7, String::new());
        lines.insert(9, "+39 06 1234 5678,im:bob@chat.example.com".into());
        let f = Fixture::new("home", &(lines.join("\n") + "\n"));
        let mut prev = f.build(NOW, None).unwrap().zone;
        let mut now = NOW;
        let step = |lines: &[String], nl: &str, end: &str, now: u64, prev: &mut Zone| {
            let text = lines.join(nl) + end;
            if let Ok(z) = same_as_full(&f, prev, &text, now) {
                // Untouched lines keep their records (not re-signed).
                if now == NOW {
                    let shared = z
                        .records
                        .iter()
                        .filter(|r| prev.records.iter().any(|p| p.same(r)))
                        .count();
                    let n = z.records.len().min(prev.records.len());
                    assert!(shared + 2 >= n, "{shared} of {n}");
                }
                *prev = z;
            }
        };
        // Append, at the end without a final newline, then with one.
        lines.push("new1@example.com,mimi://chat.example.com/u/new1".into());
        step(&lines, "\n", "", now, &mut prev);
        step(&lines, "\n", "\n", now, &mut prev);
        // Insert at the start and in the middle; remove; edit.
        lines.insert(
            0,
            "first@example.com,mimi://chat.example.com/u/first".into(),
        );
        step(&lines, "\n", "\n", now, &mut prev);
        lines.insert(20, "mid@example.com,mimi://chat.example.com/u/mid".into());
        lines.remove(30);
        step(&lines, "\n", "\n", now, &mut prev);
        lines[10] = "user5@example.com,mimi://chat.example.com/u/other".into();
        step(&lines, "\n", "\n", now, &mut prev);
        // Duplicates: of an untouched line, and a line duplicated later.
        lines.push(lines[15].clone());
        lines.insert(2, lines[25].clone());
        step(&lines, "\n", "\n", now, &mut prev);
        // Removing the first of duplicates moves the warning.
        lines.remove(2);
        step(&lines, "\n", "\n", now, &mut prev);
        // Errors (previous zone kept), then fixed.
        let mut broken = lines.clone();
        broken.insert(5, "not a mapping".into());
        broken.push("bob@other.org,mimi://chat.example.com/u/bob".into());
        let e = same_as_full(&f, &prev, &(broken.join("\n") + "\n"), now).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("m.csv:6:"), "{e:?}");
        step(&lines, "\n", "\n", now, &mut prev);
        // CRLF line ends change every line.
        step(&lines, "\r\n", "\r\n", now, &mut prev);
        step(&lines, "\n", "\n", now, &mut prev);
        // Windows roll over as time passes; reordering; emptying.
        for days in [1, 3, 9, 11, 20] {
            now = NOW + days * 86400;
            step(&lines, "\n", "\n", now, &mut prev);
        }
        lines.reverse();
        step(&lines, "\n", "\n", now, &mut prev);
        step(&[], "\n", "", now, &mut prev);
        assert!(prev.records.is_empty());
        step(&lines, "\n", "\n", now, &mut prev);
    }

    #[test]
    fn only_changed_lines_are_parsed_again() {
        let lines = lines_of(100);
        let f = Fixture::new("home", &(lines.join("\n") + "\n"));
        let z = f.build(NOW, None).unwrap().zone;
        let cache = z
            .cache
            .0
            .as_deref()
            .and_then(|c| c.as_any().downcast_ref::<MappingsCache>())
            .unwrap();
        let mut edited = lines.clone();
        edited[49] = "x@example.com,mimi://chat.example.com/u/x".into();
        edited.push("y@example.com,mimi://chat.example.com/u/y".into());
        let text = edited.join("\n") + "\n";
        let (kept, todo, _) = changed_lines(cache, &z.records, &text, UnixTime(NOW));
        let todo: Vec<usize> = todo.iter().map(|t| t.0).collect();
        assert_eq!(todo, (50..=101).collect::<Vec<_>>());
        assert_eq!(kept.len(), 49);
        let text = lines[..60].join("\n") + "\n";
        let (kept, todo, _) = changed_lines(cache, &z.records, &text, UnixTime(NOW));
        assert!(todo.is_empty());
        assert_eq!(kept.len(), 60);
        // A config change (another TTL) makes the next build a full one.
        let z2 = f.build(NOW, Some(&z)).unwrap().zone;
        assert!(z2.records.iter().zip(&z.records).all(|(a, b)| a.same(b)));
    }

    #[test]
    fn fast_signing_equals_sign() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let kid = keys::public_key(&key).unwrap().kid();
        for (i, ssi) in [
            "mimi://chat.example.com/u/a",
            "im:b@talk.example.net",
            "mimi://x.example/p%20q?r=s",
        ]
        .iter()
        .enumerate()
        {
            let sii = Sii::parse(&format!("u{i}@example.com"), None).unwrap();
            let hash = sii.hash();
            let unsigned = UnsignedAssertion {
                authority: "example.com".parse().unwrap(),
                ssi: mimi_proto::Ssi::from_input(ssi).unwrap(),
                not_before: UnixTime(NOW),
                expires: UnixTime(NOW + 100),
                include_label: false,
                extensions: vec![],
            };
            let body = unsigned.body(&hash, &kid);
            let fast = sign_body(&unsigned, &hash, &body, &key).unwrap();
            assert_eq!(fast, unsigned.sign(&hash, &key).unwrap().text());
        }
        // Too long (an SSI cannot make it so; extensions can): the error
        // of `sign`.
        let long = UnsignedAssertion {
            ssi: mimi_proto::Ssi::from_input("im:a@b.example").unwrap(),
            authority: "example.com".parse().unwrap(),
            not_before: UnixTime(NOW),
            expires: UnixTime(NOW + 100),
            include_label: false,
            extensions: vec![("e".into(), "v".repeat(1000))],
        };
        let hash = Sii::parse("u@example.com", None).unwrap().hash();
        let body = long.body(&hash, &kid);
        assert_eq!(
            sign_body(&long, &hash, &body, &key).unwrap_err(),
            long.sign(&hash, &key).unwrap_err()
        );
    }

    #[test]
    fn inputs_without_a_final_newline_are_incomplete() {
        let f = Fixture::new("home", "alice@example.com,mimi://a.example/x");
        let e = f.build(NOW, None).unwrap_err();
        assert!(e.is_incomplete(), "{e}");
        assert_eq!(
            e.problems.len(),
            1,
            "the unterminated line is not parsed: {e}"
        );
        assert_eq!(e.problems[0].line, Some(1));
        // Certificates likewise (in the [authority] table).
        f.write("m.csv", "alice@example.com,mimi://a.example/x\n");
        let config = std::fs::read_to_string(f.path("zone.toml")).unwrap();
        f.write(
            "zone.toml",
            &format!("{config}certificates = [\"c.txt\"]\n"),
        );
        f.write("c.txt", "# none yet");
        let e = f.build(NOW, None).unwrap_err();
        assert!(e.is_incomplete(), "{e}");
        assert!(e.problems[0].file.ends_with("c.txt"), "{e}");
        // A broken line is not incomplete.
        f.write("c.txt", "\n");
        f.write("m.csv", "broken\n");
        let e = f.build(NOW, None).unwrap_err();
        assert!(!e.is_incomplete(), "{e}");
    }

    #[test]
    fn bad_key_file_is_reported() {
        let f = Fixture::new("home", "alice@example.com,mimi://a.example/x\n");
        std::fs::remove_file(f.path("k.pem")).unwrap();
        let e = f.build(NOW, None).unwrap_err();
        assert!(e.problems[0].file.ends_with("k.pem"), "{e}");
    }
}
