//! `GET /api/analytics/aggregates`: this region's KPI aggregates in their mergeable form,
//! for the other regions' global view and `vcctl status` of a global stack. Events never
//! leave the region; these minutes (counts, sums, sketches) are all that travels.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use time::OffsetDateTime;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::kpi::Window;

/// The media type of a KPI frame (`kpi::codec`).
pub const KPI_FRAME_TYPE: &str = "application/vnd.vehicleconnect.kpi-frame";

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct AggregatesQuery {
    /// The window whose report the minutes make (with the window before it); 1h by default.
    window: Option<Window>,
}

/// This region's KPI aggregates, mergeable with other regions'.
///
/// The minutes of the window and of the window before it, each minute's count, latency
/// sum, error counts and latency sketch (DDSketch), overall and per endpoint, as a binary
/// frame (`application/vnd.vehicleconnect.kpi-frame`, see `service/src/kpi/codec.rs`).
/// Merging two regions' frames minute by minute gives the KPIs of both regions' events:
/// counts and error rates exactly, quantiles within the sketch's 1 % relative error.
/// Served only when the service has a read token (`VC_READ_TOKEN`), to that token.
#[utoipa::path(
    get,
    path = "/api/analytics/aggregates",
    tag = "analytics",
    params(AggregatesQuery),
    responses(
        (status = 200, description = "A KPI frame", content_type = "application/vnd.vehicleconnect.kpi-frame", body = Vec<u8>),
        (status = 400, description = "Bad or unknown query parameter", body = ErrorBody),
        (status = 401, description = "No or the wrong read token", body = ErrorBody),
        (status = 403, description = "This service serves no aggregates (no read token set)", body = ErrorBody),
        (status = 503, description = "Warming up (`Retry-After`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_aggregates(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<impl IntoResponse, ApiError> {
    let Some(token) = &state.read_token else {
        // No credentials is a 401 whatever the service has; credentials it cannot check, 403.
        if !headers.contains_key(header::AUTHORIZATION) {
            return Err(super::auth::no_credentials("read token"));
        }
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this service serves no aggregates: it has no read token (set VC_READ_TOKEN)",
        ));
    };
    super::auth::authorize(&headers, token, "read token")?;
    let params = super::kpis::known_params(pairs, &["window"])?;
    let window = super::kpis::window_of(&params)?;
    if !state.kpis.is_rebuilt() {
        return Err(ApiError::warming_up());
    }
    // One at a time, like per-endpoint reports: encoding holds the aggregates' lock.
    let _turn = state.kpi_reports.acquire().await.expect("the semaphore is never closed");
    let kpis = state.kpis.clone();
    let frame =
        tokio::task::spawn_blocking(move || kpis.view().frame(window, OffsetDateTime::now_utc())).await.map_err(
            |e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding the aggregates failed: {e}")),
        )?;
    Ok(([(header::CACHE_CONTROL, "no-store"), (header::CONTENT_TYPE, KPI_FRAME_TYPE)], frame))
}
