//! The served zones kept on disk, so that a restarted server neither signs
//! everything again nor goes back in serial.
//!
//! Without it a server starting up signs every mapping (minutes at ten
//! million) before answering anything, and its first serial is computed
//! afresh, which can be lower than one its secondaries already hold (they
//! would then ignore it). With a state directory the server writes each
//! zone as `DIR/<origin>.zone` (the same text `build` writes, sealed, see
//! [`crate::zone::seal`]) *before* it installs it, so a server killed at any
//! moment restarts from a serial at least the one it last served, and at
//! start reads it back as the previous zone: records whose text would be
//! identical are reused instead of signed, and the serial continues from
//! the one last served.
//!
//! Reused records are published without their signatures being checked
//! again, so only a file whose seal verifies under the zone's current
//! signing key lends its records; any other kept file (no seal, another
//! key, changed) lends only its serial. The directory must belong to the
//! user running the server and be writable by nobody else, and temporary
//! files left in it by a crash are removed at start.

use std::path::PathBuf;

use mimi_proto::{DomainName, UnixTime};
use tracing::{debug, info, warn};

use crate::input::config::ZoneConfig;
use crate::zone::journal::{self, Journal, JournalLimits, Outcome};
use crate::zone::seal::SealKey;
use crate::zone::zonefile;
use crate::zone::Zone;

/// Why a state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// It cannot be created or read.
    #[error("state directory {}: {source}", dir.display())]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// It is not a directory.
    #[error("state directory {} is not a directory", dir.display())]
    NotADirectory {
        /// The path.
        dir: PathBuf,
    },
    /// Someone else could replace the kept zones.
    #[error("state directory {} is writable by group or others (mode {mode:03o}); whoever can write it can make this server publish old records or go back in serial: chmod go-w it", dir.display())]
    Writable {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It belongs to another user.
    #[error("state directory {} belongs to uid {owner}, not to the user running the server (uid {uid}); use a directory of your own", dir.display())]
    Owner {
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our effective uid.
        uid: u32,
    },
}

/// A zone read back from the state directory.
#[derive(Debug)]
pub(crate) struct Kept {
    /// The zone as written.
    pub(crate) zone: Zone,
    /// Whether its seal verifies under the current signing key: only then
    /// may its records be reused or served.
    pub(crate) trusted: bool,
}

impl Kept {
    /// The previous zone for a build: the kept zone if trusted, otherwise
    /// only its serial (and SOA), without records to reuse.
    pub(crate) fn for_build(&self) -> std::borrow::Cow<'_, Zone> {
        if self.trusted {
            std::borrow::Cow::Borrowed(&self.zone)
        } else {
            let z = &self.zone;
            std::borrow::Cow::Owned(Zone {
                origin: z.origin.clone(),
                ttl: z.ttl,
                soa: z.soa.clone(),
                ns: z.ns.clone(),
                glue: z.glue.clone(),
                records: Vec::new(),
                delegations: z.delegations.clone(),
                ptrs: z.ptrs.clone(),
                next_resign: None,
                transfer: None,
                cache: Default::default(),
                ledger: Default::default(),
            })
        }
    }
}

/// Where the served zones are kept.
#[derive(Debug)]
pub(crate) struct StateDir {
    dir: PathBuf,
    /// The last serial of each journal file as this process last wrote or
    /// read it: a delta is appended only to a file that ends where the
    /// delta starts (a zone prepared but never installed leaves a file
    /// ahead of the served journal), otherwise the file is rewritten.
    journal_ends: std::sync::Mutex<std::collections::HashMap<DomainName, u32>>,
}

impl StateDir {
    /// Opens (creating it, mode 0700, if missing) the state directory
    /// `dir`: refuses one that is not ours or that others may write, and
    /// removes temporary files a crash left behind.
    pub(crate) fn open(dir: PathBuf) -> Result<Self, StateError> {
        let io = |source| StateError::Io {
            dir: dir.clone(),
            source,
        };
        if std::fs::metadata(&dir).is_ok_and(|m| !m.is_dir()) {
            return Err(StateError::NotADirectory { dir });
        }
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&dir).map_err(io)?;
        let meta = std::fs::metadata(&dir).map_err(io)?;
        if !meta.is_dir() {
            return Err(StateError::NotADirectory { dir });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            // SAFETY: geteuid has no preconditions and cannot fail.
            let uid = unsafe { libc::geteuid() };
            if meta.uid() != uid {
                return Err(StateError::Owner {
                    dir,
                    owner: meta.uid(),
                    uid,
                });
            }
            let mode = meta.mode() & 0o7777;
            if mode & 0o022 != 0 {
                return Err(StateError::Writable { dir, mode });
            }
        }
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(zonefile::TEMP_PREFIX) {
                let path = entry.path();
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        info!(path = %path.display(), "removed a temporary file left by an interrupted write")
                    }
                    Err(e) => {
                        warn!(path = %path.display(), "cannot remove a stale temporary file: {e}")
                    }
                }
            }
        }
        Ok(StateDir {
            dir,
            journal_ends: Default::default(),
        })
    }

    /// The file holding the zone for `origin`.
    pub(crate) fn path(&self, origin: &DomainName) -> PathBuf {
        self.dir.join(format!("{}.zone", origin.as_str()))
    }

    /// The zone last kept for `config`'s origin, if one was kept and reads
    /// back; a file that does not is logged and ignored (the zone is then
    /// built from scratch, which is always correct).
    pub(crate) fn load(&self, config: &ZoneConfig) -> Option<Kept> {
        let origin = &config.origin;
        let path = self.path(origin);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                warn!(path = %path.display(), "cannot read the kept zone, building from scratch: {e}");
                return None;
            }
        };
        let zone = match zonefile::parse(crate::zone::seal::body(&text)) {
            Ok(zone) if zone.origin == *origin => zone,
            Ok(zone) => {
                warn!(path = %path.display(), "kept zone is for {}, not {origin}; ignored", zone.origin);
                return None;
            }
            Err(e) => {
                warn!(path = %path.display(), "kept zone does not read back ({e}); building from scratch");
                return None;
            }
        };
        let trusted = match crate::zone::seal::key_for(config) {
            None => false,
            Some(key) => match crate::zone::seal::open(&text, &key) {
                Ok(_) => true,
                Err(e) => {
                    warn!(path = %path.display(), "kept zone: {e}; its records are not reused (only its serial)");
                    false
                }
            },
        };
        debug!(path = %path.display(), serial = zone.soa.serial, records = zone.record_count(), trusted, "kept zone read");
        Some(Kept { zone, trusted })
    }

    /// The file holding the IXFR journal for `origin` (see
    /// [`crate::zone::journal`]).
    pub(crate) fn journal_path(&self, origin: &DomainName) -> PathBuf {
        self.dir.join(format!("{}.journal", origin.as_str()))
    }

    /// The journal kept with `kept`, if that zone is trusted (its seal
    /// verifies under `seal`) and the journal's last serial is the kept
    /// zone's: any other journal is logged, removed, and replaced by an
    /// empty one (IXFR from older serials then gets the whole zone). A
    /// damaged tail is cut off the file and logged.
    pub(crate) fn load_journal(
        &self,
        kept: &Kept,
        seal: Option<&SealKey>,
        limits: JournalLimits,
    ) -> Journal {
        let origin = &kept.zone.origin;
        let path = self.journal_path(origin);
        if !path.exists() {
            return Journal::default();
        }
        let Some(key) = seal.filter(|_| kept.trusted) else {
            info!(path = %path.display(), "journal not used: the kept zone is not sealed under the current key; removed");
            self.remove_journal(origin);
            return Journal::default();
        };
        let loaded = match journal::read_file(&path, key) {
            Ok(l) => l,
            Err(e) => {
                warn!("{e}; removed, IXFR from older serials gets the whole zone");
                self.remove_journal(origin);
                return Journal::default();
            }
        };
        if let Some((at, why)) = &loaded.dropped_tail {
            warn!(path = %path.display(), offset = at, "journal: {why}; the entries from there on are dropped");
            if let Err(e) = journal::truncate_file(&path, *at) {
                warn!(path = %path.display(), "cannot cut the damaged journal tail ({e}); removed");
                self.remove_journal(origin);
                return Journal::default();
            }
        }
        let serial = kept.zone.soa.serial;
        if loaded.journal.last_serial().is_some_and(|s| s != serial) {
            warn!(path = %path.display(), journal_serial = loaded.journal.last_serial(), serial, "journal does not end at the kept zone's serial; removed");
            self.remove_journal(origin);
            return Journal::default();
        }
        let before = loaded.journal.deltas().len();
        let journal = loaded
            .journal
            .trimmed(kept.zone.records.len(), limits, UnixTime::now())
            .sharing(&kept.zone.records);
        if journal.deltas().len() != before {
            if let Err(e) = journal::write_file(&path, &journal, key) {
                warn!(path = %path.display(), "cannot rewrite the trimmed journal ({e}); removed");
                self.remove_journal(origin);
                return Journal::default();
            }
        }
        info!(path = %path.display(), deltas = journal.deltas().len(), first_serial = journal.first_serial(), serial, "journal read back");
        self.set_journal_end(origin, journal.last_serial());
        journal
    }

    /// Keeps on disk what [`Journal::advance`] did: appends the new delta,
    /// rewrites the file, or removes it. Without a seal key nothing is
    /// kept (a journal is only trusted under the zone's key). Durable when
    /// this returns.
    pub(crate) fn keep_journal(
        &self,
        origin: &DomainName,
        journal: &Journal,
        outcome: &Outcome,
        seal: Option<&SealKey>,
    ) -> std::io::Result<()> {
        let path = self.journal_path(origin);
        let Some(key) = seal else {
            self.remove_journal(origin);
            return Ok(());
        };
        let ends_at = self.journal_end(origin);
        let result = match outcome {
            Outcome::Appended(delta) if ends_at == Some(delta.from) && path.exists() => {
                journal::append_file(&path, delta, key)
            }
            Outcome::Reset(_) => {
                self.remove_journal(origin);
                return Ok(());
            }
            _ if journal.deltas().is_empty() => {
                self.remove_journal(origin);
                return Ok(());
            }
            _ => journal::write_file(&path, journal, key),
        };
        // After a failure the file's end is unknown: rewrite it next time.
        self.set_journal_end(origin, result.as_ref().ok().and(journal.last_serial()));
        result
    }

    fn journal_end(&self, origin: &DomainName) -> Option<u32> {
        let ends = self
            .journal_ends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ends.get(origin).copied()
    }

    fn set_journal_end(&self, origin: &DomainName, serial: Option<u32>) {
        let mut ends = self
            .journal_ends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match serial {
            Some(s) => ends.insert(origin.clone(), s),
            None => ends.remove(origin),
        };
    }

    fn remove_journal(&self, origin: &DomainName) {
        self.set_journal_end(origin, None);
        let path = self.journal_path(origin);
        match std::fs::remove_file(&path) {
            Ok(()) => debug!(path = %path.display(), "journal removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!(path = %path.display(), "cannot remove the journal: {e}"),
        }
    }

    /// Writes `zone` sealed with `seal`, atomically and durably (the file
    /// and the directory entry are on disk when this returns).
    pub(crate) fn write(&self, zone: &Zone, seal: Option<&SealKey>) -> std::io::Result<()> {
        let path = self.path(&zone.origin);
        zonefile::write_sealed_zone_atomically(&path, zone, seal)?;
        debug!(path = %path.display(), serial = zone.soa.serial, "served zone kept");
        Ok(())
    }

    /// Removes the kept file of a zone no longer served (none is fine).
    pub(crate) fn remove(&self, origin: &DomainName) -> std::io::Result<()> {
        self.remove_journal(origin);
        match std::fs::remove_file(self.path(origin)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The origins of every zone kept here (files `<origin>.zone`).
    pub(crate) fn origins(&self) -> Vec<DomainName> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<DomainName> = entries
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                DomainName::parse_canonical(name.strip_suffix(".zone")?).ok()
            })
            .collect();
        out.sort();
        out
    }

    /// Writes every zone of `zones` sealed with `seal`, atomically and
    /// durably, with one flush to disk for all (see
    /// [`zonefile::write_sealed_zones_atomically`]).
    pub(crate) fn write_all(&self, zones: &[&Zone], seal: Option<&SealKey>) -> std::io::Result<()> {
        let items: Vec<(PathBuf, &Zone)> =
            zones.iter().map(|z| (self.path(&z.origin), *z)).collect();
        zonefile::write_sealed_zones_atomically(&items, seal)?;
        debug!(dir = %self.dir.display(), zones = zones.len(), "served zones kept");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::ZoneRecord;

    /// A zone prepared (its delta appended) but never installed leaves the
    /// file ahead of the served journal: the next delta, from the served
    /// serial, rewrites the file instead of appending after the orphan.
    #[test]
    fn a_delta_never_installed_does_not_break_the_file() {
        let base = tempfile::tempdir().unwrap();
        let state = StateDir::open(base.path().join("state")).unwrap();
        let key = SealKey::from_signing_key(&ed25519_dalek::SigningKey::from_bytes(&[3; 32]));
        let served = crate::zone::served::tests::zone();
        let z = |serial: u32, text: &str| {
            let mut zone = (*served.zone).clone();
            zone.soa.serial = serial;
            zone.records.push(ZoneRecord::new(
                DomainName::parse("new._mimi.example.com").unwrap(),
                300,
                text,
            ));
            zone.records.sort();
            zone
        };
        let (z1, z2, z3, z3b) = (z(1, "1"), z(2, "2"), z(3, "3"), z(3, "3b"));
        let limits = JournalLimits::DEFAULT;
        let now = UnixTime::now();
        let (j2, o) = Journal::default().advance(&z1, &z2, limits, now);
        state.keep_journal(&z1.origin, &j2, &o, Some(&key)).unwrap();
        // Prepared, kept, never installed.
        let (j3, o) = j2.advance(&z2, &z3, limits, now);
        assert!(matches!(o, Outcome::Appended(_)));
        state.keep_journal(&z1.origin, &j3, &o, Some(&key)).unwrap();
        // The next build starts from the served zone z2 again.
        let (j3b, o) = j2.advance(&z2, &z3b, limits, now);
        assert!(matches!(o, Outcome::Appended(_)));
        state
            .keep_journal(&z1.origin, &j3b, &o, Some(&key))
            .unwrap();
        let read = journal::read_file(&state.journal_path(&z1.origin), &key).unwrap();
        assert_eq!(read.dropped_tail, None);
        assert_eq!(read.journal, j3b);
        // And appends go on from there.
        let z4 = z(4, "4");
        let (j4, o) = j3b.advance(&z3b, &z4, limits, now);
        state.keep_journal(&z1.origin, &j4, &o, Some(&key)).unwrap();
        let read = journal::read_file(&state.journal_path(&z1.origin), &key).unwrap();
        assert_eq!(read.journal, j4);
        // Without a seal key nothing is kept.
        state.keep_journal(&z1.origin, &j4, &o, None).unwrap();
        assert!(!state.journal_path(&z1.origin).exists());
    }

    #[cfg(unix)]
    #[test]
    fn refuses_writable_directories_and_removes_stale_temporaries() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        let s = StateDir::open(dir.clone()).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        drop(s);
        let stale = dir.join(format!("{}abc123", zonefile::TEMP_PREFIX));
        std::fs::write(&stale, "half a zone").unwrap();
        let other = dir.join("example.com.zone");
        std::fs::write(&other, "kept").unwrap();
        StateDir::open(dir.clone()).unwrap();
        assert!(!stale.exists());
        assert!(other.exists());
        for mode in [0o770, 0o702, 0o777] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = StateDir::open(dir.clone()).unwrap_err();
            assert!(matches!(e, StateError::Writable { .. }), "{e}");
            assert!(e.to_string().contains("writable by group or others"), "{e}");
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        StateDir::open(dir.clone()).unwrap();
        // Another user's directory (only root can make one to test with).
        match std::os::unix::fs::chown(&dir, Some(54_321), None) {
            Ok(()) => {
                let e = StateDir::open(dir.clone()).unwrap_err();
                assert!(matches!(e, StateError::Owner { owner: 54_321, .. }), "{e}");
            }
            Err(e) => eprintln!("cannot chown as this user ({e}); owner check not exercised"),
        }
        let file = base.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            StateDir::open(file).unwrap_err(),
            StateError::NotADirectory { .. }
        ));
    }
}
