//! What a zone remembers about its authority's key rollover: since when
//! each certificate has been published, until when assertions signed by
//! each key may still be in use, and which key signs now.
//!
//! A rollover is safe only if the publisher knows history the zone's
//! records do not show: a certificate must have been *published* for the
//! certificate TTL plus a propagation delay before its key signs anything
//! (resolvers may hold the certificate set without it until then), and a
//! retired key's certificate must stay until the last assertion it signed
//! has expired. The ledger is that history. It travels with the zone (a
//! rebuild takes the previous zone's ledger and returns the next one), and
//! is written into the zone file as comment lines, so that a restart from
//! the state directory (`serve --state-dir`) or a later `build --out` of
//! the same file continues the rollover where it was. The zone file's seal
//! covers them like the records.
//!
//! ```text
//! ; mimi-rollover active 0123456789abcdef
//! ; mimi-rollover key 0123456789abcdef published 1764547200 signed-until 1765756800
//! ```

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use mimi_proto::{KeyId, UnixTime};

/// What starts a ledger line in a zone file.
pub(crate) const PREFIX: &str = "; mimi-rollover ";

/// One key's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct KeyHistory {
    /// When a zone holding this key's certificate was first published.
    pub published: Option<UnixTime>,
    /// No assertion signed by this key expires later than this.
    pub signed_until: Option<UnixTime>,
}

/// The rollover history of a zone (empty for a zone without a key bundle).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Ledger {
    /// The key that signed the zone's newest assertions.
    pub active: Option<KeyId>,
    /// Per key id.
    pub keys: BTreeMap<KeyId, KeyHistory>,
}

impl Ledger {
    /// Whether there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.active.is_none() && self.keys.is_empty()
    }

    /// Whether `other` records the same steps: the same active key and the
    /// same certificates with the same first publication. Only the
    /// `signed_until` bounds may differ, and an older bound still holds
    /// for the assertions of a zone file written with it (they were all
    /// signed before it was written), so such a zone need not be written
    /// again.
    pub fn same_steps(&self, other: &Ledger) -> bool {
        self.active == other.active
            && self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(&other.keys)
                .all(|((a, x), (b, y))| a == b && x.published == y.published)
    }

    /// The history of `kid` (empty if unknown).
    pub fn get(&self, kid: &KeyId) -> KeyHistory {
        self.keys.get(kid).copied().unwrap_or_default()
    }

    /// The zone-file lines of the ledger, each ending in a newline.
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write;
        if let Some(a) = &self.active {
            let _ = writeln!(out, "{PREFIX}active {a}");
        }
        for (kid, h) in &self.keys {
            let _ = write!(out, "{PREFIX}key {kid}");
            if let Some(p) = h.published {
                let _ = write!(out, " published {}", p.0);
            }
            if let Some(s) = h.signed_until {
                let _ = write!(out, " signed-until {}", s.0);
            }
            out.push('\n');
        }
    }

    /// Reads one line written by [`Ledger::render`] (after [`PREFIX`]).
    pub(crate) fn parse_line(&mut self, rest: &str) -> Result<(), String> {
        let mut words = rest.split(' ');
        let kid = |w: Option<&str>| {
            let w = w.ok_or("a key id is missing")?;
            KeyId::parse(w).map_err(|e| format!("key id {w:?}: {e}"))
        };
        match words.next() {
            Some("active") => {
                if self.active.is_some() {
                    return Err("a second active key".into());
                }
                self.active = Some(kid(words.next())?);
            }
            Some("key") => {
                let k = kid(words.next())?;
                let mut h = KeyHistory::default();
                while let Some(what) = words.next() {
                    let v = words
                        .next()
                        .and_then(|v| v.parse::<u64>().ok())
                        .filter(|v| *v <= UnixTime::MAX_RECORD.0)
                        .map(UnixTime)
                        .ok_or_else(|| format!("{what} needs a time in Unix seconds"))?;
                    let slot = match what {
                        "published" => &mut h.published,
                        "signed-until" => &mut h.signed_until,
                        other => return Err(format!("unknown ledger field {other:?}")),
                    };
                    if slot.replace(v).is_some() {
                        return Err(format!("{what} given twice"));
                    }
                }
                if self.keys.insert(k, h).is_some() {
                    return Err("the same key twice".into());
                }
            }
            _ => return Err("expected `active KID` or `key KID …`".into()),
        }
        Ok(())
    }
}

/// The first line of a ledger file written by [`Ledger::write_file`].
const FILE_HEADER: &str =
    "; the key rollover ledger of a zone pushed by mimi-publisher push --state: do not edit";

/// A ledger file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LedgerFileError {
    /// Reading failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not a ledger line.
    #[error("{}:{line}: {why}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The file does not end with a newline: a write was cut short.
    #[error("{}: the last line does not end with a newline: the file is incomplete (a write was cut short?); restore it or remove it to start the rollover anew", path.display())]
    Incomplete {
        /// The file.
        path: PathBuf,
    },
}

impl Ledger {
    /// Reads a ledger file written by [`Ledger::write_file`]: the
    /// `; mimi-rollover` lines of a zone file, on their own. `Ok(None)` when the
    /// file does not exist. Other comment lines and blank lines are
    /// ignored; anything else is an error naming its line, and so is a
    /// file whose last line has no newline (it could be half-written).
    ///
    /// This is where `push --state` keeps the ledger: a zone at a primary
    /// that mimi-publisher updates by RFC 2136 has no place for it (the
    /// primary keeps its own zone file), yet the next push must know since
    /// when each certificate has been published.
    pub fn read_file(path: &Path) -> Result<Option<Ledger>, LedgerFileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LedgerFileError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        if !text.is_empty() && !text.ends_with('\n') {
            return Err(LedgerFileError::Incomplete {
                path: path.to_owned(),
            });
        }
        let mut ledger = Ledger::default();
        for (i, line) in text.lines().enumerate() {
            let err = |why: String| LedgerFileError::Line {
                path: path.to_owned(),
                line: i + 1,
                why,
            };
            if let Some(rest) = line.strip_prefix(PREFIX) {
                ledger.parse_line(rest).map_err(err)?;
            } else if !(line.trim().is_empty() || line.starts_with(';')) {
                return Err(err(format!(
                    "expected a ledger line ({PREFIX}…) or a comment, found {line:?}"
                )));
            }
        }
        Ok(Some(ledger))
    }

    /// Writes the ledger to `path` atomically (a temporary file in the same
    /// directory, flushed, renamed over it, the directory flushed), mode
    /// 0600: a crash leaves the old ledger or the new one, never half.
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut text = format!("{FILE_HEADER}\n");
        self.render(&mut text);
        // tempfile creates the file with mode 0600.
        let mut tmp = tempfile::Builder::new()
            .prefix(".mimi-ledger-")
            .tempfile_in(dir)?;
        tmp.write_all(text.as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        #[cfg(unix)]
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_parse_round_trip_and_rejections() {
        let a = KeyId::parse("0123456789abcdef").unwrap();
        let b = KeyId::parse("fedcba9876543210").unwrap();
        let mut l = Ledger {
            active: Some(a.clone()),
            ..Ledger::default()
        };
        l.keys.insert(
            a,
            KeyHistory {
                published: Some(UnixTime(10)),
                signed_until: Some(UnixTime(99)),
            },
        );
        l.keys.insert(b, KeyHistory::default());
        let mut text = String::new();
        l.render(&mut text);
        let mut back = Ledger::default();
        for line in text.lines() {
            back.parse_line(line.strip_prefix(PREFIX).unwrap()).unwrap();
        }
        assert_eq!(back, l);
        // Only a grown signed_until: the same steps.
        let mut later = l.clone();
        later.keys.values_mut().next().unwrap().signed_until = Some(UnixTime(120));
        assert!(l.same_steps(&later) && later != l);
        // Another active key, or a first publication: other steps.
        let mut switched = l.clone();
        switched.active = switched.keys.keys().nth(1).cloned();
        assert!(!l.same_steps(&switched));
        let mut published = l.clone();
        published.keys.values_mut().nth(1).unwrap().published = Some(UnixTime(50));
        assert!(!l.same_steps(&published));
        for bad in [
            "key nope",
            "key 0123456789abcdef published",
            "key 0123456789abcdef published x",
            "key 0123456789abcdef published 999999999999999",
            "key 0123456789abcdef published 1 published 2",
            "key 0123456789abcdef color 1",
            "what",
        ] {
            assert!(Ledger::default().parse_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ledger_file_round_trip_absent_incomplete_and_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("push.state");
        assert!(Ledger::read_file(&path).unwrap().is_none());
        let a = KeyId::parse("0123456789abcdef").unwrap();
        let mut l = Ledger {
            active: Some(a.clone()),
            ..Ledger::default()
        };
        l.keys.insert(
            a,
            KeyHistory {
                published: Some(UnixTime(10)),
                signed_until: Some(UnixTime(30)),
            },
        );
        l.write_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(Ledger::read_file(&path).unwrap(), Some(l));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.trim_end()).unwrap();
        let e = Ledger::read_file(&path).unwrap_err().to_string();
        assert!(e.contains("incomplete"), "{e}");
        std::fs::write(&path, format!("{text}nonsense\n")).unwrap();
        let e = Ledger::read_file(&path).unwrap_err().to_string();
        assert!(
            e.ends_with(&format!(
                "push.state:4: expected a ledger line ({PREFIX}…) or a comment, found \"nonsense\""
            )),
            "{e}"
        );
        std::fs::write(&path, format!("{PREFIX}key zz\n")).unwrap();
        let e = Ledger::read_file(&path).unwrap_err().to_string();
        assert!(e.contains("push.state:1: key id"), "{e}");
    }
}
