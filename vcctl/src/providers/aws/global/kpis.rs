//! The fleet's KPIs over every region, without moving an event: each region's service serves
//! its aggregates in their mergeable form (`GET /api/analytics/aggregates`, behind the read
//! token all regions share), and they are merged here exactly as a region's dashboard merges
//! them for `?scope=global` (`vehicleconnect::kpi::Aggregates::merged`).

use serde::Serialize;
use time::OffsetDateTime;
use vehicleconnect::kpi::codec::decode_frame;
use vehicleconnect::kpi::{Aggregates, Figures, KpiLimits, RegionRead, Window, unix_us};

use super::records::{Endpoint, RegionEndpoint};

/// Where vcctl finds the read token: never on the command line.
pub const TOKEN_VAR: &str = "VCCTL_READ_TOKEN";
/// A region's frame: the service's own bound (`vehicleconnect::peers::MAX_FRAME_BYTES`).
const MAX_FRAME_BYTES: usize = vehicleconnect::peers::MAX_FRAME_BYTES;
/// Generous limits for the merge: the service's defaults (`kpi_engine::kpi_limits`).
const LIMITS: KpiLimits = KpiLimits { endpoints_per_minute: 1000, budget_bytes: 256 << 20 };

#[derive(Debug, Clone, Serialize)]
pub struct GlobalKpis {
    pub window: &'static str,
    pub overall: Figures,
    pub regions: Vec<RegionRead>,
}

/// Where a region's service answers the public.
pub fn url_of(r: &RegionEndpoint) -> Option<String> {
    match &r.endpoint {
        Endpoint::Balancer { domain, .. } => Some(format!("https://{domain}")),
        Endpoint::Address { domain: Some(d), .. } => Some(format!("https://{d}")),
        Endpoint::Address { ip, port, domain: None } => Some(format!("http://{ip}:{port}")),
        Endpoint::Missing { .. } => None,
    }
}

/// Every region's frame for `window`, read at once.
pub async fn read(
    client: &reqwest::Client,
    regions: &[(String, Option<String>)],
    token: &str,
    window: Window,
) -> Vec<(String, Result<Vec<u8>, String>)> {
    let reads = regions.iter().map(|(name, url)| async move {
        let got = match url {
            None => Err("no endpoint yet".to_string()),
            Some(url) => fetch(client, url, token, window).await.map_err(|e| format!("{e:#}")),
        };
        (name.clone(), got)
    });
    futures_util::future::join_all(reads).await
}

async fn fetch(client: &reqwest::Client, url: &str, token: &str, window: Window) -> anyhow::Result<Vec<u8>> {
    let response = client
        .get(format!("{url}/api/analytics/aggregates?window={}", window.as_str()))
        .bearer_auth(token)
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        let said = crate::http_client::bounded_text(response, 4096).await.unwrap_or_default();
        anyhow::bail!("HTTP {status}: {}", said.chars().take(300).collect::<String>());
    }
    crate::http_client::bounded_bytes(response, MAX_FRAME_BYTES).await
}

/// The regions' frames merged into the KPIs of `window` ending at `now`: pure.
pub fn merge(reads: Vec<(String, Result<Vec<u8>, String>)>, window: Window, now: OffsetDateTime) -> GlobalKpis {
    let decoded: Vec<(String, Result<_, String>)> = reads
        .into_iter()
        .map(|(name, got)| {
            (name, got.and_then(|bytes| decode_frame(&bytes).map_err(|e| format!("a damaged frame: {e}"))))
        })
        .collect();
    let regions = decoded.iter().map(|(name, got)| RegionRead::of(name.clone(), got.as_ref(), window, now)).collect();
    let parts = decoded.into_iter().filter_map(|(_, got)| got.ok()).collect();
    let report = Aggregates::merged(LIMITS, unix_us(now), parts).report(window, now, None);
    GlobalKpis { window: window.as_str(), overall: report.overall, regions }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vehicleconnect::kpi::Observation;

    #[test]
    fn two_regions_merge_to_the_figures_of_all_their_events_and_a_bad_one_is_named() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_030).unwrap();
        let limits = KpiLimits { endpoints_per_minute: 100, budget_bytes: 64 << 20 };
        let (mut eu, mut us, mut all) = (Aggregates::new(limits), Aggregates::new(limits), Aggregates::new(limits));
        let event = |i: u32| Observation {
            ts_us: unix_us(now) - i64::from(i % 50) * 60_000_000,
            endpoint: "/vehicles/lock",
            response_time_ms: f64::from(i % 997) + 0.5,
            status_code: if i.is_multiple_of(10) { 503 } else { 200 },
        };
        eu.record(unix_us(now), (0..3000).map(event));
        us.record(unix_us(now), (3000..8000).map(event));
        all.record(unix_us(now), (0..8000).map(event));
        let reads = vec![
            ("eu".to_string(), Ok(eu.frame(Window::OneHour, now))),
            ("us".to_string(), Ok(us.frame(Window::OneHour, now))),
            ("ap".to_string(), Ok(b"junk".to_vec())),
            ("sa".to_string(), Err("HTTP 401: the bearer token is not the read token".to_string())),
        ];
        let merged = merge(reads, Window::OneHour, now);
        assert_eq!(merged.overall, all.report(Window::OneHour, now, None).overall);
        assert_eq!(merged.regions.iter().map(|r| r.count).collect::<Vec<_>>(), [3000, 5000, 0, 0]);
        assert!(merged.regions[2].error.as_deref().unwrap().contains("damaged"));
        assert!(merged.regions[3].error.as_deref().unwrap().contains("401"));
    }
}
