//! The authoritative DNS server: serves built zones over UDP and TCP and
//! swaps in rebuilt zones without dropping a query.
//!
//! The served zones are held in an [`ArcSwap`](arc_swap::ArcSwap): every query is answered
//! from whichever zones are current when it arrives, and a reload builds and
//! indexes a complete new zone off the serving path and `store()`s the new
//! list in one atomic step. A query therefore sees either the old zone or
//! the new one, never a mixture, and a failed rebuild simply never reaches
//! the swap (SPEC §9: "nothing stops being served").
//!
//! UDP, nearly all the traffic, is served by plain threads that answer at
//! the byte level (modules `udp` and `wire`). TCP is served by our own
//! bounded accept loop ([`crate::serve::tcp`]) with the same encoder, and
//! [`crate::transfer`] for zone transfers.
//!
//! With [`ServeOptions::encrypted`] the same zones are also served over
//! DNS over TLS, HTTPS and QUIC ([`crate::serve::encrypted`]), with the
//! same encoder, padded answers, and a certificate reloaded when its files
//! change.
//!
//! With [`ServeOptions::catalog`] the server also serves a catalog zone
//! (RFC 9432) of every zone it serves, rebuilt and NOTIFYed whenever the
//! zone list changes (module `catalog`).
//!
//! [`start`] binds the sockets, drops privileges if asked
//! ([`crate::serve::privileges`]), builds every zone, and starts the
//! watcher and re-sign timers of [`crate::serve::watch`]; [`run`] does the
//! same and serves until a shutdown future completes, which is what the
//! binary uses. Under systemd it reports readiness, reloads and the
//! watchdog ([`crate::serve::systemd`]).
//!
//! With [`ServeOptions::metrics`] the server also serves Prometheus
//! metrics over HTTP ([`crate::serve::metrics`]): queries by transport,
//! type and rcode, rate limiting, transfers, NOTIFYs, reloads, and each
//! zone's serial, record counts and earliest expiries.

pub(crate) mod catalog;
pub mod encrypted;
pub(crate) mod installed;
pub(crate) mod memory;
pub mod metrics;
pub mod privileges;
pub mod rrl;
pub(crate) mod status_file;
pub mod systemd;
pub mod tcp;
pub(crate) mod udp;
pub mod watch;
pub(crate) mod wire;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mimi_proto::{DomainName, UnixTime};
use tokio::sync::broadcast;
use tracing::{debug, error, info, warn};

use crate::build::zones::{build_zones, compare, publishable, ZoneSet, ZoneSetOutput};
use crate::build::BuildError;
use crate::input::config::ZoneConfig;
use crate::input::problem::Problem;
use crate::serve::encrypted::certs::CertEvent;
pub use crate::serve::encrypted::{EncryptedOptions, EncryptedStats};
use crate::serve::rrl::{Limiter, RrlConfig, RrlStats};
pub use crate::serve::tcp::TcpOptions;
use crate::serve::tcp::TcpServer;
use crate::serve::udp::UdpServer;
use crate::serve::watch::Reloader;
use crate::zone::journal::Journal;
use crate::zone::served::ServedZone;
use crate::zone::shrink::ShrinkRefused;
use crate::zone::state::StateDir;
use crate::zone::Zone;
use installed::{log_warnings, Served, Slot};
pub use installed::{ReloadEvent, ReloadReason};

/// What to serve and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Zone configuration files (see [`crate::input::config`]): each
    /// describes one zone, or with `[domains]`/`[shards]` many.
    pub configs: Vec<PathBuf>,
    /// Address for both UDP and TCP. Port 0 picks a free port, the same for
    /// both protocols (see [`RunningServer::local_addr`]).
    pub listen: SocketAddr,
    /// More addresses served like `listen` (UDP and TCP on each), e.g. an
    /// IPv6 one next to an IPv4 one. `listen` and this list together are
    /// never empty, which is why the first address has a field of its own.
    /// IPv6 sockets are IPv6-only, so that `0.0.0.0:53` and `[::]:53` can
    /// both be given.
    pub extra_listen: Vec<SocketAddr>,
    /// Become this user once every socket is bound, before any input is
    /// read ([`crate::serve::privileges`]); the server must be started as
    /// root then.
    pub user: Option<String>,
    /// Tell the service manager about readiness, reloads, stopping and the
    /// watchdog when `NOTIFY_SOCKET` is set ([`crate::serve::systemd`]).
    /// Off by default, so that servers started inside another program (its
    /// tests) do not speak for that program's process.
    pub systemd: bool,
    /// How long the input files must be quiet before a rebuild starts, so
    /// that a file written in several steps is read once, complete.
    pub debounce: Duration,
    /// Where to keep each served zone (`DIR/<origin>.zone`), so that a
    /// restart reuses its signatures and continues its serial; `None`
    /// keeps nothing and builds every zone from scratch at start.
    pub state_dir: Option<PathBuf>,
    /// Install every rebuilt zone, however many assertions it removes: the
    /// operator's confirmation that turns the shrink guard
    /// ([`crate::zone::shrink`], `max_shrink` in each zone's configuration) off
    /// for this server.
    pub allow_shrink: bool,
    /// Limits of the TCP server: connections in total and per source, idle
    /// timeout, messages per connection, and concurrent zone transfers with
    /// their own idle timeout ([`crate::transfer::limit`]).
    pub tcp: TcpOptions,
    /// Response rate limiting of UDP answers ([`crate::serve::rrl`]); TCP is never
    /// limited. [`ServeOptions::new`] uses NSD's defaults (200 answers/s per
    /// /24 or /56 and kind of answer, slip 2), [`RrlConfig::OFF`] turns it
    /// off.
    pub rrl: RrlConfig,
    /// A catalog configuration ([`crate::input::catalog`]): the server
    /// then also serves a catalog zone (RFC 9432) listing every zone it
    /// serves, so that catalog-consuming secondaries follow the zone set.
    pub catalog: Option<PathBuf>,
    /// DNS over TLS, HTTPS and QUIC listeners and their certificate
    /// ([`crate::serve::encrypted`]); none by default.
    pub encrypted: EncryptedOptions,
    /// Where to serve `GET /metrics` for Prometheus
    /// ([`crate::serve::metrics`]); `None` serves no metrics and does
    /// not count queries.
    pub metrics: Option<SocketAddr>,
}

impl ServeOptions {
    /// The default listening address: loopback, an unprivileged port, so
    /// that trying the server out needs neither root nor exposure.
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 5300);

    /// The default debounce: long enough to coalesce an editor's
    /// write-rename-chmod sequence, short enough to serve a change well
    /// within two seconds.
    pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(300);

    /// Options for `configs` with the default address and debounce.
    pub fn new(configs: Vec<PathBuf>) -> Self {
        ServeOptions {
            configs,
            listen: Self::DEFAULT_LISTEN,
            extra_listen: Vec::new(),
            user: None,
            systemd: false,
            debounce: Self::DEFAULT_DEBOUNCE,
            state_dir: None,
            allow_shrink: false,
            tcp: TcpOptions::DEFAULT,
            rrl: RrlConfig::default(),
            catalog: None,
            encrypted: EncryptedOptions::DEFAULT,
            metrics: None,
        }
    }
}

impl ServeOptions {
    /// Every address UDP and TCP are served on, `listen` first.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(self.listen)
            .chain(self.extra_listen.iter().copied())
            .collect()
    }
}

impl Default for ServeOptions {
    /// No zones yet, the default address and debounce.
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

/// A failure to start or run the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No zone configuration was given.
    #[error("no zone configuration to serve")]
    NoZones,
    /// A zone failed its initial build; nothing is served.
    #[error("{}: cannot build zone: {source}", config.display())]
    Build {
        /// The zone's configuration file.
        config: PathBuf,
        /// Every problem found.
        source: BuildError,
    },
    /// Two configuration files describe the same zone.
    #[error("{} and {} both describe zone {origin}", first.display(), second.display())]
    DuplicateOrigin {
        /// The origin.
        origin: DomainName,
        /// The first configuration file.
        first: PathBuf,
        /// The second.
        second: PathBuf,
    },
    /// The DNS library rejected a built zone (a bug or a name it cannot
    /// represent).
    #[error("zone {origin}: cannot be served: {message}")]
    Zone {
        /// The origin.
        origin: DomainName,
        /// hickory's reason.
        message: String,
    },
    /// The listening sockets cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// The state directory cannot be used.
    #[error(transparent)]
    State(#[from] crate::zone::state::StateError),
    /// At start, the zone built from the files would remove too much of the
    /// kept zone, and the kept zone cannot be served instead (its seal does
    /// not verify).
    #[error("{}: {source}", config.display())]
    Shrink {
        /// The zone's configuration file.
        config: PathBuf,
        /// The comparison with the kept zone.
        source: ShrinkRefused,
    },
    /// A built zone cannot be kept in the state directory; it is not
    /// served, so that a restart cannot go back to an older serial.
    #[error("cannot keep zone {origin} in {}: {source}", path.display())]
    Keep {
        /// The origin.
        origin: DomainName,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The catalog configuration cannot be used.
    #[error("catalog: {0}")]
    Catalog(String),
    /// The encrypted listeners cannot start (certificate, key, binding).
    #[error(transparent)]
    Encrypted(#[from] crate::serve::encrypted::EncryptedError),
    /// `--user` cannot be honoured.
    #[error(transparent)]
    Privileges(#[from] privileges::PrivilegeError),
    /// The input files cannot be watched.
    #[error("cannot watch input files: {0}")]
    Watch(#[from] notify::Error),
    /// An internal task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A server that is running: its address, its zones, and the way to stop it.
pub struct RunningServer {
    local_addrs: Vec<SocketAddr>,
    served: Arc<Served>,
    tcp: Vec<TcpServer>,
    udp: Vec<UdpServer>,
    notifier: systemd::Notifier,
    watchdog: Option<tokio::task::JoinHandle<()>>,
    rrl: Option<Arc<Limiter>>,
    reloader: Reloader,
    encrypted: Option<encrypted::Running>,
    metrics: Option<metrics::Endpoint>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("local_addrs", &self.local_addrs)
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// The first address actually bound (UDP and TCP share it), which
    /// tells the port chosen when the options asked for port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs[0]
    }

    /// Every address UDP and TCP are served on, as bound, in the order
    /// given ([`ServeOptions::listen`] first).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The serial currently served for `origin`, or `None` if no served zone
    /// has that origin.
    pub fn serial(&self, origin: &DomainName) -> Option<u32> {
        self.served.find(origin).map(|z| z.soa.serial)
    }

    /// The zone currently served for `origin`.
    pub fn zone(&self, origin: &DomainName) -> Option<Arc<Zone>> {
        self.served.find(origin)
    }

    /// The origins of every zone served now, sorted: a configuration of
    /// many zones adds and removes zones as its inputs change.
    pub fn origins(&self) -> Vec<DomainName> {
        self.served.origins()
    }

    /// What response rate limiting has done so far, or `None` when it is
    /// off: for monitoring, and for tests to check what clients saw.
    pub fn rrl_stats(&self) -> Option<RrlStats> {
        self.rrl.as_ref().map(|l| l.stats())
    }

    /// The address `GET /metrics` is served on, as bound (port 0 becomes
    /// the port chosen), or `None` without [`ServeOptions::metrics`].
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(metrics::Endpoint::addr)
    }

    /// The addresses DNS over TLS is served on (as bound: port 0 becomes
    /// the port chosen), in the order given.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.encrypted
            .as_ref()
            .map_or_else(Vec::new, |e| e.tls_addrs())
    }

    /// The addresses DNS over HTTPS is served on, as bound.
    pub fn https_addrs(&self) -> Vec<SocketAddr> {
        self.encrypted
            .as_ref()
            .map_or_else(Vec::new, |e| e.https_addrs())
    }

    /// The addresses DNS over QUIC is served on, as bound.
    pub fn quic_addrs(&self) -> Vec<SocketAddr> {
        self.encrypted
            .as_ref()
            .map_or_else(Vec::new, |e| e.quic_addrs())
    }

    /// What the encrypted listeners have answered, or `None` when there
    /// are none.
    pub fn encrypted_stats(&self) -> Option<EncryptedStats> {
        self.encrypted.as_ref().map(|e| e.stats())
    }

    /// Receives a [`CertEvent`] for every reload of the TLS certificate
    /// files from now on, or `None` without encrypted listeners.
    pub fn subscribe_certificates(&self) -> Option<broadcast::Receiver<CertEvent>> {
        self.encrypted.as_ref().map(|e| e.store().subscribe())
    }

    /// The certificate chain presented to new handshakes now (DER), or
    /// `None` without encrypted listeners.
    pub fn certificate_chain(&self) -> Option<Vec<rustls_pki_types::CertificateDer<'static>>> {
        self.encrypted
            .as_ref()
            .map(|e| e.store().current().cert.clone())
    }

    /// Receives a [`ReloadEvent`] for every rebuild from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ReloadEvent> {
        self.served.events.subscribe()
    }

    /// Rebuilds every zone now, as if its files had changed (for SIGHUP or
    /// an admin command); the outcome arrives as [`ReloadEvent`]s.
    pub fn reload_all(&self) {
        self.reloader.trigger_all();
    }

    /// Stops watching, stops the timers, and shuts the DNS server down
    /// gracefully (no new queries are accepted; the sockets are closed).
    ///
    /// Under systemd, `STOPPING=1` is sent first.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        self.notifier.stopping();
        if let Some(m) = self.metrics.take() {
            m.stop();
        }
        self.reloader.stop().await;
        let udp = std::mem::take(&mut self.udp);
        tokio::task::spawn_blocking(move || udp.into_iter().for_each(UdpServer::stop)).await?;
        if let Some(rrl) = &self.rrl {
            rrl.log_totals();
        }
        for tcp in std::mem::take(&mut self.tcp) {
            tcp.stop().await?;
        }
        if let Some(e) = self.encrypted.take() {
            e.stop().await;
        }
        if let Some(w) = self.watchdog.take() {
            w.abort();
        }
        info!(addrs = ?self.local_addrs, "server stopped");
        Ok(())
    }
}

/// Binds UDP and TCP at every address of `opts` (and the encrypted
/// listeners), becomes `opts.user` if asked, builds every zone, and starts
/// serving, watching and re-signing in the background of the current tokio
/// runtime.
///
/// Any zone that fails its initial build is an error naming its
/// configuration file and every problem: a server that starts has all its
/// zones. Every socket is bound before anything is read, and nothing is
/// read before privileges are dropped (see [`crate::serve::privileges`]
/// for why).
pub async fn start(opts: ServeOptions) -> Result<RunningServer, ServeError> {
    let started = UnixTime::now();
    if opts.configs.is_empty() {
        return Err(ServeError::NoZones);
    }
    if opts.encrypted.any() && opts.encrypted.certificate.is_none() {
        return Err(encrypted::EncryptedError::NoCertificate.into());
    }
    let user = opts
        .user
        .as_deref()
        .map(privileges::ServiceUser::lookup)
        .transpose()?;
    // Connected while still root: the service manager's socket need not be
    // reachable by the service user.
    let notifier = if opts.systemd {
        systemd::Notifier::from_env()
    } else {
        systemd::Notifier::none()
    };
    crate::serve::tcp::raise_open_file_limit();
    let mut plain = Vec::new();
    for addr in opts.listen_addrs() {
        plain.push((addr, bind(addr)?));
    }
    let encrypted_sockets = encrypted::bind(&opts.encrypted)?;
    if let Some(user) = &user {
        user.become_user()?;
        info!(
            user = user.name(),
            uid = user.uid(),
            gid = user.gid(),
            "privileges dropped"
        );
    }
    let state = match &opts.state_dir {
        Some(d) => {
            let d = d.clone();
            Some(Arc::new(
                tokio::task::spawn_blocking(move || StateDir::open(d)).await??,
            ))
        }
        None => None,
    };
    let allow_shrink = opts.allow_shrink;
    let builds = opts
        .configs
        .iter()
        .map(|config| {
            let config = config.clone();
            let state = state.clone();
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let loaded = ZoneConfig::load(&config).ok();
                let inputs = loaded.as_ref().map(|c| c.input_files()).unwrap_or_default();
                let result = initial_set(&config, loaded.as_ref(), state.as_deref(), allow_shrink);
                (config, inputs, result, started.elapsed())
            })
        })
        .collect::<Vec<_>>();
    let mut slots = Vec::with_capacity(builds.len());
    let mut inputs = Vec::with_capacity(builds.len());
    let mut first_error = None;
    for b in builds {
        let (config, files, result, elapsed) = b.await?;
        match result {
            Ok((set, warnings, served)) => {
                let first = set
                    .zones
                    .keys()
                    .next()
                    .cloned()
                    .unwrap_or_else(ZoneConfig::many);
                log_warnings(&first, &warnings);
                if set.zones.len() == 1 {
                    let zone = set.zones.values().next().expect("one zone");
                    info!(
                        origin = %zone.origin,
                        serial = zone.soa.serial,
                        records = zone.record_count(),
                        ms = elapsed.as_millis() as u64,
                        config = %config.display(),
                        "zone loaded"
                    );
                } else {
                    info!(
                        zones = set.zones.len(),
                        records = set.record_count(),
                        ms = elapsed.as_millis() as u64,
                        config = %config.display(),
                        "zones loaded"
                    );
                }
                inputs.push(files);
                slots.push(Slot {
                    config,
                    set,
                    served,
                });
            }
            Err(e) => {
                error!(config = %config.display(), "cannot start serving the zone: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    crate::serve::memory::release_free_memory();
    let resign_at: Vec<_> = slots.iter().map(|s| s.set.next_resign()).collect();
    let catalog = match &opts.catalog {
        None => None,
        Some(path) => {
            let c = catalog::CatalogSlot::load(path, state.clone()).map_err(ServeError::Catalog)?;
            if let Some(s) = slots.iter().find(|s| s.set.zones.contains_key(c.origin())) {
                return Err(ServeError::Catalog(format!(
                    "{}: origin {} is also a zone of {}",
                    path.display(),
                    c.origin(),
                    s.config.display()
                )));
            }
            Some(c)
        }
    };
    let status_initial: Vec<(PathBuf, String, u32)> = slots
        .iter()
        .flat_map(|s| {
            s.set
                .zones
                .iter()
                .map(|(o, z)| (s.config.clone(), o.as_str().to_owned(), z.soa.serial))
        })
        .collect();
    let served = Arc::new(Served::new(slots, state.clone(), catalog).map_err(
        |(first, second, origin)| ServeError::DuplicateOrigin {
            origin,
            first,
            second,
        },
    )?);
    // Written before the sockets serve, so that a server that answers
    // has its record; subscribed before the reloaders start, so that no
    // outcome is missed.
    if let Some(dir) = &opts.state_dir {
        status_file::start(
            dir.clone(),
            started,
            status_initial,
            served.events.subscribe(),
        )
        .await;
    }

    let rrl = Limiter::new(&opts.rrl).map(Arc::new);
    match opts.rrl.rate() {
        Some(rate) => info!(
            rate,
            slip = opts.rrl.slip(),
            ipv4_prefix = opts.rrl.ipv4_prefix(),
            ipv6_prefix = opts.rrl.ipv6_prefix(),
            buckets = opts.rrl.table_size(),
            "UDP response rate limiting on"
        ),
        None => info!("UDP response rate limiting off"),
    }
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    let mut local_addrs = Vec::new();
    let mut failed = None;
    for (addr, (u, t, bound)) in plain {
        let listener = t
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(t));
        let spawned = listener.and_then(|l| {
            UdpServer::spawn(u, served.clone(), udp_threads(), rrl.clone()).map(|u| (u, l))
        });
        match spawned {
            Ok((u, l)) => {
                udp.push(u);
                tcp.push(TcpServer::spawn(
                    l,
                    served.clone(),
                    opts.tcp,
                    encrypted::Layer::Plain,
                ));
                info!(addr = %bound, zones = served.zone_count(), "serving over UDP and TCP");
                local_addrs.push(bound);
            }
            Err(source) => {
                failed = Some(ServeError::Bind { addr, source });
                break;
            }
        }
    }
    let encrypted = match failed {
        Some(e) => Err(e),
        None => encrypted::start(
            &opts.encrypted,
            encrypted_sockets,
            opts.tcp,
            &served,
            opts.debounce,
        )
        .await
        .map_err(ServeError::from),
    };
    let encrypted = match encrypted {
        Ok(e) => e,
        Err(e) => {
            stop_plain(tcp, udp).await;
            return Err(e);
        }
    };
    let metrics = match opts.metrics {
        None => None,
        Some(addr) => match metrics::serve_endpoint(addr, served.clone(), rrl.clone()).await {
            Ok(m) => Some(m),
            Err(source) => {
                stop_plain(tcp, udp).await;
                if let Some(listeners) = encrypted {
                    listeners.stop().await;
                }
                return Err(ServeError::Bind { addr, source });
            }
        },
    };
    // Secondaries may hold an older serial from before this start.
    for zone in served.all_zones() {
        metrics::metrics().signed(&zone);
        tokio::spawn(metrics::notify_secondaries(zone));
    }
    if let Some(zone) = served.catalog() {
        tokio::spawn(metrics::notify_secondaries(zone));
    }

    let status = format!(
        "serving {} zones on {}",
        served.zone_count(),
        local_addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let gate = Arc::new(systemd::ReloadGate::new(notifier.clone()));
    gate.set_status(status.clone());
    let reloader = match watch::spawn(
        served.clone(),
        inputs,
        resign_at,
        opts.debounce,
        opts.allow_shrink,
        gate,
    ) {
        Ok(r) => r,
        Err(e) => {
            stop_plain(tcp, udp).await;
            if let Some(listeners) = encrypted {
                listeners.stop().await;
            }
            return Err(e.into());
        }
    };
    // Every zone is built and every listener is serving.
    notifier.ready(&status);
    let watchdog = match systemd::watchdog_interval() {
        Some(interval) if notifier.enabled() => {
            info!(ms = interval.as_millis() as u64, "systemd watchdog on");
            Some(systemd::spawn_watchdog(notifier.clone(), interval))
        }
        _ => None,
    };
    Ok(RunningServer {
        local_addrs,
        served,
        tcp,
        udp,
        notifier,
        watchdog,
        rrl,
        reloader,
        encrypted,
        metrics,
    })
}

/// Stops the UDP and TCP servers started so far (a start that failed).
async fn stop_plain(tcp: Vec<TcpServer>, udp: Vec<UdpServer>) {
    for t in tcp {
        let _ = t.stop().await;
    }
    let _ = tokio::task::spawn_blocking(move || udp.into_iter().for_each(UdpServer::stop)).await;
}

/// A configuration's zones, their warnings and their indexes.
type Initial = (
    ZoneSet,
    Vec<Problem>,
    std::collections::BTreeMap<DomainName, Arc<ServedZone>>,
);

/// The first zones served from `config` (CPU-bound): built from the files,
/// each starting from its zone kept in `state` (for a configuration of
/// many zones, every kept zone it could describe). If the build would
/// remove too much of the kept zones (summed over them, a kept zone not
/// built again counting as removed) and every kept zone's seal verifies,
/// the kept zones are served instead (as a running server keeps serving
/// its zones); otherwise that is an error. Zones are kept before they are
/// served.
fn initial_set(
    config: &Path,
    loaded: Option<&ZoneConfig>,
    state: Option<&StateDir>,
    allow_shrink: bool,
) -> Result<Initial, ServeError> {
    let build_error = |source| ServeError::Build {
        config: config.to_owned(),
        source,
    };
    let loaded = match loaded {
        Some(c) => c.clone(),
        None => ZoneConfig::load(config).map_err(|e| {
            build_error(BuildError::from(Problem::in_file(
                config,
                e.to_string()
                    .strip_prefix(&format!("{}: ", config.display()))
                    .unwrap_or(&e.to_string())
                    .to_owned(),
            )))
        })?,
    };
    let mut kept: Vec<crate::zone::state::Kept> = match state {
        Some(s) if loaded.is_many() => {
            let ours = publishable(&loaded);
            s.origins()
                .into_iter()
                .filter(|o| ours(o))
                .filter_map(|o| s.load(&loaded.for_zone(&o)))
                .collect()
        }
        Some(s) => s.load(&loaded).into_iter().collect(),
        None => Vec::new(),
    };
    // A zone file does not hold the transfer policy: give the kept zones
    // the configured one, so that unchanged content keeps its serial
    // across a restart (a new serial would cost every secondary a
    // transfer of nothing).
    if let Some(t) = &loaded.transfer {
        let policy = crate::build::transfer_policy(t).ok();
        for k in &mut kept {
            k.zone.transfer = policy.clone();
        }
    }
    let previous = ZoneSet::of(kept.iter().map(|k| k.for_build().into_owned()));
    let output = build_zones(&loaded, UnixTime::now(), &previous, None).map_err(build_error)?;
    drop(previous);
    let ZoneSetOutput {
        mut set,
        warnings,
        seal,
        max_shrink,
        rollover,
        ..
    } = output;
    installed::log_rollover(&loaded.origin, rollover.as_ref());
    let kept_set = ZoneSet::of(kept.iter().map(|k| k.zone.clone()));
    // A build keeps the serial only for the same content: then the kept
    // file already holds this zone.
    let mut already_kept: std::collections::BTreeSet<DomainName> = kept
        .iter()
        .filter(|k| {
            k.trusted
                && set
                    .zones
                    .get(&k.zone.origin)
                    .is_some_and(|z| z.soa.serial == k.zone.soa.serial)
        })
        .map(|k| k.zone.origin.clone())
        .collect();
    if !allow_shrink && !kept.is_empty() {
        if let Err(refused) = compare(&kept_set, &set).check(max_shrink) {
            if !kept.iter().all(|k| k.trusted) {
                return Err(ServeError::Shrink {
                    config: config.to_owned(),
                    source: refused,
                });
            }
            error!(
                config = %config.display(),
                zones = kept.len(),
                "{refused}; serving the kept zones"
            );
            set = ZoneSet::of(kept.iter().map(|k| k.zone.clone()));
            already_kept = set.zones.keys().cloned().collect();
        }
    }
    drop(kept_set);
    let now = UnixTime::now();
    let mut served = std::collections::BTreeMap::new();
    let mut journals = Vec::new();
    for (origin, zone) in &set.zones {
        // The history up to the kept zone, if it can be trusted; followed
        // to the zone built now when that is newer.
        let k = kept.iter().find(|k| k.zone.origin == *origin);
        let limits = zone
            .transfer
            .as_ref()
            .map(|t| t.journal)
            .unwrap_or_default();
        let kept_journal = match (state, k) {
            (Some(state), Some(k)) => state.load_journal(k, seal.as_ref(), limits),
            _ => Journal::default(),
        };
        let previous_zone = k.filter(|k| k.trusted).map(|k| &k.zone);
        let journal = if previous_zone.is_some_and(|p| p.soa.serial == zone.soa.serial) {
            kept_journal
        } else {
            let (j, o) = kept_journal.follow(previous_zone, zone, now);
            installed::log_journal(zone, &j, &o);
            journals.push((origin.clone(), o));
            j
        };
        let s = ServedZone::new(zone.clone())
            .map_err(|message| {
                build_error(BuildError {
                    problems: vec![Problem::in_file(
                        config,
                        format!("zone {origin}: {message}"),
                    )],
                })
            })?
            .with_journal(Arc::new(journal));
        served.insert(origin.clone(), Arc::new(s));
    }
    drop(kept);
    if let Some(state) = state {
        // Journals first, as when a rebuilt zone is installed.
        for (origin, outcome) in &journals {
            let s = &served[origin];
            state
                .keep_journal(origin, s.journal(), outcome, seal.as_ref())
                .map_err(|source| ServeError::Keep {
                    origin: origin.clone(),
                    path: state.journal_path(origin),
                    source,
                })?;
        }
        let to_keep: Vec<&Zone> = set
            .zones
            .values()
            .filter(|z| !already_kept.contains(&z.origin))
            .map(|z| &**z)
            .collect();
        let first = to_keep
            .first()
            .map_or_else(ZoneConfig::many, |z| z.origin.clone());
        state
            .write_all(&to_keep, seal.as_ref())
            .map_err(|source| ServeError::Keep {
                path: state.path(&first),
                origin: first,
                source,
            })?;
    }
    Ok((set, warnings, served))
}

/// Serves until `shutdown` completes, then stops gracefully: what the
/// binary runs, with [`shutdown_signal`]. On SIGHUP every input of every
/// zone is read again ([`RunningServer::reload_all`]).
///
/// Both signal handlers are in place before the server starts (and so
/// before systemd is told it is ready): a signal sent the moment the
/// server is ready must be handled, not kill the process by its default
/// action.
pub async fn run(
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let mut shutdown = std::pin::pin!(shutdown);
    // One poll runs `shutdown` up to its first wait, installing the
    // handlers it waits on.
    let stopped =
        std::future::poll_fn(|cx| std::task::Poll::Ready(shutdown.as_mut().poll(cx).is_ready()))
            .await;
    if stopped {
        return Ok(());
    }
    let mut hangup = Hangup::install();
    let running = start(opts).await?;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = hangup.recv() => {
                info!("SIGHUP: reloading every zone");
                running.reload_all();
            }
        }
    }
    info!("shutting down");
    running.shutdown().await
}

/// SIGHUP, where there is one.
struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::hangup()) {
                Ok(s) => Hangup { signal: Some(s) },
                Err(e) => {
                    warn!("cannot wait for SIGHUP: {e}");
                    Hangup { signal: None }
                }
            }
        }
        #[cfg(not(unix))]
        {
            Hangup {}
        }
    }

    /// Completes at the next SIGHUP; never without one.
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &mut self.signal {
            if s.recv().await.is_some() {
                return;
            }
            self.signal = None;
        }
        std::future::pending::<()>().await;
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM, the signals a terminal or a
/// service manager sends to stop the server.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    r = tokio::signal::ctrl_c() => if let Err(e) = r { warn!("cannot wait for Ctrl-C: {e}") },
                    _ = term.recv() => {},
                }
            }
            Err(e) => {
                warn!("cannot wait for SIGTERM: {e}");
                if let Err(e) = tokio::signal::ctrl_c().await {
                    warn!("cannot wait for Ctrl-C: {e}");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!("cannot wait for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    }
}

/// The UDP receive buffer asked of the kernel: large enough to absorb query
/// bursts while a reload takes CPU.
const UDP_RECV_BUFFER: usize = 1 << 20;
/// UDP serving threads: one per core the process may use.
fn udp_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 64))
}

/// Attempts to find a port free for both UDP and TCP when port 0 is asked.
const BIND_ATTEMPTS: usize = 8;

/// Binds UDP and TCP on the same address, returning both and the address
/// bound. With port 0, UDP picks the port and TCP takes the same one; if
/// TCP finds it taken, both try again.
fn bind(
    addr: SocketAddr,
) -> Result<(std::net::UdpSocket, std::net::TcpListener, SocketAddr), ServeError> {
    let err = |source| ServeError::Bind { addr, source };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = bind_udp(addr).map_err(err)?;
        let bound = udp.local_addr().map_err(err)?;
        let tcp_addr = SocketAddr::new(addr.ip(), bound.port());
        match tcp_listener(tcp_addr) {
            Ok(tcp) => return Ok((udp, tcp, bound)),
            Err(e)
                if addr.port() == 0
                    && e.kind() == io::ErrorKind::AddrInUse
                    && attempt < BIND_ATTEMPTS =>
            {
                debug!(port = bound.port(), "TCP port taken, trying another");
            }
            Err(e) => return Err(err(e)),
        }
    }
}

/// A socket of `kind` for `addr`: IPv6 sockets are IPv6-only
/// (`IPV6_V6ONLY`), whatever the system default, so that the IPv4 and
/// IPv6 wildcards can both be bound and each address means exactly itself.
fn socket_for(addr: SocketAddr, kind: socket2::Type) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let protocol = if kind == Type::DGRAM {
        Protocol::UDP
    } else {
        Protocol::TCP
    };
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}

/// A bound, listening TCP socket (`SO_REUSEADDR`, as std sets it, so that
/// a restart does not wait for old connections in TIME_WAIT; IPv6-only
/// for an IPv6 address).
pub(crate) fn tcp_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket_for(addr, socket2::Type::STREAM)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// A bound UDP socket (IPv6-only for an IPv6 address), for DNS over QUIC.
pub(crate) fn udp_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = socket_for(addr, socket2::Type::DGRAM)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A non-blocking UDP socket with a large receive buffer (if the kernel
/// grants it; refusing is not fatal).
fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = socket_for(addr, socket2::Type::DGRAM)?;
    match socket.set_recv_buffer_size(UDP_RECV_BUFFER) {
        Ok(()) => {
            // Linux reports twice the size granted (bookkeeping overhead),
            // capped by net.core.rmem_max.
            match socket.recv_buffer_size() {
                Ok(got) if got < UDP_RECV_BUFFER => warn!(
                    requested = UDP_RECV_BUFFER,
                    granted = got,
                    "UDP receive buffer is smaller than requested (raise net.core.rmem_max)"
                ),
                Ok(got) => debug!(granted = got, "UDP receive buffer"),
                Err(e) => debug!("cannot read UDP receive buffer size: {e}"),
            }
        }
        Err(e) => warn!("cannot enlarge UDP receive buffer: {e}"),
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}
