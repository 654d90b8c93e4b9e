//! KPIs served over HTTP match an exact computation over the same events, before and after
//! a restart; snapshots are written; retention removes old events.

mod common;

use std::time::Duration;

use common::{Backend, Service, TestStore, client, eventually};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

struct Gen {
    endpoint: &'static str,
    ms: f64,
    status: u16,
    age_s: i64,
}

fn generate(n: usize) -> Vec<Gen> {
    let endpoints = ["/vehicles/lock", "/vehicles/unlock", "/vehicles/status", "/vehicles/climate"];
    let mut seed: u64 = 2024;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|i| {
            let endpoint = endpoints[i % 4];
            let ms = ((next() + next() + next()) * 2.0).exp() * 10.0;
            let r = next();
            let status = if r < 0.04 {
                500
            } else if r < 0.10 {
                404
            } else {
                200
            };
            // Mostly within the last 50 minutes, a fifth from 2 to 20 hours ago.
            let age_s = if i % 5 == 0 { 7_200 + (next() * 64_800.0) as i64 } else { 60 + (next() * 2_940.0) as i64 };
            Gen { endpoint, ms: (ms * 1000.0).round() / 1000.0, status, age_s }
        })
        .collect()
}

fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

/// Checks one `Figures` object of the API against the events it covers.
fn check_figures(got: &Value, events: &[&Gen], minutes: f64, what: &str) {
    let mut lat: Vec<f64> = events.iter().map(|e| e.ms).collect();
    lat.sort_by(f64::total_cmp);
    let n = lat.len() as f64;
    assert_eq!(got["count"].as_u64().unwrap(), events.len() as u64, "{what}: count");
    let avg = lat.iter().sum::<f64>() / n;
    assert!(
        (got["avg_latency_ms"].as_f64().unwrap() - avg).abs() <= 0.001,
        "{what}: avg {} vs {avg}",
        got["avg_latency_ms"]
    );
    for (field, q) in [("p50_latency_ms", 0.5), ("p95_latency_ms", 0.95), ("p99_latency_ms", 0.99)] {
        let exact = exact_quantile(&lat, q);
        let served = got[field].as_f64().unwrap();
        assert!((served - exact).abs() / exact <= 0.01, "{what}: {field} {served} vs exact {exact}");
    }
    let pct = |f: &dyn Fn(&Gen) -> bool| 100.0 * events.iter().filter(|e| f(e)).count() as f64 / n;
    assert!((got["error_rate_pct"].as_f64().unwrap() - pct(&|e| e.status >= 500)).abs() <= 0.001, "{what}: error rate");
    assert!(
        (got["client_error_rate_pct"].as_f64().unwrap() - pct(&|e| (400..500).contains(&e.status))).abs() <= 0.001,
        "{what}: client error rate"
    );
    assert!((got["requests_per_min"].as_f64().unwrap() - n / minutes).abs() <= 0.001, "{what}: requests_per_min");
}

async fn kpis_for(svc: &Service, query: &str, expected_count: usize) -> Value {
    let http = client();
    eventually(Duration::from_secs(30), &format!("KPIs {query} to count {expected_count} events"), || async {
        let v: Value =
            http.get(svc.url(&format!("/api/analytics/kpis?{query}"))).send().await.ok()?.json().await.ok()?;
        (v["overall"]["count"].as_u64()? == expected_count as u64).then_some(v)
    })
    .await
}

async fn check_all(svc: &Service, events: &[Gen]) {
    let recent: Vec<&Gen> = events.iter().filter(|e| e.age_s < 3_000).collect();
    let all: Vec<&Gen> = events.iter().collect();
    for (window, minutes, covered) in [("1h", 60.0, &recent), ("24h", 1440.0, &all)] {
        let report = kpis_for(svc, &format!("window={window}"), covered.len()).await;
        check_figures(&report["overall"], covered, minutes, window);
        assert_eq!(report["series"].as_array().unwrap().len(), minutes as usize);
        let series_total: u64 = report["series"].as_array().unwrap().iter().map(|p| p["count"].as_u64().unwrap()).sum();
        assert_eq!(series_total, covered.len() as u64);
        let endpoints = report["endpoints"].as_array().unwrap();
        assert_eq!(endpoints.len(), 4);
        for ep in endpoints {
            let name = ep["endpoint"].as_str().unwrap();
            let mine: Vec<&Gen> = covered.iter().copied().filter(|e| e.endpoint == name).collect();
            check_figures(ep, &mine, minutes, &format!("{window} {name}"));
            let filtered = kpis_for(svc, &format!("window={window}&endpoint={name}"), mine.len()).await;
            check_figures(&filtered["overall"], &mine, minutes, &format!("{window} filtered {name}"));
        }
    }
}

async fn kpis_match_an_exact_computation_before_and_after_restart(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut svc = Service::start(&store, &["--kpi-interval", "200ms"]).await;
    let events = generate(4_000);
    let now = OffsetDateTime::now_utc();
    let body: Vec<Value> = events
        .iter()
        .map(|e| {
            let ts = (now - time::Duration::seconds(e.age_s)).format(&Rfc3339).unwrap();
            json!({"endpoint": e.endpoint, "response_time_ms": e.ms, "status_code": e.status, "client_id": "car", "timestamp": ts})
        })
        .collect();
    for chunk in body.chunks(1000) {
        let r = client().post(svc.url("/api/events")).json(&chunk).send().await.unwrap();
        assert_eq!(r.status(), 201);
    }
    check_all(&svc, &events).await;
    let snapshots = store.snapshot_rows().await;
    assert!(snapshots >= 3, "KPI snapshots are written ({snapshots} rows); log:\n{}", svc.log());

    // After a restart: the embedded store's aggregates are rebuilt from its events; a
    // PostgreSQL replica reads the fleet's aggregates and no raw event.
    assert_eq!(svc.terminate().await, Some(0));
    let svc = Service::start(&store, &["--kpi-interval", "200ms"]).await;
    check_all(&svc, &events).await;
    match backend {
        Backend::Embedded => assert!(svc.log().contains("KPI aggregates rebuilt events=4000"), "{}", svc.log()),
        Backend::Postgres => assert!(!svc.log().contains("KPI aggregates rebuilt"), "{}", svc.log()),
    }
}
both_stores!(kpis_match_an_exact_computation_before_and_after_restart);

/// Events five days old (their day had no partition: one is made as they come) and one day
/// old; retention at three days takes the first and leaves the second. PostgreSQL drops the
/// old day's partition whole, and forgets its `event_id`s.
async fn retention_deletes_old_events_only(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut svc = Service::start(&store, &["--retention", "240h"]).await;
    let now = OffsetDateTime::now_utc();
    let at = |age_h: i64| (now - time::Duration::hours(age_h)).format(&Rfc3339).unwrap();
    let mut body = Vec::new();
    for i in 0..25_000 {
        let ts = if i % 5 == 0 { at(24) } else { at(120) };
        let mut e =
            json!({"endpoint": "/a", "response_time_ms": 1, "status_code": 200, "client_id": "c", "timestamp": ts});
        // The first chunks carry none: they go by COPY, which makes the old day's partition.
        if i >= 15_000 && i % 10 < 2 {
            e["event_id"] = json!(format!("retention-{i}"));
        }
        body.push(e);
    }
    for chunk in body.chunks(5000) {
        assert_eq!(client().post(svc.url("/api/events")).json(&chunk).send().await.unwrap().status(), 201);
    }
    assert_eq!(store.count("").await, 25_000);
    assert_eq!(svc.terminate().await, Some(0));
    let old_day = format!("api_events_p{}", (now - time::Duration::hours(120)).date().to_string().replace('-', ""));
    if backend == Backend::Postgres {
        assert!(store.partitions().await.contains(&old_day), "{:?}", store.partitions().await);
    }
    // Retention runs at start-up, then every minute; 20 000 old rows take two chunks.
    let svc = Service::start(&store, &["--retention", "72h"]).await;
    eventually(Duration::from_secs(30), "retention to delete 20 000 old events", || async {
        (store.count("").await == 5_000).then_some(())
    })
    .await;
    if backend == Backend::Postgres {
        let partitions = store.partitions().await;
        assert!(!partitions.contains(&old_day), "{partitions:?}");
        let yesterday =
            format!("api_events_p{}", (now - time::Duration::hours(24)).date().to_string().replace('-', ""));
        assert!(partitions.contains(&yesterday), "{partitions:?}");
        assert!(svc.log().contains(&format!("retention dropped a day of events partition={old_day}")), "{}", svc.log());
        eventually(Duration::from_secs(10), "the old event_ids to be forgotten", || async {
            (store.scalar("SELECT count(*) FROM api_event_ids").await == 1_000).then_some(())
        })
        .await;
    }
}
both_stores!(retention_deletes_old_events_only);

/// A release under check shares the store with the serving one: it stores what it is sent,
/// but writes no KPI snapshots and deletes nothing for retention.
async fn a_candidate_writes_no_snapshots_and_deletes_nothing(backend: Backend) {
    let store = TestStore::new(backend).await;
    // Events 3 hours old, stored by a release that keeps them for a day.
    let mut serving = Service::start(&store, &["--retention", "24h", "--kpi-interval", "1h"]).await;
    let old = (OffsetDateTime::now_utc() - time::Duration::hours(3)).format(&Rfc3339).unwrap();
    let body: Vec<Value> = (0..100)
        .map(|_| json!({"endpoint": "/a", "response_time_ms": 1, "status_code": 200, "client_id": "c", "timestamp": old}))
        .collect();
    assert_eq!(client().post(serving.url("/api/events")).json(&body).send().await.unwrap().status(), 201);
    assert_eq!(serving.terminate().await, Some(0));
    let snapshots = store.snapshot_rows().await;

    // A candidate whose own settings would snapshot every 100 ms and delete them all.
    let svc = Service::start(&store, &["--candidate", "--kpi-interval", "100ms", "--retention", "2h"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(store.snapshot_rows().await, snapshots, "a candidate wrote KPI snapshots; log:\n{}", svc.log());
    assert_eq!(store.count("").await, 100, "a candidate deleted events for retention; log:\n{}", svc.log());
    assert!(svc.log().contains("running as a candidate"), "{}", svc.log());
    let status: Value = client().get(svc.url("/api/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["status"], "ok", "a candidate is checked like any release: {status}");
}
both_stores!(a_candidate_writes_no_snapshots_and_deletes_nothing);

/// On a store whose events the fleet's aggregates do not cover yet (written by a release
/// before them), the first leader computes the minutes from the raw events: until it has,
/// the API says it is warming up (503, Retry-After) and `/api/status` says `kpis_ready:
/// false`; it never answers with a count short of what is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_are_never_read_short_while_they_warm_up() {
    const STORED: i64 = 1_000_000;
    let store = TestStore::new(Backend::Postgres).await;
    let mut svc = Service::start(&store, &[]).await;
    assert_eq!(svc.terminate().await, Some(0));
    store
        .execute(&format!(
            "INSERT INTO api_events (ts, endpoint, method, status_code, response_time_ms, client_id)
             SELECT now() - interval '3 minutes' - (g % 3600) * interval '1 second', '/a', 'GET', 200, 5, 'c' FROM generate_series(1, {STORED}) g"
        ))
        .await;
    // As a release before the shared aggregates left it: events, and no KPI state.
    store.execute("TRUNCATE kpi_state, kpi_minutes, kpi_partials, kpi_dirty").await;
    let svc = Service::start(&store, &[]).await;
    let (mut warming, started) = (0, std::time::Instant::now());
    loop {
        assert!(started.elapsed() < Duration::from_secs(60), "the KPIs were not ready within 60 s");
        let r = client().get(svc.url("/api/analytics/kpis?window=24h")).send().await.unwrap();
        if r.status() == 503 {
            assert_eq!(r.headers()["retry-after"], "1");
            let body: Value = r.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains("warming up"), "{body}");
            let status: Value = client().get(svc.url("/api/status")).send().await.unwrap().json().await.unwrap();
            if status["kpis_ready"] == false {
                warming += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["overall"]["count"], STORED, "a report short of what is stored");
        break;
    }
    assert!(warming > 0, "the warm-up was never seen: the test proves nothing");
}
