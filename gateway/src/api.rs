//! The routes, and how every request is answered, measured and logged.
//!
//! The HTTP status is about the request, never about a lookup: a DNS
//! failure is `200` with `outcome: dns_error` for that SII. Every error
//! response is JSON `{"error": "…"}` naming the problem.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use mimi_proto::{Region, Sii, UnixTime};
use mimi_resolver::{Report, Resolver};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::access::{Caller, Denied, Policy};
use crate::cache::Cache;
use crate::keys::KeyStore;
use crate::limit::{retry_after_secs, Limiter, Refused};
use crate::metrics::{Metrics, OutcomeLabels, RequestLabels};

/// The routes, as `mimi_gateway_requests_total{route}` names them.
pub const ROUTES: [&str; 8] = [
    "/",
    "/app.js",
    "/v1/lookup",
    "/v1/openapi.json",
    "/healthz",
    "/readyz",
    "/metrics",
    "other",
];

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Lookups of one request in flight at once.
pub const PER_REQUEST_IN_FLIGHT: usize = 64;

/// The limits of requests.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The most SIIs in one `POST /v1/lookup`.
    pub max_batch: usize,
    /// The largest request body, octets.
    pub max_body: usize,
    /// The longest a lookup request may take, body included.
    pub request_timeout: Duration,
    /// Whether the request log names the SIIs looked up (debugging only).
    pub log_siis: bool,
}

/// Whether the gateway can answer: the resolver is built (it is, or the
/// gateway would not run) and the last lookup that went to DNS got an
/// answer from some name server.
#[derive(Debug, Default)]
pub struct Readiness {
    last: Mutex<Option<bool>>,
}

impl Readiness {
    /// Records what a lookup that went to DNS came to.
    pub fn record(&self, report: &Report) {
        let ok = match report {
            Report::Resolved(_) | Report::NoBuckets { .. } => true,
            Report::DnsError { .. } => false,
            Report::BadInput { .. } | Report::Internal { .. } => return,
        };
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(ok);
    }

    /// Ready, and why.
    pub fn state(&self) -> (bool, &'static str) {
        match *self.last.lock().unwrap_or_else(PoisonError::into_inner) {
            None => (true, "resolver configured; no lookup has gone to DNS yet"),
            Some(true) => (true, "the last lookup that went to DNS was answered"),
            Some(false) => (
                false,
                "the last lookup that went to DNS failed at every name server",
            ),
        }
    }
}

/// What every request handler shares.
pub struct Gateway {
    /// The one resolver (and so one certificate cache) of the gateway.
    pub resolver: Resolver,
    /// The default region of national telephone numbers.
    pub region: Option<Region>,
    /// Whole answers.
    pub cache: Cache,
    /// The clients' token buckets.
    pub limiter: Limiter,
    /// Who may look up.
    pub policy: Policy,
    /// The API keys, when there is a keys file.
    pub keys: Option<Arc<KeyStore>>,
    /// The metrics.
    pub metrics: Metrics,
    /// Request limits.
    pub settings: Settings,
    /// Lookups in flight across all requests.
    pub in_flight: Semaphore,
    /// Readiness.
    pub ready: Readiness,
}

/// The gateway's routes, with metrics and the request log around them.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/app.js", get(script))
        .route("/v1/lookup", get(lookup_one).post(lookup_batch))
        .route("/v1/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(gateway.clone(), observe))
        .with_state(gateway)
}

/// An error response: a status and `{"error": reason}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            reason: reason.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({ "error": self.reason }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        let status = match d {
            Denied::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Denied::LocalOnly => StatusCode::FORBIDDEN,
        };
        ApiError::new(status, d.to_string())
    }
}

/// What a handler tells the request log: who asked, and for how many SIIs.
#[derive(Debug, Clone)]
struct Served {
    client: String,
    count: usize,
    siis: Option<Vec<String>>,
}

fn route_of(path: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or("other")
}

/// Measures, counts and logs every request: one line each, naming the
/// route (never the query string), the status, the duration, the client
/// and the number of SIIs, and the SIIs only with `--log-siis`.
async fn observe(State(g): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = route_of(req.uri().path());
    let method = req.method().clone();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    g.metrics
        .requests
        .get_or_create(&RequestLabels { route, status })
        .inc();
    g.metrics.duration.observe(elapsed.as_secs_f64());
    if status == 429 {
        g.metrics.rate_limited.inc();
    }
    let served = response.extensions().get::<Served>();
    let client = served.map_or_else(|| format!("ip:{peer}"), |s| s.client.clone());
    let count = served.map_or(0, |s| s.count);
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    match served.and_then(|s| s.siis.as_ref()) {
        Some(siis) => tracing::info!(
            target: "mimi_gateway::request",
            %method, route, status, duration_ms, client, count, siis = ?siis, "request"
        ),
        None => tracing::info!(
            target: "mimi_gateway::request",
            %method, route, status, duration_ms, client, count, "request"
        ),
    }
    response
}

/// Authorizes and charges a lookup request of `cost` SIIs.
fn admit(
    g: &Gateway,
    headers: &HeaderMap,
    peer: std::net::IpAddr,
    cost: usize,
) -> Result<Caller, ApiError> {
    let keys = g.keys.as_ref().map(|k| k.current());
    let caller = g.policy.decide(
        peer,
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
        keys.as_deref(),
    )?;
    let cost32 = u32::try_from(cost).unwrap_or(u32::MAX);
    match g.limiter.take(caller.id.clone(), caller.rate, cost32, Instant::now()) {
        Ok(()) => Ok(caller),
        Err(Refused::RetryAfter(wait)) => {
            let secs = retry_after_secs(wait);
            Err(ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                reason: format!(
                    "rate limit of {} lookups/s (burst {}) exceeded for {}; retry after {secs} s",
                    caller.rate.per_sec(),
                    caller.rate.burst(),
                    caller.id
                ),
                retry_after: Some(secs),
            })
        }
        Err(Refused::OverBurst { cost, burst }) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "a request of {cost} SIIs costs more than the {burst} lookups {} may make at once; split it into batches of at most {burst}",
                caller.id
            ),
        )),
    }
}

/// Looks up one input: from the cache when it holds the canonical SII.
async fn resolve(g: &Gateway, input: String) -> Arc<Value> {
    let now = UnixTime::now();
    let sii = Sii::parse(&input, g.region);
    let key = sii.as_ref().ok().map(ToString::to_string);
    if let Some(key) = &key {
        if let Some((json, outcome)) = g.cache.get(key, Instant::now()) {
            g.metrics.cache_hits.inc();
            g.metrics
                .lookups
                .get_or_create(&OutcomeLabels { outcome })
                .inc();
            return json;
        }
        g.metrics.cache_misses.inc();
    }
    let report = {
        // Closed only if the gateway is dropped: then nothing waits.
        let _permit = g.in_flight.acquire().await;
        g.resolver.lookup_input(&input, g.region, now).await
    };
    if key.is_some() {
        g.ready.record(&report);
    }
    let json = Arc::new(report.to_json(false));
    g.cache.put(&report, json.clone(), now, Instant::now());
    g.metrics
        .lookups
        .get_or_create(&OutcomeLabels {
            outcome: report.outcome(),
        })
        .inc();
    json
}

/// Looks up `inputs` concurrently (at most [`PER_REQUEST_IN_FLIGHT`] at
/// once), answers in order.
async fn resolve_all(g: &Gateway, inputs: Vec<String>) -> Vec<Arc<Value>> {
    futures::stream::iter(inputs)
        .map(|i| resolve(g, i))
        .buffered(PER_REQUEST_IN_FLIGHT)
        .collect()
        .await
}

fn timed_out(after: Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!(
            "the request did not finish within {} (--request-timeout)",
            humantime::format_duration(after)
        ),
    )
}

fn with_served(mut r: Response, g: &Gateway, caller: Option<&Caller>, siis: &[String]) -> Response {
    if let Some(c) = caller {
        r.extensions_mut().insert(Served {
            client: c.id.to_string(),
            count: siis.len(),
            siis: g.settings.log_siis.then(|| siis.to_vec()),
        });
    }
    r
}

#[derive(Deserialize)]
struct LookupQuery {
    sii: String,
}

async fn lookup_one(
    State(g): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<LookupQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let peer = peer.ip();
    let caller = match admit(&g, &headers, peer, 1) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let sii = match query {
        Ok(Query(q)) if q.sii.trim().is_empty() => {
            return with_served(
                ApiError::new(StatusCode::BAD_REQUEST, "the query parameter sii is empty")
                    .into_response(),
                &g,
                Some(&caller),
                &[],
            )
        }
        Ok(Query(q)) => q.sii,
        Err(e) => {
            let reason = format!("{}; expected /v1/lookup?sii=SII", e.body_text());
            return with_served(
                ApiError::new(StatusCode::BAD_REQUEST, reason).into_response(),
                &g,
                Some(&caller),
                &[],
            );
        }
    };
    let timeout = g.settings.request_timeout;
    let siis = [sii];
    let r = match tokio::time::timeout(timeout, resolve(&g, siis[0].clone())).await {
        Ok(json) => (StatusCode::OK, Json((*json).clone())).into_response(),
        Err(_) => timed_out(timeout).into_response(),
    };
    with_served(r, &g, Some(&caller), &siis)
}

/// The body of `POST /v1/lookup`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    siis: Vec<String>,
}

async fn lookup_batch(
    State(g): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let peer = peer.ip();
    // Who asks is decided before the body is read; the cost after.
    let keys = g.keys.as_ref().map(|k| k.current());
    let caller = match g.policy.decide(
        peer,
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
        keys.as_deref(),
    ) {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let timeout = g.settings.request_timeout;
    let work = async {
        let batch = read_batch(&g, &headers, body).await?;
        let caller = admit(&g, &headers, peer, batch.siis.len())?;
        let results = resolve_all(&g, batch.siis.clone()).await;
        let results: Vec<Value> = results.iter().map(|j| (**j).clone()).collect();
        Ok::<_, ApiError>((caller, batch.siis, results))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok((caller, siis, results))) => with_served(
            (StatusCode::OK, Json(json!({ "results": results }))).into_response(),
            &g,
            Some(&caller),
            &siis,
        ),
        Ok(Err(e)) => with_served(e.into_response(), &g, Some(&caller), &[]),
        Err(_) => with_served(timed_out(timeout).into_response(), &g, Some(&caller), &[]),
    }
}

/// Reads and checks the body of a batch: at most `--max-body` octets,
/// JSON `{"siis": [strings]}`, 1 to `--max-batch` SIIs.
async fn read_batch(g: &Gateway, headers: &HeaderMap, body: Body) -> Result<Batch, ApiError> {
    let max = g.settings.max_body;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {max} octets (--max-body)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the request body cannot be read: {e}"),
            )
        })?;
        if bytes.len() + chunk.len() > max {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    let batch: Batch = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid request body: {e}; expected {{\"siis\": [\"SII\", …]}}"),
        )
    })?;
    if batch.siis.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "siis is empty: give at least one SII",
        ));
    }
    if batch.siis.len() > g.settings.max_batch {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} SIIs in one request; at most {} (--max-batch)",
                batch.siis.len(),
                g.settings.max_batch
            ),
        ));
    }
    Ok(batch)
}

const PAGE: &str = include_str!("../static/index.html");
const SCRIPT: &str = include_str!("../static/app.js");

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn healthz() -> Response {
    Json(json!({ "status": "up" })).into_response()
}

async fn readyz(State(g): State<Arc<Gateway>>) -> Response {
    let (ready, reason) = g.ready.state();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready, "reason": reason }))).into_response()
}

async fn metrics(State(g): State<Arc<Gateway>>) -> Response {
    g.metrics.cache_entries.set(g.cache.len() as i64);
    if let Some(k) = &g.keys {
        g.metrics.api_keys.set(k.current().len() as i64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        g.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "no such route; see /v1/openapi.json").into_response()
}

async fn method_not_allowed(method: Method) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on this route; see /v1/openapi.json"),
    )
    .into_response()
}
