//! What the server has done and what it serves, for Prometheus:
//! `serve --metrics ADDR` ([`crate::serve::ServeOptions::metrics`]).
//!
//! # The metrics
//!
//! | name | labels | what |
//! |------|--------|------|
//! | `mimi_queries_total` | `transport` (udp, tcp, tls, https, quic), `type` (TXT, SOA, NS, A, AAAA, SRV, AXFR, IXFR, other), `rcode` (NOERROR, NXDOMAIN, REFUSED, FORMERR, SERVFAIL, NOTIMP, other) | queries answered |
//! | `mimi_rrl_actions_total` | `action` (dropped, slipped) | UDP answers over the rate limit ([`crate::serve::rrl`]) |
//! | `mimi_transfers_total` | `zone`, `type` (AXFR, IXFR), `outcome` (completed, failed, refused) | zone transfers over TCP and TLS of a served zone |
//! | `mimi_transfers_refused_total` | `reason` | refused transfer requests, whatever their zone |
//! | `mimi_notifies_sent_total` | `zone`, `outcome` (acknowledged, rejected, unanswered) | NOTIFYs, one per secondary and change |
//! | `mimi_reloads_total` | `zone`, `outcome` (installed, unchanged, failed) | rebuilds while serving (file changes and re-sign timers) |
//! | `mimi_last_reload_timestamp_seconds` | `zone`, `outcome` | when the last rebuild with that outcome ended |
//! | `mimi_resigned_records_total` | `zone` | records the builds signed (at start and while serving) |
//! | `mimi_zone_serial` | `zone` | the SOA serial served |
//! | `mimi_zone_records` | `zone`, `kind` (assertion, certificate, all) | records served |
//! | `mimi_zone_earliest_expiry_seconds` | `zone`, `kind` (assertion, certificate) | seconds until the first `x=` is reached (negative once past); no series without such records |
//! | `mimi_rollover_steps_total` | `zone`, `step` (published, switched, retired) | key rollover steps installed (a certificate published, signing switched, a certificate removed) |
//! | `mimi_key_bundle_remaining_seconds` | `zone` | seconds until the key bundle runs out (its last certificate's end less the re-sign margin); only zones signed from a bundle |
//! | `mimi_build_info` | `version` | 1 |
//!
//! # Why queries are counted without a zone
//!
//! The query counters are indexed by small fixed sets only. A `zone`
//! label would have to come from the query name, which anyone on the
//! network chooses: a label per name asked for is an unbounded number of
//! series (and of memory here), and restricting it to served zones would
//! cost a lookup per query. Per-zone traffic is what the transfer,
//! reload and zone metrics are for.
//!
//! # Cost on the serving path
//!
//! A query costs one relaxed atomic load (are metrics on?) and, with
//! `--metrics`, one relaxed atomic add into a fixed array indexed by
//! (transport, type, rcode) read from the answer's header and question:
//! no lock, no hashing, no allocation. prometheus-client's `Family` would
//! take a read lock and hash the labels on every query, so the array is
//! exposed through a [`Collector`] at scrape time instead. The counters
//! are process-wide statics ([`metrics`]) so that the UDP threads, the TCP
//! connections and the encrypted listeners reach them without a pointer
//! passed down every path; a process runs one server.
//!
//! The per-zone metrics change with reloads, transfers and NOTIFYs, a few
//! times a minute at most, and use prometheus-client's families. The
//! zone figures (serial, counts, expiries) are read from
//! [`ZoneFigures::of`] once per served serial, at the first scrape that
//! sees it (walking a zone of millions of records takes a moment), and
//! the expiries are turned into "seconds from now" at every scrape, so
//! they decrease between reloads.
//!
//! # Adding a metric
//!
//! A per-zone gauge or counter is a field of [`Metrics`] (a
//! `Family<ZoneLabel, Gauge>` or `Family<ZoneLabel, Counter>`) and one
//! `registry.register(..)` line in `Metrics::new`; code anywhere under
//! `serve` then sets it with
//! `metrics().field.get_or_create(&ZoneLabel::of(&origin)).set(v)`.
//!
//! # The endpoint
//!
//! No HTTP server is in the dependency tree (the DNS over HTTPS listener
//! uses `h2` directly, for HTTP/2 only), and a scrape endpoint needs one
//! request shape: `GET /metrics`. It is therefore a small HTTP/1.1
//! handler on tokio (`serve_endpoint`): one request per connection
//! (`Connection: close`), a request head of at most [`MAX_REQUEST`]
//! octets read within [`REQUEST_TIMEOUT`] in total (so that a slow client
//! cannot hold a connection open byte by byte), the answer written within
//! the same time, and at most [`MAX_CONNECTIONS`] connections at once
//! (more are closed at once). Other paths are 404, other methods 405.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use mimi_proto::{DomainName, UnixTime};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info};

use crate::serve::installed::{ReloadEvent, Served};
use crate::serve::rrl::Limiter;
use crate::transfer::{NotifyOutcome, Refusal, TransferReport, TransferResult};
use crate::zone::figures::ZoneFigures;
use crate::zone::Zone;

/// The transport a query came over, as the `transport` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp = 0,
    Tcp = 1,
    Tls = 2,
    Https = 3,
    Quic = 4,
}

const TRANSPORTS: [&str; 5] = ["udp", "tcp", "tls", "https", "quic"];
const TYPES: [&str; 9] = [
    "TXT", "SOA", "NS", "A", "AAAA", "SRV", "AXFR", "IXFR", "other",
];
const RCODES: [&str; 7] = [
    "NOERROR", "NXDOMAIN", "REFUSED", "FORMERR", "SERVFAIL", "NOTIMP", "other",
];
const TYPE_OTHER: usize = 8;
const RCODE_OTHER: usize = 6;

/// The `type` label's index for a query type.
fn type_index(qtype: u16) -> usize {
    match qtype {
        16 => 0,
        6 => 1,
        2 => 2,
        1 => 3,
        28 => 4,
        33 => 5,
        252 => 6,
        251 => 7,
        _ => TYPE_OTHER,
    }
}

/// The `rcode` label's index for a header RCODE.
fn rcode_index(rcode: u16) -> usize {
    match rcode {
        0 => 0,
        3 => 1,
        5 => 2,
        1 => 3,
        2 => 4,
        4 => 5,
        _ => RCODE_OTHER,
    }
}

/// The question type and RCODE of a response in wire form, as label
/// indexes: the RCODE from the header, the type from the first question
/// (our answers repeat the question uncompressed; a response without one,
/// such as a FORMERR, is type `other`).
fn classify(response: &[u8]) -> (usize, usize) {
    if response.len() < 12 {
        return (TYPE_OTHER, RCODE_OTHER);
    }
    let rcode = rcode_index(u16::from(response[3] & 0x0f));
    if response[4..6] != [0, 1] {
        return (TYPE_OTHER, rcode);
    }
    let mut pos = 12;
    while let Some(&len) = response.get(pos) {
        match len {
            0 => {
                pos += 1;
                break;
            }
            l if l & 0xc0 != 0 => {
                pos += 2;
                break;
            }
            l => pos += 1 + usize::from(l),
        }
    }
    let qtype = match response.get(pos..pos + 2) {
        Some(t) => type_index(u16::from_be_bytes([t[0], t[1]])),
        None => TYPE_OTHER,
    };
    (qtype, rcode)
}

/// Queries answered, by (transport, type, rcode): plain atomics, added to
/// without a lock on the serving path.
struct QueryCounters {
    /// Whether anything reads the counters (`--metrics`): without it a
    /// query costs one load.
    enabled: AtomicBool,
    counts: [[[AtomicU64; 7]; 9]; 5],
}

impl QueryCounters {
    const fn new() -> Self {
        QueryCounters {
            enabled: AtomicBool::new(false),
            counts: [const { [const { [const { AtomicU64::new(0) }; 7] }; 9] }; 5],
        }
    }

    fn add(&self, transport: Transport, qtype: usize, rcode: usize) {
        self.counts[transport as usize][qtype][rcode].fetch_add(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for QueryCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryCounters").finish_non_exhaustive()
    }
}

static QUERIES: QueryCounters = QueryCounters::new();

/// Counts the answer `response` to a query that came over `transport`:
/// the one hook of the serving paths (a load, and with metrics on a
/// parse of the question name and an atomic add).
#[inline]
pub(crate) fn count_answer(transport: Transport, response: &[u8]) {
    if QUERIES.enabled.load(Ordering::Relaxed) {
        let (qtype, rcode) = classify(response);
        QUERIES.add(transport, qtype, rcode);
    }
}

/// Counts a zone transfer request answered over a stream: as a query
/// (type AXFR or IXFR, the RCODE of the answer) and as a transfer.
pub(crate) fn count_transfer(transport: Transport, report: &TransferReport) {
    if QUERIES.enabled.load(Ordering::Relaxed) {
        let qtype = if report.ixfr { 7 } else { 6 };
        let rcode = match &report.result {
            TransferResult::Refused(Refusal::Malformed, _) => 3,
            TransferResult::Refused(Refusal::BadTsig, _) => RCODE_OTHER,
            TransferResult::Refused(..) => 2,
            TransferResult::Completed(_) | TransferResult::Failed(_) => 0,
        };
        QUERIES.add(transport, qtype, rcode);
        metrics().transferred(report);
    }
}

/// The label set of a per-zone metric with nothing else to tell.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ZoneLabel {
    /// The zone's origin, without the final dot.
    pub zone: String,
}

impl ZoneLabel {
    /// The label of the zone `origin`.
    pub fn of(origin: &DomainName) -> Self {
        ZoneLabel {
            zone: origin.as_str().to_owned(),
        }
    }
}

/// A zone and an outcome (reloads, NOTIFYs).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ZoneOutcome {
    /// The zone's origin.
    pub zone: String,
    /// What happened.
    pub outcome: &'static str,
}

/// A zone and a key rollover step.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ZoneStep {
    /// The zone's origin.
    pub zone: String,
    /// The step: published, switched, retired.
    pub step: &'static str,
}

/// A zone transfer of a served zone.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransferLabels {
    /// The zone's origin.
    pub zone: String,
    /// AXFR or IXFR (as asked).
    pub r#type: &'static str,
    /// completed, failed or refused.
    pub outcome: &'static str,
}

/// Why a transfer request was refused.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The reason: malformed, not_served, no_transfer_section,
    /// not_allowed, unsigned, bad_tsig or busy.
    pub reason: &'static str,
}

/// The per-zone and event metrics (everything but the query counters and
/// the zone figures, which are read at scrape time), registered in one
/// prometheus-client [`Registry`].
#[derive(Debug)]
pub struct Metrics {
    /// `mimi_reloads_total{zone,outcome}`.
    pub reloads: Family<ZoneOutcome, Counter>,
    /// `mimi_last_reload_timestamp_seconds{zone,outcome}`.
    pub last_reload: Family<ZoneOutcome, Gauge>,
    /// `mimi_resigned_records_total{zone}`.
    pub resigned: Family<ZoneLabel, Counter>,
    /// `mimi_transfers_total{zone,type,outcome}`.
    pub transfers: Family<TransferLabels, Counter>,
    /// `mimi_transfers_refused_total{reason}`.
    pub transfers_refused: Family<ReasonLabel, Counter>,
    /// `mimi_notifies_sent_total{zone,outcome}`.
    pub notifies: Family<ZoneOutcome, Counter>,
    /// `mimi_rollover_steps_total{zone,step}`.
    pub rollover_steps: Family<ZoneStep, Counter>,
    /// When each bundle-signed zone's bundle runs out (Unix time), for
    /// `mimi_key_bundle_remaining_seconds`, computed at scrape time.
    bundle_runs_out: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    registry: Registry,
}

impl Metrics {
    fn new() -> Self {
        let reloads = Family::default();
        let last_reload = Family::default();
        let resigned = Family::default();
        let transfers = Family::default();
        let transfers_refused = Family::default();
        let notifies = Family::default();
        let rollover_steps = Family::default();
        let mut registry = Registry::default();
        registry.register(
            "mimi_rollover_steps",
            "Key rollover steps installed: published (a certificate entered the zone), switched (signing moved to another key), retired (a certificate left it)",
            rollover_steps.clone(),
        );
        registry.register(
            "mimi_reloads",
            "Rebuilds of a served zone by outcome",
            reloads.clone(),
        );
        registry.register(
            "mimi_last_reload_timestamp_seconds",
            "When the last rebuild with this outcome ended (Unix time)",
            last_reload.clone(),
        );
        registry.register(
            "mimi_resigned_records",
            "Records signed by the zone's builds",
            resigned.clone(),
        );
        registry.register(
            "mimi_transfers",
            "Zone transfers of served zones by type and outcome",
            transfers.clone(),
        );
        registry.register(
            "mimi_transfers_refused",
            "Refused zone transfer requests by reason",
            transfers_refused.clone(),
        );
        registry.register(
            "mimi_notifies_sent",
            "NOTIFYs sent to secondaries by outcome",
            notifies.clone(),
        );
        let build_info = Family::<BuildInfo, Gauge>::default();
        build_info
            .get_or_create(&BuildInfo {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("mimi_build_info", "The publisher's version", build_info);
        Metrics {
            reloads,
            last_reload,
            resigned,
            transfers,
            transfers_refused,
            notifies,
            rollover_steps,
            bundle_runs_out: Default::default(),
            registry,
        }
    }

    /// Counts a rebuild's outcome (called where every [`ReloadEvent`] is
    /// announced).
    pub(crate) fn reloaded(&self, event: &ReloadEvent) {
        let outcome = match (event.ok, event.changed) {
            (false, _) => "failed",
            (true, true) => "installed",
            (true, false) => "unchanged",
        };
        let labels = ZoneOutcome {
            zone: event.origin.as_str().to_owned(),
            outcome,
        };
        self.reloads.get_or_create(&labels).inc();
        self.last_reload
            .get_or_create(&labels)
            .set(UnixTime::now().0 as i64);
    }

    /// Records what a zone's rollover decided: the steps of an installed
    /// build (`installed`), and in any case when its bundle runs out.
    pub(crate) fn rollover(
        &self,
        origin: &DomainName,
        report: &crate::build::rollover::RolloverReport,
        installed: bool,
    ) {
        if installed {
            for step in &report.steps {
                self.rollover_steps
                    .get_or_create(&ZoneStep {
                        zone: origin.as_str().to_owned(),
                        step: step.name(),
                    })
                    .inc();
            }
        }
        self.bundle_runs_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(origin.as_str().to_owned(), report.runs_out.0);
    }

    /// Counts the records signed for `zone` by the build that made it.
    pub(crate) fn signed(&self, zone: &Zone) {
        self.resigned
            .get_or_create(&ZoneLabel::of(&zone.origin))
            .inc_by(zone.cache.signed() as u64);
    }

    /// Counts a zone transfer request answered over TCP or TLS.
    pub(crate) fn transferred(&self, report: &TransferReport) {
        let kind = if report.ixfr { "IXFR" } else { "AXFR" };
        let (zone, outcome) = match &report.result {
            TransferResult::Completed(z) => (Some(z), "completed"),
            TransferResult::Failed(z) => (Some(z), "failed"),
            TransferResult::Refused(refusal, zone) => {
                self.transfers_refused
                    .get_or_create(&ReasonLabel {
                        reason: refusal.label(),
                    })
                    .inc();
                (zone.as_ref(), "refused")
            }
        };
        if let Some(zone) = zone {
            self.transfers
                .get_or_create(&TransferLabels {
                    zone: zone.as_str().to_owned(),
                    r#type: kind,
                    outcome,
                })
                .inc();
        }
    }

    /// Counts the outcomes of NOTIFYs sent for `zone`.
    pub(crate) fn notified(&self, zone: &DomainName, outcomes: &[NotifyOutcome]) {
        for o in outcomes {
            self.notifies
                .get_or_create(&ZoneOutcome {
                    zone: zone.as_str().to_owned(),
                    outcome: o.label(),
                })
                .inc();
        }
    }
}

/// `mimi_build_info`'s label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildInfo {
    version: &'static str,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Sends NOTIFYs for `zone` ([`crate::transfer::notify_secondaries`]) and
/// counts their outcomes.
pub(crate) async fn notify_secondaries(zone: Arc<Zone>) {
    let outcomes = crate::transfer::notify_secondaries(&zone).await;
    metrics().notified(&zone.origin, &outcomes);
}

/// What a scrape reads besides the registry: the served zones (for their
/// figures), the rate limiter, and the query counters.
struct Scraped {
    served: Arc<Served>,
    rrl: Option<Arc<Limiter>>,
    /// The figures of each zone, by origin, with the serial they are of:
    /// computed again only when a new serial is served (the same serial
    /// is the same content).
    figures: Mutex<HashMap<DomainName, ZoneFigures>>,
}

impl std::fmt::Debug for Scraped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scraped").finish_non_exhaustive()
    }
}

/// The zone figures and the counters kept outside the registry, encoded
/// at each scrape.
#[derive(Debug)]
struct ScrapeCollector(Arc<Scraped>);

impl Collector for ScrapeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        // Queries.
        {
            let mut m = encoder.encode_descriptor(
                "mimi_queries",
                "Queries answered by transport, question type and rcode.",
                None,
                MetricType::Counter,
            )?;
            for (t, by_type) in QUERIES.counts.iter().enumerate() {
                for (q, by_rcode) in by_type.iter().enumerate() {
                    for (r, n) in by_rcode.iter().enumerate() {
                        let n = n.load(Ordering::Relaxed);
                        if n == 0 {
                            continue;
                        }
                        let labels = [
                            ("transport", TRANSPORTS[t]),
                            ("type", TYPES[q]),
                            ("rcode", RCODES[r]),
                        ];
                        ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
                    }
                }
            }
        }
        if let Some(rrl) = &s.rrl {
            let stats = rrl.stats();
            let mut m = encoder.encode_descriptor(
                "mimi_rrl_actions",
                "UDP answers over the response rate limit: dropped, or slipped (sent truncated).",
                None,
                MetricType::Counter,
            )?;
            for (action, n) in [("dropped", stats.dropped), ("slipped", stats.slipped)] {
                ConstCounter::new(n).encode(m.encode_family(&[("action", action)])?)?;
            }
        }
        // Zone figures, computed once per served serial.
        let zones = s.served.all_zones();
        let mut cache = s.figures.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|origin, _| zones.iter().any(|z| z.origin == *origin));
        for z in &zones {
            if cache
                .get(&z.origin)
                .is_none_or(|f| f.serial != z.soa.serial)
            {
                cache.insert(z.origin.clone(), ZoneFigures::of(z));
            }
        }
        let mut figures: Vec<(&DomainName, &ZoneFigures)> = cache.iter().collect();
        figures.sort_by(|a, b| a.0.cmp(b.0));
        {
            let mut m = encoder.encode_descriptor(
                "mimi_zone_serial",
                "The SOA serial served.",
                None,
                MetricType::Gauge,
            )?;
            for (origin, f) in &figures {
                ConstGauge::new(i64::from(f.serial))
                    .encode(m.encode_family(&[("zone", origin.as_str())])?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "mimi_zone_records",
                "Records served: assertions, certificates, all mimi records.",
                None,
                MetricType::Gauge,
            )?;
            for (origin, f) in &figures {
                for (kind, n) in [
                    ("assertion", f.assertions),
                    ("certificate", f.certificates),
                    ("all", f.records),
                ] {
                    ConstGauge::new(n as i64)
                        .encode(m.encode_family(&[("zone", origin.as_str()), ("kind", kind)])?)?;
                }
            }
        }
        {
            let now = UnixTime::now().0 as i64;
            let mut m = encoder.encode_descriptor(
                "mimi_zone_earliest_expiry_seconds",
                "Seconds until the earliest x= of the zone's assertions or certificates (negative once past).",
                None,
                MetricType::Gauge,
            )?;
            for (origin, f) in &figures {
                for (kind, x) in [
                    ("assertion", f.earliest_assertion_expiry),
                    ("certificate", f.earliest_certificate_expiry),
                ] {
                    if let Some(x) = x {
                        ConstGauge::new(x.0 as i64 - now).encode(
                            m.encode_family(&[("zone", origin.as_str()), ("kind", kind)])?,
                        )?;
                    }
                }
            }
        }
        {
            let now = UnixTime::now().0 as i64;
            let runs_out = metrics()
                .bundle_runs_out
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if !runs_out.is_empty() {
                let mut m = encoder.encode_descriptor(
                    "mimi_key_bundle_remaining_seconds",
                    "Seconds until the zone's key bundle runs out: its last certificate's end less the re-sign margin (negative once past).",
                    None,
                    MetricType::Gauge,
                )?;
                for (origin, at) in runs_out
                    .iter()
                    .filter(|(o, _)| zones.iter().any(|z| z.origin.as_str() == o.as_str()))
                {
                    ConstGauge::new(*at as i64 - now)
                        .encode(m.encode_family(&[("zone", origin.as_str())])?)?;
                }
            }
        }
        Ok(())
    }
}

/// The text exposition of every metric (OpenMetrics, as prometheus-client
/// writes it).
fn render(scraped: &Arc<Scraped>) -> String {
    // The collector reads the served zones; it is registered per scrape
    // into a registry that also holds the static families' registry.
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ScrapeCollector(scraped.clone())));
    let mut out = String::new();
    // Both registries in one exposition: the static one without its EOF.
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &metrics().registry);
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &registry);
    let _ = prometheus_client::encoding::text::encode_eof(&mut out);
    out
}

/// `exposition` (OpenMetrics, as prometheus-client writes it) in the
/// Prometheus text format 0.0.4, for scrapers that do not ask for
/// OpenMetrics (and for `promtool check metrics`): a counter's family is
/// named with its `_total` suffix, and there is no `# EOF` and no
/// `# UNIT` line (0.0.4 has neither). Public so that the HTTP gateway
/// serves its metrics the same way.
pub fn to_prometheus_text(exposition: &str) -> String {
    let counters: std::collections::HashSet<&str> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(exposition.len() + 64 * counters.len());
    for line in exposition.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The Content-Type of OpenMetrics, which a scraper asks for in `Accept`.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Content-Type of the Prometheus text format, served otherwise.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The longest request head read (request line and headers).
pub const MAX_REQUEST: usize = 8 * 1024;
/// The time a client has to send its request, and then to read the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed as soon as accepted.
pub const MAX_CONNECTIONS: usize = 4;

/// A running metrics endpoint.
#[derive(Debug)]
pub(crate) struct Endpoint {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    /// The address bound.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting scrapes.
    pub(crate) fn stop(self) {
        drop(self);
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves `GET /metrics` there; turns query counting on.
pub(crate) async fn serve_endpoint(
    addr: SocketAddr,
    served: Arc<Served>,
    rrl: Option<Arc<Limiter>>,
) -> std::io::Result<Endpoint> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    QUERIES.enabled.store(true, Ordering::Relaxed);
    let scraped = Arc::new(Scraped {
        served,
        rrl,
        figures: Mutex::new(HashMap::new()),
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    info!(%addr, "serving metrics over HTTP at /metrics");
    let task = tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    debug!("metrics accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                debug!(%peer, "too many metrics connections; closing");
                continue;
            };
            let scraped = scraped.clone();
            tokio::spawn(async move {
                let mut stream = stream;
                let result = answer(&mut stream, &scraped).await;
                // The slot is free before the client sees the connection
                // end: a client that connects again right after has it.
                drop(permit);
                match result {
                    Ok(()) => {
                        let _ = tokio::time::timeout(REQUEST_TIMEOUT, stream.shutdown()).await;
                    }
                    Err(e) => debug!(%peer, "metrics request: {e}"),
                }
            });
        }
    });
    Ok(Endpoint { addr, task })
}

/// Reads one request and writes its answer; the caller closes the
/// connection.
async fn answer(stream: &mut TcpStream, scraped: &Arc<Scraped>) -> std::io::Result<()> {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(stream))
        .await
        .map_err(|_| std::io::Error::other("request not received in time"))??;
    let response = match parse_request(&head) {
        Ok(()) => {
            let openmetrics = wants_openmetrics(&head);
            let scraped = scraped.clone();
            let body = tokio::task::spawn_blocking(move || {
                let text = render(&scraped);
                if openmetrics {
                    text
                } else {
                    to_prometheus_text(&text)
                }
            })
            .await
            .map_err(std::io::Error::other)?;
            let content_type = if openmetrics {
                OPENMETRICS
            } else {
                PROMETHEUS_TEXT
            };
            http_response("200 OK", content_type, &body)
        }
        Err(status) => http_response(status, "text/plain; charset=utf-8", status),
    };
    tokio::time::timeout(REQUEST_TIMEOUT, stream.write_all(&response))
        .await
        .map_err(|_| std::io::Error::other("answer not read in time"))?
}

/// Reads up to the end of the request head (an empty line), at most
/// [`MAX_REQUEST`] octets.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Err(std::io::Error::other("request head too long"));
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "closed before the end of the request",
            ));
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n")
            || buf[..len].windows(2).any(|w| w == b"\n\n")
        {
            buf.truncate(len);
            return Ok(buf);
        }
    }
}

/// Whether the request head asks for the metrics; otherwise the status to
/// answer with.
fn parse_request(head: &[u8]) -> Result<(), &'static str> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| "400 Bad Request")?;
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("400 Bad Request");
    };
    if !version.starts_with("HTTP/1.") {
        return Err("505 HTTP Version Not Supported");
    }
    if method != "GET" {
        return Err("405 Method Not Allowed");
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Err("404 Not Found");
    }
    Ok(())
}

/// Whether the request's `Accept` header names OpenMetrics (Prometheus
/// asks for it first).
fn wants_openmetrics(head: &[u8]) -> bool {
    String::from_utf8_lossy(head).lines().any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("accept") && value.contains("application/openmetrics-text")
        })
    })
}

fn http_response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        out.push_str("Allow: GET\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_answers_by_question_type_and_rcode() {
        // NXDOMAIN answer to a TXT question for a.example.
        let mut r = vec![0, 1, 0x84, 0x03, 0, 1, 0, 0, 0, 0, 0, 0];
        r.extend_from_slice(b"\x01a\x07example\x00\x00\x10\x00\x01");
        assert_eq!(classify(&r), (0, 1));
        // A header-only FORMERR.
        assert_eq!(
            classify(&[0, 1, 0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]),
            (TYPE_OTHER, 3)
        );
        // Truncated question, short packet.
        assert_eq!(classify(&r[..14]), (TYPE_OTHER, 1));
        assert_eq!(classify(&[0; 3]), (TYPE_OTHER, RCODE_OTHER));
    }

    #[test]
    fn requests_other_than_get_metrics_are_refused() {
        assert_eq!(parse_request(b"GET /metrics HTTP/1.1\r\n\r\n"), Ok(()));
        assert_eq!(parse_request(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Ok(()));
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\n\r\n"),
            Err("404 Not Found")
        );
        assert_eq!(
            parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Err("405 Method Not Allowed")
        );
        assert_eq!(parse_request(b"garbage\r\n\r\n"), Err("400 Bad Request"));
    }
}
