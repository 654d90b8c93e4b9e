//! The HTTP API: routes, shared state, and request metrics.

mod aggregates;
mod auth;
mod body;
mod docs;
pub mod error;
mod events;
mod kpis;
mod origin;
mod status;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_http::compression::CompressionLayer;

use crate::ingest::group_commit::GroupCommit;
use crate::kpi_engine::KpiEngine;
use crate::metrics::Metrics;
use crate::store::Store;
use error::ApiError;

pub use aggregates::KPI_FRAME_TYPE;
pub use body::body_budget;
pub use docs::ApiDoc;
pub use kpis::shared_max_age;
pub use origin::HEADER as ORIGIN_SECRET_HEADER;

pub struct AppState {
    pub ingest: GroupCommit,
    pub store: Store,
    pub kpis: Arc<KpiEngine>,
    /// This process in the fleet of replicas (fleet.rs).
    pub replica: Arc<crate::fleet::Replica>,
    pub metrics: Arc<Metrics>,
    pub ingest_token: Option<String>,
    /// `--origin-secret`: behind a CDN, the header every request but the status carries
    /// (`origin.rs`).
    pub origin_secret: Option<String>,
    /// `--read-token`: serves the aggregates (`aggregates.rs`) and reads the peers.
    pub read_token: Option<String>,
    /// The other regions of a global stack (`--peers`), for `scope=global`; or why not.
    pub peers: Result<Arc<crate::peers::Peers>, &'static str>,
    /// `--region-name`: this region in a global report.
    pub region_name: String,
    /// `s-maxage` of KPI answers, from the KPI interval (`kpis::shared_max_age`).
    pub shared_max_age: u64,
    /// One global report computed at a time (each reads every region).
    pub global_reports: tokio::sync::Semaphore,
    /// `--retention` in microseconds: older events are refused.
    pub retention_us: i64,
    pub started: Instant,
    pub dashboard: crate::dashboard::Dashboard,
    /// `--body-read-timeout`: a request body must arrive within it.
    pub body_read_timeout: std::time::Duration,
    pub store_health: crate::status_probe::StoreHealth,
    /// Turns for per-endpoint KPI reports (one at a time; see `kpis.rs`).
    pub kpi_reports: tokio::sync::Semaphore,
    /// Serialized KPI reports, kept for a second.
    pub kpi_cache: kpis::ReportCache,
    /// The bytes of request bodies all requests may hold at once (`body::BODY_BUDGET_BYTES`).
    pub body_budget: Arc<tokio::sync::Semaphore>,
    /// The connection slots (`--max-connections`), for the open-connections gauge.
    pub connection_slots: Arc<tokio::sync::Semaphore>,
    pub max_connections: usize,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/status", get(status::get_status))
        .route("/api/events", post(events::post_events))
        .route("/api/analytics/kpis", get(kpis::get_kpis))
        .route("/api/analytics/aggregates", get(aggregates::get_aggregates))
        .route("/metrics", get(get_metrics))
        .route("/openapi.json", get(docs::openapi_json))
        .route("/docs", get(docs::docs_page))
        .route("/docs/", get(|| async { Redirect::permanent("/docs") }))
        .route("/", get(|| async { Redirect::temporary("/dashboard") }))
        .route("/dashboard", get(crate::dashboard::index))
        .route("/dashboard/", get(|| async { Redirect::permanent("/dashboard") }))
        .route("/dashboard/{file}", get(crate::dashboard::file))
        .route_layer(middleware::from_fn_with_state(state.clone(), track_request))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Outside the routes: an unknown path is refused too, not answered 404.
        .layer(middleware::from_fn_with_state(state.clone(), origin::require_secret))
        .layer(CompressionLayer::new())
        .with_state(state)
}

/// What `--metrics-listen` serves: the metrics and the status, nothing that reads or writes
/// events.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/status", get(status::get_status))
        .route("/metrics", get(get_metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CompressionLayer::new())
        .with_state(state)
}

/// Counts and times every routed request under its route pattern, never the raw path.
async fn track_request(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let response = next.run(request).await;
    let route = route.as_deref().unwrap_or("unmatched");
    let status = response.status().as_u16();
    state.metrics.observe_request(method.as_str(), route, status, started.elapsed().as_secs_f64());
    tracing::debug!(%method, route, status, elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "request");
    response
}

async fn not_found(State(state): State<Arc<AppState>>, request: Request) -> ApiError {
    state.metrics.observe_request(request.method().as_str(), "unmatched", 404, 0.0);
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}; see /docs for the API", request.method(), request.uri().path()),
    )
}

/// Counted like every answer, under its route when axum knows it (never the raw path).
async fn method_not_allowed(State(state): State<Arc<AppState>>, request: Request) -> ApiError {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str());
    state.metrics.observe_request(request.method().as_str(), route, 405, 0.0);
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}; see /docs for the API", request.method(), request.uri().path()),
    )
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format: api_requests_total, api_request_duration_seconds, vehicle_events_total, vehicle_event_response_time_seconds, vehicleconnect_build_info, vehicleconnect_replica_info, vehicleconnect_kpi_leader, vehicleconnect_kpi_reconcile_lag_seconds, vehicleconnect_replicas_reporting", content_type = "text/plain"))
)]
async fn get_metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let open = state.max_connections - state.connection_slots.available_permits();
    let fleet = crate::metrics::FleetFigures {
        leader: state.replica.leader.load(Ordering::Relaxed),
        lag_s: state.replica.lag_s.load(Ordering::Relaxed),
        reporting: state.replica.reporting.load(Ordering::Relaxed),
    };
    state.metrics.set_gauges(state.kpis.state_bytes(), open, fleet);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.encode())
}
