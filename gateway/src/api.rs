//! The routes.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mimi_proto::{Region, UnixTime};
use mimi_resolver::Resolver;
use serde::Deserialize;

/// What every request handler shares.
pub struct Gateway {
    /// The one resolver (and so one certificate cache) of the gateway.
    pub resolver: Resolver,
    /// The default region of national telephone numbers.
    pub region: Option<Region>,
}

/// The gateway's routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/app.js", get(script))
        .route("/v1/lookup", get(lookup_one))
        .with_state(gateway)
}

#[derive(Deserialize)]
struct LookupQuery {
    sii: String,
}

async fn lookup_one(State(g): State<Arc<Gateway>>, Query(q): Query<LookupQuery>) -> Response {
    let report = g
        .resolver
        .lookup_input(&q.sii, g.region, UnixTime::now())
        .await;
    (StatusCode::OK, Json(report.to_json(false))).into_response()
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
