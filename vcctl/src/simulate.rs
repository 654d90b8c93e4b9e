//! The traffic simulator: realistic connected-vehicle API events (per-endpoint latency
//! distributions with long tails, error rates, optional incidents) sent at a steady
//! open-loop rate, single or in NDJSON batches, so it doubles as the load generator.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde::Serialize;

/// One vehicle API: its share of traffic, latency (log-normal around `median_ms`) and errors.
pub struct Profile {
    pub endpoint: &'static str,
    pub method: &'static str,
    pub weight: u32,
    pub median_ms: f64,
    pub sigma: f64,
    pub server_error: f64,
    pub client_error: f64,
}

pub const PROFILES: &[Profile] = &[
    Profile {
        endpoint: "/vehicles/status",
        method: "GET",
        weight: 30,
        median_ms: 80.0,
        sigma: 0.5,
        server_error: 0.002,
        client_error: 0.01,
    },
    Profile {
        endpoint: "/vehicles/location",
        method: "GET",
        weight: 20,
        median_ms: 120.0,
        sigma: 0.6,
        server_error: 0.003,
        client_error: 0.005,
    },
    Profile {
        endpoint: "/vehicles/lock",
        method: "POST",
        weight: 12,
        median_ms: 450.0,
        sigma: 0.5,
        server_error: 0.01,
        client_error: 0.02,
    },
    Profile {
        endpoint: "/vehicles/unlock",
        method: "POST",
        weight: 12,
        median_ms: 500.0,
        sigma: 0.55,
        server_error: 0.012,
        client_error: 0.02,
    },
    Profile {
        endpoint: "/vehicles/climate",
        method: "POST",
        weight: 10,
        median_ms: 700.0,
        sigma: 0.6,
        server_error: 0.015,
        client_error: 0.01,
    },
    Profile {
        endpoint: "/vehicles/charging",
        method: "GET",
        weight: 10,
        median_ms: 150.0,
        sigma: 0.5,
        server_error: 0.004,
        client_error: 0.005,
    },
    Profile {
        endpoint: "/vehicles/software-update",
        method: "POST",
        weight: 3,
        median_ms: 2500.0,
        sigma: 0.8,
        server_error: 0.03,
        client_error: 0.02,
    },
    Profile {
        endpoint: "/vehicles/horn",
        method: "POST",
        weight: 3,
        median_ms: 400.0,
        sigma: 0.5,
        server_error: 0.01,
        client_error: 0.01,
    },
];

/// An endpoint slowed by `factor` from `start` for `duration` into the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub endpoint: String,
    pub factor: f64,
    pub duration: Duration,
    pub start: Duration,
}

/// `ENDPOINT:xFACTOR:DURATION[@START]`, e.g. `/vehicles/unlock:x3:2m@30s`.
pub fn parse_incident(s: &str) -> Result<Incident, String> {
    let bad =
        || format!("--incident {s:?}: expected ENDPOINT:xFACTOR:DURATION[@START], e.g. /vehicles/unlock:x3:2m@30s");
    let mut parts = s.splitn(3, ':');
    let (Some(endpoint), Some(factor), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if !endpoint.starts_with('/') {
        return Err(bad());
    }
    let factor: f64 =
        factor.strip_prefix('x').and_then(|f| f.parse().ok()).filter(|f: &f64| *f > 0.0).ok_or_else(bad)?;
    let (duration, start) = match rest.split_once('@') {
        Some((d, st)) => (d, Some(st)),
        None => (rest, None),
    };
    let duration = humantime::parse_duration(duration).map_err(|_| bad())?;
    let start = start.map(humantime::parse_duration).transpose().map_err(|_| bad())?.unwrap_or_default();
    Ok(Incident { endpoint: endpoint.to_string(), factor, duration, start })
}

/// Generates events. Deterministic for a seed.
pub struct Traffic {
    rng: SmallRng,
    /// This run's own prefix of event ids (random, whatever the seed), and the events made:
    /// each event has an `event_id`, so a request sent again after its connection closed
    /// under it is stored once.
    run: String,
    made: u64,
    vehicles: u32,
    total_weight: u32,
    latency: Vec<LogNormal<f64>>,
    incidents: Vec<Incident>,
}

impl Traffic {
    pub fn new(seed: u64, vehicles: u32, incidents: Vec<Incident>) -> Traffic {
        Traffic {
            rng: SmallRng::seed_from_u64(seed),
            run: format!("{:016x}", rand::random::<u64>()),
            made: 0,
            vehicles: vehicles.max(1),
            total_weight: PROFILES.iter().map(|p| p.weight).sum(),
            latency: PROFILES
                .iter()
                .map(|p| LogNormal::new(p.median_ms.ln(), p.sigma).expect("valid parameters"))
                .collect(),
            incidents,
        }
    }

    /// One event, `at` into the run.
    pub fn event(&mut self, at: Duration) -> serde_json::Value {
        let mut pick = self.rng.random_range(0..self.total_weight);
        let i = PROFILES
            .iter()
            .position(|p| {
                if pick < p.weight {
                    return true;
                }
                pick -= p.weight;
                false
            })
            .unwrap_or(0);
        let p = &PROFILES[i];
        let mut ms = self.latency[i].sample(&mut self.rng);
        // The long tail: one call in a hundred waits on a retry or a sleeping modem.
        if self.rng.random_bool(0.01) {
            ms *= self.rng.random_range(3.0..8.0);
        }
        for inc in &self.incidents {
            if inc.endpoint == p.endpoint && at >= inc.start && at < inc.start + inc.duration {
                ms *= inc.factor;
            }
        }
        let r: f64 = self.rng.random();
        let status = if r < p.server_error {
            [500, 502, 503, 504][self.rng.random_range(0..4)]
        } else if r < p.server_error + p.client_error {
            [400, 401, 404, 409][self.rng.random_range(0..4)]
        } else if p.method == "POST" {
            202
        } else {
            200
        };
        let vehicle = self.rng.random_range(0..self.vehicles);
        self.made += 1;
        serde_json::json!({
            "event_id": format!("sim-{}-{}", self.run, self.made),
            "endpoint": p.endpoint,
            "method": p.method,
            "response_time_ms": (ms.min(3_600_000.0) * 100.0).round() / 100.0,
            "status_code": status,
            "client_id": format!("vin-{vehicle:06}"),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub planned_events: u64,
    pub acknowledged: u64,
    pub failed: u64,
    /// Requests sent a second time because the connection closed under them before any
    /// answer (a kept-alive connection closed by a restarting server at that very moment).
    pub retried: u64,
    /// Events not sent because `--concurrency` requests were already waiting when they were
    /// due: the target did not keep up.
    pub skipped_late: u64,
    /// Events never sent because the run ended first (Ctrl-C, SIGTERM): not late, not sent.
    pub unsent: u64,
    /// Events of requests that had not answered within the grace period after the end: they
    /// may or may not be stored.
    pub unconfirmed: u64,
    /// Ctrl-C ended the run early.
    pub interrupted: bool,
    pub requests: u64,
    pub duration_s: f64,
    pub achieved_events_per_s: f64,
    /// Failure reasons and how many events each cost.
    pub errors: Vec<(String, u64)>,
}

pub struct Plan {
    pub target: String,
    pub token: Option<String>,
    /// What an `https://` target's certificate is checked against, and where its name goes.
    pub trust: crate::http_client::Trust,
    pub rate: f64,
    pub duration: Duration,
    pub batch: u32,
    pub concurrency: usize,
    pub traffic: Traffic,
}

#[derive(Default)]
struct Counters {
    acked: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    late: AtomicU64,
    unsent: AtomicU64,
    requests: AtomicU64,
}

/// Failed events by reason.
type Errors = std::sync::Mutex<std::collections::BTreeMap<String, u64>>;

/// Sends one request of `n` events and counts how it went; a request whose kept-alive
/// connection closed before the answer is sent once more, on a `fresh` connection.
async fn send(req: reqwest::RequestBuilder, n: u64, fresh: &reqwest::Client, counters: &Counters, errors: &Errors) {
    let again = req.try_clone().and_then(|r| r.build().ok());
    let mut outcome = req.send().await;
    if let (Err(e), Some(again)) = (&outcome, again)
        && closed_before_answer(e)
    {
        counters.retried.fetch_add(1, Ordering::Relaxed);
        outcome = fresh.execute(again).await;
    }
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let reason = match outcome {
        Ok(r) if r.status() == 201 => None,
        Ok(r) => {
            let code = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            let what = body["error"].as_str().unwrap_or("").chars().take(120).collect::<String>();
            Some(format!("HTTP {code}: {what}"))
        }
        Err(e) if e.is_timeout() => Some("timed out".to_string()),
        Err(e) if e.is_connect() => Some("connection refused or failed".to_string()),
        Err(e) => Some(crate::error::chain(&e)),
    };
    match reason {
        None => counters.acked.fetch_add(n, Ordering::Relaxed),
        Some(r) => {
            *errors.lock().unwrap().entry(r).or_default() += n;
            counters.failed.fetch_add(n, Ordering::Relaxed)
        }
    };
}

/// How long requests still in flight when `--duration` ends may take to answer; what has
/// not answered by then is counted as unconfirmed. After Ctrl-C: one second. 5 s: on a
/// small, busy host (a deploy's checks beside the load) an answer can take a few seconds,
/// and one counted as unconfirmed for that was stored all the same.
pub const GRACE: Duration = Duration::from_secs(5);

/// Sends the planned traffic; `progress` is called about every 100 ms with (sent events,
/// acked, failed). The run lasts `plan.duration` (a hard bound, plus `GRACE` for answers),
/// or until `stop` completes (Ctrl-C).
pub async fn run(plan: Plan, progress: impl Fn(u64, u64, u64), stop: impl Future<Output = ()>) -> Result<Report> {
    let mut sender = Sender::new(plan)?;
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut interrupted = false;
    tokio::pin!(stop);
    // Open loop: what is due is set by the clock, not by how fast the service answers.
    while started.elapsed() < sender.plan.duration {
        sender.send_due(started.elapsed());
        if last_progress.elapsed() > Duration::from_millis(100) {
            last_progress = Instant::now();
            progress(sender.sent_events(), sender.acked(), sender.failed_or_late());
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(2)) => {}
            () = &mut stop => { interrupted = true; break; }
        }
    }
    if !interrupted {
        // What fell due in the last tick before the end.
        sender.send_due(sender.plan.duration);
    }
    sender.skip_the_rest();
    let unconfirmed = sender.finish(if interrupted { Duration::from_secs(1) } else { GRACE }).await;
    progress(sender.sent_events(), sender.acked(), sender.failed_or_late());
    Ok(sender.report(started.elapsed(), unconfirmed, interrupted))
}

/// The sending side of a run: the plan, what was sent, the requests in flight.
struct Sender {
    plan: Plan,
    batch: u64,
    planned_events: u64,
    planned_requests: u64,
    requests_per_s: f64,
    sent: u64,
    client: reqwest::Client,
    /// Resends go on a new connection: the other idle ones may be closing at the same moment.
    fresh: reqwest::Client,
    url: String,
    counters: Arc<Counters>,
    errors: Arc<Errors>,
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Events of the requests in flight.
    pending_events: Arc<AtomicU64>,
    tasks: tokio::task::JoinSet<()>,
}

impl Sender {
    fn new(plan: Plan) -> Result<Sender> {
        let batch = plan.batch.max(1) as u64;
        let planned_events = (plan.rate * plan.duration.as_secs_f64()).round() as u64;
        let client = crate::http_client::builder(&plan.trust)?
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(plan.concurrency)
            .build()?;
        let fresh = crate::http_client::builder(&plan.trust)?
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(0)
            .build()?;
        Ok(Sender {
            batch,
            planned_events,
            planned_requests: planned_events.div_ceil(batch),
            requests_per_s: plan.rate / batch as f64,
            sent: 0,
            client,
            fresh,
            url: format!("{}/api/events", plan.target.trim_end_matches('/')),
            counters: Arc::default(),
            errors: Arc::default(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(plan.concurrency.max(1))),
            pending_events: Arc::default(),
            tasks: tokio::task::JoinSet::new(),
            plan,
        })
    }

    /// Events in the first `requests` requests.
    fn events_in(&self, requests: u64) -> u64 {
        (requests * self.batch).min(self.planned_events)
    }

    fn sent_events(&self) -> u64 {
        self.events_in(self.sent)
    }

    fn acked(&self) -> u64 {
        self.counters.acked.load(Ordering::Relaxed)
    }

    fn failed_or_late(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed) + self.counters.late.load(Ordering::Relaxed)
    }

    /// Sends every request due at `at`. When `--concurrency` requests are waiting already,
    /// the rest of what is due is late: counted at once, never queued.
    fn send_due(&mut self, at: Duration) {
        let due = ((at.as_secs_f64() * self.requests_per_s).floor() as u64 + 1).min(self.planned_requests);
        while self.sent < due {
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                let late = self.events_in(due) - self.sent_events();
                self.counters.late.fetch_add(late, Ordering::Relaxed);
                self.sent = due;
                return;
            };
            let n = self.events_in(self.sent + 1) - self.sent_events();
            self.sent += 1;
            let req = self.request(n, at);
            let (counters, errors, fresh, pending) =
                (self.counters.clone(), self.errors.clone(), self.fresh.clone(), self.pending_events.clone());
            pending.fetch_add(n, Ordering::Relaxed);
            self.tasks.spawn(async move {
                send(req, n, &fresh, &counters, &errors).await;
                pending.fetch_sub(n, Ordering::Relaxed);
                drop(permit);
            });
            while self.tasks.try_join_next().is_some() {}
        }
    }

    fn request(&mut self, n: u64, at: Duration) -> reqwest::RequestBuilder {
        let events: Vec<serde_json::Value> = (0..n).map(|_| self.plan.traffic.event(at)).collect();
        let mut req = if self.batch == 1 {
            self.client.post(&self.url).json(&events[0])
        } else {
            let body: String = events.iter().map(|e| format!("{e}\n")).collect();
            self.client.post(&self.url).header("content-type", "application/x-ndjson").body(body)
        };
        if let Some(t) = &self.plan.token {
            req = req.bearer_auth(t);
        }
        req
    }

    /// What was planned but never sent (the run ended first) is unsent.
    fn skip_the_rest(&mut self) {
        let rest = self.planned_events - self.sent_events();
        self.counters.unsent.fetch_add(rest, Ordering::Relaxed);
        self.sent = self.planned_requests;
    }

    /// Waits up to `grace` for the requests in flight; the events of those still waiting
    /// then are unconfirmed (they may or may not be stored).
    async fn finish(&mut self, grace: Duration) -> u64 {
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            self.tasks.abort_all();
        }
        self.pending_events.load(Ordering::Relaxed)
    }

    fn report(&self, elapsed: Duration, unconfirmed: u64, interrupted: bool) -> Report {
        let elapsed = elapsed.as_secs_f64();
        let acknowledged = self.acked();
        let errors = self.errors.lock().unwrap().iter().map(|(k, v)| (k.clone(), *v)).collect();
        Report {
            target: self.plan.target.clone(),
            planned_events: self.planned_events,
            acknowledged,
            failed: self.counters.failed.load(Ordering::Relaxed),
            retried: self.counters.retried.load(Ordering::Relaxed),
            skipped_late: self.counters.late.load(Ordering::Relaxed),
            unsent: self.counters.unsent.load(Ordering::Relaxed),
            unconfirmed,
            interrupted,
            requests: self.counters.requests.load(Ordering::Relaxed),
            duration_s: (elapsed * 1000.0).round() / 1000.0,
            // Over the whole run, not over the time the requests took.
            achieved_events_per_s: (acknowledged as f64 / elapsed.max(0.001) * 10.0).round() / 10.0,
            errors,
        }
    }
}

/// Whether a request failed because its kept-alive connection was closed by the server as it
/// was being sent: HTTP/1.1 cannot rule that race out when a server restarts, and the server
/// did not read the request (it answers every request it reads before it closes), so sending
/// it once more is what browsers do and cannot store an event twice.
fn closed_before_answer(e: &reqwest::Error) -> bool {
    if e.is_timeout() || e.is_connect() {
        return false;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled())
        {
            return true;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(io.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_parse() {
        assert_eq!(
            parse_incident("/vehicles/unlock:x3:2m@30s"),
            Ok(Incident {
                endpoint: "/vehicles/unlock".into(),
                factor: 3.0,
                duration: Duration::from_secs(120),
                start: Duration::from_secs(30)
            })
        );
        assert!(parse_incident("unlock:x3:2m").is_err());
        assert!(parse_incident("/a:3:2m").is_err());
    }

    #[test]
    fn traffic_is_valid_varied_and_incidents_slow_their_endpoint() {
        let mut t = Traffic::new(7, 100, vec![parse_incident("/vehicles/unlock:x3:1m").unwrap()]);
        let mut normal = Traffic::new(7, 100, vec![]);
        let mut endpoints = std::collections::HashSet::new();
        let (mut slow, mut fast) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let (a, b) = (t.event(Duration::from_secs(10)), normal.event(Duration::from_secs(10)));
            endpoints.insert(a["endpoint"].as_str().unwrap().to_string());
            let code = a["status_code"].as_u64().unwrap();
            assert!((100..600).contains(&code));
            if a["endpoint"] == "/vehicles/unlock" {
                slow.push(a["response_time_ms"].as_f64().unwrap());
                fast.push(b["response_time_ms"].as_f64().unwrap());
            }
        }
        assert_eq!(endpoints.len(), PROFILES.len());
        let p95 = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() * 95 / 100]
        };
        let ratio = p95(&mut slow) / p95(&mut fast);
        assert!((2.9..3.1).contains(&ratio), "incident triples p95: ratio {ratio}");
    }
}
