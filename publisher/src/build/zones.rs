//! Building every zone of one configuration: the one zone of a plain
//! configuration, or the many of a `[domains]` or `[shards]` one.
//!
//! A configuration of many zones is expanded by reading and parsing its
//! mappings and pre-signed files once and sending each SII to its zone
//! ([`ZoneSpec`]): the zone of its email domain (`[domains]`), the zone of
//! its shard (`[shards]`), or both (`<shard>._mimi.<domain>`). Each zone's
//! share of the mappings (its lines, in file order) is built like a
//! mappings file of its own, so each zone keeps its own incremental cache
//! and problems still name the file's own lines. A zone whose share, shared
//! inputs (configuration, key, certificates, TSIG key) and re-sign time are
//! unchanged is not built at all: the previous zone is kept, the same
//! `Arc`, so a change to one customer domain rebuilds, re-announces and
//! re-transfers that domain's zone only.
//!
//! A zone exists while some mapping or pre-signed assertion goes to it:
//! zones appear with their first SII and disappear with their last. That
//! the set as a whole does not lose too much at once is for whoever
//! installs it to check ([`ZoneSetOutput::shrink`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use mimi_proto::name::{home_zone, shard_name};
use mimi_proto::{DomainName, Sii, UnixTime};
use rayon::prelude::*;

use super::{
    assemble, build_zone, owner_for, parent_of, read_complete, read_presigned, BuildError,
    MappingsCache, MappingsShare, Placement, Progress, Shared,
};
use crate::input::config::{TransferPolicy, ZoneConfig};
use crate::input::domains::DomainList;
use crate::input::problem::Problem;
use crate::input::{mappings, presigned};
use crate::zone::shrink::{Shrink, ShrinkLimit};
use crate::zone::{Zone, ZoneRecord};

/// One zone of a configuration and which SIIs belong to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneSpec {
    /// The zone's origin.
    pub origin: DomainName,
    /// Which SIIs of the configuration's inputs it holds.
    pub select: Select,
}

/// The SIIs of a zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Select {
    /// Every SII of the inputs (a configuration of one zone).
    All,
    /// The email SIIs of one domain (`[domains]`).
    Domain(DomainName),
    /// The SIIs whose discovery names are in one shard under `home`
    /// (`[shards]`, with or without `[domains]`).
    Shard {
        /// The zone the shard is of (`<shard>._mimi.<home>`).
        home: DomainName,
        /// The two-character shard.
        shard: String,
    },
}

/// The zones of one configuration, by origin, and what their build keeps
/// for the next build of the same configuration.
#[derive(Clone, Default)]
pub struct ZoneSet {
    /// The zones.
    pub zones: BTreeMap<DomainName, Arc<Zone>>,
    memory: Option<Arc<SetMemory>>,
}

impl std::fmt::Debug for ZoneSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneSet")
            .field("zones", &self.zones.len())
            .finish_non_exhaustive()
    }
}

impl ZoneSet {
    /// A set of the given zones, without build memory (a kept or
    /// hand-made set: the next build reuses their signatures only).
    pub fn of(zones: impl IntoIterator<Item = Zone>) -> Self {
        ZoneSet {
            zones: zones
                .into_iter()
                .map(|z| (z.origin.clone(), Arc::new(z)))
                .collect(),
            memory: None,
        }
    }

    /// The earliest re-sign time of any zone.
    pub fn next_resign(&self) -> Option<UnixTime> {
        self.zones.values().filter_map(|z| z.next_resign).min()
    }

    /// Number of assertion and certificate records of all zones.
    pub fn record_count(&self) -> usize {
        self.zones.values().map(|z| z.record_count()).sum()
    }
}

/// What a build of many zones keeps to decide, next time, which zones it
/// need not build: the inputs every zone shares, and each zone's share of
/// the pre-signed files (its mappings share is in its own cache).
struct SetMemory {
    /// Where each line of the mappings file went, for the next partition.
    placed: Option<Placed>,
    config: ZoneConfig,
    certs: Vec<ZoneRecord>,
    transfer: Option<Arc<TransferPolicy>>,
    kid: Option<mimi_proto::KeyId>,
    presigned: HashMap<DomainName, Vec<String>>,
}

/// A successful build of a configuration's zones.
#[derive(Debug)]
pub struct ZoneSetOutput {
    /// The zones: rebuilt ones are new `Arc`s, the others those of the
    /// previous set.
    pub set: ZoneSet,
    /// Warnings of the zones that were built.
    pub warnings: Vec<Problem>,
    /// The key sealing the zones' files (see [`crate::zone::seal`]).
    pub seal: Option<crate::zone::seal::SealKey>,
    /// The configuration's `max_shrink`, for the whole set.
    pub max_shrink: ShrinkLimit,
    /// How many zones were built (the others were kept as they were).
    pub built: usize,
    /// With a key bundle: what the rollover decided.
    pub rollover: Option<crate::build::rollover::RolloverReport>,
}

impl ZoneSetOutput {
    /// How the assertions of every zone of `previous` compare with those of
    /// every zone of this set: a zone gone counts all its assertions as
    /// removed, so a truncated mappings file cannot silently delete many
    /// zones, while one domain losing its last mapping among many is a
    /// small share.
    pub fn shrink(&self, previous: &ZoneSet) -> Shrink {
        compare(previous, &self.set)
    }
}

/// [`ZoneSetOutput::shrink`] for any two sets.
pub fn compare(previous: &ZoneSet, next: &ZoneSet) -> Shrink {
    let mut total = Shrink {
        before: 0,
        after: 0,
        removed: 0,
    };
    let empty: &[ZoneRecord] = &[];
    let mut add = |s: Shrink| {
        total.before += s.before;
        total.after += s.after;
        total.removed += s.removed;
    };
    for (origin, old) in &previous.zones {
        match next.zones.get(origin) {
            Some(new) if Arc::ptr_eq(old, new) => add(Shrink::unchanged(&new.records)),
            Some(new) => add(Shrink::between(&old.records, &new.records)),
            None => add(Shrink::between(&old.records, empty)),
        }
    }
    for (origin, new) in &next.zones {
        if !previous.zones.contains_key(origin) {
            add(Shrink::between(empty, &new.records));
        }
    }
    total
}

/// Builds every zone of `config` at `now`, starting from `previous` (the
/// zones served so far, or kept: each zone is built from its own previous
/// zone).
pub fn build_zones(
    config: &ZoneConfig,
    now: UnixTime,
    previous: &ZoneSet,
    progress: Option<Progress<'_>>,
) -> Result<ZoneSetOutput, BuildError> {
    if !config.is_many() {
        let out = build_zone(
            config,
            now,
            previous.zones.get(&config.origin).map(|z| &**z),
            progress,
        )?;
        return Ok(ZoneSetOutput {
            set: ZoneSet::of([out.zone]),
            warnings: out.warnings,
            seal: out.seal,
            max_shrink: out.max_shrink,
            built: 1,
            rollover: out.rollover,
        });
    }
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let expansion = Expansion::new(config, &mut errors);
    let cert_zone = match config.authority.as_ref() {
        Some(a) => config.for_zone(&a.name.certificate_name()),
        None => config.clone(),
    };
    let shared = Shared::load(config, &cert_zone, None, now, &mut errors, &mut warnings);

    // Partition the mappings by zone: every line, or with the previous
    // build's placement, only the lines between the unchanged prefix and
    // suffix of the file.
    let mut shares: BTreeMap<ZoneSpec, (String, Vec<u32>)> = BTreeMap::new();
    let mappings_path = config.mappings.clone();
    let mut placement: Option<Placed> = None;
    if let Some(path) = &mappings_path {
        if let (Some(text), Some(x)) = (read_complete(path, "mappings", &mut errors), &expansion) {
            let before = previous
                .memory
                .as_deref()
                .and_then(|m| m.placed.as_ref())
                .filter(|p| p.config == *config && p.list == x.list);
            let lines: Vec<&str> = text.lines().collect();
            let (keep_head, todo, keep_tail) = match before {
                Some(p) => changed_range(&p.text, &text, p.lines.len()),
                None => (0, 0..lines.len(), 0),
            };
            let (mut specs, mut index) = match before {
                Some(p) => (p.specs.clone(), p.index.clone()),
                None => (Vec::new(), HashMap::new()),
            };
            let parsed: Vec<(usize, Result<Option<ZoneSpec>, Problem>)> = lines[todo.clone()]
                .par_iter()
                .enumerate()
                .with_min_len(1024)
                .filter_map(|(i, l)| {
                    let line = todo.start + i + 1;
                    let t = l.trim();
                    if t.is_empty() || t.starts_with('#') {
                        return None;
                    }
                    let spec = mappings::parse_line(t, line, path, None).and_then(|m| {
                        x.spec_of(&m.sii)
                            .map_err(|msg| Problem::at(path, line, msg))
                    });
                    Some((line, spec))
                })
                .collect();
            let mut middle: Vec<Option<u32>> = vec![None; todo.len()];
            for (line, spec) in parsed {
                match spec {
                    Ok(Some(spec)) => {
                        let n = specs.len() as u32;
                        let idx = *index.entry(spec.clone()).or_insert_with(|| {
                            specs.push(spec);
                            n
                        });
                        middle[line - 1 - todo.start] = Some(idx);
                    }
                    Ok(None) => {}
                    Err(p) => errors.push(p),
                }
            }
            let mut placed: Vec<Option<u32>> = Vec::with_capacity(lines.len());
            if let Some(p) = before {
                placed.extend_from_slice(&p.lines[..keep_head]);
            }
            placed.extend(middle);
            if let Some(p) = before {
                placed.extend_from_slice(&p.lines[p.lines.len() - keep_tail..]);
            }
            debug_assert_eq!(placed.len(), lines.len());
            let mut by_idx: Vec<Option<(String, Vec<u32>)>> = vec![None; specs.len()];
            for (i, (l, at)) in lines.iter().zip(&placed).enumerate() {
                if let Some(at) = at {
                    let (t, n) = by_idx[*at as usize].get_or_insert_with(Default::default);
                    t.push_str(l);
                    t.push('\n');
                    n.push(u32::try_from(i + 1).unwrap_or(u32::MAX));
                }
            }
            for (spec, share) in specs.iter().zip(by_idx) {
                if let Some(share) = share {
                    shares.insert(spec.clone(), share);
                }
            }
            drop(lines);
            placement = Some(Placed {
                config: config.clone(),
                list: x.list.clone(),
                text,
                lines: placed,
                specs,
                index,
            });
        }
    }
    // And the pre-signed assertions.
    let presigned_files = read_presigned(config, &mut errors);
    let mut items: BTreeMap<ZoneSpec, Vec<(&Path, &presigned::Presigned)>> = BTreeMap::new();
    if let Some(x) = &expansion {
        for (path, list) in &presigned_files {
            for p in list {
                match x.spec_of(&p.sii) {
                    Ok(Some(spec)) => items.entry(spec).or_default().push((path.as_path(), p)),
                    Ok(None) => {}
                    Err(msg) => errors.push(Problem::at(path, p.line, msg)),
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(BuildError { problems: errors });
    }
    let x = expansion.expect("no errors, so the expansion was made");

    let kid = shared.key.as_ref().map(|k| {
        crate::input::keys::public_key(k)
            .expect("loaded keys are not weak")
            .kid()
    });
    let memory = previous.memory.as_deref().filter(|m| {
        m.config == *config
            && m.certs == shared.certs
            && m.transfer == shared.transfer
            && m.kid == kid
    });
    let mut specs: Vec<ZoneSpec> = shares.keys().cloned().collect();
    specs.extend(items.keys().filter(|s| !shares.contains_key(*s)).cloned());
    specs.extend(empty_shard_zones(config, &specs, &mut errors));
    if !errors.is_empty() {
        return Err(BuildError { problems: errors });
    }
    specs.sort();
    let presigned_texts: HashMap<DomainName, Vec<String>> = items
        .iter()
        .map(|(s, v)| {
            (
                s.origin.clone(),
                v.iter()
                    .map(|(p, i)| format!("{}\t{}", p.display(), i.assertion.text()))
                    .collect(),
            )
        })
        .collect();

    struct Job<'a> {
        spec: ZoneSpec,
        share: Option<(String, Vec<u32>)>,
        items: Vec<(&'a Path, &'a presigned::Presigned)>,
        previous: Option<Arc<Zone>>,
    }
    let mut kept: BTreeMap<DomainName, Arc<Zone>> = BTreeMap::new();
    let mut jobs = Vec::new();
    for spec in specs {
        let share = shares.remove(&spec);
        let its_items = items.remove(&spec).unwrap_or_default();
        let prev = previous.zones.get(&spec.origin).cloned();
        let unchanged = match (&prev, memory) {
            (Some(p), Some(m)) => {
                p.next_resign.is_none_or(|t| t > now)
                    && cached_text(p) == share.as_ref().map(|s| s.0.as_str()).or(Some(""))
                    && m.presigned.get(&spec.origin) == presigned_texts.get(&spec.origin)
            }
            _ => false,
        };
        if unchanged {
            kept.insert(spec.origin.clone(), prev.expect("checked"));
        } else {
            jobs.push(Job {
                spec,
                share,
                items: its_items,
                previous: prev,
            });
        }
    }
    let built = jobs.len();
    let results: Vec<(DomainName, Result<super::BuildOutput, BuildError>)> = jobs
        .into_par_iter()
        .map(|job| {
            let zone_config = config.for_zone(&job.spec.origin);
            let place = x.placement(&job.spec);
            let share = mappings_path.as_ref().map(|path| {
                let (text, lines) = job.share.unwrap_or_default();
                MappingsShare {
                    path: path.clone(),
                    text,
                    lines: Some(lines.into()),
                }
            });
            let out = assemble(
                &zone_config,
                &place,
                &shared,
                share,
                &job.items,
                now,
                job.previous.as_deref(),
                None,
                Vec::new(),
                Vec::new(),
            );
            (job.spec.origin, out)
        })
        .collect();
    let mut seal = None;
    let max_shrink = config.max_shrink;
    for (origin, r) in results {
        match r {
            Ok(out) => {
                warnings.extend(out.warnings);
                seal = seal.or(out.seal);
                kept.insert(origin, Arc::new(out.zone));
            }
            Err(e) => errors.extend(e.problems),
        }
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        return Err(BuildError { problems: errors });
    }
    let seal = seal.or_else(|| {
        shared
            .key
            .as_ref()
            .map(crate::zone::seal::SealKey::from_signing_key)
    });
    Ok(ZoneSetOutput {
        set: ZoneSet {
            zones: kept,
            memory: Some(Arc::new(SetMemory {
                placed: placement,
                config: config.clone(),
                certs: shared.certs.clone(),
                transfer: shared.transfer.clone(),
                kid,
                presigned: presigned_texts,
            })),
        },
        warnings,
        seal,
        max_shrink,
        built,
        rollover: None,
    })
}

/// The shard zones of `config`'s `[shards]` that hold no SII yet, so that
/// every listed shard of each home has its zone: the parent delegates the
/// shards to this publisher whether or not they hold SIIs, and an empty
/// zone answers NXDOMAIN with authority where no zone would be REFUSED (a
/// lame delegation to resolvers). The homes are the configuration's own
/// zone (without `[domains]`) and every domain that has SIIs (with it).
fn empty_shard_zones(
    config: &ZoneConfig,
    specs: &[ZoneSpec],
    errors: &mut Vec<Problem>,
) -> Vec<ZoneSpec> {
    let Some(set) = &config.shards else {
        return Vec::new();
    };
    let mut homes: std::collections::BTreeSet<DomainName> = specs
        .iter()
        .filter_map(|s| match &s.select {
            Select::Shard { home, .. } => Some(home.clone()),
            _ => None,
        })
        .collect();
    if config.domains.is_none() {
        // A zone whose origin is itself the `_mimi` name of its domain
        // holds that domain's shards.
        let home = config
            .origin
            .as_str()
            .strip_prefix("_mimi.")
            .and_then(|h| DomainName::parse_canonical(h).ok())
            .unwrap_or_else(|| config.origin.clone());
        homes.insert(home);
    }
    let have: std::collections::HashSet<&ZoneSpec> = specs.iter().collect();
    let mut out = Vec::new();
    for home in homes {
        for shard in set.iter().map(|s| s.to_string()) {
            match shard_name(&shard, &home) {
                Ok(origin) => {
                    let spec = ZoneSpec {
                        origin,
                        select: Select::Shard {
                            home: home.clone(),
                            shard,
                        },
                    };
                    if !have.contains(&spec) {
                        out.push(spec);
                    }
                }
                Err(e) => errors.push(Problem::in_file(
                    &config.path,
                    format!("shard {shard} of {home}: {e}"),
                )),
            }
        }
    }
    out
}

/// Where each line of a mappings file went: the text, and per line the
/// index of its zone in `specs` (`None`: a comment, a blank line, or an
/// SII of a shard not published here), valid for the same configuration
/// and domain list.
struct Placed {
    config: ZoneConfig,
    list: Option<DomainList>,
    text: String,
    lines: Vec<Option<u32>>,
    specs: Vec<ZoneSpec>,
    index: HashMap<ZoneSpec, u32>,
}

/// Compares the new mappings `text` with the `old` one of `old_lines`
/// lines (both end with a newline): how many whole lines at the start and
/// at the end are unchanged, and the range of new lines in between.
fn changed_range(
    old: &str,
    text: &str,
    old_lines: usize,
) -> (usize, std::ops::Range<usize>, usize) {
    let (o, n) = (old.as_bytes(), text.as_bytes());
    let p = super::common_prefix(o, n);
    let pre_end = o[..p]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let max_s = o.len().min(n.len()) - pre_end;
    let s = super::common_suffix(&o[o.len() - max_s..], &n[n.len() - max_s..]);
    // Whole lines of the common suffix: those after a newline inside it.
    let (old_suf, new_suf) = match o[o.len() - s..].iter().position(|&b| b == b'\n') {
        Some(i) => (o.len() - s + i + 1, n.len() - s + i + 1),
        None => (o.len(), n.len()),
    };
    let head = super::count_newlines(&o[..pre_end]);
    let tail = super::count_newlines(&o[old_suf..]);
    let middle = super::count_newlines(&n[pre_end..new_suf]);
    debug_assert!(head + tail <= old_lines);
    (head, head..head + middle, tail)
}

/// The mappings text a zone was built from, if its build kept it.
fn cached_text(zone: &Zone) -> Option<&str> {
    zone.cache
        .0
        .as_deref()
        .and_then(|c| c.as_any().downcast_ref::<MappingsCache>())
        .map(|c| c.text.as_str())
}

/// How one configuration of many zones sends SIIs to zones.
struct Expansion<'c> {
    config: &'c ZoneConfig,
    list: Option<DomainList>,
}

impl<'c> Expansion<'c> {
    /// The expansion of `config`, with its domain list read (its problems
    /// go to `errors`, and there is then no expansion).
    fn new(config: &'c ZoneConfig, errors: &mut Vec<Problem>) -> Option<Self> {
        let list = match config.domains.as_ref().and_then(|d| d.list.as_ref()) {
            None => None,
            Some(path) => match DomainList::read(path) {
                Ok(l) => Some(l),
                Err(problems) => {
                    errors.extend(problems);
                    return None;
                }
            },
        };
        Some(Expansion { config, list })
    }

    /// The zone `sii` goes to, `None` for an SII of a shard this
    /// configuration does not publish, or why it cannot be published.
    fn spec_of(&self, sii: &Sii) -> Result<Option<ZoneSpec>, String> {
        let config = self.config;
        let in_shards = |shard: &str| config.shards.as_ref().is_none_or(|s| s.contains_str(shard));
        match &config.domains {
            Some(d) => {
                if sii.is_tel() {
                    return Err(format!(
                        "{sii}: a telephone number; a [domains] configuration publishes the home records of email domains only"
                    ));
                }
                let domain = home_zone(sii, None).expect("an email SII has a domain");
                if let Some(list) = &self.list {
                    if !list.contains(&domain) {
                        return Err(format!(
                            "{sii}: domain {domain} is not in the domain list {}",
                            d.list.as_ref().expect("a list was read").display()
                        ));
                    }
                }
                let origin = d.origin.origin_of(&domain)?;
                if config.shards.is_none() {
                    // The discovery name must fit in DNS.
                    let place = Placement {
                        role: config.role,
                        tel_root: None,
                        base: origin.clone(),
                        zone: origin.clone(),
                        delegated: Default::default(),
                    };
                    owner_for(&place, sii)?;
                    return Ok(Some(ZoneSpec {
                        origin,
                        select: Select::Domain(domain),
                    }));
                }
                let label = sii.label();
                let shard = label.shard();
                if !in_shards(shard) {
                    return Ok(None);
                }
                let origin = shard_name(shard, &domain).map_err(|e| format!("{sii}: {e}"))?;
                Ok(Some(ZoneSpec {
                    origin,
                    select: Select::Shard {
                        home: domain,
                        shard: shard.to_owned(),
                    },
                }))
            }
            None => {
                let owner = owner_for(&Placement::of(config), sii)?;
                let label = sii.label();
                let shard = label.shard();
                if !in_shards(shard) {
                    return Ok(None);
                }
                let origin = DomainName::parse_canonical(parent_of(owner.as_str()))
                    .map_err(|e| format!("{sii}: {e}"))?;
                let home = DomainName::parse_canonical(
                    origin.as_str().split_once("._mimi.").map_or("", |(_, h)| h),
                )
                .map_err(|e| format!("{sii}: {e}"))?;
                Ok(Some(ZoneSpec {
                    origin,
                    select: Select::Shard {
                        home,
                        shard: shard.to_owned(),
                    },
                }))
            }
        }
    }

    /// How SIIs are placed in the zone of `spec`.
    fn placement(&self, spec: &ZoneSpec) -> Placement {
        let config = self.config;
        Placement {
            role: config.role,
            tel_root: config.tel_root.clone(),
            base: if config.domains.is_some() {
                spec.origin.clone()
            } else {
                config.origin.clone()
            },
            zone: spec.origin.clone(),
            delegated: super::delegated_shards(config),
        }
    }
}

/// Whether `origin` names a zone this configuration could publish (a kept
/// zone of it found in a state directory): `{domain}` pattern and, if the
/// configuration has one, its domain list (read here; an unreadable list
/// admits every domain), shard set, the origin itself for a single-zone
/// configuration.
///
/// Without a domain list, `origin = "{domain}"` matches any name: such a
/// configuration should have a state directory of its own.
pub fn could_publish(config: &ZoneConfig, origin: &DomainName) -> bool {
    publishable(config)(origin)
}

/// [`could_publish`] for many origins: reads the domain list once.
pub fn publishable(config: &ZoneConfig) -> impl Fn(&DomainName) -> bool + '_ {
    let list = config
        .domains
        .as_ref()
        .and_then(|d| d.list.as_ref())
        .and_then(|p| DomainList::read(p).ok());
    move |origin: &DomainName| {
        let listed = |domain: &DomainName| list.as_ref().is_none_or(|l| l.contains(domain));
        could_publish_shape(config, origin)
            && match &config.domains {
                None => true,
                Some(d) => match &config.shards {
                    None => d.origin.domain_of(origin).is_some_and(|dom| listed(&dom)),
                    Some(_) => origin
                        .as_str()
                        .split_once("._mimi.")
                        .and_then(|(_, rest)| DomainName::parse_canonical(rest).ok())
                        .is_some_and(|dom| listed(&dom)),
                },
            }
    }
}

fn could_publish_shape(config: &ZoneConfig, origin: &DomainName) -> bool {
    let shard_part = |o: &DomainName| -> Option<(String, DomainName)> {
        let (shard, rest) = o.as_str().split_once("._mimi.")?;
        Some((shard.to_owned(), DomainName::parse_canonical(rest).ok()?))
    };
    match (&config.domains, &config.shards) {
        (None, None) => *origin == config.origin,
        (Some(d), None) => d.origin.domain_of(origin).is_some_and(|dom| {
            // Without its list (read at build time) any domain may be one.
            d.origin.origin_of(&dom).ok().as_ref() == Some(origin)
        }),
        (_, Some(shards)) => shard_part(origin).is_some_and(|(shard, home)| {
            shards.contains_str(&shard)
                && match &config.domains {
                    Some(_) => true,
                    None => home.is_within(&config.origin),
                }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    const NOW: u64 = 1_765_000_000;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        /// A configuration with `extra` (its [domains]/[shards] tables)
        /// and the mappings `m`.
        fn new(top: &str, extra: &str, m: &str) -> Self {
            let f = Fixture {
                dir: tempfile::tempdir().unwrap(),
            };
            crate::input::keys::write_signing_key(
                &f.path("k.pem"),
                &SigningKey::from_bytes(&[7u8; 32]),
            )
            .unwrap();
            f.write("m.csv", m);
            f.write(
                "zone.toml",
                &format!(
                    "{top}ns = [\"ns1.provider.example\"]\nmappings = \"m.csv\"\n[soa]\nmname = \"ns1.provider.example\"\nrname = \"hostmaster.provider.example\"\n[authority]\nname = \"provider.example\"\nkey = \"k.pem\"\n{extra}"
                ),
            );
            f
        }
        fn path(&self, n: &str) -> std::path::PathBuf {
            self.dir.path().join(n)
        }
        fn write(&self, n: &str, text: &str) {
            std::fs::write(self.path(n), text).unwrap();
        }
        fn config(&self) -> ZoneConfig {
            ZoneConfig::load(&self.path("zone.toml")).unwrap()
        }
        fn build(&self, prev: &ZoneSet) -> Result<ZoneSetOutput, BuildError> {
            build_zones(&self.config(), UnixTime(NOW), prev, None)
        }
    }

    fn d(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    fn owner(sii: &str, zone: &str) -> String {
        let l = Sii::parse(sii, None).unwrap().label();
        format!("{l}.{}._mimi.{zone}", l.shard())
    }

    const THREE: &str = "alice@a.example,im:alice@chat.provider.example\nbob@b.example,im:bob@chat.provider.example\n# comment\ncarol@c.example,im:carol@chat.provider.example\ndave@a.example,im:dave@chat.provider.example\n";

    /// With `[domains]`, each domain's zone publishes its own buckets; a
    /// zone per `_mimi.{domain}` cannot hold them and is refused.
    #[test]
    fn buckets_per_domain_zone() {
        let f = Fixture::new("buckets = 1\n", "[domains]\norigin = \"{domain}\"\n", THREE);
        let out = f.build(&ZoneSet::default()).unwrap();
        let a = &out.set.zones[&d("a.example")];
        let apex: Vec<&str> = a
            .records
            .iter()
            .filter(|r| r.owner.as_str() == "_mimi-b.a.example")
            .map(|r| r.text.as_str())
            .collect();
        assert_eq!(apex, ["v=mimi1;n=1"]);
        let copies = a
            .records
            .iter()
            .filter(|r| r.owner.as_str().ends_with("._mimi-b.a.example"))
            .count();
        assert_eq!(copies, 2, "alice and dave");
        let e = ZoneConfig::from_toml(
            &std::fs::read_to_string(f.path("zone.toml"))
                .unwrap()
                .replace("origin = \"{domain}\"", "origin = \"_mimi.{domain}\""),
            &f.path("zone.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("buckets") && e.contains("_mimi-b.<domain>"),
            "{e}"
        );
    }

    #[test]
    fn one_zone_per_domain_with_the_right_owners() {
        let f = Fixture::new("", "[domains]\norigin = \"_mimi.{domain}\"\n", THREE);
        let out = f.build(&ZoneSet::default()).unwrap();
        let origins: Vec<&str> = out.set.zones.keys().map(|o| o.as_str()).collect();
        assert_eq!(
            origins,
            ["_mimi.a.example", "_mimi.b.example", "_mimi.c.example"]
        );
        let a = &out.set.zones[&d("_mimi.a.example")];
        let owners: Vec<&str> = a.records.iter().map(|r| r.owner.as_str()).collect();
        let mut want = vec![
            owner("alice@a.example", "a.example"),
            owner("dave@a.example", "a.example"),
        ];
        want.sort();
        assert_eq!(owners, want);
        assert_eq!(a.origin, d("_mimi.a.example"));
        assert_eq!(out.built, 3);

        // "{domain}": the provider hosts the customer's whole zone.
        let f = Fixture::new("", "[domains]\norigin = \"{domain}\"\n", THREE);
        let out = f.build(&ZoneSet::default()).unwrap();
        assert!(out.set.zones.contains_key(&d("b.example")));
    }

    #[test]
    fn only_the_changed_domain_is_rebuilt_and_a_domain_disappears_with_its_last_mapping() {
        let f = Fixture::new("", "[domains]\norigin = \"_mimi.{domain}\"\n", THREE);
        let first = f.build(&ZoneSet::default()).unwrap().set;
        // Bob gets a second mapping, carol leaves, and an earlier line is
        // inserted (shifting every line after it).
        f.write(
            "m.csv",
            "# header\nalice@a.example,im:alice@chat.provider.example\nbob@b.example,im:bob@chat.provider.example\nbob@b.example,im:bob2@chat.provider.example\ndave@a.example,im:dave@chat.provider.example\n",
        );
        let out = f.build(&first).unwrap();
        assert_eq!(out.built, 1, "only b.example's share changed");
        let a = d("_mimi.a.example");
        assert!(Arc::ptr_eq(&first.zones[&a], &out.set.zones[&a]));
        let b = d("_mimi.b.example");
        assert_eq!(out.set.zones[&b].records.len(), 2);
        assert!(out.set.zones[&b].soa.serial != first.zones[&b].soa.serial);
        assert!(!out.set.zones.contains_key(&d("_mimi.c.example")));
        let s = out.shrink(&first);
        assert_eq!((s.before, s.after, s.removed), (4, 4, 1));
        // The same inputs again: nothing is built.
        let again = f.build(&out.set).unwrap();
        assert_eq!(again.built, 0);
    }

    #[test]
    fn incremental_partitions_equal_full_ones() {
        let base: Vec<String> = (0..60)
            .map(|i| format!("u{i}@d{}.example,im:u{i}@chat.provider.example\n", i % 7))
            .collect();
        let f = Fixture::new(
            "",
            "[domains]\norigin = \"_mimi.{domain}\"\n",
            &base.concat(),
        );
        let mut prev = f.build(&ZoneSet::default()).unwrap().set;
        type Edit = Box<dyn Fn(&mut Vec<String>)>;
        let edits: Vec<Edit> = vec![
            Box::new(|v| v.insert(0, "# head\n".into())),
            Box::new(|v| v.insert(30, "new@d9.example,im:n@chat.provider.example\n".into())),
            Box::new(|v| {
                v.remove(10);
            }),
            Box::new(|v| v.push("last@d2.example,im:l@chat.provider.example\n".into())),
            Box::new(|v| v[5] = "u4@d4.example,im:moved@chat.provider.example\n".into()),
            Box::new(|v| v.retain(|l| !l.contains("@d3."))),
            Box::new(|v| v.truncate(20)),
        ];
        let mut text = base.clone();
        for (n, edit) in edits.iter().enumerate() {
            edit(&mut text);
            f.write("m.csv", &text.concat());
            let inc = build_zones(&f.config(), UnixTime(NOW), &prev, None)
                .unwrap()
                .set;
            let full = f.build(&ZoneSet::default()).unwrap().set;
            assert_eq!(
                inc.zones.keys().collect::<Vec<_>>(),
                full.zones.keys().collect::<Vec<_>>(),
                "edit {n}"
            );
            for (o, z) in &full.zones {
                assert_eq!(inc.zones[o].records, z.records, "edit {n}: {o}");
            }
            prev = inc;
        }
        // An error in the changed part names its line in the file.
        text.insert(3, "not a mapping\n".into());
        f.write("m.csv", &text.concat());
        let e = build_zones(&f.config(), UnixTime(NOW), &prev, None).unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].line, Some(4), "{}", e.problems[0]);
    }

    #[test]
    fn a_domain_list_rejects_a_stray_domain_with_its_line() {
        let f = Fixture::new(
            "",
            "[domains]\norigin = \"_mimi.{domain}\"\nlist = \"domains.txt\"\n",
            THREE,
        );
        f.write(
            "domains.txt",
            "a.example\n# b is a customer too\nb.example\n",
        );
        let e = f.build(&ZoneSet::default()).unwrap_err();
        let all: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(
            all[0].starts_with(&format!(
                "{}:4: mailto:carol@c.example: domain c.example is not in the domain list",
                f.path("m.csv").display()
            )),
            "{all:?}"
        );
        f.write("domains.txt", "a.example\nb.example\nc.example\n");
        assert_eq!(f.build(&ZoneSet::default()).unwrap().set.zones.len(), 3);
        // A list not ending with a newline is incomplete, like any input.
        f.write("domains.txt", "a.example\nb.example\nc.example");
        assert!(f.build(&ZoneSet::default()).unwrap_err().is_incomplete());
    }

    #[test]
    fn telephone_numbers_and_bad_lines_are_errors_with_their_file_lines() {
        let f = Fixture::new(
            "",
            "[domains]\norigin = \"_mimi.{domain}\"\n",
            "alice@a.example,im:alice@chat.provider.example\n+39 06 1234 5678,im:x@chat.provider.example\nnot a mapping\n",
        );
        let e = f.build(&ZoneSet::default()).unwrap_err();
        let m = f.path("m.csv").display().to_string();
        let all: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
        assert!(
            all[0].starts_with(&format!("{m}:2: ")) && all[0].contains("telephone"),
            "{all:?}"
        );
        assert!(all[1].starts_with(&format!("{m}:3: ")), "{all:?}");
    }

    #[test]
    fn duplicate_warnings_name_the_files_own_lines() {
        let f = Fixture::new(
            "",
            "[domains]\norigin = \"_mimi.{domain}\"\n",
            "alice@a.example,im:a@chat.provider.example\nbob@b.example,im:b@chat.provider.example\nalice@a.example,im:a@chat.provider.example\n",
        );
        let out = f.build(&ZoneSet::default()).unwrap();
        let w: Vec<String> = out.warnings.iter().map(|p| p.to_string()).collect();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("m.csv:3: duplicate of line 1"), "{w:?}");
    }

    #[test]
    fn shards_select_only_their_shards() {
        let many: String = (0..200)
            .map(|i| format!("u{i}@example.com,im:u{i}@chat.provider.example\n"))
            .collect();
        let f = Fixture::new(
            "origin = \"example.com\"\nrole = \"home\"\n",
            "[shards]\nzones = [\"00-7v\"]\n",
            &many,
        );
        // The authority's certificates are not inside any shard zone.
        // Every listed shard has its zone, with SIIs or not (the parent
        // delegates them all here).
        let out = f.build(&ZoneSet::default()).unwrap();
        assert_eq!(out.set.zones.len(), 256, "00-7v: 8 × 32 shards");
        assert!(out.set.zones.values().any(|z| z.records.is_empty()));
        let mut total = 0;
        for (origin, zone) in &out.set.zones {
            let (shard, rest) = origin.as_str().split_once('.').unwrap();
            assert_eq!(rest, "_mimi.example.com");
            assert!(shard < "80", "{origin}");
            for r in &zone.records {
                assert_eq!(&r.owner.as_str()[..2], shard);
                assert!(r.owner.as_str().ends_with(origin.as_str()));
            }
            total += zone.records.len();
        }
        let expected = (0..200)
            .filter(|i| {
                let l = Sii::parse(&format!("u{i}@example.com"), None)
                    .unwrap()
                    .label();
                l.shard() < "80"
            })
            .count();
        assert_eq!(total, expected);
        assert!(expected > 0 && expected < 200);

        // With [domains]: <shard>._mimi.<domain> for each domain.
        let f = Fixture::new(
            "",
            "[domains]\norigin = \"_mimi.{domain}\"\n[shards]\nzones = [\"00-vv\"]\n",
            THREE,
        );
        let out = f.build(&ZoneSet::default()).unwrap();
        assert_eq!(out.set.zones.len(), 3 * 1024, "every shard of each domain");
        let alice = owner("alice@a.example", "a.example");
        let zone = alice.split_once('.').unwrap().1;
        assert_eq!(out.set.zones[&d(zone)].records[0].owner.as_str(), alice);
    }

    #[test]
    fn kept_zone_names_are_recognised() {
        let f = Fixture::new("", "[domains]\norigin = \"_mimi.{domain}\"\n", THREE);
        let c = f.config();
        assert!(could_publish(&c, &d("_mimi.a.example")));
        assert!(!could_publish(&c, &d("a.example")));
        let f = Fixture::new(
            "",
            "[domains]\norigin = \"_mimi.{domain}\"\nlist = \"domains.txt\"\n",
            THREE,
        );
        f.write("domains.txt", "a.example\n");
        let c = f.config();
        assert!(could_publish(&c, &d("_mimi.a.example")));
        assert!(!could_publish(&c, &d("_mimi.b.example")), "not listed");
        let f = Fixture::new(
            "origin = \"example.com\"\n",
            "[shards]\nzones = [\"00-0v\"]\n",
            THREE,
        );
        let c = f.config();
        assert!(could_publish(&c, &d("0a._mimi.example.com")));
        assert!(!could_publish(&c, &d("1a._mimi.example.com")));
        assert!(!could_publish(&c, &d("0a._mimi.other.example")));
    }
}
