//! The reload record a server keeps in its state directory
//! (`DIR/status.json`), and its reader.
//!
//! A running server knows things no file shows: that the last rebuild of a
//! zone failed and the previous zone is still served, since when it has
//! been failing, when the zone was last re-signed. Monitoring
//! (`mimi-publisher status`) runs as another process, possibly long after
//! the log lines scrolled away, so the server writes them down after every
//! rebuild attempt; the writer is in `serve` (`serve::status_file`), the
//! type and the reader here, below both the server and the status command.
//!
//! The file is JSON with `"version": 1`. Readers ignore fields they do not
//! know, so later versions of the server may add fields without breaking
//! older monitoring; a change of meaning gets a new version, which this
//! reader refuses by name. It is written atomically (a temporary file in
//! the same directory, flushed, renamed), so a reader sees a whole file or
//! the previous one; anything else (truncated by a full disk, edited by
//! hand) is reported as [`StatusFileError::Garbage`], never a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mimi_proto::UnixTime;
use serde::{Deserialize, Serialize};

/// The name of the file in the state directory.
pub const FILE_NAME: &str = "status.json";

/// The format version this code writes and reads.
pub const VERSION: u32 = 1;

/// The most a reader takes from the file: a record of a million zones is
/// far below it, and a file that is larger is not one we wrote.
pub const MAX_SIZE: u64 = 256 << 20;

/// The whole record: the server that wrote it and one entry per zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusFile {
    /// Always [`VERSION`] when written by this code.
    pub version: u32,
    /// The server process.
    pub server: ServerInfo,
    /// When the file was written.
    pub written: UnixTime,
    /// Per zone origin (presentation form, no trailing dot).
    pub zones: BTreeMap<String, ZoneStatus>,
}

/// Which process wrote the record, so that a reader can tell whether it
/// still runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Its process id.
    pub pid: u32,
    /// When it started (wall clock).
    pub started: UnixTime,
    /// Its start time as the kernel counts it (`/proc/<pid>/stat` field
    /// 22, clock ticks since boot), where known: a pid reused by another
    /// process has another start time, so a reader comparing the two
    /// does not take an unrelated process for the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proc_start_ticks: Option<u64>,
}

/// What triggered a rebuild attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The server's start.
    Start,
    /// An input file changed, or a reload was asked for.
    FileChange,
    /// The re-sign timer.
    Resign,
}

/// How a rebuild attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A zone with new content was installed.
    Installed {
        /// Its serial.
        serial: u32,
    },
    /// The zone was built again with the content already served.
    Unchanged {
        /// The serial served.
        serial: u32,
    },
    /// The rebuild failed; the previous zone is still served.
    Failed {
        /// The serial still served.
        serial: u32,
        /// Every problem, one `file:line: message` per line.
        error: String,
    },
}

impl Outcome {
    /// Whether the attempt succeeded.
    pub fn is_ok(&self) -> bool {
        !matches!(self, Outcome::Failed { .. })
    }

    /// The serial served after the attempt.
    pub fn serial(&self) -> u32 {
        match self {
            Outcome::Installed { serial }
            | Outcome::Unchanged { serial }
            | Outcome::Failed { serial, .. } => *serial,
        }
    }
}

/// One rebuild attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it ended.
    pub at: UnixTime,
    /// What triggered it.
    pub trigger: Trigger,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What the server knows about one zone's rebuilds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneStatus {
    /// The zone's configuration file, as the server was given it.
    pub config: PathBuf,
    /// The last attempt.
    pub last_attempt: Attempt,
    /// When an attempt last succeeded.
    #[serde(default)]
    pub last_success: Option<UnixTime>,
    /// Failed attempts since the last success.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// When the first of those failures happened.
    #[serde(default)]
    pub failing_since: Option<UnixTime>,
    /// The last successful rebuild triggered by the re-sign timer.
    #[serde(default)]
    pub last_resign: Option<UnixTime>,
}

impl ZoneStatus {
    /// The entry of a zone whose first attempt is `attempt`.
    pub fn first(config: PathBuf, attempt: Attempt) -> ZoneStatus {
        let mut s = ZoneStatus {
            config,
            last_attempt: attempt.clone(),
            last_success: None,
            consecutive_failures: 0,
            failing_since: None,
            last_resign: None,
        };
        s.note(attempt);
        s
    }

    /// Records `attempt`, which happened after every one recorded.
    pub fn note(&mut self, attempt: Attempt) {
        if attempt.outcome.is_ok() {
            self.last_success = Some(attempt.at);
            self.consecutive_failures = 0;
            self.failing_since = None;
            if attempt.trigger == Trigger::Resign {
                self.last_resign = Some(attempt.at);
            }
        } else {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            self.failing_since.get_or_insert(attempt.at);
        }
        self.last_attempt = attempt;
    }
}

/// Why a status file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusFileError {
    /// There is none (no server with this state directory wrote one yet).
    #[error("{}: no such file (no server has run with this state directory yet, or an older one)", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// It cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// It is larger than [`MAX_SIZE`].
    #[error("{}: {size} bytes, larger than any status file a server writes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// It is not a status file (truncated, or not JSON of this shape).
    #[error("{}:{line}:{column}: not a readable status file: {message}", path.display())]
    Garbage {
        /// The file.
        path: PathBuf,
        /// Where the reader stopped.
        line: usize,
        /// The column there.
        column: usize,
        /// What it found.
        message: String,
    },
    /// It is of a version this reader does not know.
    #[error("{}: status file version {found}, this program reads version {VERSION}", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
    },
}

/// The status file in state directory `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Reads the status file at `path`.
pub fn read(path: &Path) -> Result<StatusFile, StatusFileError> {
    use std::io::Read;
    let io = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => StatusFileError::Missing {
            path: path.to_owned(),
        },
        _ => StatusFileError::Io {
            path: path.to_owned(),
            source,
        },
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > MAX_SIZE {
        return Err(StatusFileError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    let mut text = String::new();
    file.take(MAX_SIZE + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    parse(&text, path)
}

/// Parses the text of a status file read from `path` (named in errors).
pub fn parse(text: &str, path: &Path) -> Result<StatusFile, StatusFileError> {
    let garbage = |e: serde_json::Error| StatusFileError::Garbage {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    // The version first, so that a newer format is reported as such rather
    // than as whatever field it changed.
    #[derive(Deserialize)]
    struct Versioned {
        version: u64,
    }
    let v: Versioned = serde_json::from_str(text).map_err(garbage)?;
    if v.version != u64::from(VERSION) {
        return Err(StatusFileError::Version {
            path: path.to_owned(),
            found: v.version,
        });
    }
    serde_json::from_str(text).map_err(garbage)
}

/// Writes `status` as the status file of state directory `dir`,
/// atomically and durably (see [`crate::zone::zonefile::write_atomically`]:
/// its temporary files are the ones a server removes at start).
pub fn write(dir: &Path, status: &StatusFile) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(status).map_err(std::io::Error::other)?;
    text.push('\n');
    crate::zone::zonefile::write_atomically(&path_in(dir), &text)
}

/// The start time of process `pid` in clock ticks since boot
/// (`/proc/<pid>/stat` field 22), or `None` where there is no such file
/// (no such process, or not Linux).
pub fn proc_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything,
    // spaces and parentheses included: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields 3.. follow; starttime is field 22, the 20th of them.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(at: u64, trigger: Trigger, outcome: Outcome) -> Attempt {
        Attempt {
            at: UnixTime(at),
            trigger,
            outcome,
        }
    }

    fn failed(serial: u32) -> Outcome {
        Outcome::Failed {
            serial,
            error: "m.csv:2: not an SII".into(),
        }
    }

    #[test]
    fn failures_are_counted_from_the_first_until_a_success() {
        let mut s = ZoneStatus::first(
            "zone.toml".into(),
            attempt(100, Trigger::Start, Outcome::Installed { serial: 1 }),
        );
        assert_eq!(s.last_success, Some(UnixTime(100)));
        s.note(attempt(200, Trigger::FileChange, failed(1)));
        s.note(attempt(300, Trigger::Resign, failed(1)));
        assert_eq!(s.consecutive_failures, 2);
        assert_eq!(s.failing_since, Some(UnixTime(200)));
        assert_eq!(s.last_success, Some(UnixTime(100)));
        assert_eq!(s.last_resign, None);
        s.note(attempt(
            400,
            Trigger::Resign,
            Outcome::Unchanged { serial: 1 },
        ));
        assert_eq!(s.consecutive_failures, 0);
        assert_eq!(s.failing_since, None);
        assert_eq!(s.last_resign, Some(UnixTime(400)));
    }

    #[test]
    fn round_trips_ignores_unknown_fields_and_names_garbage() {
        let mut zones = BTreeMap::new();
        zones.insert(
            "example.com".to_owned(),
            ZoneStatus::first(
                "zone.toml".into(),
                attempt(100, Trigger::FileChange, failed(7)),
            ),
        );
        let status = StatusFile {
            version: VERSION,
            server: ServerInfo {
                pid: 42,
                started: UnixTime(90),
                proc_start_ticks: Some(1234),
            },
            written: UnixTime(101),
            zones,
        };
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &status).unwrap();
        let path = path_in(dir.path());
        assert_eq!(read(&path).unwrap(), status);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"outcome\": \"failed\""), "{text}");
        // A later writer's extra fields are ignored.
        let extended = text.replacen('{', "{\"future\": [1, 2],", 1);
        assert_eq!(parse(&extended, &path).unwrap(), status);
        // Every truncation is an error naming the file, never a panic.
        for cut in 0..text.len() - 2 {
            match parse(&text[..cut], &path) {
                Err(StatusFileError::Garbage { .. }) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        let e = parse("{\"version\": 2}", &path).unwrap_err();
        assert!(e.to_string().contains("version 2"), "{e}");
        assert!(matches!(
            read(&dir.path().join("none")),
            Err(StatusFileError::Missing { .. })
        ));
    }

    #[test]
    fn reads_our_own_start_time() {
        let me = std::process::id();
        if std::path::Path::new("/proc/self/stat").exists() {
            let a = proc_start_ticks(me).unwrap();
            assert_eq!(proc_start_ticks(me), Some(a));
        }
        assert_eq!(proc_start_ticks(u32::MAX), None);
    }
}
