//! The gateway's Prometheus metrics (`GET /metrics`).
//!
//! * `mimi_gateway_requests_total{route,status}`: requests answered;
//!   `route` is one of the gateway's routes or `other`, so unknown paths
//!   cannot grow the number of series.
//! * `mimi_gateway_lookups_total{outcome}`: SIIs answered, by outcome
//!   (cache hits included).
//! * `mimi_gateway_cache_hits_total`, `mimi_gateway_cache_misses_total`.
//! * `mimi_gateway_rate_limited_total`: requests refused with 429.
//! * `mimi_gateway_request_duration_seconds`: histogram of request times.
//! * `mimi_gateway_cache_entries`, `mimi_gateway_api_keys`: gauges.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Labels of `mimi_gateway_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route.
    pub route: &'static str,
    /// The HTTP status code.
    pub status: u16,
}

/// Labels of `mimi_gateway_lookups_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The lookup's `outcome`.
    pub outcome: &'static str,
}

/// Every metric of the gateway.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Lookups by outcome.
    pub lookups: Family<OutcomeLabels, Counter>,
    /// Answers served from the cache.
    pub cache_hits: Counter,
    /// Answers that had to be looked up.
    pub cache_misses: Counter,
    /// Requests refused with 429.
    pub rate_limited: Counter,
    /// Request durations.
    pub duration: Histogram,
    /// Answers kept in the cache.
    pub cache_entries: Gauge,
    /// API keys in service.
    pub api_keys: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let lookups = Family::<OutcomeLabels, Counter>::default();
        let (cache_hits, cache_misses, rate_limited) =
            (Counter::default(), Counter::default(), Counter::default());
        let duration = Histogram::new([
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        let (cache_entries, api_keys) = (Gauge::default(), Gauge::default());
        registry.register(
            "mimi_gateway_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "mimi_gateway_lookups",
            "SIIs answered, by outcome (cache hits included)",
            lookups.clone(),
        );
        registry.register(
            "mimi_gateway_cache_hits",
            "Answers served from the answer cache",
            cache_hits.clone(),
        );
        registry.register(
            "mimi_gateway_cache_misses",
            "Answers that were looked up in DNS",
            cache_misses.clone(),
        );
        registry.register(
            "mimi_gateway_rate_limited",
            "Requests refused with 429 by a client's token bucket",
            rate_limited.clone(),
        );
        registry.register_with_unit(
            "mimi_gateway_request_duration",
            "Time from request to response",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register(
            "mimi_gateway_cache_entries",
            "Answers kept in the answer cache",
            cache_entries.clone(),
        );
        registry.register(
            "mimi_gateway_api_keys",
            "API keys in service",
            api_keys.clone(),
        );
        Metrics {
            registry,
            requests,
            lookups,
            cache_hits,
            cache_misses,
            rate_limited,
            duration,
            cache_entries,
            api_keys,
        }
    }

    /// The exposition in the Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        mimi_publisher::serve::metrics::to_prometheus_text(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exposed_under_its_documented_name() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                route: "/v1/lookup",
                status: 200,
            })
            .inc();
        m.lookups
            .get_or_create(&OutcomeLabels {
                outcome: "verified",
            })
            .inc();
        m.duration.observe(0.01);
        let text = m.render();
        for name in [
            "# TYPE mimi_gateway_requests_total counter",
            "mimi_gateway_requests_total{route=\"/v1/lookup\",status=\"200\"} 1",
            "mimi_gateway_lookups_total{outcome=\"verified\"} 1",
            "# TYPE mimi_gateway_cache_hits_total counter",
            "# TYPE mimi_gateway_cache_misses_total counter",
            "# TYPE mimi_gateway_rate_limited_total counter",
            "# TYPE mimi_gateway_request_duration_seconds histogram",
            "# TYPE mimi_gateway_cache_entries gauge",
            "# TYPE mimi_gateway_api_keys gauge",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
        assert!(!text.contains("# EOF"));
    }
}
