//! Replicas on one PostgreSQL (fleet.rs, store/fleet.rs): every replica serves the KPIs of
//! every event any of them committed, within the documented freshness; a replica killed
//! with its last second unshared loses nothing once its minute is closed; the leader's
//! death hands its work over within one interval, with no snapshot interval written twice.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, Service, TestStore, client, eventually, pg_connect};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What a report's figures must be, computed from the table itself.
struct Exact {
    count: u64,
    error_rate_pct: f64,
    client_error_rate_pct: f64,
    p95: f64,
}

fn exact(rows: &[(String, f64, i16)]) -> Exact {
    let mut lat: Vec<f64> = rows.iter().map(|r| r.1).collect();
    lat.sort_by(f64::total_cmp);
    let n = rows.len() as f64;
    let pct = |f: &dyn Fn(i16) -> bool| {
        ((100.0 * rows.iter().filter(|r| f(r.2)).count() as f64 / n) * 1000.0).round() / 1000.0
    };
    Exact {
        count: rows.len() as u64,
        error_rate_pct: pct(&|s| s >= 500),
        client_error_rate_pct: pct(&|s| (400..500).contains(&s)),
        p95: lat[(0.95 * (lat.len() - 1) as f64).floor() as usize],
    }
}

/// Every event of the table, as (endpoint, latency, status).
async fn table(store: &TestStore) -> Vec<(String, f64, i16)> {
    let db = pg_connect(store.pg_url.as_deref().unwrap()).await;
    let rows = db.query("SELECT endpoint, response_time_ms, status_code FROM api_events", &[]).await.unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

/// `None` unless `got` (a Figures object) is the exact computation: counts and error rates
/// exactly, p95 within the sketch's 1 %.
fn matches(got: &Value, want: &Exact) -> Option<()> {
    (got["count"].as_u64()? == want.count
        && got["error_rate_pct"].as_f64()? == want.error_rate_pct
        && got["client_error_rate_pct"].as_f64()? == want.client_error_rate_pct
        && (got["p95_latency_ms"].as_f64()? - want.p95).abs() / want.p95 <= 0.01)
        .then_some(())
}

/// `None` unless `replica`'s 24-hour report, overall and per endpoint, is the table's.
async fn agrees_with_table(replica: &Service, rows: &[(String, f64, i16)]) -> Option<()> {
    let report: Value =
        client().get(replica.url("/api/analytics/kpis?window=24h")).send().await.ok()?.json().await.ok()?;
    matches(&report["overall"], &exact(rows))?;
    let mut by_endpoint: BTreeMap<&str, Vec<(String, f64, i16)>> = BTreeMap::new();
    for r in rows {
        by_endpoint.entry(r.0.as_str()).or_default().push(r.clone());
    }
    let endpoints = report["endpoints"].as_array()?;
    (endpoints.len() == by_endpoint.len()).then_some(())?;
    for e in endpoints {
        matches(e, &exact(by_endpoint.get(e["endpoint"].as_str()?)?))?;
    }
    Some(())
}

fn events(n: usize, seed: u64, age_s: impl Fn(usize) -> i64) -> Vec<Value> {
    let endpoints = ["/vehicles/lock", "/vehicles/unlock", "/vehicles/status"];
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let now = OffsetDateTime::now_utc();
    (0..n)
        .map(|i| {
            let status = match next() {
                r if r < 0.05 => 503,
                r if r < 0.12 => 404,
                _ => 200,
            };
            let ms = ((next() * 6.0).exp() * 1000.0).round() / 1000.0;
            let ts = (now - time::Duration::seconds(age_s(i))).format(&Rfc3339).unwrap();
            json!({"endpoint": endpoints[i % 3], "response_time_ms": ms, "status_code": status,
                   "client_id": format!("car-{}", i % 50), "timestamp": ts, "event_id": format!("{seed}-{i}")})
        })
        .collect()
}

async fn status(replica: &Service) -> Value {
    client().get(replica.url("/api/status")).send().await.unwrap().json().await.unwrap()
}

/// Three replicas, events sent round-robin (a third of them late: for minutes closed
/// before they arrived); each replica's KPIs equal the table's within 10 s, and each
/// minute of the series holds exactly its events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_serve_the_kpis_of_every_event_any_of_them_took() {
    let store = TestStore::new(Backend::Postgres).await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Service::start(&store, &["--kpi-interval", "1s"]).await);
    }
    let body = events(3_000, 7, |i| if i % 3 == 0 { 180 + (i as i64 % 1_500) } else { 0 });
    for (i, chunk) in body.chunks(100).enumerate() {
        let r = client().post(replicas[i % 3].url("/api/events")).json(&chunk).send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    // Single events too: the group commit's other path.
    for (i, e) in events(30, 8, |_| 0).into_iter().enumerate() {
        assert_eq!(client().post(replicas[i % 3].url("/api/events")).json(&e).send().await.unwrap().status(), 201);
    }
    let acknowledged = Instant::now();
    let rows = table(&store).await;
    assert_eq!(rows.len(), 3_030);
    for replica in &replicas {
        eventually(Duration::from_secs(30), "a replica's KPIs to equal the table's", || {
            agrees_with_table(replica, &rows)
        })
        .await;
    }
    let fresh = acknowledged.elapsed();
    assert!(fresh <= Duration::from_secs(10), "every replica agreed only {fresh:?} after the last 201");
    eprintln!("all three replicas agreed with the table {fresh:?} after the last 201");

    // Per minute: the late events are in their own minutes.
    let db = pg_connect(store.pg_url.as_deref().unwrap()).await;
    let per_minute: BTreeMap<i64, i64> = db
        // floor: a numeric cast to int8 rounds, moving xx:59.5 into the next minute.
        .query("SELECT floor(extract(epoch FROM ts) / 60)::int8, count(*) FROM api_events GROUP BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let report: Value =
        client().get(replicas[1].url("/api/analytics/kpis?window=1h")).send().await.unwrap().json().await.unwrap();
    for point in report["series"].as_array().unwrap() {
        let minute = OffsetDateTime::parse(point["minute"].as_str().unwrap(), &Rfc3339).unwrap().unix_timestamp() / 60;
        let want = per_minute.get(&minute).copied().unwrap_or(0);
        assert_eq!(point["count"].as_i64().unwrap(), want, "minute {}", point["minute"]);
    }

    // One leader; every replica counts three.
    let mut leaders = 0;
    for replica in &replicas {
        let s = status(replica).await;
        assert!(s["replica"].as_str().unwrap().contains(&format!("-{}-", replica.pid())), "{s}");
        leaders += usize::from(s["kpi_leader"] == true);
        assert_eq!(s["replicas_reporting"], 3, "{s}");
    }
    assert_eq!(leaders, 1, "exactly one KPI leader");
    let metrics = client().get(replicas[0].url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("vehicleconnect_replicas_reporting 3"), "{metrics}");
}

/// Sends events round-robin to the replicas still `alive` until `stop`; counts the 201s
/// and remembers their event ids.
fn load(
    urls: Vec<String>,
    alive: Arc<Vec<AtomicBool>>,
    stop: Arc<AtomicBool>,
    acked: Arc<std::sync::Mutex<HashSet<String>>>,
) -> tokio::task::JoinHandle<()> {
    let sent = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        let mut round = 0u64;
        while !stop.load(Ordering::Relaxed) {
            round += 1;
            let i = round as usize % urls.len();
            if !alive[i].load(Ordering::Relaxed) {
                continue;
            }
            let batch = events(20, 1_000 + round, |_| 0);
            let ids: Vec<String> = batch.iter().map(|e| e["event_id"].as_str().unwrap().to_string()).collect();
            if let Ok(r) = client().post(&urls[i]).json(&batch).send().await
                && r.status() == 201
            {
                acked.lock().unwrap().extend(ids);
            }
            sent.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// kill -9 a replica, then the leader, under load: no acknowledged event is lost; once the
/// minutes close the survivor's KPIs equal the table's; snapshots go on from another
/// replica within one interval, and no interval is written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_replicas_lose_nothing_and_the_leaders_work_moves_on() {
    const CLOSE_AFTER: &str = "6s";
    let store = TestStore::new(Backend::Postgres).await;
    let args = ["--kpi-interval", "1s", "--kpi-close-after", CLOSE_AFTER];
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Service::start(&store, &args).await);
    }
    let leader = eventually(Duration::from_secs(10), "a KPI leader", || async {
        for (i, r) in replicas.iter().enumerate() {
            if status(r).await["kpi_leader"] == true {
                return Some(i);
            }
        }
        None
    })
    .await;
    let urls: Vec<String> = replicas.iter().map(|r| r.url("/api/events")).collect();
    let alive = Arc::new((0..3).map(|_| AtomicBool::new(true)).collect::<Vec<_>>());
    let (stop, acked) = (Arc::new(AtomicBool::new(false)), Arc::new(std::sync::Mutex::new(HashSet::new())));
    let loader = load(urls, alive.clone(), stop.clone(), acked.clone());

    tokio::time::sleep(Duration::from_secs(2)).await;
    let other = (leader + 1) % 3;
    alive[other].store(false, Ordering::Relaxed);
    replicas[other].kill9().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    alive[leader].store(false, Ordering::Relaxed);
    replicas[leader].kill9().await;
    let leader_killed = OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    loader.await.unwrap();
    let survivor = &replicas[3 - leader - other];
    assert_eq!(status(survivor).await["kpi_leader"], true, "the survivor took the lead");

    // Nothing acknowledged is missing.
    let db = pg_connect(store.pg_url.as_deref().unwrap()).await;
    let stored: HashSet<String> =
        db.query("SELECT event_id FROM api_events", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 1_000, "the load got going: {} events acknowledged", acked.len());
    assert!(acked.is_subset(&stored), "{} acknowledged events are not stored", acked.difference(&stored).count());

    // Within the bound (the last minute's end, plus CLOSE_AFTER, plus two syncs), the
    // survivor's KPIs are the table's, the dead replicas' unshared partials included.
    let rows = table(&store).await;
    eventually(Duration::from_secs(60 + 6 + 5), "the survivor's KPIs to equal the table's", || {
        agrees_with_table(survivor, &rows)
    })
    .await;

    // Snapshots: on after the leader died, within one interval and a sync; none twice.
    let times: Vec<OffsetDateTime> = db
        .query("SELECT computed_at FROM kpi_snapshots WHERE endpoint IS NULL AND window_s = 900 ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let before = times.iter().rev().find(|t| **t < leader_killed).expect("snapshots before the kill");
    let after = times.iter().find(|t| **t > leader_killed).expect("snapshots after the kill");
    assert!(*after - *before <= time::Duration::seconds(3), "snapshots stopped from {before} to {after}");
    let per_second: HashSet<i64> = times.iter().map(|t| t.unix_timestamp()).collect();
    assert_eq!(per_second.len(), times.len(), "an interval was written twice: {times:?}");
}

/// Spawn to `kpis_ready: true`, in seconds.
async fn seconds_to_ready(store: &TestStore) -> f64 {
    let started = Instant::now();
    let mut svc = Service::start(store, &[]).await;
    eventually(Duration::from_secs(60), "kpis_ready after a restart", || async {
        let s: Value = client().get(svc.url("/api/status")).send().await.ok()?.json().await.ok()?;
        (s["kpis_ready"] == true).then_some(())
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(svc.terminate().await, Some(0));
    seconds
}

/// Fills the store to `total` events over the last 23 hours (closed minutes), as a release
/// before the shared aggregates would have left them, lets a first replica compute every
/// minute, and checks its 24-hour count.
async fn fill_to(store: &TestStore, total: i64) {
    let have = store.count("").await;
    store
        .execute(&format!(
            "INSERT INTO api_events (ts, endpoint, method, status_code, response_time_ms, client_id)
             SELECT now() - interval '5 minutes' - (g % 82800) * interval '1 second', '/e' || (g % 7), 'GET',
                    CASE WHEN g % 23 = 0 THEN 503 ELSE 200 END, (g % 53) * 7.1 + 0.5, 'c'
             FROM generate_series({have} + 1, {total}) g;
             TRUNCATE kpi_state, kpi_minutes, kpi_partials, kpi_dirty;"
        ))
        .await;
    let mut svc = Service::start(store, &[]).await;
    let report = eventually(Duration::from_secs(600), "the first replica to compute every minute", || async {
        let r = client().get(svc.url("/api/analytics/kpis?window=24h")).send().await.ok()?;
        (r.status() == 200).then_some(())?;
        r.json::<Value>().await.ok()
    })
    .await;
    assert_eq!(report["overall"]["count"], total, "every stored event is counted");
    assert_eq!(svc.terminate().await, Some(0));
}

/// A replica's start reads the fleet's aggregates, not the events: from 1 M to 10 M events
/// its time to `kpis_ready` grows by less than 2× (of the 1 M figure, or of 0.5 s if that
/// is less: a process start on two cores busy with the other tests varies by that much;
/// 0.29 s then 0.59 s was seen once), and stays within the 2 s the issue asks. What it reads is
/// bounded by minutes × endpoints × sketch bins; these latencies fill the same 53 bins at
/// both sizes, so only the number of events differs (the service before the shared
/// aggregates read them all: ten times as long). The absolute figures, with latencies that
/// fill more bins, are scripts/bench-restart's, in docs/performance.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicas_start_does_not_grow_with_the_events_stored() {
    let store = TestStore::new(Backend::Postgres).await;
    let mut first = Service::start(&store, &[]).await;
    assert_eq!(first.terminate().await, Some(0));
    let mut medians = Vec::new();
    for total in [1_000_000, 10_000_000] {
        fill_to(&store, total).await;
        let mut runs = Vec::new();
        for _ in 0..5 {
            runs.push(seconds_to_ready(&store).await);
        }
        runs.sort_by(f64::total_cmp);
        eprintln!("{total} events: spawn to kpis_ready {runs:?} s");
        medians.push(runs[2]);
    }
    assert!(medians[1] <= 2.0 * medians[0].max(0.5), "start-up grew from {} s to {} s", medians[0], medians[1]);
    assert!(medians[1] <= 2.0, "start-up at 10 M events: {} s, past the 2 s asked", medians[1]);
}
