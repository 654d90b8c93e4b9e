//! Prometheus metrics: the service's own HTTP traffic, the vehicle events it stored, and
//! build info. Label values are bounded: routes, not raw paths; at most
//! [`MAX_VEHICLE_ENDPOINTS`] vehicle endpoints at once (slots of endpoints idle for an hour
//! are given up), the rest as `other`; never a client id. Endpoint names are escaped.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
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
    endpoint: LabelText,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: LabelText,
}

/// A label value from a client (an event's endpoint), escaped as the text format requires:
/// `\`, `"` and line feeds. prometheus-client writes label values as they are, so one
/// endpoint `/x"y` would otherwise break every scrape.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct LabelText(String);

impl EncodeLabelValue for LabelText {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        use std::fmt::Write;
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A vehicle endpoint without events for this many minutes gives its label slot up.
const LABEL_IDLE_MINUTES: i64 = 60;

/// The vehicle endpoints that have labels of their own, with the minute each was last seen.
#[derive(Default)]
struct Labelled {
    endpoints: HashMap<String, i64>,
    /// When the table is full, idle slots are looked for at most once a minute.
    next_sweep: i64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    git_sha: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    replica: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<HttpLabels, Counter>,
    request_duration: HistogramFamily<RouteLabels>,
    vehicle_events: Family<VehicleLabels, Counter>,
    vehicle_response_time: HistogramFamily<EndpointLabels>,
    labelled: Mutex<Labelled>,
    kpi_state_bytes: Gauge,
    kpi_budget: Gauge,
    connections_open: Gauge,
    fleet: FleetGauges,
}

/// This replica in the fleet (fleet.rs): whether it leads, the leader's reconciliation lag,
/// and how many replicas report.
#[derive(Default)]
struct FleetGauges {
    leader: Gauge,
    lag_s: Gauge,
    reporting: Gauge,
}

/// What the fleet gauges show, read at scrape time.
pub struct FleetFigures {
    pub leader: bool,
    /// Seconds; -1 when this replica does not lead.
    pub lag_s: i64,
    pub reporting: i64,
}

fn http_duration_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16))
}

fn vehicle_latency_histogram() -> Histogram {
    // The vehicle APIs' own latencies: 5 ms to ~82 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.005, 2.0, 15))
}

impl FleetGauges {
    /// The fleet's gauges, registered in `registry`.
    fn registered(registry: &mut Registry) -> FleetGauges {
        let fleet = FleetGauges::default();
        registry.register(
            "vehicleconnect_kpi_leader",
            "1 when this replica is the fleet's KPI leader (closes minutes, writes snapshots, applies retention)",
            fleet.leader.clone(),
        );
        registry.register(
            "vehicleconnect_kpi_reconcile_lag_seconds",
            "On the leader: seconds from the end of the newest minute closed from the raw events to now (-1 elsewhere)",
            fleet.lag_s.clone(),
        );
        registry.register(
            "vehicleconnect_replicas_reporting",
            "Replicas that reported to the shared store in the last 10 s",
            fleet.reporting.clone(),
        );
        fleet
    }
}

impl Metrics {
    pub fn new(version: &'static str, git_sha: &'static str, replica: &str) -> Metrics {
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
        let kpi_state_bytes = Gauge::default();
        registry.register(
            "vehicleconnect_kpi_state_bytes",
            "Heap bytes held by the KPI aggregates (budget: vehicleconnect_kpi_state_budget_bytes)",
            kpi_state_bytes.clone(),
        );
        let kpi_budget: Gauge = Gauge::default();
        registry.register(
            "vehicleconnect_kpi_state_budget_bytes",
            "Memory budget of the KPI aggregates (--kpi-memory)",
            kpi_budget.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "vehicleconnect_http_connections",
            "HTTP connections open now (limit: --max-connections)",
            connections_open.clone(),
        );
        let fleet = FleetGauges::registered(&mut registry);
        let replica_info = Family::<ReplicaLabels, Gauge>::default();
        replica_info.get_or_create(&ReplicaLabels { replica: replica.to_string() }).set(1);
        registry.register(
            "vehicleconnect_replica_info",
            "This process's replica id (its ingest counters are this replica's)",
            replica_info,
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
            labelled: Mutex::new(Labelled::default()),
            kpi_state_bytes,
            kpi_budget,
            connections_open,
            fleet,
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
        let minute = crate::kpi::minute_of(crate::kpi::unix_us(time::OffsetDateTime::now_utc()));
        let mut counts: HashMap<(&str, &'static str), u64> = HashMap::new();
        let mut latencies: HashMap<&str, Vec<f64>> = HashMap::new();
        {
            let mut labelled = self.labelled.lock().unwrap_or_else(|p| p.into_inner());
            for e in events {
                let endpoint = if self.label_slot(&mut labelled, &e.endpoint, minute) {
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
                .get_or_create(&VehicleLabels { endpoint: LabelText(endpoint.into()), status_class })
                .inc_by(n);
        }
        for (endpoint, values) in latencies {
            let histogram =
                self.vehicle_response_time.get_or_create(&EndpointLabels { endpoint: LabelText(endpoint.into()) });
            for v in values {
                histogram.observe(v);
            }
        }
    }

    /// Whether `endpoint` has (or now gets) a label of its own. A full table gives up the
    /// slots of endpoints idle for [`LABEL_IDLE_MINUTES`], and their series with them, so
    /// names sent once cannot hold the slots forever.
    fn label_slot(&self, labelled: &mut Labelled, endpoint: &str, minute: i64) -> bool {
        if let Some(seen) = labelled.endpoints.get_mut(endpoint) {
            *seen = minute;
            return true;
        }
        if labelled.endpoints.len() >= MAX_VEHICLE_ENDPOINTS && minute >= labelled.next_sweep {
            labelled.next_sweep = minute + 1;
            let idle: Vec<String> = labelled
                .endpoints
                .iter()
                .filter(|(_, seen)| **seen + LABEL_IDLE_MINUTES <= minute)
                .map(|(name, _)| name.clone())
                .collect();
            for name in idle {
                labelled.endpoints.remove(&name);
                self.forget(name);
            }
        }
        if labelled.endpoints.len() >= MAX_VEHICLE_ENDPOINTS {
            return false;
        }
        labelled.endpoints.insert(endpoint.to_string(), minute);
        true
    }

    fn forget(&self, endpoint: String) {
        let endpoint = LabelText(endpoint);
        for status_class in STATUS_CLASSES {
            self.vehicle_events.remove(&VehicleLabels { endpoint: endpoint.clone(), status_class });
        }
        self.vehicle_response_time.remove(&EndpointLabels { endpoint });
    }

    /// Gauges read at scrape time.
    pub fn set_gauges(
        &self,
        (kpi_state_bytes, kpi_budget): (usize, usize),
        connections_open: usize,
        fleet: FleetFigures,
    ) {
        self.fleet.leader.set(i64::from(fleet.leader));
        self.fleet.lag_s.set(fleet.lag_s);
        self.fleet.reporting.set(fleet.reporting);
        self.kpi_state_bytes.set(kpi_state_bytes as i64);
        self.kpi_budget.set(kpi_budget as i64);
        self.connections_open.set(connections_open as i64);
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

/// The `status_class` label values, one per hundred of status codes.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn status_class(code: u16) -> &'static str {
    match code / 100 {
        hundreds @ 1..=4 => STATUS_CLASSES[usize::from(hundreds) - 1],
        _ => STATUS_CLASSES[4],
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
            event_id: None,
        }
    }

    #[test]
    fn vehicle_endpoints_are_bounded_and_client_ids_never_exported() {
        let m = Metrics::new("1.0.0", "abc", "host-1-abcdef");
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
