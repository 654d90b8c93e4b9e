//! Prometheus metrics: the service's own HTTP traffic, the vehicle events it stored, and
//! build info. Label values are bounded: routes, not raw paths; at most
//! [`MAX_VEHICLE_ENDPOINTS`] vehicle endpoints, the rest as `other`; never a client id.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::ingest::Event;
use crate::kpi::OTHER_ENDPOINT;

pub const MAX_VEHICLE_ENDPOINTS: usize = 100;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    endpoint: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VehicleLabels {
    endpoint: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    git_sha: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<HttpLabels, Counter>,
    request_duration: HistogramFamily<RouteLabels>,
    vehicle_events: Family<VehicleLabels, Counter>,
    vehicle_response_time: HistogramFamily<EndpointLabels>,
    tracked_endpoints: Mutex<HashSet<String>>,
}

fn http_duration_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16))
}

fn vehicle_latency_histogram() -> Histogram {
    // The vehicle APIs' own latencies: 5 ms to ~82 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.005, 2.0, 15))
}

impl Metrics {
    pub fn new(version: &'static str, git_sha: &'static str) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<HttpLabels, Counter>::default();
        registry.register("api_requests", "HTTP requests served by this service", requests.clone());
        let request_duration =
            HistogramFamily::<RouteLabels>::new_with_constructor(http_duration_histogram as fn() -> Histogram);
        registry.register(
            "api_request_duration_seconds",
            "Time to serve an HTTP request, by route",
            request_duration.clone(),
        );
        let vehicle_events = Family::<VehicleLabels, Counter>::default();
        registry.register(
            "vehicle_events",
            "Vehicle API events stored, by endpoint and status class",
            vehicle_events.clone(),
        );
        let vehicle_response_time =
            HistogramFamily::<EndpointLabels>::new_with_constructor(vehicle_latency_histogram as fn() -> Histogram);
        registry.register(
            "vehicle_event_response_time_seconds",
            "Response times reported by stored vehicle API events",
            vehicle_response_time.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info.get_or_create(&BuildLabels { version, git_sha }).set(1);
        registry.register("vehicleconnect_build_info", "Version of the running vehicleconnect build", build_info);
        Metrics {
            registry,
            requests,
            request_duration,
            vehicle_events,
            vehicle_response_time,
            tracked_endpoints: Mutex::new(HashSet::new()),
        }
    }

    /// Records one served HTTP request. `route` is the matched route pattern.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = bounded_method(method);
        self.requests.get_or_create(&HttpLabels { method, endpoint: route.to_string(), status }).inc();
        self.request_duration.get_or_create(&RouteLabels { method, endpoint: route.to_string() }).observe(seconds);
    }

    /// Records committed vehicle events, one label lookup per endpoint and class per group.
    pub fn observe_events(&self, events: &[Event]) {
        let mut counts: HashMap<(&str, &'static str), u64> = HashMap::new();
        let mut latencies: HashMap<&str, Vec<f64>> = HashMap::new();
        {
            let mut tracked = self.tracked_endpoints.lock().unwrap_or_else(|p| p.into_inner());
            for e in events {
                let endpoint = if tracked.contains(&e.endpoint) {
                    e.endpoint.as_str()
                } else if tracked.len() < MAX_VEHICLE_ENDPOINTS {
                    tracked.insert(e.endpoint.clone());
                    e.endpoint.as_str()
                } else {
                    OTHER_ENDPOINT
                };
                *counts.entry((endpoint, status_class(e.status_code))).or_default() += 1;
                latencies.entry(endpoint).or_default().push(e.response_time_ms / 1000.0);
            }
        }
        for ((endpoint, status_class), n) in counts {
            self.vehicle_events
                .get_or_create(&VehicleLabels { endpoint: endpoint.to_string(), status_class })
                .inc_by(n);
        }
        for (endpoint, values) in latencies {
            let histogram =
                self.vehicle_response_time.get_or_create(&EndpointLabels { endpoint: endpoint.to_string() });
            for v in values {
                histogram.observe(v);
            }
        }
    }

    /// The Prometheus text exposition format (0.0.4), which every scraper and `promtool
    /// check metrics` read.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        openmetrics_to_prometheus_text(&out)
    }
}

/// prometheus-client writes OpenMetrics, where a counter family `x` has samples `x_total`.
/// The classic text format names the family after its samples (`# TYPE x_total counter`)
/// and has no `# EOF`; without this, promtool sees `x_total` as an untyped metric without help.
fn openmetrics_to_prometheus_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len() + 64);
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "].into_iter().find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{prefix}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

fn status_class(code: u16) -> &'static str {
    match code {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn bounded_method(method: &str) -> &'static str {
    crate::ingest::event::METHODS.iter().find(|m| **m == method).copied().unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(endpoint: &str, status_code: u16) -> Event {
        Event {
            ts_us: 0,
            endpoint: endpoint.to_string(),
            method: None,
            status_code,
            response_time_ms: 20.0,
            client_id: "secret-client".to_string(),
        }
    }

    #[test]
    fn vehicle_endpoints_are_bounded_and_client_ids_never_exported() {
        let m = Metrics::new("1.0.0", "abc");
        let events: Vec<Event> = (0..150).map(|i| event(&format!("/e{i}"), 200 + (i % 4) * 100)).collect();
        m.observe_events(&events);
        let text = m.encode();
        assert!(!text.contains("secret-client"));
        let endpoints: HashSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("vehicle_events_total{"))
            .filter_map(|l| l.split("endpoint=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(endpoints.len(), MAX_VEHICLE_ENDPOINTS + 1);
        assert!(endpoints.contains("other"));
        assert!(text.contains(r#"vehicle_events_total{endpoint="other",status_class="5xx"} 12"#), "{text}");
        assert!(text.contains(r#"vehicleconnect_build_info{version="1.0.0",git_sha="abc"} 1"#));
        assert!(text.contains("# TYPE vehicle_events_total counter\n"), "{text}");
        assert!(text.contains("# HELP vehicle_events_total Vehicle API events stored"), "{text}");
        assert!(!text.contains("# EOF"));
    }
}
