//! `mimi-publisher status`: what an operator's monitoring asks about each
//! zone, and the answer as a monitoring plugin gives it.
//!
//! For every zone of every configuration the report gives the serial, the
//! record counts and the earliest expiry of the published assertions and
//! certificates ([`ZoneFigures`]), the last reload as the server recorded
//! it (`DIR/status.json`, [`crate::zone::status`]), and a list of
//! [`Problem`]s, each with a [`Severity`]. The exit code follows the
//! Nagios/Icinga plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
//! (status itself could not find out: unreadable state directory, bad
//! arguments).
//!
//! The zone comes from where it is published, never from what the inputs
//! would give now: the kept zone `DIR/<origin>.zone` of a server's state
//! directory, or a zone file written by `build --out`. Only with neither is
//! the zone built in memory from the configuration (as `check` does),
//! which signs every mapping: fine for small zones, slow for large ones.
//! A kept zone is read for reporting only (its seal is not checked: this
//! program need not hold the signing key).
//!
//! The rules, each a function below so that it can be tested alone:
//!
//! * critical: an assertion or certificate expired or expiring within
//!   `critical_within`; the configuration does not load (or, built in
//!   memory, does not build); no published zone for it; the last reload
//!   failed and has been failing for `stale_after` or longer; the server
//!   that wrote `status.json` is not running; `status.json` is unreadable;
//! * warning: expiring within `warn_within`; the last reload failed
//!   (recently); an input changed after the published zone was built, more
//!   than [`INPUT_GRACE`] ago (the server does not pick changes up, or
//!   `build` was not run again); a state directory without `status.json`.
//!
//! The per-zone report ([`ZoneReport`]) and [`ProblemCode`] are where
//! further figures and rules go (the key rollover's active key, next step
//! and bundle end): a field, a code and a rule function each.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mimi_proto::{DomainName, UnixTime};
use serde::Serialize;

use crate::build::zones::{build_zones, publishable};
use crate::input::config::ZoneConfig;
use crate::zone::figures::ZoneFigures;
use crate::zone::status::{self as record, ServerInfo, StatusFile, StatusFileError, ZoneStatus};
use crate::zone::{seal, zonefile, Zone};

/// How long after an input changed a zone built before the change is
/// still fine: the server waits for the files to be quiet (at most
/// [`crate::serve::watch::MAX_SETTLE`]) and then builds, which takes a
/// while for a large zone.
pub const INPUT_GRACE: Duration = Duration::from_secs(60);

/// How bad a problem is, in the order of the exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Nothing wrong.
    Ok,
    /// Look at it soon.
    Warning,
    /// Look at it now: clients fail or will fail shortly.
    Critical,
    /// Status could not find out.
    Unknown,
}

impl Severity {
    /// The exit code of a monitoring plugin.
    pub fn exit_code(self) -> u8 {
        match self {
            Severity::Ok => 0,
            Severity::Warning => 1,
            Severity::Critical => 2,
            Severity::Unknown => 3,
        }
    }

    /// The word of a plugin's status line.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Ok => "OK",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
            Severity::Unknown => "UNKNOWN",
        }
    }
}

/// What kind of problem, stable for alerting rules that match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// An assertion has expired or expires soon.
    AssertionExpiry,
    /// A certificate has expired or expires soon.
    CertificateExpiry,
    /// The configuration does not load, or its zone does not build.
    ConfigInvalid,
    /// No published zone was found for the configuration.
    NotPublished,
    /// The published zone file cannot be read.
    ZoneUnreadable,
    /// The last reload failed; the previous zone is still served.
    ReloadFailing,
    /// The server that wrote the status file is not running.
    ServerNotRunning,
    /// The status file cannot be read.
    StatusUnreadable,
    /// An input changed after the published zone was built.
    InputsChanged,
    /// The key bundle runs out soon, or no key of it can sign.
    KeyBundle,
}

/// One thing wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// How bad.
    pub severity: Severity,
    /// What kind.
    pub code: ProblemCode,
    /// In words, with the file and line where there is one (several
    /// problems of a build are one per line).
    pub message: String,
}

impl Problem {
    fn new(severity: Severity, code: ProblemCode, message: impl Into<String>) -> Problem {
        Problem {
            severity,
            code,
            message: message.into(),
        }
    }
}

/// A moment, as Unix seconds and RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Time {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub unix: u64,
    /// The same in RFC 3339 (UTC).
    pub rfc3339: String,
}

impl Time {
    /// `t` (clamped to 9999-12-31T23:59:59Z, the last moment RFC 3339
    /// can write).
    pub fn of(t: UnixTime) -> Time {
        let unix = t.secs().min(UnixTime::MAX_RECORD.secs());
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(unix);
        Time {
            unix,
            rfc3339: humantime::format_rfc3339_seconds(at).to_string(),
        }
    }
}

/// An expiry and how far away it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expiry {
    /// When.
    pub at: Time,
    /// Seconds from the report's `now` (negative: already expired).
    pub in_seconds: i64,
}

impl Expiry {
    fn of(at: UnixTime, now: UnixTime) -> Expiry {
        Expiry {
            at: Time::of(at),
            in_seconds: seconds_between(now, at),
        }
    }
}

/// `to - from` in seconds, saturating.
fn seconds_between(from: UnixTime, to: UnixTime) -> i64 {
    let d = i128::from(to.secs()) - i128::from(from.secs());
    d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The last reload of a zone, as the server recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// When the last attempt ended.
    pub at: Time,
    /// What triggered it: `start`, `file_change` or `resign`.
    pub trigger: record::Trigger,
    /// `installed`, `unchanged` or `failed`.
    pub outcome: &'static str,
    /// The serial served after it.
    pub serial: u32,
    /// Why it failed (every problem, `file:line: message`, one per line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When an attempt last succeeded.
    pub last_success: Option<Time>,
    /// Failed attempts since then.
    pub consecutive_failures: u32,
    /// Since when it has been failing.
    pub failing_since: Option<Time>,
    /// The last successful re-sign.
    pub last_resign: Option<Time>,
}

impl ReloadReport {
    fn of(s: &ZoneStatus) -> ReloadReport {
        let (outcome, error) = match &s.last_attempt.outcome {
            record::Outcome::Installed { .. } => ("installed", None),
            record::Outcome::Unchanged { .. } => ("unchanged", None),
            record::Outcome::Failed { error, .. } => ("failed", Some(error.clone())),
        };
        ReloadReport {
            at: Time::of(s.last_attempt.at),
            trigger: s.last_attempt.trigger,
            outcome,
            serial: s.last_attempt.outcome.serial(),
            error,
            last_success: s.last_success.map(Time::of),
            consecutive_failures: s.consecutive_failures,
            failing_since: s.failing_since.map(Time::of),
            last_resign: s.last_resign.map(Time::of),
        }
    }
}

/// Where a zone's report comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A server's state directory.
    StateDir,
    /// A zone file written by `build --out`.
    ZoneFile,
    /// Built in memory from the configuration.
    Built,
}

/// Everything reported about one zone.
///
/// The key rollover's figures (active key, next step and its time, when
/// the key bundle runs out) belong here, next to the expiries, with their
/// rules in [`zone_problems`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZoneReport {
    /// The origin; `None` when the configuration does not say (it does not
    /// load).
    pub origin: Option<String>,
    /// The configuration file.
    pub config: PathBuf,
    /// Where the zone was read from.
    pub source: SourceKind,
    /// The zone file read, if any.
    pub file: Option<PathBuf>,
    /// The counts and expiries, if a zone was found.
    pub figures: Option<ZoneFigures>,
    /// The earliest expiry of a published assertion.
    pub assertion_expiry: Option<Expiry>,
    /// The earliest expiry of a published certificate.
    pub certificate_expiry: Option<Expiry>,
    /// The last reload, if a server recorded one.
    pub last_reload: Option<ReloadReport>,
    /// With a key bundle: where its rollover stands.
    pub rollover: Option<RolloverStatus>,
    /// The worst of `problems`.
    pub status: Severity,
    /// What is wrong.
    pub problems: Vec<Problem>,
}

/// Where a zone's key rollover stands (see `crate::build::rollover`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloverStatus {
    /// The key that signs.
    pub active_key: String,
    /// Its certificate's window.
    pub active_until: Time,
    /// The keys whose certificates are published.
    pub published: Vec<String>,
    /// The next step the server takes by itself.
    pub next_step: Option<RolloverStep>,
    /// When the bundle runs out (its last certificate's end less the
    /// re-sign margin).
    pub bundle_runs_out: Expiry,
}

/// A scheduled rollover step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloverStep {
    /// When.
    pub at: Time,
    /// What.
    pub what: String,
}

/// The rollover of `config` at `now` from the zone as `served`, with its
/// problems: the bundle's own warnings (running out within its
/// `bundle_warning`, degraded signing) are warnings, running out within
/// `critical_within` or no key able to sign is critical.
pub fn rollover_status(
    config: &ZoneConfig,
    served: Option<&crate::zone::Zone>,
    now: UnixTime,
    t: &Thresholds,
) -> (Option<RolloverStatus>, Vec<Problem>) {
    match crate::build::rollover::status(config, served, now) {
        Ok(None) => (None, Vec::new()),
        Ok(Some((r, warnings))) => {
            let runs_out = Expiry::of(r.runs_out, now);
            let mut problems: Vec<Problem> = Vec::new();
            if runs_out.in_seconds <= t.critical_within.as_secs() as i64 {
                problems.push(Problem::new(
                    Severity::Critical,
                    ProblemCode::KeyBundle,
                    format!(
                        "the key bundle {} runs out at {}: hold a key ceremony now",
                        r.bundle.display(),
                        runs_out.at.rfc3339
                    ),
                ));
            }
            problems.extend(
                warnings.iter().map(|w| {
                    Problem::new(Severity::Warning, ProblemCode::KeyBundle, w.to_string())
                }),
            );
            let status = RolloverStatus {
                active_key: r.active.to_string(),
                active_until: Time::of(r.active_window.1),
                published: r.published.iter().map(ToString::to_string).collect(),
                next_step: r.next.as_ref().map(|n| RolloverStep {
                    at: Time::of(n.at),
                    what: n.what.clone(),
                }),
                bundle_runs_out: runs_out,
            };
            (Some(status), problems)
        }
        Err(errors) => (
            None,
            errors
                .iter()
                .map(|e| Problem::new(Severity::Critical, ProblemCode::KeyBundle, e.to_string()))
                .collect(),
        ),
    }
}

/// The server that wrote the status file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerReport {
    /// Its pid.
    pub pid: u32,
    /// When it started.
    pub started: Time,
    /// Whether it runs now.
    pub running: bool,
    /// The status file.
    pub status_file: PathBuf,
    /// When the server last wrote it.
    pub written: Time,
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The worst severity of all problems.
    pub status: Severity,
    /// The exit code for it.
    pub exit: u8,
    /// The time the report is for.
    pub now: Time,
    /// One per zone (a configuration of many zones gives several).
    pub zones: Vec<ZoneReport>,
    /// The server, when a state directory holds a status file.
    pub server: Option<ServerReport>,
    /// Problems not of one zone (the server, the status file).
    pub problems: Vec<Problem>,
    /// The thresholds applied, in seconds.
    pub thresholds: ThresholdSeconds,
}

/// [`Thresholds`] as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ThresholdSeconds {
    /// `--warn-within`.
    pub warn_within: u64,
    /// `--critical-within`.
    pub critical_within: u64,
    /// `--assertion-warn-within`.
    pub assertion_warn_within: u64,
    /// `--assertion-critical-within`.
    pub assertion_critical_within: u64,
    /// `--stale-after`.
    pub stale_after: u64,
}

/// When a problem becomes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// A certificate expiring within this is a warning (the key bundle
    /// running out too).
    pub warn_within: Duration,
    /// A certificate expiring within this (or expired) is critical (the
    /// key bundle running out too).
    pub critical_within: Duration,
    /// An assertion expiring within this is a warning. Lower than for
    /// certificates: the publisher keeps every assertion at least the
    /// re-sign margin (default 4 days) from its end, so with the default
    /// 14-day validity a healthy zone's earliest assertion always has 4 to
    /// 5 days left; within 2 days, re-signing has fallen behind.
    pub assertion_warn_within: Duration,
    /// An assertion expiring within this (or expired) is critical.
    pub assertion_critical_within: Duration,
    /// A reload failing for this long or longer is critical.
    pub stale_after: Duration,
}

impl Default for Thresholds {
    /// Certificates 7 days and 2 days, assertions 2 days and 1 day,
    /// reloads 1 hour.
    fn default() -> Self {
        Thresholds {
            warn_within: Duration::from_secs(7 * 86_400),
            critical_within: Duration::from_secs(2 * 86_400),
            assertion_warn_within: Duration::from_secs(2 * 86_400),
            assertion_critical_within: Duration::from_secs(86_400),
            stale_after: Duration::from_secs(3600),
        }
    }
}

/// Where the zones are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A server's `--state-dir`: `DIR/<origin>.zone` and `DIR/status.json`.
    StateDir(PathBuf),
    /// What `build --out FILE` wrote (a directory for a configuration of
    /// many zones). One configuration only.
    ZoneFile(PathBuf),
    /// Build each zone in memory, as `check` does.
    Build,
}

/// Why status cannot tell (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The state directory cannot be read.
    #[error("state directory {}: {source}", dir.display())]
    StateDir {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `--zone-file` names one zone file for several configurations.
    #[error("--zone-file is what `build --out` wrote for one configuration; {0} were given")]
    ZoneFileForMany(usize),
}

/// Reports on every zone of `configs` as of `now`.
pub fn report(
    configs: &[PathBuf],
    source: &Source,
    now: UnixTime,
    thresholds: &Thresholds,
) -> Result<Report, StatusError> {
    if matches!(source, Source::ZoneFile(_)) && configs.len() != 1 {
        return Err(StatusError::ZoneFileForMany(configs.len()));
    }
    let mut problems = Vec::new();
    let mut server = None;
    let status = match source {
        Source::StateDir(dir) => {
            std::fs::read_dir(dir).map_err(|source| StatusError::StateDir {
                dir: dir.clone(),
                source,
            })?;
            let path = record::path_in(dir);
            match record::read(&path) {
                Ok(s) => {
                    let running = server_running(&s.server);
                    problems.extend(server_problem(&s.server, running, &path));
                    server = Some(ServerReport {
                        pid: s.server.pid,
                        started: Time::of(s.server.started),
                        running,
                        status_file: path,
                        written: Time::of(s.written),
                    });
                    Some(s)
                }
                Err(e @ StatusFileError::Missing { .. }) => {
                    problems.push(Problem::new(
                        Severity::Warning,
                        ProblemCode::StatusUnreadable,
                        format!("{e}: the last reloads are unknown"),
                    ));
                    None
                }
                Err(e) => {
                    problems.push(Problem::new(
                        Severity::Critical,
                        ProblemCode::StatusUnreadable,
                        e.to_string(),
                    ));
                    None
                }
            }
        }
        _ => None,
    };
    let mut zones = Vec::new();
    for c in configs {
        zones.extend(config_reports(c, source, status.as_ref(), now, thresholds));
    }
    let worst = zones
        .iter()
        .map(|z| z.status)
        .chain(problems.iter().map(|p| p.severity))
        .max()
        .unwrap_or(Severity::Ok);
    Ok(Report {
        status: worst,
        exit: worst.exit_code(),
        now: Time::of(now),
        zones,
        server,
        problems,
        thresholds: ThresholdSeconds {
            warn_within: thresholds.warn_within.as_secs(),
            critical_within: thresholds.critical_within.as_secs(),
            assertion_warn_within: thresholds.assertion_warn_within.as_secs(),
            assertion_critical_within: thresholds.assertion_critical_within.as_secs(),
            stale_after: thresholds.stale_after.as_secs(),
        },
    })
}

/// A zone found for a configuration: its origin, and the zone or why
/// there is none.
struct Found {
    origin: DomainName,
    file: Option<PathBuf>,
    zone: Result<Zone, Problem>,
    /// When the file was written (its modification time).
    written: Option<UnixTime>,
}

/// The reports of the zones of configuration `path`.
fn config_reports(
    path: &Path,
    source: &Source,
    status: Option<&StatusFile>,
    now: UnixTime,
    thresholds: &Thresholds,
) -> Vec<ZoneReport> {
    let kind = match source {
        Source::StateDir(_) => SourceKind::StateDir,
        Source::ZoneFile(_) => SourceKind::ZoneFile,
        Source::Build => SourceKind::Built,
    };
    let bare = |origin: Option<String>, problems: Vec<Problem>| {
        let status = worst(&problems);
        ZoneReport {
            origin,
            config: path.to_owned(),
            source: kind,
            file: None,
            figures: None,
            assertion_expiry: None,
            certificate_expiry: None,
            last_reload: None,
            rollover: None,
            status,
            problems,
        }
    };
    let config = match ZoneConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            return vec![bare(
                None,
                vec![Problem::new(
                    Severity::Critical,
                    ProblemCode::ConfigInvalid,
                    e.to_string(),
                )],
            )]
        }
    };
    let found: Vec<Found> = match source {
        Source::StateDir(dir) => in_directory(dir, &config),
        Source::ZoneFile(file) if config.is_many() => in_directory(file, &config),
        Source::ZoneFile(file) => vec![read_zone(config.origin.clone(), file)],
        Source::Build => match build_zones(&config, now, &Default::default(), None) {
            Ok(out) => out
                .set
                .zones
                .into_iter()
                .map(|(origin, zone)| Found {
                    origin,
                    file: None,
                    zone: Ok((*zone).clone()),
                    written: None,
                })
                .collect(),
            Err(e) => {
                let origin = (!config.is_many()).then(|| config.origin.as_str().to_owned());
                let problems = e
                    .problems
                    .iter()
                    .map(|p| {
                        Problem::new(
                            Severity::Critical,
                            ProblemCode::ConfigInvalid,
                            p.to_string(),
                        )
                    })
                    .collect();
                return vec![bare(origin, problems)];
            }
        },
    };
    if found.is_empty() {
        let where_ = match source {
            Source::StateDir(d) | Source::ZoneFile(d) => d.display().to_string(),
            Source::Build => "the build".to_owned(),
        };
        return vec![bare(
            None,
            vec![Problem::new(
                Severity::Critical,
                ProblemCode::NotPublished,
                format!(
                    "{}: no zone of this configuration is in {where_}",
                    path.display()
                ),
            )],
        )];
    }
    let newest_input = newest_input(&config);
    found
        .into_iter()
        .map(|f| {
            let entry = status.and_then(|s| s.zones.get(f.origin.as_str()));
            let mut problems = Vec::new();
            let mut report = bare(Some(f.origin.as_str().to_owned()), Vec::new());
            report.file = f.file.clone();
            report.last_reload = entry.map(ReloadReport::of);
            match &f.zone {
                Ok(zone) => {
                    let figures = ZoneFigures::of(zone);
                    report.assertion_expiry = figures
                        .earliest_assertion_expiry
                        .map(|x| Expiry::of(x, now));
                    report.certificate_expiry = figures
                        .earliest_certificate_expiry
                        .map(|x| Expiry::of(x, now));
                    problems.extend(zone_problems(&figures, now, thresholds));
                    report.figures = Some(figures);
                }
                Err(p) => problems.push(p.clone()),
            }
            if !config.is_many() {
                let (rollover, p) = rollover_status(&config, f.zone.as_ref().ok(), now, thresholds);
                report.rollover = rollover;
                problems.extend(p);
            }
            if let Some(entry) = entry {
                problems.extend(reload_problem(entry, now, thresholds.stale_after));
            }
            // What the published zone was last built from: the server's
            // last attempt (a rebuild with unchanged content does not
            // rewrite the file), else the file's own time.
            let built = entry.map(|e| e.last_attempt.at).or(f.written);
            if let (Some(built), Some((input, changed))) = (built, &newest_input) {
                problems.extend(inputs_problem(input, *changed, built, now, kind));
            }
            report.status = worst(&problems);
            report.problems = problems;
            report
        })
        .collect()
}

fn worst(problems: &[Problem]) -> Severity {
    problems
        .iter()
        .map(|p| p.severity)
        .max()
        .unwrap_or(Severity::Ok)
}

/// The zones of `config` kept as `<origin>.zone` in `dir`: its one zone,
/// or for a configuration of many zones every one it could describe.
fn in_directory(dir: &Path, config: &ZoneConfig) -> Vec<Found> {
    if !config.is_many() {
        let origin = config.origin.clone();
        return vec![read_zone(
            origin.clone(),
            &dir.join(format!("{}.zone", origin.as_str())),
        )];
    }
    let ours = publishable(config);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut origins: Vec<DomainName> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            DomainName::parse_canonical(name.strip_suffix(".zone")?).ok()
        })
        .filter(|o| ours(o))
        .collect();
    origins.sort();
    origins
        .into_iter()
        .map(|o| {
            let path = dir.join(format!("{}.zone", o.as_str()));
            read_zone(o, &path)
        })
        .collect()
}

/// The zone for `origin` in the zone file `path`.
fn read_zone(origin: DomainName, path: &Path) -> Found {
    let written = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(unix_of);
    let zone = match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Problem::new(
            Severity::Critical,
            ProblemCode::NotPublished,
            format!(
                "{}: no such file: zone {origin} is not published",
                path.display()
            ),
        )),
        Err(e) => Err(Problem::new(
            Severity::Critical,
            ProblemCode::ZoneUnreadable,
            format!("{}: {e}", path.display()),
        )),
        Ok(text) => match zonefile::parse(seal::body(&text)) {
            Ok(z) if z.origin == origin => Ok(z),
            Ok(z) => Err(Problem::new(
                Severity::Critical,
                ProblemCode::ZoneUnreadable,
                format!("{}: a zone for {}, not {origin}", path.display(), z.origin),
            )),
            Err(e) => Err(Problem::new(
                Severity::Critical,
                ProblemCode::ZoneUnreadable,
                format!("{}:{}: {}", path.display(), e.line, e.message),
            )),
        },
    };
    Found {
        origin,
        file: Some(path.to_owned()),
        zone,
        written,
    }
}

fn unix_of(t: SystemTime) -> UnixTime {
    UnixTime(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// The input of `config` changed last, and when (missing files are not
/// inputs that changed: the build reports them).
fn newest_input(config: &ZoneConfig) -> Option<(PathBuf, UnixTime)> {
    config
        .input_files()
        .into_iter()
        .filter_map(|f| {
            let t = std::fs::metadata(&f).and_then(|m| m.modified()).ok()?;
            Some((f, unix_of(t)))
        })
        .max_by_key(|(_, t)| *t)
}

/// The expiry rules of one zone.
pub fn zone_problems(figures: &ZoneFigures, now: UnixTime, t: &Thresholds) -> Vec<Problem> {
    let mut v = Vec::new();
    if let Some(x) = figures.earliest_assertion_expiry {
        let assertions = Thresholds {
            warn_within: t.assertion_warn_within,
            critical_within: t.assertion_critical_within,
            ..*t
        };
        v.extend(expiry_problem(
            "assertion",
            ProblemCode::AssertionExpiry,
            x,
            now,
            &assertions,
        ));
    }
    if let Some(x) = figures.earliest_certificate_expiry {
        v.extend(expiry_problem(
            "certificate",
            ProblemCode::CertificateExpiry,
            x,
            now,
            t,
        ));
    }
    v
}

/// An expiry at `x` of the earliest `what`: critical when past or within
/// `critical_within`, a warning within `warn_within`.
pub fn expiry_problem(
    what: &str,
    code: ProblemCode,
    x: UnixTime,
    now: UnixTime,
    t: &Thresholds,
) -> Option<Problem> {
    let left = seconds_between(now, x);
    let at = Time::of(x).rfc3339;
    let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    if left <= 0 {
        return Some(Problem::new(
            Severity::Critical,
            code,
            format!(
                "{article} {what} expired {} ago ({at}): clients reject it",
                human(-left)
            ),
        ));
    }
    let within = |d: Duration| i128::from(left) <= i128::from(d.as_secs());
    let severity = if within(t.critical_within) {
        Severity::Critical
    } else if within(t.warn_within) {
        Severity::Warning
    } else {
        return None;
    };
    Some(Problem::new(
        severity,
        code,
        format!("{article} {what} expires in {} ({at})", human(left)),
    ))
}

/// A failed last reload: a warning, critical once it has been failing for
/// `stale_after`.
pub fn reload_problem(z: &ZoneStatus, now: UnixTime, stale_after: Duration) -> Option<Problem> {
    let record::Outcome::Failed { serial, error } = &z.last_attempt.outcome else {
        return None;
    };
    let since = z.failing_since.unwrap_or(z.last_attempt.at);
    let failing = seconds_between(since, now).max(0);
    let severity = if i128::from(failing) >= i128::from(stale_after.as_secs()) {
        Severity::Critical
    } else {
        Severity::Warning
    };
    Some(Problem::new(
        severity,
        ProblemCode::ReloadFailing,
        format!(
            "reload failing for {} ({} attempt(s) since {}), still serving serial {serial}:\n{error}",
            human(failing),
            z.consecutive_failures,
            Time::of(since).rfc3339
        ),
    ))
}

/// Whether the process of `info` runs: `/proc/<pid>` exists (readable by
/// any user) and, where both are known, has the recorded start time (a
/// pid reused by another process has another one).
pub fn server_running(info: &ServerInfo) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{}", info.pid));
    if !proc_dir.exists() {
        return false;
    }
    match (info.proc_start_ticks, record::proc_start_ticks(info.pid)) {
        (Some(recorded), Some(now)) => recorded == now,
        _ => true,
    }
}

/// The server that wrote `status` (at `path`) is not `running`: critical,
/// nothing answers or re-signs.
pub fn server_problem(info: &ServerInfo, running: bool, path: &Path) -> Option<Problem> {
    (!running).then(|| {
        Problem::new(
            Severity::Critical,
            ProblemCode::ServerNotRunning,
            format!(
                "the server that wrote {} (pid {}, started {}) is not running: nothing re-signs its zones",
                path.display(),
                info.pid,
                Time::of(info.started).rfc3339
            ),
        )
    })
}

/// Input `input` changed at `changed`, after the published zone was built
/// at `built`, and long enough ago ([`INPUT_GRACE`]) that it should have
/// been picked up: a warning.
pub fn inputs_problem(
    input: &Path,
    changed: UnixTime,
    built: UnixTime,
    now: UnixTime,
    kind: SourceKind,
) -> Option<Problem> {
    let grace = INPUT_GRACE.as_secs();
    if changed.secs() <= built.secs().saturating_add(grace)
        || now.secs() <= changed.secs().saturating_add(grace)
    {
        return None;
    }
    let hint = match kind {
        SourceKind::StateDir => "the server does not pick changes up",
        SourceKind::ZoneFile => "run build again",
        SourceKind::Built => return None,
    };
    Some(Problem::new(
        Severity::Warning,
        ProblemCode::InputsChanged,
        format!(
            "{} changed at {}, {} after the published zone was built ({}): {hint}",
            input.display(),
            Time::of(changed).rfc3339,
            human(seconds_between(built, changed)),
            Time::of(built).rfc3339
        ),
    ))
}

/// A duration for people: the two largest units (`9d 4h`, `3h 12m`,
/// `42s`).
pub fn human(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let sign = if secs < 0 { "-" } else { "" };
    let (d, h, m, r) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let text = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {r}s")
    } else {
        format!("{r}s")
    };
    format!("{sign}{text}")
}

impl Report {
    /// The report as a monitoring plugin prints it: the status line with
    /// performance data after `|`, then one line per zone and one per
    /// problem.
    pub fn text(&self) -> String {
        let mut out = format!("MIMI {} - {}", self.status.word(), self.summary());
        let perf = self.perfdata();
        if !perf.is_empty() {
            out.push_str(" | ");
            out.push_str(&perf);
        }
        out.push('\n');
        for p in &self.problems {
            push_problem(&mut out, "", p);
        }
        for z in &self.zones {
            out.push_str(&zone_line(z));
            out.push('\n');
            for p in &z.problems {
                push_problem(&mut out, "  ", p);
            }
        }
        out
    }

    fn summary(&self) -> String {
        let n = self.zones.len();
        let zones = if n == 1 {
            "1 zone".to_owned()
        } else {
            format!("{n} zones")
        };
        let all: Vec<&Problem> = self
            .problems
            .iter()
            .chain(self.zones.iter().flat_map(|z| z.problems.iter()))
            .collect();
        if let Some(first) = all.iter().find(|p| p.severity == self.status) {
            let count = |s| all.iter().filter(|p| p.severity == s).count();
            let (c, w) = (count(Severity::Critical), count(Severity::Warning));
            let head = first.message.lines().next().unwrap_or_default();
            let zone = self
                .zones
                .iter()
                .find(|z| z.problems.iter().any(|p| std::ptr::eq(p, *first)))
                .and_then(|z| z.origin.as_deref());
            let zone = zone.map(|o| format!("{o}: ")).unwrap_or_default();
            return format!("{zones}, {c} critical, {w} warning: {zone}{head}");
        }
        match self.earliest() {
            Some(e) => format!("{zones}, earliest expiry in {}", human(e)),
            None => format!("{zones}, nothing expires"),
        }
    }

    /// Seconds until the earliest expiry of any zone.
    fn earliest(&self) -> Option<i64> {
        self.zones.iter().filter_map(zone_earliest).min()
    }

    fn perfdata(&self) -> String {
        let t = self.thresholds;
        let mut v = Vec::new();
        for z in &self.zones {
            let (Some(o), Some(f)) = (&z.origin, &z.figures) else {
                continue;
            };
            v.push(format!("'{o} serial'={}", f.serial));
            v.push(format!("'{o} records'={};;;0", f.records));
            v.push(format!("'{o} assertions'={};;;0", f.assertions));
            v.push(format!("'{o} certificates'={};;;0", f.certificates));
            // Ranges "N:" alert below N (plugin guidelines).
            if let Some(e) = &z.assertion_expiry {
                v.push(format!(
                    "'{o} assertion expiry'={}s;{}:;{}:",
                    e.in_seconds, t.assertion_warn_within, t.assertion_critical_within
                ));
            }
            if let Some(e) = &z.certificate_expiry {
                v.push(format!(
                    "'{o} certificate expiry'={}s;{}:;{}:",
                    e.in_seconds, t.warn_within, t.critical_within
                ));
            }
        }
        v.join(" ")
    }
}

fn zone_earliest(z: &ZoneReport) -> Option<i64> {
    [&z.assertion_expiry, &z.certificate_expiry]
        .into_iter()
        .flatten()
        .map(|e| e.in_seconds)
        .min()
}

fn push_problem(out: &mut String, indent: &str, p: &Problem) {
    let mut lines = p.message.lines();
    out.push_str(&format!(
        "{indent}{}: {}\n",
        p.severity.word(),
        lines.next().unwrap_or_default()
    ));
    for l in lines {
        out.push_str(&format!("{indent}    {l}\n"));
    }
}

fn zone_line(z: &ZoneReport) -> String {
    let name = z.origin.as_deref().unwrap_or("(unknown zone)");
    let mut s = format!("{name} ({}): {}", z.config.display(), z.status.word());
    if let Some(f) = &z.figures {
        s.push_str(&format!(
            ", serial {}, {} records ({} assertions, {} certificates)",
            f.serial, f.records, f.assertions, f.certificates
        ));
    }
    for (what, e) in [
        ("assertions", &z.assertion_expiry),
        ("certificates", &z.certificate_expiry),
    ] {
        if let Some(e) = e {
            s.push_str(&format!(
                ", {what} expire {} ({})",
                if e.in_seconds > 0 {
                    format!("in {}", human(e.in_seconds))
                } else {
                    format!("{} ago", human(-e.in_seconds))
                },
                e.at.rfc3339
            ));
        }
    }
    if let Some(r) = &z.last_reload {
        s.push_str(&format!(
            ", last reload {} at {} ({})",
            r.outcome,
            r.at.rfc3339,
            match r.trigger {
                record::Trigger::Start => "start",
                record::Trigger::FileChange => "file change",
                record::Trigger::Resign => "re-sign",
            }
        ));
    }
    if let Some(r) = &z.rollover {
        s.push_str(&format!(
            ", signing key {} (certified until {})",
            r.active_key, r.active_until.rfc3339
        ));
        if let Some(n) = &r.next_step {
            s.push_str(&format!(
                ", next rollover step at {}: {}",
                n.at.rfc3339, n.what
            ));
        }
        s.push_str(&format!(
            ", key bundle runs out {}",
            r.bundle_runs_out.at.rfc3339
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::status::{Attempt, Outcome, Trigger};

    const DAY: u64 = 86_400;
    const NOW: UnixTime = UnixTime(1_800_000_000);

    fn severity_of(p: Option<Problem>) -> Severity {
        p.map_or(Severity::Ok, |p| p.severity)
    }

    #[test]
    fn expiry_severity_follows_the_thresholds() {
        let t = Thresholds::default();
        let at = |secs: i64| {
            let x = UnixTime((NOW.secs() as i64 + secs) as u64);
            severity_of(expiry_problem(
                "assertion",
                ProblemCode::AssertionExpiry,
                x,
                NOW,
                &t,
            ))
        };
        let d = DAY as i64;
        assert_eq!(at(-d), Severity::Critical);
        assert_eq!(at(0), Severity::Critical);
        assert_eq!(at(2 * d), Severity::Critical);
        assert_eq!(at(2 * d + 1), Severity::Warning);
        assert_eq!(at(7 * d), Severity::Warning);
        assert_eq!(at(7 * d + 1), Severity::Ok);
        let p = expiry_problem(
            "certificate",
            ProblemCode::CertificateExpiry,
            NOW.minus(DAY + 3600),
            NOW,
            &t,
        )
        .unwrap();
        assert!(
            p.message.starts_with("a certificate expired 1d 1h ago ("),
            "{}",
            p.message
        );
        // The most distant times do not overflow or panic.
        let far = expiry_problem(
            "assertion",
            ProblemCode::AssertionExpiry,
            UnixTime(u64::MAX),
            UnixTime(0),
            &t,
        );
        assert_eq!(severity_of(far), Severity::Ok);
    }

    fn failing(since: u64, last: u64) -> ZoneStatus {
        let mut z = ZoneStatus::first(
            "zone.toml".into(),
            Attempt {
                at: UnixTime(since - 10),
                trigger: Trigger::Start,
                outcome: Outcome::Installed { serial: 3 },
            },
        );
        for at in [since, last] {
            z.note(Attempt {
                at: UnixTime(at),
                trigger: Trigger::FileChange,
                outcome: Outcome::Failed {
                    serial: 3,
                    error: "m.csv:3: not an SII".into(),
                },
            });
        }
        z
    }

    #[test]
    fn a_failing_reload_is_a_warning_until_stale() {
        let hour = Duration::from_secs(3600);
        let z = failing(NOW.secs() - 1800, NOW.secs() - 60);
        let p = reload_problem(&z, NOW, hour).unwrap();
        assert_eq!(p.severity, Severity::Warning);
        assert!(
            p.message.contains("failing for 30m 0s (2 attempt(s)"),
            "{}",
            p.message
        );
        assert!(
            p.message.ends_with("serial 3:\nm.csv:3: not an SII"),
            "{}",
            p.message
        );
        let z = failing(NOW.secs() - 3600, NOW.secs() - 60);
        assert_eq!(
            severity_of(reload_problem(&z, NOW, hour)),
            Severity::Critical
        );
        assert_eq!(
            severity_of(reload_problem(&z, NOW, Duration::ZERO)),
            Severity::Critical
        );
        // A success since clears it.
        let mut z = z;
        z.note(Attempt {
            at: NOW,
            trigger: Trigger::Resign,
            outcome: Outcome::Unchanged { serial: 3 },
        });
        assert_eq!(reload_problem(&z, NOW, hour), None);
    }

    #[test]
    fn changed_inputs_warn_only_after_the_grace() {
        let g = INPUT_GRACE.as_secs();
        let f = Path::new("m.csv");
        let built = NOW.minus(3600);
        let sev = |changed: UnixTime, now: UnixTime, kind| {
            severity_of(inputs_problem(f, changed, built, now, kind))
        };
        // Changed before (or just after) the build: picked up.
        assert_eq!(sev(built.minus(5), NOW, SourceKind::StateDir), Severity::Ok);
        assert_eq!(sev(built.plus(g), NOW, SourceKind::StateDir), Severity::Ok);
        // Changed well after, long enough ago: not picked up.
        let changed = built.plus(g + 1);
        assert_eq!(sev(changed, NOW, SourceKind::StateDir), Severity::Warning);
        assert_eq!(sev(changed, NOW, SourceKind::ZoneFile), Severity::Warning);
        // Just changed: the server may still be building.
        assert_eq!(
            sev(changed, changed.plus(g), SourceKind::StateDir),
            Severity::Ok
        );
        // Built in memory from the inputs themselves: never stale.
        assert_eq!(sev(changed, NOW, SourceKind::Built), Severity::Ok);
    }

    #[test]
    fn a_server_is_running_only_with_its_own_start_time() {
        let me = std::process::id();
        let ticks = record::proc_start_ticks(me);
        let info = |pid, proc_start_ticks| ServerInfo {
            pid,
            started: NOW,
            proc_start_ticks,
        };
        assert!(server_running(&info(me, ticks)));
        assert!(server_running(&info(me, None)));
        if let Some(t) = ticks {
            // Our pid, but another process's start: a reused pid.
            assert!(!server_running(&info(me, Some(t + 1))));
        }
        assert!(!server_running(&info(u32::MAX, None)));
        let p = server_problem(&info(u32::MAX, None), false, Path::new("s/status.json")).unwrap();
        assert_eq!(
            (p.severity, p.code),
            (Severity::Critical, ProblemCode::ServerNotRunning)
        );
        assert_eq!(server_problem(&info(me, None), true, Path::new("x")), None);
    }

    #[test]
    fn the_worst_problem_sets_the_exit_code() {
        assert_eq!(worst(&[]), Severity::Ok);
        let p = |s| Problem::new(s, ProblemCode::ReloadFailing, "x");
        assert_eq!(worst(&[p(Severity::Warning)]), Severity::Warning);
        assert_eq!(
            worst(&[p(Severity::Warning), p(Severity::Critical)]),
            Severity::Critical
        );
        let codes: Vec<u8> = [
            Severity::Ok,
            Severity::Warning,
            Severity::Critical,
            Severity::Unknown,
        ]
        .iter()
        .map(|s| s.exit_code())
        .collect();
        assert_eq!(codes, [0, 1, 2, 3]);
        assert_eq!(human(9 * DAY as i64 + 4 * 3600 + 59), "9d 4h");
        assert_eq!(human(3 * 3600 + 12 * 60), "3h 12m");
        assert_eq!(human(42), "42s");
        assert_eq!(Time::of(UnixTime(u64::MAX)).rfc3339, "9999-12-31T23:59:59Z");
    }
}
