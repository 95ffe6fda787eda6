//! The zones installed in a running server and how rebuilt zones get
//! there: [`Served`] holds every slot (configuration file → its zones) and
//! the table the query paths read; [`prepare`] builds, checks and keeps a
//! configuration's zones off the serving path; [`ReloadEvent`]s tell
//! listeners what happened.
//!
//! A slot is one configuration, which may describe many zones (see
//! [`crate::build::zones`]): a rebuild of it swaps in only the zones that
//! changed, adds those that appeared and drops those that disappeared, in
//! one atomic store of the zone table.
//!
//! Its own module so that the query paths (`udp`, `tcp`), the reloader
//! (`watch`) and the server's entry points all stand on it without
//! importing each other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use mimi_proto::{DomainName, UnixTime};
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use crate::build::zones::{build_zones, compare, ZoneSet};
use crate::build::BuildError;
use crate::input::config::ZoneConfig;
use crate::input::problem::Problem;
use crate::serve::catalog::CatalogSlot;
use crate::zone::journal::{Journal, Outcome};
use crate::zone::served::{ServedZone, ZoneTable};
use crate::zone::shrink::ShrinkRefused;
use crate::zone::state::StateDir;
use crate::zone::Zone;

/// Why a zone was rebuilt while serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadReason {
    /// One of the zone's input files changed (or a reload was requested).
    FileChange,
    /// The re-sign timer fired: some record's validity window rolls over.
    Resign,
}

/// The outcome of one rebuild of a served zone, broadcast to
/// [`RunningServer::subscribe`](crate::serve::RunningServer::subscribe) receivers (tests, monitoring).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadEvent {
    /// The zone's origin (the one served before the rebuild if the rebuild
    /// failed before the new configuration could be read). A failed
    /// rebuild of a configuration of many zones is announced once, with
    /// the origin of its first zone ([`ZoneConfig::many`] if it serves
    /// none).
    pub origin: DomainName,
    /// The zone's configuration file.
    pub config: PathBuf,
    /// The serial served after this event: the new one on success, the
    /// unchanged old one on failure.
    pub serial: u32,
    /// Whether the rebuild succeeded. On failure the previous zone is still
    /// served, unchanged.
    pub ok: bool,
    /// Whether a new zone was swapped in (`false` for failures and for
    /// rebuilds whose content did not change).
    pub changed: bool,
    /// Whether the zone is no longer served: its configuration describes
    /// many zones and this one lost its last SII (`serial` is the last one
    /// served).
    pub removed: bool,
    /// What triggered the rebuild.
    pub reason: ReloadReason,
    /// On failure every problem, one `file:line: message` per line; on
    /// success a short summary.
    pub message: String,
}

/// One configuration's zones: what they were built from, their content,
/// and the index answering for each.
pub(crate) struct Slot {
    pub(crate) config: PathBuf,
    pub(crate) set: ZoneSet,
    pub(crate) served: BTreeMap<DomainName, Arc<ServedZone>>,
}

/// The state shared by the request handler, the reloaders and
/// [`RunningServer`](crate::serve::RunningServer): the zones being served
/// and their slots.
pub(crate) struct Served {
    current: ArcSwap<ZoneTable>,
    slots: Mutex<Vec<Slot>>,
    pub(crate) events: broadcast::Sender<ReloadEvent>,
    /// Where installed zones are kept, if anywhere.
    state: Option<Arc<StateDir>>,
    /// The catalog of the served zones (`--catalog`), if any: rebuilt with
    /// every new zone table ([`Served::with_catalog`]).
    catalog: Option<CatalogSlot>,
}

/// What a swap replaced, to be dropped where blocking is fine.
pub(crate) struct Retired {
    _set: ZoneSet,
    _served: BTreeMap<DomainName, Arc<ServedZone>>,
    _current: Arc<ZoneTable>,
}

/// A configuration's zones ready to be installed: built, checked and
/// indexed off the serving path.
pub(crate) struct Prepared {
    pub(crate) set: ZoneSet,
    served: BTreeMap<DomainName, Arc<ServedZone>>,
    /// Zones with new content (new or changed), to announce and NOTIFY.
    pub(crate) changed: Vec<Arc<Zone>>,
    /// Zones built again whose content did not change.
    pub(crate) unchanged: Vec<Arc<Zone>>,
    /// Zones no longer described, with their last serial.
    pub(crate) removed: Vec<(DomainName, u32)>,
    pub(crate) warnings: Vec<Problem>,
    pub(crate) elapsed: Duration,
    /// With a key bundle: what the rollover decided.
    pub(crate) rollover: Option<crate::build::rollover::RolloverReport>,
}

impl Prepared {
    /// Whether installing this changes what is served.
    pub(crate) fn swaps(&self) -> bool {
        !self.changed.is_empty() || !self.removed.is_empty()
    }
}

/// Two configuration files that describe the same origin.
pub(crate) type Duplicate = (PathBuf, PathBuf, DomainName);

impl Served {
    /// The served state for `slots`, or the two configuration files that
    /// describe the same origin.
    pub(crate) fn new(
        slots: Vec<Slot>,
        state: Option<Arc<StateDir>>,
        catalog: Option<CatalogSlot>,
    ) -> Result<Self, Duplicate> {
        let (events, _) = broadcast::channel(4096);
        let current = zones_of(&slots)?;
        let served = Served {
            current: ArcSwap::from_pointee(ZoneTable::new(std::iter::empty())),
            slots: Mutex::new(slots),
            events,
            state,
            catalog,
        };
        // The first catalog is announced by the server's start-up NOTIFYs.
        served
            .current
            .store(Arc::new(served.with_catalog(current).0));
        Ok(served)
    }

    /// The table of `zones` with the catalog zone added, rebuilt if the
    /// zones' origins are not its members; and the new catalog zone if it
    /// changed, to be NOTIFYed. The one place where the catalog follows the
    /// zone set.
    fn with_catalog(&self, mut zones: Vec<Arc<ServedZone>>) -> (ZoneTable, Option<Arc<Zone>>) {
        let Some(catalog) = &self.catalog else {
            return (ZoneTable::new(zones), None);
        };
        let (served, changed) = catalog.update(&zones);
        let changed = changed.then(|| served.zone.clone());
        zones.push(served);
        (ZoneTable::new(zones), changed)
    }

    /// The catalog zone, if the server publishes one.
    pub(crate) fn catalog(&self) -> Option<Arc<Zone>> {
        self.catalog.as_ref().and_then(CatalogSlot::zone)
    }

    /// The zones being served, for the query paths.
    pub(crate) fn zone_list(&self) -> &ArcSwap<ZoneTable> {
        &self.current
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of zones served.
    pub(crate) fn zone_count(&self) -> usize {
        self.current.load().len()
    }

    /// Every zone served.
    pub(crate) fn all_zones(&self) -> Vec<Arc<Zone>> {
        self.lock()
            .iter()
            .flat_map(|s| s.set.zones.values().cloned())
            .collect()
    }

    /// The zones of slot `idx`, their indexes, and its configuration file.
    pub(crate) fn current(
        &self,
        idx: usize,
    ) -> (PathBuf, ZoneSet, BTreeMap<DomainName, Arc<ServedZone>>) {
        let slots = self.lock();
        let s = &slots[idx];
        (s.config.clone(), s.set.clone(), s.served.clone())
    }

    pub(crate) fn find(&self, origin: &DomainName) -> Option<Arc<Zone>> {
        self.lock()
            .iter()
            .find_map(|s| s.set.zones.get(origin).cloned())
            .or_else(|| self.catalog().filter(|c| c.origin == *origin))
    }

    /// The origins of every zone served, sorted.
    pub(crate) fn origins(&self) -> Vec<DomainName> {
        let mut v: Vec<DomainName> = self
            .lock()
            .iter()
            .flat_map(|s| s.set.zones.keys().cloned())
            .collect();
        v.sort();
        v
    }

    /// Records a rebuild that produced the content already served (only
    /// `next_resign` and the build memory may differ): no swap.
    /// Returns the replaced set, to be dropped off the async threads.
    pub(crate) fn keep(&self, idx: usize, set: ZoneSet) -> ZoneSet {
        std::mem::replace(&mut self.lock()[idx].set, set)
    }

    /// Puts a rebuilt configuration's zones into slot `idx` and swaps in a
    /// new zone table. Fails, changing nothing, if a new origin is already
    /// served by another slot.
    ///
    /// Returns what was replaced: freeing a large zone takes time, which the
    /// caller should spend off the async threads.
    pub(crate) fn install(&self, idx: usize, prepared: &Prepared) -> Result<Retired, String> {
        let mut slots = self.lock();
        if let Some(catalog) = self
            .catalog
            .as_ref()
            .filter(|c| prepared.set.zones.contains_key(c.origin()))
        {
            return Err(format!(
                "zone {} is the catalog zone's origin",
                catalog.origin()
            ));
        }
        let config = slots[idx].config.clone();
        let old = std::mem::replace(
            &mut slots[idx],
            Slot {
                config,
                set: prepared.set.clone(),
                served: prepared.served.clone(),
            },
        );
        match zones_of(&slots) {
            Ok(current) => {
                let (current, catalog) = self.with_catalog(current);
                let old_current = self.current.swap(Arc::new(current));
                // After the swap, so that a secondary asking at once gets
                // the new serial.
                if let Some(zone) = catalog {
                    tokio::spawn(crate::serve::metrics::notify_secondaries(zone));
                }
                Ok(Retired {
                    _set: old.set,
                    _served: old.served,
                    _current: old_current,
                })
            }
            Err((first, second, origin)) => {
                slots[idx] = old;
                Err(format!(
                    "zone {origin} would be served twice (from {} and {})",
                    first.display(),
                    second.display()
                ))
            }
        }
    }

    /// Where installed zones are kept, if anywhere.
    pub(crate) fn state(&self) -> Option<Arc<StateDir>> {
        self.state.clone()
    }

    /// Broadcasts a reload event; nobody listening is fine.
    pub(crate) fn announce(&self, event: ReloadEvent) {
        crate::serve::metrics::metrics().reloaded(&event);
        let _ = self.events.send(event);
    }
}

/// The served zones of every slot, or the two configurations that claim
/// the same origin.
fn zones_of(slots: &[Slot]) -> Result<Vec<Arc<ServedZone>>, Duplicate> {
    let mut seen: std::collections::HashMap<&DomainName, &Path> = std::collections::HashMap::new();
    for s in slots {
        for origin in s.served.keys() {
            if let Some(first) = seen.insert(origin, &s.config) {
                return Err((first.to_owned(), s.config.clone(), origin.clone()));
            }
        }
    }
    Ok(slots
        .iter()
        .flat_map(|s| s.served.values().cloned())
        .collect())
}

/// Why a rebuilt zone is not installed.
#[derive(Debug)]
pub(crate) enum PrepareError {
    /// An input file does not end with a newline: it is probably still
    /// being written, and its completion will be another file event.
    Incomplete(BuildError),
    /// The shrink guard holds the zone back.
    Shrink(ShrinkRefused),
    /// The build or the conversion failed, or the zone cannot be kept.
    Failed(String),
}

impl std::fmt::Display for PrepareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrepareError::Incomplete(e) => e.fmt(f),
            PrepareError::Shrink(e) => e.fmt(f),
            PrepareError::Failed(e) => f.write_str(e),
        }
    }
}

/// Builds the zones of `config` (CPU-bound: call from `spawn_blocking`)
/// from the served `previous` zones and their indexes, and converts those
/// whose content changed for serving.
///
/// A set of zones that removes more of `previous`'s assertions than the
/// configuration's `max_shrink` allows (summed over all its zones, a zone
/// gone counting as all its assertions removed) is refused unless
/// `allow_shrink`. With a state directory, each changed zone is kept there
/// before this returns, so that it is on disk before anyone can be served
/// its serial; a removed zone's kept file is removed.
pub(crate) fn prepare(
    config: &Path,
    previous: &ZoneSet,
    previous_served: &BTreeMap<DomainName, Arc<ServedZone>>,
    allow_shrink: bool,
    state: Option<&StateDir>,
) -> Result<Prepared, PrepareError> {
    let started = Instant::now();
    let loaded = ZoneConfig::load(config).map_err(|e| {
        PrepareError::Failed(
            BuildError::from(Problem::in_file(config, strip(&e.to_string(), config))).to_string(),
        )
    })?;
    let output = build_zones(&loaded, UnixTime::now(), previous, None).map_err(|e| {
        if e.is_incomplete() {
            PrepareError::Incomplete(e)
        } else {
            PrepareError::Failed(e.to_string())
        }
    })?;
    let t_build = started.elapsed();
    if !allow_shrink && !previous.zones.is_empty() {
        compare(previous, &output.set)
            .check(output.max_shrink)
            .map_err(PrepareError::Shrink)?;
    }
    let built = started.elapsed();
    let mut served = BTreeMap::new();
    let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
    // Unchanged zones whose rollover ledger moved on (a key switch at a
    // moment when no record changes): kept again, so that a restart
    // continues from the new ledger.
    let mut ledger_moved: Vec<Arc<Zone>> = Vec::new();
    let mut journals: Vec<(Arc<ServedZone>, Outcome)> = Vec::new();
    let now = UnixTime::now();
    for (origin, zone) in &output.set.zones {
        let prev = previous.zones.get(origin);
        let same = prev.is_some_and(|p| {
            Arc::ptr_eq(p, zone) || (p.soa.serial == zone.soa.serial && p.same_content(zone))
        });
        match previous_served.get(origin).filter(|_| same) {
            Some(s) => {
                if !prev.is_some_and(|p| Arc::ptr_eq(p, zone)) {
                    if prev.is_some_and(|p| !p.ledger.same_steps(&zone.ledger)) {
                        ledger_moved.push(zone.clone());
                    }
                    unchanged.push(zone.clone());
                }
                served.insert(origin.clone(), s.clone());
            }
            None => {
                // The journal continues from the zone served before (an
                // empty one for a new zone, see `Journal::follow`).
                let old = previous_served
                    .get(origin)
                    .map(|s| s.journal().clone())
                    .unwrap_or_default();
                let (journal, outcome) = old.follow(prev.map(|p| &**p), zone, now);
                log_journal(zone, &journal, &outcome);
                let s = Arc::new(
                    ServedZone::new(zone.clone())
                        .map_err(|e| {
                            PrepareError::Failed(format!("zone {origin}: cannot be served: {e}"))
                        })?
                        .with_journal(Arc::new(journal)),
                );
                served.insert(origin.clone(), s.clone());
                journals.push((s, outcome));
                changed.push(zone.clone());
            }
        }
    }
    let removed: Vec<(DomainName, u32)> = previous
        .zones
        .iter()
        .filter(|(o, _)| !output.set.zones.contains_key(*o))
        .map(|(o, z)| (o.clone(), z.soa.serial))
        .collect();
    if let Some(state) = state {
        // Journals first: one that ends at a serial the kept zone does not
        // have is discarded at start, so either order of a crash between
        // the two writes is safe, and no delta toward a zone that was not
        // kept is ever served.
        for (s, outcome) in &journals {
            let origin = &s.zone.origin;
            state
                .keep_journal(origin, s.journal(), outcome, output.seal.as_ref())
                .map_err(|e| {
                    PrepareError::Failed(format!(
                        "cannot keep the journal in {}: {e}; not installed",
                        state.journal_path(origin).display()
                    ))
                })?;
        }
        let zones: Vec<&Zone> = changed.iter().chain(&ledger_moved).map(|z| &**z).collect();
        state.write_all(&zones, output.seal.as_ref()).map_err(|e| {
            PrepareError::Failed(format!(
                "cannot keep {} in {}: {e}; not installed, so that a restart cannot go back to an older serial",
                if zones.len() == 1 { format!("zone {}", zones[0].origin) } else { format!("{} zones", zones.len()) },
                state.path(&ZoneConfig::many()).parent().map_or(String::new(), |d| d.display().to_string())
            ))
        })?;
        for (origin, _) in &removed {
            if let Err(e) = state.remove(origin) {
                warn!(origin = %origin, "cannot remove the kept file of a zone no longer served: {e}");
            }
        }
    }
    debug!(
        config = %config.display(),
        zones = output.set.zones.len(),
        built = output.built,
        changed = changed.len(),
        removed = removed.len(),
        build_ms = t_build.as_millis() as u64,
        shrink_ms = (built - t_build).as_millis() as u64,
        convert_ms = (started.elapsed() - built).as_millis() as u64,
        "zones prepared"
    );
    Ok(Prepared {
        set: output.set,
        served,
        changed,
        unchanged,
        removed,
        warnings: output.warnings,
        elapsed: started.elapsed(),
        rollover: output.rollover,
    })
}

fn strip(msg: &str, path: &Path) -> String {
    msg.strip_prefix(&format!("{}: ", path.display()))
        .unwrap_or(msg)
        .to_owned()
}

/// Logs what happened to the journal of `zone` (debug for the usual
/// append, info when history is dropped).
pub(crate) fn log_journal(zone: &Zone, journal: &Journal, outcome: &Outcome) {
    let (origin, serial) = (&zone.origin, zone.soa.serial);
    let first_serial = journal.first_serial();
    match outcome {
        Outcome::Appended(d) => {
            debug!(%origin, serial, from = d.from, removed = d.removed.len(), added = d.added.len(), deltas = journal.deltas().len(), records = journal.records(), "journal: delta added")
        }
        Outcome::Rewritten { dropped: 0 } => {
            debug!(%origin, serial, ?first_serial, "journal started")
        }
        Outcome::Rewritten { dropped } => {
            info!(%origin, serial, dropped, ?first_serial, records = journal.records(), "journal: oldest deltas dropped (bounds); IXFR from before the first serial gets the whole zone")
        }
        Outcome::Reset(why) if zone.transfer.is_some() => {
            info!(%origin, serial, "journal reset: {why}; IXFR from older serials gets the whole zone")
        }
        Outcome::Reset(_) => {}
    }
}

/// Logs the rollover steps an installed build took, and its next step.
pub(crate) fn log_rollover(
    origin: &DomainName,
    report: Option<&crate::build::rollover::RolloverReport>,
) {
    let Some(r) = report else { return };
    crate::serve::metrics::metrics().rollover(origin, r, true);
    for step in &r.steps {
        info!(origin = %origin, step = step.name(), active = %r.active, "key rollover: {step}");
    }
    if let Some(n) = &r.next {
        debug!(origin = %origin, at = n.at.0, "key rollover: next step at {}: {}", crate::build::rollover::rfc3339(n.at), n.what);
    }
}

/// Logs the warnings of a successful build.
pub(crate) fn log_warnings(origin: &DomainName, warnings: &[Problem]) {
    for w in warnings {
        warn!(origin = %origin, "{w}");
    }
}
