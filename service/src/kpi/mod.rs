//! KPI math: per-minute, per-endpoint aggregates and the summaries built from them. Pure: no I/O.
//!
//! Every committed event updates one [`Agg`] for its endpoint and one for all endpoints in the
//! bucket of its minute. A KPI pass merges at most one bucket per minute of the window, so its
//! cost depends on the window and the number of endpoints, never on the number of events.

mod bins;
pub mod codec;
pub mod sketch;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use sketch::Sketch;

pub const US_PER_MINUTE: i64 = 60_000_000;

/// The windows the API serves, and the longest one, which bounds what aggregates keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
pub enum Window {
    #[serde(rename = "15m")]
    FifteenMinutes,
    #[serde(rename = "1h")]
    OneHour,
    #[serde(rename = "24h")]
    OneDay,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::FifteenMinutes, Window::OneHour, Window::OneDay];
    pub const LONGEST_MINUTES: i64 = 24 * 60;

    pub fn parse(s: &str) -> Option<Window> {
        match s {
            "15m" => Some(Window::FifteenMinutes),
            "1h" => Some(Window::OneHour),
            "24h" => Some(Window::OneDay),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::FifteenMinutes => "15m",
            Window::OneHour => "1h",
            Window::OneDay => "24h",
        }
    }

    pub fn minutes(self) -> i64 {
        match self {
            Window::FifteenMinutes => 15,
            Window::OneHour => 60,
            Window::OneDay => Window::LONGEST_MINUTES,
        }
    }
}

/// What the aggregates need of a committed event.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub ts_us: i64,
    pub endpoint: &'a str,
    pub response_time_ms: f64,
    pub status_code: u16,
}

/// Count, sum, error counts and a latency sketch: everything a KPI needs, and mergeable.
#[derive(Debug, Clone, Default)]
pub struct Agg {
    count: u64,
    sum_ms: f64,
    server_errors: u64,
    client_errors: u64,
    sketch: Sketch,
}

impl Agg {
    /// Adds one event; returns how many heap bytes the aggregate grew by (less than zero
    /// when its bins changed to a smaller form).
    fn record(&mut self, response_time_ms: f64, status_code: u16) -> isize {
        let before = self.heap_bytes() as isize;
        self.count += 1;
        self.sum_ms += response_time_ms;
        match status_code {
            500.. => self.server_errors += 1,
            400..=499 => self.client_errors += 1,
            _ => {}
        }
        self.sketch.insert(response_time_ms);
        self.heap_bytes() as isize - before
    }

    /// An aggregate from its parts (a minute computed by PostgreSQL, `store/fleet.rs`).
    pub fn from_parts(count: u64, sum_ms: f64, server_errors: u64, client_errors: u64, sketch: Sketch) -> Agg {
        Agg { count, sum_ms, server_errors, client_errors, sketch }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn merge(&mut self, other: &Agg) {
        self.count += other.count;
        self.sum_ms += other.sum_ms;
        self.server_errors += other.server_errors;
        self.client_errors += other.client_errors;
        self.sketch.merge(&other.sketch);
    }

    /// The KPI figures of this aggregate spread over `minutes` minutes.
    pub fn figures(&self, minutes: i64) -> Figures {
        let quantiles = self.sketch.quantiles([0.5, 0.95, 0.99]);
        let pct = |n: u64| {
            if self.count == 0 { 0.0 } else { round3(100.0 * n as f64 / self.count as f64) }
        };
        Figures {
            count: self.count,
            avg_latency_ms: (self.count > 0).then(|| round3(self.sum_ms / self.count as f64)),
            p50_latency_ms: quantiles.map(|q| round3(q[0])),
            p95_latency_ms: quantiles.map(|q| round3(q[1])),
            p99_latency_ms: quantiles.map(|q| round3(q[2])),
            error_rate_pct: pct(self.server_errors),
            client_error_rate_pct: pct(self.client_errors),
            requests_per_min: round3(self.count as f64 / minutes as f64),
        }
    }

    fn heap_bytes(&self) -> usize {
        self.sketch.heap_bytes()
    }
}

/// Three decimals: enough for milliseconds and percentages, and stable JSON.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// KPI figures over a window (or one minute of a series). Latencies are `null` when there
/// are no events.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Figures {
    pub count: u64,
    pub avg_latency_ms: Option<f64>,
    pub p50_latency_ms: Option<f64>,
    pub p95_latency_ms: Option<f64>,
    pub p99_latency_ms: Option<f64>,
    /// Share of events with status >= 500, in percent.
    pub error_rate_pct: f64,
    /// Share of events with status 400-499, in percent.
    pub client_error_rate_pct: f64,
    pub requests_per_min: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointFigures {
    pub endpoint: String,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// Start of the minute.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub minute: OffsetDateTime,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The KPIs of one window: overall (or of the one endpoint asked for), per endpoint, and a
/// per-minute series with one point for every minute of the window, empty minutes included.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KpiReport {
    pub window: Window,
    /// The endpoint the report is filtered to, if any.
    pub endpoint: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub computed_at: OffsetDateTime,
    pub overall: Figures,
    /// `overall` over the window just before this one, for trends; null when the
    /// aggregates do not reach back that far (the 24 h window).
    pub previous: Option<Figures>,
    /// Sorted by request count, busiest first.
    pub endpoints: Vec<EndpointFigures>,
    pub series: Vec<SeriesPoint>,
    /// `scope=global` only: every region read, this one first, and what each gave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<RegionRead>>,
}

/// One region's part in a global report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegionRead {
    pub region: String,
    /// Its events in the window; 0 when it did not answer.
    pub count: u64,
    /// Why it is missing from the report, when it is.
    pub error: Option<String>,
}

impl RegionRead {
    pub fn of(region: String, got: Result<&Vec<(i64, Minute)>, &String>, window: Window, now: OffsetDateTime) -> Self {
        let first = minute_of(unix_us(now)) - window.minutes() + 1;
        match got {
            Ok(minutes) => {
                let count = minutes.iter().filter(|(m, _)| *m >= first).map(|(_, b)| b.count()).sum();
                RegionRead { region, count, error: None }
            }
            Err(e) => RegionRead { region, count: 0, error: Some(e.clone()) },
        }
    }
}

/// One minute's aggregates: of all endpoints, and of each.
#[derive(Debug, Default, Clone)]
pub struct Minute {
    /// Spare capacity was freed once the minute was over.
    shrunk: bool,
    all: Agg,
    /// At most [`KpiLimits::endpoints_per_minute`] endpoints, plus [`OTHER_ENDPOINT`]; empty
    /// once the minute's detail was dropped to keep the budget.
    by_endpoint: HashMap<Box<str>, Agg>,
}

impl Minute {
    /// From each endpoint's aggregate: the busiest `limit` keep their own, the rest are
    /// summed as [`OTHER_ENDPOINT`].
    pub fn from_endpoints(mut endpoints: Vec<(String, Agg)>, limit: usize) -> Minute {
        endpoints.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
        let mut minute = Minute::default();
        for (i, (name, agg)) in endpoints.into_iter().enumerate() {
            minute.all.merge(&agg);
            let name: Box<str> = if i < limit { name.into() } else { OTHER_ENDPOINT.into() };
            minute.by_endpoint.entry(name).or_default().merge(&agg);
        }
        minute
    }

    /// Adds `other`'s events, as if they had been recorded here; endpoints past `limit`
    /// are counted as [`OTHER_ENDPOINT`].
    pub fn merge(&mut self, other: &Minute, limit: usize) {
        self.all.merge(&other.all);
        for (name, agg) in &other.by_endpoint {
            if let Some(mine) = self.by_endpoint.get_mut(name) {
                mine.merge(agg);
                continue;
            }
            let name: Box<str> = if self.by_endpoint.len() < limit { name.clone() } else { OTHER_ENDPOINT.into() };
            self.by_endpoint.entry(name).or_default().merge(agg);
        }
    }

    pub fn count(&self) -> u64 {
        self.all.count
    }

    fn heap_bytes(&self) -> usize {
        MINUTE_OVERHEAD + self.all.heap_bytes() + detail_bytes(self)
    }
}

/// The name under which endpoints past the tracking limit are aggregated.
pub const OTHER_ENDPOINT: &str = "other";

/// What bounds the aggregates' memory.
#[derive(Debug, Clone, Copy)]
pub struct KpiLimits {
    /// Endpoints with aggregates of their own in one minute; later ones in that minute are
    /// counted as [`OTHER_ENDPOINT`]. Names live only as long as their minutes, so a burst of
    /// junk names crowds out nothing after it has aged out of the windows.
    pub endpoints_per_minute: usize,
    /// Heap bytes the aggregates may hold. Past it, new endpoints of a minute are counted as
    /// [`OTHER_ENDPOINT`], and the per-endpoint detail of the oldest minutes is dropped
    /// (their totals stay) until the aggregates fit again.
    pub budget_bytes: usize,
}

/// Endpoints a report lists on their own, busiest first; the rest are summed as `other`.
pub const MAX_REPORT_ENDPOINTS: usize = 200;

/// The heap bytes of a minute's per-endpoint aggregates, as `record_one` counted them.
fn detail_bytes(bucket: &Minute) -> usize {
    bucket.by_endpoint.iter().map(|(name, agg)| entry_overhead(name) + agg.heap_bytes()).sum()
}

/// What one (minute, endpoint) aggregate costs beside its sketch's bins: the struct, its
/// hash-table slot (with the table's spare room) and the boxed name.
fn entry_overhead(name: &str) -> usize {
    2 * std::mem::size_of::<(Box<str>, Agg)>() + name.len()
}

const MINUTE_OVERHEAD: usize = 2 * std::mem::size_of::<(i64, Minute)>();

/// Per-minute aggregates of the last [`Window::LONGEST_MINUTES`] minutes.
#[derive(Debug)]
pub struct Aggregates {
    minutes: BTreeMap<i64, Minute>,
    limits: KpiLimits,
    /// Heap bytes held, kept up to date as aggregates grow and go: what the budget limits
    /// and `vehicleconnect_kpi_state_bytes` exports.
    bytes: usize,
    /// Minutes before this one have no per-endpoint detail any more (dropped for the budget).
    detail_from: i64,
    /// The minute of the last budget warning: one warning per ten minutes at most.
    warned_budget: Option<i64>,
}

impl Aggregates {
    pub fn new(limits: KpiLimits) -> Aggregates {
        Aggregates { minutes: BTreeMap::new(), limits, bytes: 0, detail_from: i64::MIN, warned_budget: None }
    }

    /// Records committed events. Events older than the longest window (relative to `now_us`)
    /// are stored but not aggregated: no window can show them.
    pub fn record<'a>(&mut self, now_us: i64, events: impl IntoIterator<Item = Observation<'a>>) {
        let oldest = minute_of(now_us) - Window::LONGEST_MINUTES;
        for e in events {
            let minute = minute_of(e.ts_us);
            if minute <= oldest {
                continue;
            }
            self.record_one(minute, e);
        }
        self.keep_budget();
    }

    fn record_one(&mut self, minute: i64, e: Observation<'_>) {
        // Older minutes' detail goes first; only then do new names fold into `other`.
        let over_budget = self.bytes >= self.limits.budget_bytes && !self.drop_oldest_detail(minute);
        let detailed = minute >= self.detail_from;
        let bucket = self.minutes.entry(minute).or_insert_with(|| {
            self.bytes += MINUTE_OVERHEAD;
            Minute::default()
        });
        self.bytes = self.bytes.wrapping_add_signed(bucket.all.record(e.response_time_ms, e.status_code));
        if !detailed {
            return;
        }
        if let Some(agg) = bucket.by_endpoint.get_mut(e.endpoint) {
            self.bytes = self.bytes.wrapping_add_signed(agg.record(e.response_time_ms, e.status_code));
            return;
        }
        let has_room = bucket.by_endpoint.len() < self.limits.endpoints_per_minute && !over_budget;
        let name = if has_room { e.endpoint } else { OTHER_ENDPOINT };
        let agg = bucket.by_endpoint.entry(name.into()).or_insert_with(|| {
            self.bytes += entry_overhead(name);
            Agg::default()
        });
        self.bytes = self.bytes.wrapping_add_signed(agg.record(e.response_time_ms, e.status_code));
    }

    /// Drops the per-endpoint detail of the oldest minutes until the aggregates fit the
    /// budget. Each minute's totals (one sketch of at most `MAX_BINS` bins) always stay.
    fn keep_budget(&mut self) {
        while self.bytes > self.limits.budget_bytes && self.drop_oldest_detail(i64::MAX) {}
    }

    /// Drops the per-endpoint detail of the oldest minute before `before` that has any;
    /// false when there is none.
    fn drop_oldest_detail(&mut self, before: i64) -> bool {
        let from = self.detail_from.max(i64::MIN + 1);
        let Some((&minute, bucket)) = self.minutes.range_mut(from..before).find(|(_, b)| !b.by_endpoint.is_empty())
        else {
            return false;
        };
        self.bytes -= detail_bytes(bucket);
        bucket.by_endpoint = HashMap::new();
        self.detail_from = minute + 1;
        if self.warned_budget.is_none_or(|m| m + 10 <= minute) {
            self.warned_budget = Some(minute);
            tracing::warn!(
                budget_bytes = self.limits.budget_bytes,
                "KPI state at its memory budget: dropping the per-endpoint detail of the oldest minutes"
            );
        }
        true
    }

    /// Drops minutes no window can reach any more, and trims the spare room of past minutes.
    pub fn prune(&mut self, now_us: i64) {
        let current = minute_of(now_us);
        let oldest = current - Window::LONGEST_MINUTES;
        let kept = self.minutes.split_off(&(oldest + 1));
        for bucket in std::mem::replace(&mut self.minutes, kept).into_values() {
            self.bytes -= MINUTE_OVERHEAD + bucket.all.heap_bytes() + detail_bytes(&bucket);
        }
        for bucket in self.minutes.range_mut(..current).map(|(_, b)| b).filter(|b| !b.shrunk) {
            let before = bucket.all.heap_bytes() + detail_bytes(bucket);
            bucket.all.sketch.shrink();
            bucket.by_endpoint.values_mut().for_each(|a| a.sketch.shrink());
            bucket.by_endpoint.shrink_to_fit();
            bucket.shrunk = true;
            self.bytes -= before - (bucket.all.heap_bytes() + detail_bytes(bucket));
        }
    }

    pub fn budget_bytes(&self) -> usize {
        self.limits.budget_bytes
    }

    pub fn limits(&self) -> KpiLimits {
        self.limits
    }

    /// Minute `minute`'s aggregates, if it has any.
    pub fn minute(&self, minute: i64) -> Option<&Minute> {
        self.minutes.get(&minute)
    }

    /// The minutes from `first` on, oldest first.
    pub fn minutes_from(&self, first: i64) -> impl Iterator<Item = (i64, &Minute)> {
        self.minutes.range(first..).map(|(m, b)| (*m, b))
    }

    /// Puts `bucket` in place of whatever minute `minute` held (the fleet's figures for it,
    /// read from the store); an empty bucket, or one outside the longest window (as of
    /// `now_us`), only removes what was there.
    pub fn replace_minute(&mut self, now_us: i64, minute: i64, mut bucket: Minute) {
        if minute < self.detail_from {
            // Like the minutes around it: their detail went for the budget.
            bucket.by_endpoint = HashMap::new();
        }
        if let Some(old) = self.minutes.remove(&minute) {
            self.bytes -= old.heap_bytes();
        }
        if minute <= minute_of(now_us) - Window::LONGEST_MINUTES
            || (bucket.all.count == 0 && bucket.by_endpoint.is_empty())
        {
            return;
        }
        self.bytes += bucket.heap_bytes();
        self.minutes.insert(minute, bucket);
        self.keep_budget();
    }

    /// Forgets the minutes before `first`.
    pub fn forget_before(&mut self, first: i64) {
        let kept = self.minutes.split_off(&first);
        for bucket in std::mem::replace(&mut self.minutes, kept).into_values() {
            self.bytes -= bucket.heap_bytes();
        }
    }

    /// Heap bytes held by the aggregates (an estimate: their own accounting, see
    /// `entry_overhead`).
    pub fn heap_bytes(&self) -> usize {
        self.bytes
    }

    /// The minutes a report of `window` ending at `now` reads (the window and the one before
    /// it, for `previous`), as a frame another region merges with its own (`merged`).
    pub fn frame(&self, window: Window, now: OffsetDateTime) -> Vec<u8> {
        codec::encode_frame(self.report_minutes(window, now))
    }

    /// The minutes a report of `window` ending at `now` reads, oldest first.
    pub fn report_minutes(&self, window: Window, now: OffsetDateTime) -> impl Iterator<Item = (i64, &Minute)> {
        let last = minute_of(unix_us(now));
        let first = last - (2 * window.minutes()).min(Window::LONGEST_MINUTES) + 1;
        self.minutes.range(first..=last).map(|(m, b)| (*m, b))
    }

    /// Several regions' minutes as one set of aggregates: each minute the merge of that
    /// minute everywhere, as if every event had been recorded in one place. Counts and sums
    /// add exactly; the sketches merge bin by bin, so a quantile keeps the sketch's error.
    pub fn merged(limits: KpiLimits, now_us: i64, regions: Vec<Vec<(i64, Minute)>>) -> Aggregates {
        let mut minutes: BTreeMap<i64, Minute> = BTreeMap::new();
        for (at, minute) in regions.into_iter().flatten() {
            minutes.entry(at).or_default().merge(&minute, limits.endpoints_per_minute);
        }
        let mut merged = Aggregates::new(limits);
        for (at, minute) in minutes {
            merged.replace_minute(now_us, at, minute);
        }
        merged
    }

    /// The KPIs over `window` ending at `now`, for all endpoints or for one.
    ///
    /// The window is the `window.minutes()` minute buckets ending with the current (partial)
    /// one; `requests_per_min` divides by the window's length in minutes.
    pub fn report(&self, window: Window, now: OffsetDateTime, endpoint: Option<&str>) -> KpiReport {
        let last = minute_of(unix_us(now));
        let first = last - window.minutes() + 1;
        let empty = Agg::default();
        let mut overall = Agg::default();
        let mut per_endpoint: HashMap<&str, Agg> = HashMap::new();
        let mut series = Vec::with_capacity(window.minutes() as usize);
        let mut buckets = self.minutes.range(first..=last).peekable();
        for minute in first..=last {
            let bucket = match buckets.peek() {
                Some((m, _)) if **m == minute => buckets.next().map(|(_, b)| b),
                _ => None,
            };
            let agg = bucket
                .and_then(|b| match endpoint {
                    None => Some(&b.all),
                    Some(e) => b.by_endpoint.get(e),
                })
                .unwrap_or(&empty);
            overall.merge(agg);
            if let Some(bucket) = bucket {
                for (name, a) in &bucket.by_endpoint {
                    if endpoint.is_none_or(|e| e == &**name) {
                        per_endpoint.entry(name).or_default().merge(a);
                    }
                }
            }
            series.push(SeriesPoint { minute: from_unix_us(minute * US_PER_MINUTE), figures: agg.figures(1) });
        }
        let endpoints = busiest(per_endpoint)
            .into_iter()
            .map(|(name, agg)| EndpointFigures { endpoint: name.to_string(), figures: agg.figures(window.minutes()) })
            .collect();
        let previous_first = first - window.minutes();
        let previous = (previous_first > last - Window::LONGEST_MINUTES).then(|| {
            let mut agg = Agg::default();
            for (_, bucket) in self.minutes.range(previous_first..first) {
                match endpoint {
                    None => agg.merge(&bucket.all),
                    Some(e) => {
                        if let Some(a) = bucket.by_endpoint.get(e) {
                            agg.merge(a);
                        }
                    }
                }
            }
            agg.figures(window.minutes())
        });
        KpiReport {
            window,
            endpoint: endpoint.map(str::to_string),
            computed_at: now,
            overall: overall.figures(window.minutes()),
            previous,
            endpoints,
            series,
            regions: None,
        }
    }
}

/// The busiest [`MAX_REPORT_ENDPOINTS`] endpoints, busiest first (ties by name), and the
/// rest summed as [`OTHER_ENDPOINT`] at its place in that order.
fn busiest(per_endpoint: HashMap<&str, Agg>) -> Vec<(&str, Agg)> {
    let by_count = |list: &mut Vec<(&str, Agg)>| {
        list.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(b.0)));
    };
    let mut list: Vec<(&str, Agg)> = per_endpoint.into_iter().collect();
    by_count(&mut list);
    if list.len() <= MAX_REPORT_ENDPOINTS {
        return list;
    }
    let rest = list.split_off(MAX_REPORT_ENDPOINTS - 1);
    let mut other = Agg::default();
    for (_, agg) in rest.iter().chain(list.iter().filter(|(name, _)| *name == OTHER_ENDPOINT)) {
        other.merge(agg);
    }
    list.retain(|(name, _)| *name != OTHER_ENDPOINT);
    list.push((OTHER_ENDPOINT, other));
    by_count(&mut list);
    list
}

pub fn minute_of(ts_us: i64) -> i64 {
    ts_us.div_euclid(US_PER_MINUTE)
}

pub fn unix_us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

pub fn from_unix_us(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1000).expect("timestamp in range")
}

#[cfg(test)]
mod tests {
    use super::sketch::exact_quantile;
    use super::*;

    const LIMITS: KpiLimits = KpiLimits { endpoints_per_minute: 100, budget_bytes: 64 << 20 };

    struct Generated {
        ts_us: i64,
        endpoint: &'static str,
        ms: f64,
        status: u16,
    }

    fn generate(now_us: i64, n: usize, spread_minutes: i64) -> Vec<Generated> {
        let endpoints = ["/lock", "/unlock", "/status", "/climate"];
        let mut seed: u64 = 99;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let age = (next() * (spread_minutes * US_PER_MINUTE) as f64) as i64;
                let endpoint = endpoints[(next() * 4.0) as usize];
                let ms = (next() * 6.0).exp() + next() * 3.0;
                let r = next();
                let status = if r < 0.03 {
                    503
                } else if r < 0.08 {
                    404
                } else {
                    200
                };
                Generated { ts_us: now_us - age, endpoint, ms, status }
            })
            .collect()
    }

    /// The KPIs computed directly from the raw events, the way a SQL query would.
    fn exact(events: &[&Generated], minutes: i64) -> Figures {
        let mut lat: Vec<f64> = events.iter().map(|e| e.ms).collect();
        lat.sort_by(f64::total_cmp);
        let n = events.len() as f64;
        Figures {
            count: events.len() as u64,
            avg_latency_ms: Some(lat.iter().sum::<f64>() / n),
            p50_latency_ms: Some(exact_quantile(&lat, 0.5)),
            p95_latency_ms: Some(exact_quantile(&lat, 0.95)),
            p99_latency_ms: Some(exact_quantile(&lat, 0.99)),
            error_rate_pct: 100.0 * events.iter().filter(|e| e.status >= 500).count() as f64 / n,
            client_error_rate_pct: 100.0 * events.iter().filter(|e| (400..500).contains(&e.status)).count() as f64 / n,
            requests_per_min: n / minutes as f64,
        }
    }

    fn assert_close(got: &Figures, want: &Figures, what: &str) {
        assert_eq!(got.count, want.count, "{what}: count");
        let rel = |a: Option<f64>, b: Option<f64>| (a.unwrap() - b.unwrap()).abs() / b.unwrap();
        // Figures are rounded to three decimals.
        assert!(
            (got.avg_latency_ms.unwrap() - want.avg_latency_ms.unwrap()).abs() <= 0.0005,
            "{what}: avg {got:?} vs {want:?}"
        );
        for (g, w, name) in [
            (got.p50_latency_ms, want.p50_latency_ms, "p50"),
            (got.p95_latency_ms, want.p95_latency_ms, "p95"),
            (got.p99_latency_ms, want.p99_latency_ms, "p99"),
        ] {
            assert!(rel(g, w) <= 0.01, "{what}: {name} {g:?} vs exact {w:?}");
        }
        assert!((got.error_rate_pct - want.error_rate_pct).abs() < 0.001, "{what}: error rate");
        assert!((got.client_error_rate_pct - want.client_error_rate_pct).abs() < 0.001, "{what}: client error rate");
        assert!((got.requests_per_min - want.requests_per_min).abs() < 0.001, "{what}: rpm");
    }

    #[test]
    fn regions_merged_report_what_one_place_with_every_event_would() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_030).unwrap();
        let now_us = unix_us(now);
        let events = generate(now_us, 40_000, 3 * 60);
        let observe = |e: &Generated| Observation {
            ts_us: e.ts_us,
            endpoint: e.endpoint,
            response_time_ms: e.ms,
            status_code: e.status,
        };
        let (mut eu, mut us, mut one) = (Aggregates::new(LIMITS), Aggregates::new(LIMITS), Aggregates::new(LIMITS));
        eu.record(now_us, events.iter().step_by(3).map(observe));
        us.record(now_us, events.iter().enumerate().filter(|(i, _)| i % 3 != 0).map(|(_, e)| observe(e)));
        one.record(now_us, events.iter().map(observe));
        for window in Window::ALL {
            let frames = [eu.frame(window, now), us.frame(window, now)];
            let parts = frames.iter().map(|f| codec::decode_frame(f).unwrap()).collect();
            let global = Aggregates::merged(LIMITS, now_us, parts).report(window, now, None);
            let want = one.report(window, now, None);
            let what = window.as_str();
            assert_eq!(global.overall.count, want.overall.count, "{what}");
            assert_eq!(global.overall.p95_latency_ms, want.overall.p95_latency_ms, "{what}");
            assert_eq!(global.overall.error_rate_pct, want.overall.error_rate_pct, "{what}");
            assert_close(&global.overall, &want.overall, what);
            assert_eq!(global.previous.map(|p| p.count), want.previous.map(|p| p.count), "{what}");
            assert_eq!(global.endpoints.len(), want.endpoints.len());
            for (g, w) in global.endpoints.iter().zip(&want.endpoints) {
                assert_eq!((&g.endpoint, g.figures.count), (&w.endpoint, w.figures.count));
                assert_eq!(g.figures.p95_latency_ms, w.figures.p95_latency_ms, "{what} {}", g.endpoint);
            }
        }
    }

    #[test]
    fn report_matches_exact_computation_for_every_window_and_endpoint() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_030).unwrap();
        let now_us = unix_us(now);
        // Spread over 30 hours: some events fall outside even the longest window.
        let events = generate(now_us, 60_000, 30 * 60);
        let mut aggs = Aggregates::new(LIMITS);
        aggs.record(
            now_us,
            events.iter().map(|e| Observation {
                ts_us: e.ts_us,
                endpoint: e.endpoint,
                response_time_ms: e.ms,
                status_code: e.status,
            }),
        );
        for window in Window::ALL {
            let first_minute = minute_of(now_us) - window.minutes() + 1;
            let in_window: Vec<&Generated> = events.iter().filter(|e| minute_of(e.ts_us) >= first_minute).collect();
            let report = aggs.report(window, now, None);
            assert_close(&report.overall, &exact(&in_window, window.minutes()), window.as_str());
            assert_eq!(report.series.len() as i64, window.minutes());
            assert_eq!(report.series.iter().map(|p| p.figures.count).sum::<u64>(), in_window.len() as u64);
            for ep in &report.endpoints {
                let mine: Vec<&Generated> = in_window.iter().copied().filter(|e| e.endpoint == ep.endpoint).collect();
                assert_close(&ep.figures, &exact(&mine, window.minutes()), &ep.endpoint);
                let filtered = aggs.report(window, now, Some(&ep.endpoint));
                assert_eq!(filtered.overall, ep.figures);
                assert_eq!(filtered.endpoints.len(), 1);
            }
            assert_eq!(report.endpoints.len(), 4);
            match window {
                Window::OneDay => assert_eq!(report.previous, None),
                _ => {
                    let before: Vec<&Generated> = events
                        .iter()
                        .filter(|e| (first_minute - window.minutes()..first_minute).contains(&minute_of(e.ts_us)))
                        .collect();
                    assert_close(report.previous.as_ref().unwrap(), &exact(&before, window.minutes()), "previous");
                }
            }
        }
    }

    #[test]
    fn empty_window_reports_zero_count_and_no_latency() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let report = Aggregates::new(LIMITS).report(Window::FifteenMinutes, now, None);
        assert_eq!(report.overall.count, 0);
        assert_eq!(report.overall.p95_latency_ms, None);
        assert_eq!(report.series.len(), 15);
        assert!(report.endpoints.is_empty());
    }

    #[test]
    fn endpoints_past_the_limit_are_folded_into_other() {
        let now_us = 1_800_000_000 * 1_000_000;
        let mut aggs = Aggregates::new(KpiLimits { endpoints_per_minute: 2, ..LIMITS });
        let names = ["/a", "/b", "/c", "/d", "/a"];
        aggs.record(
            now_us,
            names.iter().map(|n| Observation { ts_us: now_us, endpoint: n, response_time_ms: 1.0, status_code: 200 }),
        );
        let report = aggs.report(Window::FifteenMinutes, from_unix_us(now_us), None);
        let got: Vec<(&str, u64)> = report.endpoints.iter().map(|e| (e.endpoint.as_str(), e.figures.count)).collect();
        assert_eq!(got, vec![("/a", 2), ("other", 2), ("/b", 1)]);
    }

    #[test]
    fn prune_drops_minutes_outside_the_longest_window() {
        let now_us = 1_800_000_000 * 1_000_000;
        let mut aggs = Aggregates::new(LIMITS);
        let obs = |ts_us| Observation { ts_us, endpoint: "/a", response_time_ms: 1.0, status_code: 200 };
        aggs.record(now_us, [obs(now_us), obs(now_us - 10 * US_PER_MINUTE)]);
        let later = now_us + (Window::LONGEST_MINUTES - 5) * US_PER_MINUTE;
        aggs.prune(later);
        assert_eq!(aggs.minutes.len(), 1);
    }

    fn obs(ts_us: i64, endpoint: &str, ms: f64) -> Observation<'_> {
        Observation { ts_us, endpoint, response_time_ms: ms, status_code: 200 }
    }

    /// The bytes the accounting should hold, counted from scratch.
    fn recount(aggs: &Aggregates) -> usize {
        aggs.minutes.values().map(|b| MINUTE_OVERHEAD + b.all.heap_bytes() + detail_bytes(b)).sum()
    }

    #[test]
    fn endpoint_names_expire_with_their_minutes() {
        let now_us = 1_800_000_000 * 1_000_000;
        let mut aggs = Aggregates::new(KpiLimits { endpoints_per_minute: 3, ..LIMITS });
        let junk: Vec<String> = (0..50).map(|i| format!("/junk{i}")).collect();
        let early = now_us - 30 * US_PER_MINUTE;
        aggs.record(now_us, junk.iter().map(|j| obs(early, j, 1.0)));
        aggs.record(now_us, [obs(now_us, "/lock", 5.0)]);
        let report = aggs.report(Window::FifteenMinutes, from_unix_us(now_us), None);
        assert_eq!(report.endpoints.len(), 1);
        assert_eq!(report.endpoints[0].endpoint, "/lock");
        let hour = aggs.report(Window::OneHour, from_unix_us(now_us), None);
        assert_eq!(hour.endpoints.iter().find(|e| e.endpoint == "other").unwrap().figures.count, 47);
    }

    #[test]
    fn spread_extreme_events_stay_small_and_the_accounting_is_exact() {
        let now_us = 1_800_000_000 * 1_000_000;
        let mut aggs = Aggregates::new(LIMITS);
        let names: Vec<String> = (0..300).map(|i| format!("/e{i}")).collect();
        for minute in 0..60 {
            let ts = now_us - minute * US_PER_MINUTE;
            aggs.record(now_us, names.iter().flat_map(|n| [obs(ts, n, 0.001), obs(ts, n, 3_600_000.0)]));
        }
        assert_eq!(aggs.heap_bytes(), recount(&aggs));
        assert!(aggs.heap_bytes() < 8 << 20, "{} bytes", aggs.heap_bytes());
        aggs.prune(now_us + 90 * US_PER_MINUTE);
        assert_eq!(aggs.heap_bytes(), recount(&aggs));
        aggs.prune(now_us + (Window::LONGEST_MINUTES + 1) * US_PER_MINUTE);
        assert_eq!((aggs.heap_bytes(), aggs.minutes.len()), (0, 0));
    }

    #[test]
    fn over_budget_the_oldest_detail_goes_and_totals_stay() {
        let now_us = 1_800_000_000 * 1_000_000;
        let budget = 200_000;
        let mut aggs = Aggregates::new(KpiLimits { endpoints_per_minute: 100, budget_bytes: budget });
        let names: Vec<String> = (0..100).map(|i| format!("/e{i}")).collect();
        for minute in (0..60).rev() {
            let ts = now_us - minute * US_PER_MINUTE;
            aggs.record(now_us, names.iter().enumerate().map(|(i, n)| obs(ts, n, 1.0 + i as f64 * 10.0)));
            assert!(aggs.heap_bytes() <= budget, "{} > {budget}", aggs.heap_bytes());
        }
        assert_eq!(aggs.heap_bytes(), recount(&aggs));
        let report = aggs.report(Window::OneHour, from_unix_us(now_us), None);
        assert_eq!(report.overall.count, 6000, "totals of every minute are kept");
        assert!(report.series.last().unwrap().figures.count == 100);
        let newest = aggs.minutes.values().last().unwrap();
        assert_eq!(newest.by_endpoint.len(), 100, "the newest minute keeps its detail");
    }

    #[test]
    fn a_report_lists_the_busiest_endpoints_and_sums_the_rest() {
        let now_us = 1_800_000_000 * 1_000_000;
        let mut aggs = Aggregates::new(KpiLimits { endpoints_per_minute: 1000, ..LIMITS });
        let names: Vec<String> = (0..MAX_REPORT_ENDPOINTS + 50).map(|i| format!("/e{i:04}")).collect();
        aggs.record(now_us, names.iter().map(|n| obs(now_us, n, 1.0)));
        aggs.record(now_us, (0..5).map(|_| obs(now_us, "/busy", 1.0)));
        let report = aggs.report(Window::FifteenMinutes, from_unix_us(now_us), None);
        assert_eq!(report.endpoints.len(), MAX_REPORT_ENDPOINTS);
        assert_eq!(report.endpoints[0].endpoint, "other");
        assert_eq!(report.endpoints[0].figures.count, 52);
        assert_eq!(report.endpoints[1].endpoint, "/busy");
        assert_eq!(report.endpoints.iter().map(|e| e.figures.count).sum::<u64>(), report.overall.count);
    }
}
