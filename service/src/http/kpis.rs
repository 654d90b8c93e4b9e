//! `GET /api/analytics/kpis`: the latest KPIs over a window, overall, per endpoint, per minute.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;

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
/// with it, computed for that endpoint on request. Either answer may be up to a second
/// old. The `series` has one point per minute of the window, empty minutes included.
#[utoipa::path(
    get,
    path = "/api/analytics/kpis",
    tag = "analytics",
    params(KpiQuery),
    responses(
        (status = 200, description = "KPIs", body = KpiReport),
        (status = 400, description = "Bad or unknown query parameter", body = ErrorBody),
        (status = 503, description = "Warming up: the KPIs are being read after a start (`Retry-After`)", body = ErrorBody),
    )
)]
pub async fn get_kpis(
    State(state): State<Arc<AppState>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<impl IntoResponse, ApiError> {
    let params = once_each(pairs)?;
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
    if let Some(unknown) = params.keys().find(|k| !matches!(k.as_str(), "window" | "endpoint")) {
        let shown: String = unknown.chars().take(64).collect();
        let close = ["window", "endpoint"].into_iter().find(|k| strsim::levenshtein(k, unknown) <= 2);
        let hint = close.map(|k| format!("; did you mean `{k}`?")).unwrap_or_default();
        return Err(ApiError::bad_request(format!(
            "unknown query parameter `{shown}` (this endpoint takes `window` and `endpoint`){hint}"
        )));
    }
    if !state.kpis.is_rebuilt() {
        return Err(ApiError::warming_up());
    }
    let key = (window, endpoint.map(str::to_string));
    if let Some(json) = state.kpi_cache.get(&key) {
        return Ok(answer(json));
    }
    // One per-endpoint computation at a time: each holds the aggregates' lock that the
    // writers need after every commit, so a flood of them queues here instead, and the
    // ones that waited for the same report find it cached.
    let _turn = match key.1 {
        Some(_) => Some(state.kpi_reports.acquire().await.expect("the semaphore is never closed")),
        None => None,
    };
    if let Some(json) = state.kpi_cache.get(&key) {
        return Ok(answer(json));
    }
    let kpis = state.kpis.clone();
    let endpoint = key.1.clone();
    // A 24-hour report for one endpoint merges up to 1440 sketches: keep it off the I/O threads.
    let json = tokio::task::spawn_blocking(move || {
        serde_json::to_vec(&kpis.report(window, endpoint.as_deref())).map(Bytes::from)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("KPI computation failed: {e}")))?
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("KPI report not serialisable: {e}")))?;
    state.kpi_cache.put(key, json.clone());
    Ok(answer(json))
}

/// The query's parameters, each given once: `window=1h&window=15m` would leave one of
/// them unread, so it is refused, naming the parameter, rather than silently picking one.
fn once_each(pairs: Vec<(String, String)>) -> Result<HashMap<String, String>, ApiError> {
    let mut params = HashMap::new();
    for (k, v) in pairs {
        if params.contains_key(&k) {
            let shown: String = k.chars().take(64).collect();
            return Err(ApiError::bad_request(format!(
                "{shown}: given more than once; give each query parameter once"
            )));
        }
        params.insert(k, v);
    }
    Ok(params)
}

fn answer(json: Bytes) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store"), (header::CONTENT_TYPE, "application/json")], json)
}

/// Serialized reports, kept for [`REPORT_TTL`]: a flood of readers costs one computation
/// and one serialization per report and second, whatever its rate.
#[derive(Default)]
pub struct ReportCache {
    entries: Mutex<HashMap<ReportKey, (Instant, Bytes)>>,
}

type ReportKey = (Window, Option<String>);

/// How old an answer may be. KPIs move by the minute; a second is invisible.
pub const REPORT_TTL: Duration = Duration::from_secs(1);
/// Reports kept at most (every window, a few hundred endpoints).
const MAX_CACHED_REPORTS: usize = 256;

impl ReportCache {
    fn get(&self, key: &ReportKey) -> Option<Bytes> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|(at, _)| at.elapsed() < REPORT_TTL).map(|(_, json)| json.clone())
    }

    fn put(&self, key: ReportKey, json: Bytes) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_CACHED_REPORTS {
            entries.retain(|_, (at, _)| at.elapsed() < REPORT_TTL);
            if entries.len() >= MAX_CACHED_REPORTS {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), json));
    }
}
