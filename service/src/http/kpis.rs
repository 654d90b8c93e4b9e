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
use crate::kpi::{Aggregates, KpiReport, RegionRead, Window, unix_us};
use time::OffsetDateTime;

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
    /// `region` (this region's events; the default) or `global`: every region of a global
    /// stack merged (`VC_PEERS`), with `regions` saying which answered.
    scope: Option<Scope>,
}

/// Whose events a report is of.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum Scope {
    Region,
    Global,
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
    let params = known_params(pairs, &["window", "endpoint", "scope"])?;
    let window = window_of(&params)?;
    let endpoint = match params.get("endpoint").map(String::as_str) {
        None | Some("") => None,
        Some(e) if !e.starts_with('/') && e != crate::kpi::OTHER_ENDPOINT => {
            return Err(ApiError::bad_request(format!("endpoint: must start with '/', got {e:?}")));
        }
        Some(e) => Some(e),
    };
    let global = match params.get("scope").map(String::as_str) {
        None | Some("region") => false,
        Some("global") => match &state.peers {
            Ok(_) => true,
            Err(why) => return Err(ApiError::bad_request(format!("scope=global: {why}"))),
        },
        Some(s) => return Err(ApiError::bad_request(format!("scope: must be region or global, got {s:?}"))),
    };
    if !state.kpis.is_rebuilt() {
        return Err(ApiError::warming_up());
    }
    let key = (window, endpoint.map(str::to_string), global);
    if let Some(json) = state.kpi_cache.get(&key) {
        return Ok(answer(json, state.shared_max_age));
    }
    // One computation of a kind at a time: a per-endpoint one holds the aggregates' lock
    // that the writers need after every commit, a global one reads every region; a flood of
    // them queues here instead, and the ones that waited find the report cached.
    let semaphore = if global { &state.global_reports } else { &state.kpi_reports };
    let _turn = match (&key.1, global) {
        (None, false) => None,
        _ => Some(semaphore.acquire().await.expect("the semaphore is never closed")),
    };
    if let Some(json) = state.kpi_cache.get(&key) {
        return Ok(answer(json, state.shared_max_age));
    }
    let report = if global {
        global_report(&state, window, key.1.clone()).await
    } else {
        region_report(&state, window, key.1.clone()).await
    }?;
    let json =
        Bytes::from(serde_json::to_vec(&report).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("KPI report not serialisable: {e}"))
        })?);
    state.kpi_cache.put(key, json.clone());
    Ok(answer(json, state.shared_max_age))
}

async fn region_report(state: &AppState, window: Window, endpoint: Option<String>) -> Result<KpiReport, ApiError> {
    let kpis = state.kpis.clone();
    // A 24-hour report for one endpoint merges up to 1440 sketches: keep it off the I/O threads.
    tokio::task::spawn_blocking(move || kpis.report(window, endpoint.as_deref())).await.map_err(computation_failed)
}

/// Every region's minutes merged, then reported as if every event had been here; the
/// regions that did not answer are named in `regions`, and the report is of the others.
async fn global_report(state: &AppState, window: Window, endpoint: Option<String>) -> Result<KpiReport, ApiError> {
    let peers = state.peers.clone().expect("checked by the caller");
    let reads = peers.read(window).await;
    let (kpis, here) = (state.kpis.clone(), state.region_name.clone());
    tokio::task::spawn_blocking(move || {
        let now = OffsetDateTime::now_utc();
        let (limits, own) = {
            let view = kpis.view();
            (view.limits(), view.report_minutes(window, now).map(|(m, b)| (m, b.clone())).collect::<Vec<_>>())
        };
        let mut regions = vec![RegionRead::of(here, Ok(&own), window, now)];
        regions.extend(reads.iter().map(|(name, got)| RegionRead::of(name.clone(), got.as_ref(), window, now)));
        let parts = std::iter::once(own).chain(reads.into_iter().filter_map(|(_, got)| got.ok())).collect();
        let mut report = Aggregates::merged(limits, unix_us(now), parts).report(window, now, endpoint.as_deref());
        report.regions = Some(regions);
        report
    })
    .await
    .map_err(computation_failed)
}

fn computation_failed(e: tokio::task::JoinError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("KPI computation failed: {e}"))
}

/// The query's parameters, each at most once and each one of `known` (a typo is named,
/// with the parameter meant).
pub(super) fn known_params(pairs: Vec<(String, String)>, known: &[&str]) -> Result<HashMap<String, String>, ApiError> {
    let params = once_each(pairs)?;
    if let Some(unknown) = params.keys().find(|k| !known.contains(&k.as_str())) {
        let shown: String = unknown.chars().take(64).collect();
        let close = known.iter().find(|k| strsim::levenshtein(k, unknown) <= 2);
        let hint = close.map(|k| format!("; did you mean `{k}`?")).unwrap_or_default();
        let takes = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
        return Err(ApiError::bad_request(format!(
            "unknown query parameter `{shown}` (this endpoint takes {takes}){hint}"
        )));
    }
    Ok(params)
}

pub(super) fn window_of(params: &HashMap<String, String>) -> Result<Window, ApiError> {
    match params.get("window").map(String::as_str) {
        None => Ok(Window::OneHour),
        Some(w) => Window::parse(w)
            .ok_or_else(|| ApiError::bad_request(format!("window: must be one of 15m, 1h, 24h, got {w:?}"))),
    }
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

/// A CDN in front may keep an answer `s-maxage` seconds (see [`shared_max_age`]); a browser
/// asks again each time (`max-age=0`), so the dashboard's refresh shows what the edge has.
fn answer(json: Bytes, shared_max_age: u64) -> impl IntoResponse {
    let cache = format!("public, max-age=0, s-maxage={shared_max_age}");
    ([(header::CACHE_CONTROL, cache), (header::CONTENT_TYPE, "application/json".to_string())], json)
}

/// How long a shared cache may keep a KPI answer: a twelfth of the KPI interval, between
/// 1 and 5 seconds. The snapshot changes once an interval; per-endpoint and global reports
/// move by the minute, so a few seconds hide nothing a person would see.
pub fn shared_max_age(kpi_interval: Duration) -> u64 {
    (kpi_interval.as_secs() / 12).clamp(1, 5)
}

/// Serialized reports, kept for [`REPORT_TTL`]: a flood of readers costs one computation
/// and one serialization per report and second, whatever its rate.
#[derive(Default)]
pub struct ReportCache {
    entries: Mutex<HashMap<ReportKey, (Instant, Bytes)>>,
}

/// The window, the endpoint, and whether the report is global.
type ReportKey = (Window, Option<String>, bool);

/// How old an answer may be. KPIs move by the minute; a second is invisible.
pub const REPORT_TTL: Duration = Duration::from_secs(1);
/// A global report reads every region: kept longer, so a flood of global readers costs
/// each region one frame per [`GLOBAL_REPORT_TTL`].
pub const GLOBAL_REPORT_TTL: Duration = Duration::from_secs(5);
/// Reports kept at most (every window, a few hundred endpoints).
const MAX_CACHED_REPORTS: usize = 256;

/// How long the report of `key` is kept.
fn ttl(key: &ReportKey) -> Duration {
    if key.2 { GLOBAL_REPORT_TTL } else { REPORT_TTL }
}

impl ReportCache {
    fn get(&self, key: &ReportKey) -> Option<Bytes> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|(at, _)| at.elapsed() < ttl(key)).map(|(_, json)| json.clone())
    }

    fn put(&self, key: ReportKey, json: Bytes) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_CACHED_REPORTS {
            entries.retain(|key, (at, _)| at.elapsed() < ttl(key));
            if entries.len() >= MAX_CACHED_REPORTS {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), json));
    }
}
