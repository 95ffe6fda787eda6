//! The catalog zone a server publishes of the zones it serves
//! (`serve --catalog catalog.toml`, RFC 9432; content in
//! [`crate::zone::catalog`]).
//!
//! The catalog is rebuilt whenever the list of served zones is swapped
//! ([`crate::serve::installed`] calls [`CatalogSlot::update`] with every
//! new list): when the set of origins differs from the catalog's members,
//! it gets a new serial and its secondaries a NOTIFY, after which catalog
//! consumers add or drop member zones themselves.
//!
//! With `--state-dir` the catalog is kept there like any zone, so that a
//! restart with another zone set continues its serial. Without it, a
//! restarted server's catalog serial is the current Unix time, which is
//! larger than the previous one unless that server changed its catalog
//! within the same second or more often than once a second.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use mimi_proto::{DomainName, UnixTime};
use tracing::info;

use crate::input::catalog::CatalogConfig;
use crate::zone::catalog::{build, CatalogSettings};
use crate::zone::served::ServedZone;
use crate::zone::state::StateDir;
use crate::zone::Zone;

/// The served catalog: its settings and current zone.
pub(crate) struct CatalogSlot {
    settings: CatalogSettings,
    current: Mutex<Option<Arc<ServedZone>>>,
    /// The catalog kept in the state directory at start, the previous
    /// zone of the first build.
    kept: Option<Zone>,
    state: Option<Arc<StateDir>>,
}

impl CatalogSlot {
    /// Reads the catalog configuration at `path` and its TSIG key, and the
    /// catalog kept in `state`; the zone is made by the first
    /// [`CatalogSlot::update`].
    pub(crate) fn load(path: &Path, state: Option<Arc<StateDir>>) -> Result<Self, String> {
        let c = CatalogConfig::load(path).map_err(|e| e.to_string())?;
        let transfer = match &c.transfer {
            None => None,
            Some(t) => Some(crate::build::transfer_policy(t).map_err(|p| p.to_string())?),
        };
        let [refresh, retry, expire, minimum] = c.timers;
        // A kept catalog that cannot be read only loses its serial. Its
        // transfer policy is not in the file: the current one is, so that
        // an unchanged catalog keeps its serial across a restart.
        let kept = state.as_ref().and_then(|s| {
            let text = std::fs::read_to_string(s.path(&c.origin)).ok()?;
            let mut zone = crate::zone::zonefile::parse(crate::zone::seal::body(&text)).ok()?;
            (zone.origin == c.origin).then(|| {
                zone.transfer = transfer.clone();
                zone
            })
        });
        Ok(CatalogSlot {
            kept,
            state,
            settings: CatalogSettings {
                origin: c.origin,
                ttl: c.ttl,
                refresh,
                retry,
                expire,
                minimum,
                transfer,
            },
            current: Mutex::new(None),
        })
    }

    /// The catalog's origin.
    pub(crate) fn origin(&self) -> &DomainName {
        &self.settings.origin
    }

    /// The catalog zone currently served, if built.
    pub(crate) fn zone(&self) -> Option<Arc<Zone>> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.as_ref().map(|s| s.zone.clone())
    }

    /// The catalog listing `zones` (the served zones, the catalog not
    /// among them): the current one if its members are the same, else a
    /// new one, returned with `true` so that the caller NOTIFYs.
    pub(crate) fn update(&self, zones: &[Arc<ServedZone>]) -> (Arc<ServedZone>, bool) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = current.as_ref().map(|s| &*s.zone).or(self.kept.as_ref());
        let zone = build(
            &self.settings,
            zones
                .iter()
                .map(|z| z.origin())
                .filter(|o| **o != self.settings.origin),
            previous,
            UnixTime::now(),
        );
        if let Some(served) = current
            .as_ref()
            .filter(|s| s.zone.soa.serial == zone.soa.serial)
        {
            return (served.clone(), false);
        }
        info!(
            origin = %zone.origin,
            serial = zone.soa.serial,
            members = zone.ptrs.len(),
            "catalog zone updated"
        );
        if let Some(state) = &self.state {
            if let Err(e) = state.write(&zone, None) {
                tracing::warn!(origin = %zone.origin, "cannot keep the catalog zone in the state directory: {e}");
            }
        }
        let served =
            Arc::new(ServedZone::new(Arc::new(zone)).expect("catalog names are valid DNS names"));
        *current = Some(served.clone());
        (served, true)
    }
}
