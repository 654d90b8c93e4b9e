//! The live dashboard at `/dashboard`: our HTML, CSS and JavaScript plus uPlot (from npm,
//! fetched by build.rs), embedded in the binary and served with content types, ETags and
//! compression. The page reads only the public JSON API.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::http::AppState;
use crate::http::error::ApiError;

/// Thresholds the cards and the table colour by, when no `--thresholds` is given.
pub const DEFAULT_THRESHOLDS: &str =
    "avg_latency_ms=300:800,p95_latency_ms=800:2000,error_rate_pct=1:5,client_error_rate_pct=5:15";
/// The KPIs a threshold can be set on: higher is worse for each.
const THRESHOLD_KPIS: [&str; 6] =
    ["avg_latency_ms", "p50_latency_ms", "p95_latency_ms", "p99_latency_ms", "error_rate_pct", "client_error_rate_pct"];

/// Amber from `warn`, red from `crit`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Level {
    pub warn: f64,
    pub crit: f64,
}

pub type Thresholds = BTreeMap<String, Level>;

/// Parses `kpi=warn:crit,...`, e.g. `p95_latency_ms=800:2000,error_rate_pct=1:5`.
pub fn parse_thresholds(spec: &str) -> Result<Thresholds, String> {
    let mut out = Thresholds::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (kpi, levels) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?}: expected KPI=WARN:CRIT, e.g. p95_latency_ms=800:2000"))?;
        if !THRESHOLD_KPIS.contains(&kpi) {
            return Err(format!("{kpi:?} is not a KPI with a threshold; use one of {}", THRESHOLD_KPIS.join(", ")));
        }
        let (warn, crit) = levels.split_once(':').ok_or_else(|| format!("{item:?}: expected WARN:CRIT after ="))?;
        let number = |s: &str| s.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
        let (Some(warn), Some(crit)) = (number(warn), number(crit)) else {
            return Err(format!("{item:?}: WARN and CRIT must be non-negative numbers"));
        };
        if warn > crit {
            return Err(format!("{item:?}: WARN ({warn}) must not be above CRIT ({crit})"));
        }
        out.insert(kpi.to_string(), Level { warn, crit });
    }
    Ok(out)
}

struct Asset {
    body: Vec<u8>,
    content_type: &'static str,
    etag: HeaderValue,
    /// Named by its content hash (`app.<hash>.js`): the name changes with the content, so
    /// any cache may keep it for a year. The plain names and the page revalidate.
    immutable: bool,
}

/// The dashboard's files, built once at start-up with the service's settings injected.
pub struct Dashboard {
    index: Asset,
    /// Each file under its plain name and under its hashed name (what the page links).
    files: BTreeMap<String, Asset>,
}

/// FNV-1a: a stable content hash for ETags (not for security).
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325, |h, b| (h ^ *b as u64).wrapping_mul(0x100000001b3))
}

fn asset(body: Vec<u8>, content_type: &'static str) -> Asset {
    let etag = HeaderValue::from_str(&format!("\"{:016x}\"", fnv1a(&body))).expect("hex is a valid header");
    Asset { body, content_type, etag, immutable: false }
}

/// `app.js` → `app.0123456789abcdef.js`: the name a page links, changing with the content.
fn hashed_name(name: &str, body: &[u8]) -> String {
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    format!("{stem}.{:016x}.{ext}", fnv1a(body))
}

#[derive(Serialize)]
struct PageConfig<'a> {
    thresholds: &'a Thresholds,
    refresh_seconds: u32,
}

/// How often the page reads the KPIs: as often as the service computes them (a quicker
/// refresh shows nothing new, a slower one lags), from 1 s to a minute. `?refresh=N` in
/// the page's address overrides it.
fn refresh_seconds(kpi_interval: std::time::Duration) -> u32 {
    kpi_interval.as_secs_f64().ceil().clamp(1.0, 60.0) as u32
}

impl Dashboard {
    pub fn new(thresholds: &Thresholds, kpi_interval: std::time::Duration) -> Dashboard {
        let refresh_seconds = refresh_seconds(kpi_interval);
        let config = serde_json::to_string(&PageConfig { thresholds, refresh_seconds })
            .expect("config serialises")
            // Inside <script>, "</" could close the element.
            .replace("</", "<\\/");
        let mut index = include_str!("../dashboard/src/index.html").replace(
            "<!--VC_CONFIG-->",
            &format!("<script id=\"vc-config\" type=\"application/json\">{config}</script>"),
        );
        let plain = [
            ("app.js", asset(include_bytes!("../dashboard/src/app.js").to_vec(), "text/javascript; charset=utf-8")),
            ("style.css", asset(include_bytes!("../dashboard/src/style.css").to_vec(), "text/css; charset=utf-8")),
            (
                "uPlot.iife.min.js",
                asset(
                    include_bytes!(concat!(env!("OUT_DIR"), "/dashboard/uPlot.iife.min.js")).to_vec(),
                    "text/javascript; charset=utf-8",
                ),
            ),
            (
                "uPlot.min.css",
                asset(
                    include_bytes!(concat!(env!("OUT_DIR"), "/dashboard/uPlot.min.css")).to_vec(),
                    "text/css; charset=utf-8",
                ),
            ),
        ];
        let mut files = BTreeMap::new();
        for (name, file) in plain {
            let hashed = hashed_name(name, &file.body);
            index = index.replace(&format!("\"/dashboard/{name}\""), &format!("\"/dashboard/{hashed}\""));
            files.insert(hashed, Asset { immutable: true, ..asset(file.body.clone(), file.content_type) });
            files.insert(name.to_string(), file);
        }
        Dashboard { index: asset(index.into_bytes(), "text/html; charset=utf-8"), files }
    }
}

/// A year: what a hashed name may be kept for (RFC 9111's longest sensible `max-age`).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    // `no-cache`: always revalidate, so a new release shows at once; the ETag makes that a
    // 304. A hashed name never changes content: kept for a year.
    let cache = if asset.immutable { IMMUTABLE } else { "no-cache" };
    let common = [
        (header::ETAG, asset.etag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (StatusCode::OK, common, [(header::CONTENT_TYPE, asset.content_type)], asset.body.clone()).into_response()
}

pub async fn index(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    serve(&state.dashboard.index, &headers)
}

pub async fn file(State(state): State<Arc<AppState>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    match state.dashboard.files.get(name.as_str()) {
        Some(asset) => serve(asset, &headers),
        None => ApiError::new(StatusCode::NOT_FOUND, format!("no dashboard file {name:?}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_and_explain_mistakes() {
        let t = parse_thresholds(DEFAULT_THRESHOLDS).unwrap();
        assert_eq!(t["p95_latency_ms"], Level { warn: 800.0, crit: 2000.0 });
        assert_eq!(t.len(), 4);
        let cases = [
            ("p95_latency_ms", "\"p95_latency_ms\": expected KPI=WARN:CRIT, e.g. p95_latency_ms=800:2000"),
            (
                "speed=1:2",
                "\"speed\" is not a KPI with a threshold; use one of avg_latency_ms, p50_latency_ms, p95_latency_ms, p99_latency_ms, error_rate_pct, client_error_rate_pct",
            ),
            ("error_rate_pct=5", "\"error_rate_pct=5\": expected WARN:CRIT after ="),
            ("error_rate_pct=a:5", "\"error_rate_pct=a:5\": WARN and CRIT must be non-negative numbers"),
            ("error_rate_pct=5:1", "\"error_rate_pct=5:1\": WARN (5) must not be above CRIT (1)"),
        ];
        for (spec, want) in cases {
            assert_eq!(parse_thresholds(spec).unwrap_err(), want);
        }
    }

    #[test]
    fn index_carries_the_settings_and_assets_have_etags() {
        let d = Dashboard::new(&parse_thresholds("error_rate_pct=2:7").unwrap(), std::time::Duration::from_secs(10));
        let html = String::from_utf8(d.index.body.clone()).unwrap();
        assert!(
            html.contains(r#"{"thresholds":{"error_rate_pct":{"warn":2.0,"crit":7.0}},"refresh_seconds":10}"#),
            "the page refreshes as often as the KPIs are computed: {html}"
        );
        let secs = |ms: u64| refresh_seconds(std::time::Duration::from_millis(ms));
        assert_eq!((secs(500), secs(1_500), secs(60_000), secs(600_000)), (1, 2, 60, 60));
        assert!(d.files["uPlot.iife.min.js"].body.len() > 10_000, "uPlot is embedded");
        assert_ne!(d.files["app.js"].etag, d.files["style.css"].etag);
        // The page links every file by its hashed name, which serves the same bytes forever.
        for name in ["app.js", "style.css", "uPlot.iife.min.js", "uPlot.min.css"] {
            let hashed = hashed_name(name, &d.files[name].body);
            assert!(html.contains(&format!("\"/dashboard/{hashed}\"")), "{name} → {hashed}: {html}");
            assert!(!html.contains(&format!("\"/dashboard/{name}\"")), "{name} still linked plainly");
            assert!(d.files[&hashed].immutable && !d.files[name].immutable);
            assert_eq!(d.files[&hashed].body, d.files[name].body);
        }
    }
}
