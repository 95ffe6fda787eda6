//! The zones installed in a running server and how a rebuilt zone gets
//! there: [`Served`] holds every slot (configuration file → zone) and the
//! list the query paths read; [`prepare`] builds, checks and keeps a zone
//! off the serving path; [`ReloadEvent`]s tell listeners what happened.
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

use crate::build::{build_from_path, BuildError, BuildOutput};
use crate::input::problem::Problem;
use crate::serve::catalog::CatalogSlot;
use crate::zone::journal::{Journal, Outcome};
use crate::zone::served::ServedZone;
use crate::zone::shrink::{Shrink, ShrinkRefused};
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
    /// failed before the new configuration could be read).
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
    /// What triggered the rebuild.
    pub reason: ReloadReason,
    /// On failure every problem, one `file:line: message` per line; on
    /// success a short summary.
    pub message: String,
}

/// One served zone: what it was built from, its content, and the index
/// answering for it.
pub(crate) struct Slot {
    pub(crate) config: PathBuf,
    pub(crate) zone: Arc<Zone>,
    pub(crate) served: Arc<ServedZone>,
}

/// The state shared by the request handler, the reloaders and
/// [`RunningServer`]: the zones being served and their slots.
pub(crate) struct Served {
    current: ArcSwap<Vec<Arc<ServedZone>>>,
    slots: Mutex<Vec<Slot>>,
    pub(crate) events: broadcast::Sender<ReloadEvent>,
    /// Where installed zones are kept, if anywhere.
    state: Option<Arc<StateDir>>,
    /// The catalog of the served zones (`--catalog`), if any: rebuilt with
    /// every new zone list ([`Served::with_catalog`]).
    catalog: Option<CatalogSlot>,
}

/// A replaced zone and zone list, to be dropped where blocking is fine.
pub(crate) struct Retired {
    _slot: Slot,
    _current: Arc<Vec<Arc<ServedZone>>>,
}

/// A zone ready to be installed: built and indexed off the serving path.
pub(crate) struct Prepared {
    pub(crate) zone: Arc<Zone>,
    pub(crate) warnings: Vec<Problem>,
    served: Arc<ServedZone>,
    pub(crate) elapsed: Duration,
}

impl Served {
    /// The served state for `slots`, or the two configuration files that
    /// describe the same origin.
    pub(crate) fn new(
        slots: Vec<Slot>,
        state: Option<Arc<StateDir>>,
        catalog: Option<CatalogSlot>,
    ) -> Result<Self, (PathBuf, PathBuf, DomainName)> {
        let (events, _) = broadcast::channel(256);
        let current = zones_of(&slots)?;
        let served = Served {
            current: ArcSwap::from_pointee(Vec::new()),
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

    /// `zones` with the catalog zone added, rebuilt if the zones' origins
    /// are not its members; and the new catalog zone if it changed, to be
    /// NOTIFYed. The one place where the catalog follows the zone set.
    fn with_catalog(
        &self,
        mut zones: Vec<Arc<ServedZone>>,
    ) -> (Vec<Arc<ServedZone>>, Option<Arc<Zone>>) {
        let Some(catalog) = &self.catalog else {
            return (zones, None);
        };
        let (served, changed) = catalog.update(&zones);
        let changed = changed.then(|| served.zone.clone());
        zones.push(served);
        (zones, changed)
    }

    /// The catalog zone, if the server publishes one.
    pub(crate) fn catalog(&self) -> Option<Arc<Zone>> {
        self.catalog.as_ref().and_then(CatalogSlot::zone)
    }

    /// The zones being served, for the UDP threads.
    pub(crate) fn zone_list(&self) -> &ArcSwap<Vec<Arc<ServedZone>>> {
        &self.current
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of zones.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The zone currently served in slot `idx`, and its configuration file.
    pub(crate) fn current(&self, idx: usize) -> (PathBuf, Arc<Zone>) {
        let slots = self.lock();
        (slots[idx].config.clone(), slots[idx].zone.clone())
    }

    /// The journal of the zone served in slot `idx`.
    pub(crate) fn journal(&self, idx: usize) -> Arc<crate::zone::journal::Journal> {
        self.lock()[idx].served.journal().clone()
    }

    pub(crate) fn find(&self, origin: &DomainName) -> Option<Arc<Zone>> {
        self.lock()
            .iter()
            .find(|s| s.zone.origin == *origin)
            .map(|s| s.zone.clone())
            .or_else(|| self.catalog().filter(|c| c.origin == *origin))
    }

    /// Records a rebuild that produced the content already served (only
    /// `next_resign` may differ): no swap.
    /// Returns the replaced zone, to be dropped off the async threads.
    pub(crate) fn keep(&self, idx: usize, zone: Zone) -> Arc<Zone> {
        std::mem::replace(&mut self.lock()[idx].zone, Arc::new(zone))
    }

    /// Puts a rebuilt zone into slot `idx` and swaps in a new zone list with
    /// every zone. Fails, changing nothing, if the new origin is already
    /// served by another slot.
    ///
    /// Returns what was replaced: freeing a large zone takes time, which the
    /// caller should spend off the async threads.
    pub(crate) fn install(&self, idx: usize, prepared: &Prepared) -> Result<Retired, String> {
        let mut slots = self.lock();
        let zone = &prepared.zone;
        if let Some(other) = slots
            .iter()
            .enumerate()
            .find(|(i, s)| *i != idx && s.zone.origin == zone.origin)
        {
            return Err(format!(
                "zone {} is already served from {}",
                zone.origin,
                other.1.config.display()
            ));
        }
        if self
            .catalog
            .as_ref()
            .is_some_and(|c| *c.origin() == zone.origin)
        {
            return Err(format!("zone {} is the catalog zone's origin", zone.origin));
        }
        let config = slots[idx].config.clone();
        let old = std::mem::replace(
            &mut slots[idx],
            Slot {
                config,
                zone: prepared.zone.clone(),
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
                    tokio::spawn(async move { crate::transfer::notify_secondaries(&zone).await });
                }
                Ok(Retired {
                    _slot: old,
                    _current: old_current,
                })
            }
            Err((_, _, origin)) => {
                slots[idx] = old;
                Err(format!("zone {origin} would be served twice"))
            }
        }
    }

    /// Where installed zones are kept, if anywhere.
    pub(crate) fn state(&self) -> Option<Arc<StateDir>> {
        self.state.clone()
    }

    /// Broadcasts a reload event; nobody listening is fine.
    pub(crate) fn announce(&self, event: ReloadEvent) {
        let _ = self.events.send(event);
    }
}

/// The zones of every slot, or the two configurations that claim the same
/// origin.
fn zones_of(slots: &[Slot]) -> Result<Vec<Arc<ServedZone>>, (PathBuf, PathBuf, DomainName)> {
    let mut seen: BTreeMap<&DomainName, &Path> = BTreeMap::new();
    let mut zones = Vec::with_capacity(slots.len());
    for s in slots {
        if let Some(first) = seen.insert(&s.zone.origin, &s.config) {
            return Err((first.to_owned(), s.config.clone(), s.zone.origin.clone()));
        }
        zones.push(s.served.clone());
    }
    Ok(zones)
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

/// Builds the zone at `config` (CPU-bound: call from `spawn_blocking`) and
/// converts it for serving, unless its content equals `previous`, in which
/// case the conversion is skipped (`Ok(Err(output))`).
///
/// A zone that removes more of `previous`'s assertions than the
/// configuration's `max_shrink` allows is refused unless `allow_shrink`.
/// With a state directory, the zone is kept there before this returns, so
/// that it is on disk before anyone can be served its serial.
pub(crate) fn prepare(
    config: &Path,
    previous: Option<&Zone>,
    journal: &Journal,
    allow_shrink: bool,
    state: Option<&StateDir>,
) -> Result<Result<Prepared, BuildOutput>, PrepareError> {
    let started = Instant::now();
    let output = build_from_path(config, UnixTime::now(), previous, None).map_err(|e| {
        if e.is_incomplete() {
            PrepareError::Incomplete(e)
        } else {
            PrepareError::Failed(e.to_string())
        }
    })?;
    if let Some(prev) = previous {
        if prev.soa.serial == output.zone.soa.serial && prev.same_content(&output.zone) {
            return Ok(Err(output));
        }
        if !allow_shrink {
            Shrink::between(&prev.records, &output.zone.records)
                .check(output.max_shrink)
                .map_err(PrepareError::Shrink)?;
        }
    }
    let built = started.elapsed();
    let zone = Arc::new(output.zone);
    let (journal, outcome) = journal.follow(previous, &zone, UnixTime::now());
    log_journal(&zone, &journal, &outcome);
    let served = Arc::new(
        ServedZone::new(zone.clone())
            .map_err(|e| {
                PrepareError::Failed(format!("zone {}: cannot be served: {e}", zone.origin))
            })?
            .with_journal(Arc::new(journal)),
    );
    if let Some(state) = state {
        // The journal first: one that ends at a serial the kept zone does
        // not have is discarded at start, so either order of a crash
        // between the two writes is safe, and this one never serves a
        // delta toward a zone that was not kept.
        state
            .keep_journal(
                &zone.origin,
                served.journal(),
                &outcome,
                output.seal.as_ref(),
            )
            .map_err(|e| {
                PrepareError::Failed(format!(
                    "cannot keep the journal in {}: {e}; not installed",
                    state.journal_path(&zone.origin).display()
                ))
            })?;
        state.write(&zone, output.seal.as_ref()).map_err(|e| {
            PrepareError::Failed(format!(
                "cannot keep the zone in {}: {e}; not installed, so that a restart cannot go back to an older serial",
                state.path(&zone.origin).display()
            ))
        })?;
    }
    debug!(
        origin = %zone.origin,
        build_ms = built.as_millis() as u64,
        convert_ms = (started.elapsed() - built).as_millis() as u64,
        "zone prepared"
    );
    Ok(Ok(Prepared {
        zone,
        warnings: output.warnings,
        served,
        elapsed: started.elapsed(),
    }))
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

/// Logs the warnings of a successful build.
pub(crate) fn log_warnings(origin: &DomainName, warnings: &[Problem]) {
    for w in warnings {
        warn!(origin = %origin, "{w}");
    }
}
