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

use mimi_proto::DomainName;
use tracing::{debug, info, warn};

use crate::input::config::ZoneConfig;
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
                next_resign: None,
                transfer: None,
                cache: Default::default(),
            })
        }
    }
}

/// Where the served zones are kept.
#[derive(Debug)]
pub(crate) struct StateDir {
    dir: PathBuf,
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
        Ok(StateDir { dir })
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

    /// Removes the kept file of a zone no longer served (none is fine).
    pub(crate) fn remove(&self, origin: &DomainName) -> std::io::Result<()> {
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
