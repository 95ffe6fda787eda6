//! Hot reload and re-signing of served zones.
//!
//! Each configuration has one worker task that rebuilds its zones, so
//! rebuilds of a zone never overlap and each one starts from the zone
//! actually served
//! (its signatures are reused for unchanged records, and its serial is the
//! base of the next). A worker rebuilds when
//!
//! * one of the zone's input files changes: the watcher observes the
//!   *directories* holding the inputs, because editors and deployment tools
//!   replace files by renaming a new one over them, and a watch on the old
//!   file would die with it; events are matched against the inputs by
//!   absolute path, so a file deleted and created again is still seen;
//! * the re-sign timer fires at the earliest `next_resign` of its zones
//!   (only the zones due are built again, see [`crate::build::zones`]) (clamped to
//!   between [`MIN_RESIGN_DELAY`] and [`MAX_RESIGN_DELAY`] from now, and
//!   no sooner than [`resign_batch`] after the previous rebuild), so records
//!   are re-signed before they expire without a restart, and a large zone
//!   whose windows roll over every second is not rebuilt every second.
//!
//! After a file event the worker waits until the zone's files have been
//! quiet for the debounce time (at most [`MAX_SETTLE`]), so that a write
//! spread over several event batches (a key file removed, created, then
//! filled) is built from once, at its end; an event during a rebuild leaves
//! a trigger, so after any burst the zone is built from the final files.
//!
//! A rebuild runs in `spawn_blocking` (signing is CPU-bound). On success
//! with new content the zone is kept in the state directory (if any) and
//! then swapped in; with unchanged content nothing is swapped; on failure
//! the reason is logged and the previous zone keeps being served unchanged.
//! Two outcomes are not failures of the input but still keep the previous
//! zone: an input that does not end with a newline is waited for (see
//! [`crate::input::complete`]), and a zone removing more assertions than
//! `max_shrink` allows is held back (see [`crate::zone::shrink`]). When a
//! rebuilt configuration names different input files, the watches follow.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mimi_proto::UnixTime;
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::input::config::ZoneConfig;
use crate::serve::installed::{
    log_rollover, log_warnings, prepare, PrepareError, ReloadEvent, ReloadReason, Served,
};
use crate::serve::systemd::ReloadGate;

/// What wakes a zone's worker for a reload: a file event or a request
/// (SIGHUP). The first request since the worker last started a rebuild
/// opens a reload in the [`ReloadGate`], which the worker closes once the
/// rebuild it then runs has ended, so the service manager sees
/// `RELOADING=1` before and `READY=1` after.
struct Trigger {
    notify: Notify,
    pending: std::sync::atomic::AtomicBool,
    gate: Arc<ReloadGate>,
}

impl Trigger {
    fn fire(&self) {
        use std::sync::atomic::Ordering;
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.gate.begin();
        }
        self.notify.notify_one();
    }

    /// Whether a reload is open for this worker; closes the request, so
    /// that a request arriving from now on opens another.
    fn take(&self) -> bool {
        self.pending
            .swap(false, std::sync::atomic::Ordering::AcqRel)
    }
}

/// The shortest wait before a re-sign: a zone whose `next_resign` is already
/// due (or nearly) is rebuilt after this long instead of in a tight loop.
pub const MIN_RESIGN_DELAY: Duration = Duration::from_secs(1);

/// The longest wait between rebuilds of a zone. Besides bounding the effect
/// of a clock jump, it makes a missed file event heal within the hour.
pub const MAX_RESIGN_DELAY: Duration = Duration::from_secs(3600);

/// How long to wait before retrying after a failed rebuild when no file
/// changes: a broken input rarely fixes itself, so retrying every second
/// would only repeat the same error in the log.
pub const FAILURE_RETRY_DELAY: Duration = Duration::from_secs(60);

/// The shortest time between two timer-driven rebuilds of a zone whose
/// re-sign margin is `margin` seconds: a quarter of the margin, clamped to
/// [`MIN_RESIGN_DELAY`]..=[`MAX_RESIGN_BATCH`].
///
/// SPEC §9 spreads re-signing evenly, so a zone of a million records has a
/// window rolling over every second or so; rebuilding the whole zone for
/// each would keep a core busy. A record whose window has rolled over still
/// has the whole margin (days, by default) of validity left, so re-signing
/// it up to a minute late and together with its neighbours costs nothing.
/// A zone without an authority (`None`) uses [`MIN_RESIGN_DELAY`].
pub fn resign_batch(margin: Option<u64>) -> Duration {
    margin.map_or(MIN_RESIGN_DELAY, |m| {
        Duration::from_secs(m / 4).clamp(MIN_RESIGN_DELAY, MAX_RESIGN_BATCH)
    })
}

/// The longest a rebuild waits for a zone's files to be quiet (for the
/// debounce time) after a change: files changing without pause are still
/// rebuilt from this often.
pub const MAX_SETTLE: Duration = Duration::from_secs(10);

/// The upper bound of [`resign_batch`].
pub const MAX_RESIGN_BATCH: Duration = Duration::from_secs(60);

/// How long from `now` until a zone whose earliest re-sign time is
/// `next_resign` should be rebuilt: clamped to
/// [`MIN_RESIGN_DELAY`]..=[`MAX_RESIGN_DELAY`]; `None` (nothing signed)
/// waits the maximum.
pub fn resign_delay(next_resign: Option<UnixTime>, now: UnixTime) -> Duration {
    let secs = next_resign.map_or(u64::MAX, |t| t.secs().saturating_sub(now.secs()));
    Duration::from_secs(secs).clamp(MIN_RESIGN_DELAY, MAX_RESIGN_DELAY)
}

/// The form in which input files and event paths are compared: absolute,
/// with the directory canonicalized (symbolic links and `..` resolved) but
/// the file name kept, so that it works for files that do not exist at the
/// moment (deleted, about to be recreated).
pub fn normalize(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(path),
            Err(_) => path.to_owned(),
        }
    };
    match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => match dir.canonicalize() {
            Ok(dir) => dir.join(name),
            Err(_) => absolute,
        },
        _ => absolute,
    }
}

/// Which files belong to which zone, and which directories are watched.
struct WatchState {
    per_zone: Vec<Vec<PathBuf>>,
    dirs: BTreeSet<PathBuf>,
}

impl WatchState {
    fn wanted_dirs(&self) -> BTreeSet<PathBuf> {
        self.per_zone
            .iter()
            .flatten()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect()
    }
}

/// The directory watcher and the file-to-zone map it reports against.
struct Watcher {
    debouncer: Mutex<Option<Debouncer<RecommendedWatcher, RecommendedCache>>>,
    state: Arc<Mutex<WatchState>>,
}

impl Watcher {
    fn state(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces zone `idx`'s input files and adjusts the watched directories.
    fn set_inputs(&self, idx: usize, files: Vec<PathBuf>) {
        let files: Vec<PathBuf> = files.iter().map(|f| normalize(f)).collect();
        {
            let mut state = self.state();
            if state.per_zone[idx] == files {
                return;
            }
            info!(files = ?files, "input files changed; updating watches");
            state.per_zone[idx] = files;
        }
        if let Err(e) = self.sync_dirs() {
            warn!("{e}");
        }
    }

    /// Watches every directory some input is in, and stops watching the
    /// others. Directories that cannot be watched (missing) are reported and
    /// retried at the next change of inputs.
    fn sync_dirs(&self) -> Result<(), notify::Error> {
        let mut guard = self
            .debouncer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(debouncer) = guard.as_mut() else {
            return Ok(());
        };
        let mut state = self.state();
        let wanted = state.wanted_dirs();
        let mut first_error = None;
        for dir in state.dirs.difference(&wanted).cloned().collect::<Vec<_>>() {
            if let Err(e) = debouncer.unwatch(&dir) {
                debug!(dir = %dir.display(), "unwatch: {e}");
            }
            state.dirs.remove(&dir);
        }
        for dir in wanted.difference(&state.dirs.clone()) {
            match debouncer.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    debug!(dir = %dir.display(), "watching");
                    state.dirs.insert(dir.clone());
                }
                Err(e) => {
                    warn!(dir = %dir.display(), "cannot watch directory: {e}");
                    first_error.get_or_insert(e.add_path(dir.clone()));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn stop(&self) {
        let debouncer = self
            .debouncer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(d) = debouncer {
            d.stop();
        }
    }
}

/// Matches debounced events to zones and wakes their workers. Runs on the
/// debouncer's thread.
fn on_events(result: DebounceEventResult, state: &Mutex<WatchState>, triggers: &[Arc<Trigger>]) {
    let mut hit = vec![false; triggers.len()];
    match result {
        Ok(events) => {
            let state = state.lock().unwrap_or_else(PoisonError::into_inner);
            for event in &events {
                if event.need_rescan() {
                    debug!("watcher asks for a rescan; rebuilding every zone");
                    hit.iter_mut().for_each(|h| *h = true);
                    continue;
                }
                // Opening and reading (our own builds do that) is not a change;
                // closing a file written to is.
                if let EventKind::Access(kind) = event.kind {
                    if kind != AccessKind::Close(AccessMode::Write) {
                        continue;
                    }
                }
                for path in &event.paths {
                    let path = normalize(path);
                    for (i, files) in state.per_zone.iter().enumerate() {
                        if files.contains(&path) {
                            debug!(path = %path.display(), kind = ?event.kind, "input changed");
                            hit[i] = true;
                        }
                    }
                }
            }
        }
        Err(errors) => {
            // Events may have been lost: rebuild everything rather than
            // risk serving stale content.
            for e in errors {
                warn!("file watch error: {e}");
            }
            hit.iter_mut().for_each(|h| *h = true);
        }
    }
    for (trigger, hit) in triggers.iter().zip(hit) {
        if hit {
            trigger.fire();
        }
    }
}

/// What the zone workers share.
struct Ctx {
    served: Arc<Served>,
    watcher: Arc<Watcher>,
    stop: tokio::sync::watch::Receiver<bool>,
    /// How long a zone's files must be quiet before it is rebuilt.
    quiet: Duration,
    /// Whether the shrink guard is off (the operator confirmed).
    allow_shrink: bool,
}

/// The running watcher and per-zone workers of a server.
pub(crate) struct Reloader {
    triggers: Vec<Arc<Trigger>>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    watcher: Arc<Watcher>,
}

impl Reloader {
    /// Wakes every zone's worker as if its files had changed.
    pub(crate) fn trigger_all(&self) {
        info!(
            configs = self.triggers.len(),
            "re-reading every input of every zone"
        );
        self.triggers.iter().for_each(|t| t.fire());
    }

    /// Stops the workers (a rebuild in progress is abandoned: its result is
    /// never installed) and the watcher.
    pub(crate) async fn stop(&mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            if let Err(e) = task.await {
                if e.is_panic() {
                    error!("zone worker panicked: {e}");
                }
            }
        }
        let watcher = self.watcher.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || watcher.stop()).await {
            error!("stopping the file watcher failed: {e}");
        }
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts watching `inputs` (per zone, in slot order) and one worker per
/// zone whose first re-sign is at `resign_at`.
pub(crate) fn spawn(
    served: Arc<Served>,
    inputs: Vec<Vec<PathBuf>>,
    resign_at: Vec<Option<UnixTime>>,
    debounce: Duration,
    allow_shrink: bool,
    gate: Arc<ReloadGate>,
) -> Result<Reloader, notify::Error> {
    let triggers: Vec<Arc<Trigger>> = inputs
        .iter()
        .map(|_| {
            Arc::new(Trigger {
                notify: Notify::new(),
                pending: false.into(),
                gate: gate.clone(),
            })
        })
        .collect();
    let state = Arc::new(Mutex::new(WatchState {
        per_zone: inputs
            .iter()
            .map(|files| files.iter().map(|f| normalize(f)).collect())
            .collect(),
        dirs: BTreeSet::new(),
    }));
    let handler = {
        let state = state.clone();
        let triggers = triggers.clone();
        move |result: DebounceEventResult| on_events(result, &state, &triggers)
    };
    let debouncer = new_debouncer(debounce, None, handler)?;
    let watcher = Arc::new(Watcher {
        debouncer: Mutex::new(Some(debouncer)),
        state,
    });
    if let Err(e) = watcher.sync_dirs() {
        watcher.stop();
        return Err(e);
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ctx = Arc::new(Ctx {
        served,
        watcher: watcher.clone(),
        stop: stop_rx,
        quiet: debounce,
        allow_shrink,
    });
    let tasks = triggers
        .iter()
        .zip(resign_at)
        .enumerate()
        .map(|(idx, (trigger, resign_at))| {
            tokio::spawn(worker(ctx.clone(), idx, trigger.clone(), resign_at))
        })
        .collect();
    Ok(Reloader {
        triggers,
        stop: stop_tx,
        tasks,
        watcher,
    })
}

/// Rebuilds zone `idx` whenever its trigger fires or its re-sign time comes.
async fn worker(ctx: Arc<Ctx>, idx: usize, trigger: Arc<Trigger>, resign_at: Option<UnixTime>) {
    let mut stop = ctx.stop.clone();
    let mut deadline = Instant::now() + resign_delay(resign_at, UnixTime::now());
    loop {
        let reason = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = trigger.notify.notified() => ReloadReason::FileChange,
            () = tokio::time::sleep_until(deadline) => ReloadReason::Resign,
        };
        if reason == ReloadReason::FileChange {
            // The debouncer delays each event by the debounce time, but a
            // write spread over longer (a slow `cat`, a key file removed,
            // then created, then filled) arrives as several batches: wait
            // until the files have been quiet for that long, so that one
            // build reads the final files instead of one per batch
            // reading the intermediate states. (A build that still sees one
            // is followed by another: every event after a build started
            // leaves a trigger.)
            // A file written to without pause for longer than
            // MAX_SETTLE is built from anyway (and again when it is quiet).
            let settled_by = Instant::now() + MAX_SETTLE;
            loop {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    () = trigger.notify.notified() => continue,
                    () = tokio::time::sleep(ctx.quiet) => break,
                    () = tokio::time::sleep_until(settled_by) => break,
                }
            }
        }
        // Taken before the rebuild reads the files: a change from now on
        // opens another reload (and leaves a trigger for another rebuild).
        let reload = trigger.take();
        let delay = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            delay = rebuild(&ctx, idx, reason) => delay,
        };
        if reload {
            trigger.gate.end();
        }
        debug!(
            zone = idx,
            seconds = delay.as_secs(),
            "next scheduled rebuild"
        );
        deadline = Instant::now() + delay;
    }
}

/// One rebuild of configuration `idx`; returns how long until the next
/// scheduled one.
async fn rebuild(ctx: &Ctx, idx: usize, reason: ReloadReason) -> Duration {
    let (config, previous, previous_served) = ctx.served.current(idx);
    let job = {
        let config = config.clone();
        let previous = previous.clone();
        let watcher = ctx.watcher.clone();
        let state = ctx.served.state();
        let allow_shrink = ctx.allow_shrink;
        tokio::task::spawn_blocking(move || {
            // Follow the configuration's choice of files even when the build
            // fails, so that creating a missing file is noticed.
            let margin = ZoneConfig::load(&config).ok().map(|c| {
                watcher.set_inputs(idx, c.input_files());
                c.authority.map(|a| a.window.margin())
            });
            let result = prepare(
                &config,
                &previous,
                &previous_served,
                allow_shrink,
                state.as_deref(),
            );
            drop(previous_served);
            (result, margin.flatten())
        })
    };
    let (result, margin) = match job.await {
        Ok(r) => r,
        Err(e) => (
            Err(PrepareError::Failed(format!("build task failed: {e}"))),
            None,
        ),
    };
    let batch = resign_batch(margin);
    let event = |ok, changed, removed, serial, origin, message| ReloadEvent {
        origin,
        config: config.clone(),
        serial,
        ok,
        changed,
        removed,
        reason,
        message,
    };
    // A failure is announced once per configuration, under its first zone.
    let (first_origin, first_serial) = previous
        .zones
        .iter()
        .next()
        .map(|(o, z)| (o.clone(), z.soa.serial))
        .unwrap_or_else(|| (ZoneConfig::many(), 0));
    let failed = |message: String| {
        error!(
            origin = %first_origin,
            config = %config.display(),
            serial = first_serial,
            zones = previous.zones.len(),
            "reload failed, still serving the previous zones: {message}"
        );
        ctx.served.announce(event(
            false,
            false,
            false,
            first_serial,
            first_origin.clone(),
            message,
        ));
        failure_delay(&previous)
    };
    let delay = match result {
        Ok(prepared) if prepared.swaps() => match ctx.served.install(idx, &prepared) {
            Ok(retired) => {
                drop_off_thread(retired);
                log_warnings(&first_origin, &prepared.warnings);
                log_rollover(&first_origin, prepared.rollover.as_ref());
                for zone in &prepared.changed {
                    crate::serve::metrics::metrics().signed(zone);
                    let previous_serial = previous.zones.get(&zone.origin).map(|z| z.soa.serial);
                    info!(
                        origin = %zone.origin,
                        serial = zone.soa.serial,
                        previous_serial = ?previous_serial,
                        records = zone.record_count(),
                        ms = prepared.elapsed.as_millis() as u64,
                        reason = ?reason,
                        "zone reloaded"
                    );
                    if previous_serial != Some(zone.soa.serial) {
                        let zone = zone.clone();
                        tokio::spawn(crate::serve::metrics::notify_secondaries(zone));
                    }
                    let message = format!(
                        "serving serial {} with {} records",
                        zone.soa.serial,
                        zone.record_count()
                    );
                    ctx.served.announce(event(
                        true,
                        true,
                        false,
                        zone.soa.serial,
                        zone.origin.clone(),
                        message,
                    ));
                }
                for (origin, serial) in &prepared.removed {
                    info!(origin = %origin, serial, config = %config.display(), "zone no longer described (its last SII is gone); not served any more");
                    ctx.served.announce(event(
                        true,
                        true,
                        true,
                        *serial,
                        origin.clone(),
                        "no longer served: no SII of the configuration goes to it".into(),
                    ));
                }
                resign_delay(prepared.set.next_resign(), UnixTime::now()).max(batch)
            }
            Err(message) => failed(message),
        },
        Ok(prepared) => {
            if let Some(r) = &prepared.rollover {
                crate::serve::metrics::metrics().rollover(&first_origin, r, false);
            }
            // Re-sign timers repeat the same warnings; a file change may
            // have introduced new ones.
            if reason == ReloadReason::FileChange {
                log_warnings(&first_origin, &prepared.warnings);
            }
            // A rollover step may leave the records as they were (a switch
            // at a moment when no window rolls over: the new key signs
            // nothing yet); it is a step all the same, and the next build
            // compares with this one's ledger, so it is logged now or never.
            log_rollover(&first_origin, prepared.rollover.as_ref());
            for zone in &prepared.unchanged {
                crate::serve::metrics::metrics().signed(zone);
                debug!(
                    origin = %zone.origin,
                    serial = zone.soa.serial,
                    reason = ?reason,
                    "zone rebuilt, content unchanged"
                );
                ctx.served.announce(event(
                    true,
                    false,
                    false,
                    zone.soa.serial,
                    zone.origin.clone(),
                    "content unchanged".into(),
                ));
            }
            if prepared.unchanged.is_empty() {
                // A configuration of many zones none of which needed a
                // build: still one event, so that whoever waits on this
                // rebuild sees it.
                ctx.served.announce(event(
                    true,
                    false,
                    false,
                    first_serial,
                    first_origin.clone(),
                    "content unchanged".into(),
                ));
            }
            let delay = resign_delay(prepared.set.next_resign(), UnixTime::now()).max(batch);
            drop_off_thread(ctx.served.keep(idx, prepared.set));
            delay
        }
        Err(PrepareError::Failed(message)) => failed(message),
        Err(PrepareError::Shrink(refused)) => failed(refused.to_string()),
        Err(PrepareError::Incomplete(e)) => {
            for p in e.incomplete() {
                warn!(
                    origin = %first_origin,
                    serial = first_serial,
                    "{p}; waiting for it to be completed, still serving the previous zones"
                );
            }
            ctx.served.announce(event(
                false,
                false,
                false,
                first_serial,
                first_origin.clone(),
                e.to_string(),
            ));
            failure_delay(&previous)
        }
    };
    drop_off_thread(previous);
    delay
}

/// Frees `value` on the blocking pool (dropping a zone of millions of
/// records takes long enough to delay queries if done on an async thread),
/// then hands the freed memory back to the system.
fn drop_off_thread<T: Send + 'static>(value: T) {
    drop(tokio::task::spawn_blocking(move || {
        drop(value);
        crate::serve::memory::release_free_memory();
    }));
}

/// After a failure: the served zones' own earliest re-sign time, but not
/// sooner than [`FAILURE_RETRY_DELAY`].
fn failure_delay(served: &crate::build::zones::ZoneSet) -> Duration {
    resign_delay(served.next_resign(), UnixTime::now()).max(FAILURE_RETRY_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resign_delay_is_clamped() {
        let now = UnixTime(1_000_000);
        assert_eq!(resign_delay(None, now), MAX_RESIGN_DELAY);
        assert_eq!(resign_delay(Some(now), now), MIN_RESIGN_DELAY);
        assert_eq!(resign_delay(Some(now.minus(50)), now), MIN_RESIGN_DELAY);
        assert_eq!(
            resign_delay(Some(now.plus(90)), now),
            Duration::from_secs(90)
        );
        assert_eq!(resign_delay(Some(now.plus(86_400)), now), MAX_RESIGN_DELAY);
    }

    #[test]
    fn resign_batch_follows_the_margin() {
        assert_eq!(resign_batch(None), MIN_RESIGN_DELAY);
        assert_eq!(resign_batch(Some(1)), MIN_RESIGN_DELAY);
        assert_eq!(resign_batch(Some(40)), Duration::from_secs(10));
        assert_eq!(resign_batch(Some(4 * 86_400)), MAX_RESIGN_BATCH);
    }

    #[test]
    fn normalize_keeps_missing_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let canonical = dir.path().canonicalize().unwrap();
        let via_dots = dir.path().join(".").join("gone.csv");
        assert_eq!(normalize(&via_dots), canonical.join("gone.csv"));
    }
}
