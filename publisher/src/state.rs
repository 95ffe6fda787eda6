//! The served zones kept on disk, so that a restarted server neither signs
//! everything again nor goes back in serial.
//!
//! Without it a server starting up signs every mapping (minutes at ten
//! million) before answering anything, and its first serial is computed
//! afresh, which can be lower than one its secondaries already hold (they
//! would then ignore it). With a state directory the server writes each
//! zone it installs as `DIR/<origin>.zone` (the same text `build` writes)
//! and, at start, reads it back as the previous zone: records whose text
//! would be identical are reused instead of signed, and the serial
//! continues from the one last served.
//!
//! The directory is as trusted as the signing key: a reused record is
//! published without its signature being checked again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use mimi_proto::DomainName;
use tracing::{debug, warn};

use crate::zone::Zone;
use crate::zonefile;

/// Where the served zones are kept, and what was last written there.
#[derive(Debug)]
pub(crate) struct StateDir {
    dir: PathBuf,
    /// Per origin: the newest zone to write, taken by the next writer.
    pending: Mutex<HashMap<DomainName, Arc<Zone>>>,
    /// Serialises the writers, so that an older zone never overwrites a
    /// newer one.
    writing: Mutex<()>,
}

impl StateDir {
    /// The state kept in `dir` (created when first written).
    pub(crate) fn new(dir: PathBuf) -> Self {
        StateDir {
            dir,
            pending: Mutex::new(HashMap::new()),
            writing: Mutex::new(()),
        }
    }

    /// The file holding the zone for `origin`.
    pub(crate) fn path(&self, origin: &DomainName) -> PathBuf {
        self.dir.join(format!("{}.zone", origin.as_str()))
    }

    /// The zone last served for `origin`, if one was kept and reads back;
    /// a file that does not is logged and ignored (the zone is then built
    /// from scratch, which is always correct).
    pub(crate) fn load(&self, origin: &DomainName) -> Option<Zone> {
        let path = self.path(origin);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                warn!(path = %path.display(), "cannot read the kept zone, building from scratch: {e}");
                return None;
            }
        };
        match zonefile::parse(&text) {
            Ok(zone) if zone.origin == *origin => {
                debug!(path = %path.display(), serial = zone.soa.serial, records = zone.record_count(), "kept zone read");
                Some(zone)
            }
            Ok(zone) => {
                warn!(path = %path.display(), "kept zone is for {}, not {origin}; ignored", zone.origin);
                None
            }
            Err(e) => {
                warn!(path = %path.display(), "kept zone does not read back ({e}); building from scratch");
                None
            }
        }
    }

    /// Writes `zone` in the background (rendering a large zone takes a
    /// while). When several zones for one origin queue up, only the newest
    /// is written.
    pub(crate) fn save(self: &Arc<Self>, zone: Arc<Zone>) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(zone.origin.clone(), zone.clone());
        let state = self.clone();
        let origin = zone.origin.clone();
        tokio::task::spawn_blocking(move || state.write_pending(&origin));
    }

    /// Writes the newest pending zone for `origin`, if any is left.
    fn write_pending(&self, origin: &DomainName) {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(zone) = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(origin)
        else {
            return; // an earlier writer took it
        };
        let path = self.path(origin);
        if let Err(e) = write(&self.dir, &path, &zone) {
            warn!(path = %path.display(), "cannot keep the served zone: {e}");
        } else {
            debug!(path = %path.display(), serial = zone.soa.serial, "served zone kept");
        }
    }
}

fn write(dir: &Path, path: &Path, zone: &Zone) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    zonefile::write_zone_atomically(path, zone)
}
