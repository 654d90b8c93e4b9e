//! `GET /api/analytics/kpis`: the latest KPIs over a window, overall, per endpoint, per minute.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::kpi::{KpiReport, Window};

/// The query parameters, for the OpenAPI document; the handler reads them itself so that a
/// bad one gets the API's JSON error.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct KpiQuery {
    /// The window; 1h by default.
    window: Option<Window>,
    /// Only this endpoint (e.g. /vehicles/lock), or `other`; empty means all.
    #[param(pattern = "^(/.*|other)?$")]
    endpoint: Option<String>,
}

/// KPIs over a window.
///
/// Without `endpoint`, the snapshot the KPI engine computed last (see `computed_at`);
/// with it, computed for that endpoint on request. The `series` has one point per minute
/// of the window, empty minutes included.
#[utoipa::path(
    get,
    path = "/api/analytics/kpis",
    tag = "analytics",
    params(KpiQuery),
    responses(
        (status = 200, description = "KPIs", body = KpiReport),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
    )
)]
pub async fn get_kpis(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let window = match params.get("window").map(String::as_str) {
        None => Window::OneHour,
        Some(w) => Window::parse(w)
            .ok_or_else(|| ApiError::bad_request(format!("window: must be one of 15m, 1h, 24h, got {w:?}")))?,
    };
    let endpoint = match params.get("endpoint").map(String::as_str) {
        None | Some("") => None,
        Some(e) if !e.starts_with('/') && e != crate::kpi::OTHER_ENDPOINT => {
            return Err(ApiError::bad_request(format!("endpoint: must start with '/', got {e:?}")));
        }
        Some(e) => Some(e),
    };
    let kpis = state.kpis.clone();
    let endpoint = endpoint.map(str::to_string);
    // One per-endpoint computation at a time: each holds the aggregates' lock that the
    // writers need after every commit, so a flood of them queues here instead.
    let _turn = match endpoint {
        Some(_) => Some(state.kpi_reports.acquire().await.expect("the semaphore is never closed")),
        None => None,
    };
    // A 24-hour report for one endpoint merges up to 1440 sketches: keep it off the I/O threads.
    let report = tokio::task::spawn_blocking(move || kpis.report(window, endpoint.as_deref())).await.map_err(|e| {
        ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("KPI computation failed: {e}"))
    })?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(report)))
}
