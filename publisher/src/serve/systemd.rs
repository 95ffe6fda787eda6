//! The systemd service notification protocol (sd_notify(3)): readiness,
//! reloads, stopping and the watchdog.
//!
//! Only when the service manager asks for it, by setting `NOTIFY_SOCKET`:
//! a server started by hand sends nothing. The messages are formatted by
//! the `sd-notify` crate; they are sent on a socket connected once at start
//! ([`Notifier::from_env`]), before privileges are dropped, and because the
//! crate cannot address a socket in the abstract namespace (`@name`, which
//! systemd uses in containers) and this module can.
//!
//! What is sent, and when:
//!
//! * `READY=1` with `STATUS=` and `MAINPID=` once every zone is built and
//!   every listener is bound, so that `systemctl start` returns when the
//!   server answers;
//! * `RELOADING=1` with `MONOTONIC_USEC=` when a reload starts (SIGHUP, or
//!   an input file changed), `READY=1` when every reload under way has
//!   finished, whatever its outcome (a failed reload keeps the old zone:
//!   the service is still ready). systemd ≥ 253 (`Type=notify-reload`)
//!   requires `MONOTONIC_USEC` with `RELOADING=1`; older versions ignore
//!   it. Timer-driven re-signing is not a reload and sends nothing;
//! * `STOPPING=1` when shutdown starts;
//! * `WATCHDOG=1` every half `WATCHDOG_USEC` when that is set (and
//!   `WATCHDOG_PID` is this process or unset), from a task of the serving
//!   runtime ([`spawn_watchdog`]), so that a wedged runtime stops the
//!   pings and systemd restarts the server.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// The connection to the service manager, or nothing when not run by one.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<Arc<UnixDatagram>>,
}

impl Notifier {
    /// A notifier that sends nothing (not run by a service manager, or a
    /// library user that does not want notifications).
    pub fn none() -> Self {
        Notifier { socket: None }
    }

    /// Connects to `NOTIFY_SOCKET` if it is set: a path, or `@name` for the
    /// abstract namespace. A socket that cannot be reached is logged and
    /// treated as absent (the server still serves).
    pub fn from_env() -> Self {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Self::none();
        };
        match connect(&path) {
            Ok(s) => {
                debug!(socket = ?path, "systemd notification socket connected");
                Notifier {
                    socket: Some(Arc::new(s)),
                }
            }
            Err(e) => {
                warn!(socket = ?path, "cannot connect to NOTIFY_SOCKET: {e}");
                Self::none()
            }
        }
    }

    /// Whether notifications are sent.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends `states` as one datagram (one `KEY=VALUE` line each).
    fn send(&self, states: &[NotifyState<'_>]) {
        let Some(socket) = &self.socket else {
            return;
        };
        let mut msg = String::new();
        for s in states {
            msg.push_str(&s.to_string());
            msg.push('\n');
        }
        if let Err(e) = socket.send(msg.as_bytes()) {
            warn!("cannot notify the service manager: {e}");
        }
    }

    /// `READY=1`, the status line and our pid.
    pub fn ready(&self, status: &str) {
        self.send(&[
            NotifyState::Ready,
            NotifyState::Status(status),
            NotifyState::MainPid(std::process::id()),
        ]);
    }

    /// `RELOADING=1` with the `CLOCK_MONOTONIC` time in microseconds.
    pub fn reloading(&self) {
        if !self.enabled() {
            return;
        }
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[
                NotifyState::Reloading,
                now,
                NotifyState::Status("reloading"),
            ]),
            Err(e) => {
                warn!("cannot read CLOCK_MONOTONIC: {e}");
                self.send(&[NotifyState::Reloading, NotifyState::Status("reloading")]);
            }
        }
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }
}

/// Connects an unbound datagram socket to `path` (`@name`: abstract).
fn connect(path: &std::ffi::OsStr) -> io::Result<UnixDatagram> {
    use std::os::unix::ffi::OsStrExt;
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.connect_addr(&addr)?;
            return Ok(socket);
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "abstract socket names exist only on Linux",
            ));
        }
    }
    socket.connect(std::path::Path::new(path))?;
    Ok(socket)
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC` (as
/// sd_watchdog_enabled(3) advises), when it is set and `WATCHDOG_PID` is
/// unset or this process; `None` otherwise or when it is not a positive
/// number.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// Pings the watchdog every `interval` from a task of the current tokio
/// runtime: if the runtime that serves TCP, transfers and reloads stops
/// scheduling tasks, the pings stop and systemd restarts the server.
pub fn spawn_watchdog(notifier: Notifier, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            notifier.watchdog();
        }
    })
}

/// Counts the reloads under way, so that the service manager sees one
/// `RELOADING=1` when the first starts and one `READY=1` when the last
/// ends, however many configurations reload at once.
#[derive(Debug, Default)]
pub(crate) struct ReloadGate {
    notifier: Notifier,
    running: Mutex<usize>,
    status: Mutex<String>,
}

impl ReloadGate {
    /// A gate that notifies `notifier`, saying `status` when ready again.
    pub(crate) fn new(notifier: Notifier) -> Self {
        ReloadGate {
            notifier,
            running: Mutex::new(0),
            status: Mutex::new(String::new()),
        }
    }

    /// The status line sent with each `READY=1` from now on.
    pub(crate) fn set_status(&self, status: String) {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }

    /// A reload starts.
    pub(crate) fn begin(&self) {
        let mut n = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        *n += 1;
        if *n == 1 {
            self.notifier.reloading();
        }
    }

    /// A reload started with [`ReloadGate::begin`] has ended.
    pub(crate) fn end(&self) {
        let mut n = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        *n = n.saturating_sub(1);
        if *n == 0 {
            let status = self
                .status
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            self.notifier.ready(&status);
        }
    }
}
