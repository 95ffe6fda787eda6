//! Keeps `DIR/status.json` ([`crate::zone::status`]) up to date from the
//! server's [`ReloadEvent`]s, for `mimi-publisher status`.
//!
//! It listens on the same broadcast channel as every other observer, so
//! neither the query paths nor the reloaders wait for it: a rebuild
//! announces its outcome and goes on. The writer applies every event
//! already queued before each write (a burst of rebuilds costs one write),
//! writes on the blocking pool, and logs a failure to write without
//! stopping anything (the zones are served whatever the record says; the
//! next event tries again). If it falls so far behind that the channel
//! drops events, it says so in the log and goes on with the next ones.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mimi_proto::UnixTime;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tracing::{debug, warn};

use crate::input::config::ZoneConfig;
use crate::serve::installed::{ReloadEvent, ReloadReason};
use crate::zone::status::{
    self, Attempt, Outcome, ServerInfo, StatusFile, Trigger, ZoneStatus, VERSION,
};

/// The record being kept, and where.
struct Keeper {
    dir: PathBuf,
    status: StatusFile,
}

impl Keeper {
    /// Applies one event.
    fn apply(&mut self, e: &ReloadEvent) {
        let at = UnixTime::now();
        let trigger = match e.reason {
            ReloadReason::FileChange => Trigger::FileChange,
            ReloadReason::Resign => Trigger::Resign,
        };
        let zones = &mut self.status.zones;
        if e.removed {
            zones.remove(e.origin.as_str());
            return;
        }
        if !e.ok {
            // A failed rebuild is announced once per configuration: it
            // holds back every zone of that configuration.
            let error = e.message.clone();
            let mut any = false;
            for z in zones.values_mut().filter(|z| z.config == e.config) {
                let serial = z.last_attempt.outcome.serial();
                z.note(Attempt {
                    at,
                    trigger,
                    outcome: Outcome::Failed {
                        serial,
                        error: error.clone(),
                    },
                });
                any = true;
            }
            if !any && e.origin != ZoneConfig::many() {
                let attempt = Attempt {
                    at,
                    trigger,
                    outcome: Outcome::Failed {
                        serial: e.serial,
                        error,
                    },
                };
                zones.insert(
                    e.origin.as_str().to_owned(),
                    ZoneStatus::first(e.config.clone(), attempt),
                );
            }
            return;
        }
        // Any success of a configuration is one of all its zones: those
        // not built again (not due) are no longer held back either.
        for z in zones
            .values_mut()
            .filter(|z| z.config == e.config && !z.last_attempt.outcome.is_ok())
        {
            let serial = z.last_attempt.outcome.serial();
            z.note(Attempt {
                at,
                trigger,
                outcome: Outcome::Unchanged { serial },
            });
        }
        let attempt = Attempt {
            at,
            trigger,
            outcome: if e.changed {
                Outcome::Installed { serial: e.serial }
            } else {
                Outcome::Unchanged { serial: e.serial }
            },
        };
        match zones.get_mut(e.origin.as_str()) {
            Some(z) => z.note(attempt),
            // The placeholder origin of a configuration that serves no zone.
            None if e.origin == ZoneConfig::many() => {}
            None => {
                zones.insert(
                    e.origin.as_str().to_owned(),
                    ZoneStatus::first(e.config.clone(), attempt),
                );
            }
        }
    }

    /// Writes the record (blocking).
    fn write(&mut self) {
        self.status.written = UnixTime::now();
        match status::write(&self.dir, &self.status) {
            Ok(()) => {
                debug!(dir = %self.dir.display(), zones = self.status.zones.len(), "status file written")
            }
            Err(e) => warn!(
                path = %status::path_in(&self.dir).display(),
                "cannot write the status file (serving goes on; `mimi-publisher status` reads an older one): {e}"
            ),
        }
    }
}

/// Starts keeping `dir/status.json`: writes it with the zones served at
/// start (`initial`: configuration file, origin, serial) before returning,
/// so that a server that answers has its record on disk, then after every
/// event of `events` (subscribed before any rebuild could start, so none
/// is missed). The task ends when the server's event channel closes.
pub(crate) async fn start(
    dir: PathBuf,
    started: UnixTime,
    initial: Vec<(PathBuf, String, u32)>,
    mut events: broadcast::Receiver<ReloadEvent>,
) {
    let pid = std::process::id();
    let mut zones = BTreeMap::new();
    let at = UnixTime::now();
    for (config, origin, serial) in initial {
        let attempt = Attempt {
            at,
            trigger: Trigger::Start,
            outcome: Outcome::Installed { serial },
        };
        zones.insert(origin, ZoneStatus::first(config, attempt));
    }
    let keeper = Keeper {
        dir,
        status: StatusFile {
            version: VERSION,
            server: ServerInfo {
                pid,
                started,
                proc_start_ticks: status::proc_start_ticks(pid),
            },
            written: at,
            zones,
        },
    };
    let Some(mut keeper) = write_off_thread(keeper).await else {
        return;
    };
    tokio::spawn(async move {
        loop {
            // Wait for one event, then take every one already queued.
            let mut closed = false;
            match events.recv().await {
                Ok(e) => keeper.apply(&e),
                Err(RecvError::Closed) => return,
                Err(RecvError::Lagged(n)) => lagged(n),
            }
            loop {
                match events.try_recv() {
                    Ok(e) => keeper.apply(&e),
                    Err(TryRecvError::Lagged(n)) => lagged(n),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => {
                        closed = true;
                        break;
                    }
                }
            }
            match write_off_thread(keeper).await {
                Some(k) if !closed => keeper = k,
                _ => return,
            }
        }
    });
}

fn lagged(n: u64) {
    warn!(
        missed = n,
        "status file: {n} reload events missed; the record of some zones may be behind until their next rebuild"
    );
}

/// Writes the record on the blocking pool; `None` if that task failed.
async fn write_off_thread(mut keeper: Keeper) -> Option<Keeper> {
    match tokio::task::spawn_blocking(move || {
        keeper.write();
        keeper
    })
    .await
    {
        Ok(k) => Some(k),
        Err(e) => {
            warn!("the status file writer failed ({e}); the status file is no longer updated");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mimi_proto::DomainName;

    fn event(
        origin: &str,
        config: &str,
        ok: bool,
        changed: bool,
        reason: ReloadReason,
    ) -> ReloadEvent {
        ReloadEvent {
            origin: DomainName::parse(origin).unwrap(),
            config: config.into(),
            serial: 5,
            ok,
            changed,
            removed: false,
            reason,
            message: if ok {
                "fine".into()
            } else {
                "m.csv:3: bad".into()
            },
        }
    }

    fn keeper() -> Keeper {
        let mut zones = BTreeMap::new();
        for o in ["a.example", "b.example"] {
            zones.insert(
                o.to_owned(),
                ZoneStatus::first(
                    "many.toml".into(),
                    Attempt {
                        at: UnixTime(1),
                        trigger: Trigger::Start,
                        outcome: Outcome::Installed { serial: 4 },
                    },
                ),
            );
        }
        Keeper {
            dir: PathBuf::new(),
            status: StatusFile {
                version: VERSION,
                server: ServerInfo {
                    pid: 1,
                    started: UnixTime(1),
                    proc_start_ticks: None,
                },
                written: UnixTime(1),
                zones,
            },
        }
    }

    #[test]
    fn a_failure_of_a_configuration_holds_back_all_its_zones_until_it_succeeds() {
        let mut k = keeper();
        k.apply(&event(
            "a.example",
            "many.toml",
            false,
            false,
            ReloadReason::FileChange,
        ));
        for z in k.status.zones.values() {
            assert_eq!(z.consecutive_failures, 1);
            assert!(
                matches!(&z.last_attempt.outcome, Outcome::Failed { serial: 4, error } if error == "m.csv:3: bad")
            );
        }
        k.apply(&event(
            "a.example",
            "many.toml",
            true,
            false,
            ReloadReason::Resign,
        ));
        for z in k.status.zones.values() {
            assert_eq!(z.consecutive_failures, 0, "{z:?}");
            assert!(z.last_resign.is_some());
        }
        k.apply(&event(
            "c.example",
            "many.toml",
            true,
            true,
            ReloadReason::FileChange,
        ));
        assert!(matches!(
            k.status.zones["c.example"].last_attempt.outcome,
            Outcome::Installed { serial: 5 }
        ));
        let mut gone = event(
            "c.example",
            "many.toml",
            true,
            true,
            ReloadReason::FileChange,
        );
        gone.removed = true;
        k.apply(&gone);
        assert!(!k.status.zones.contains_key("c.example"));
    }
}
