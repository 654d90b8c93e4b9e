//! A 201 means committed: kill -9 under load, PostgreSQL dying under load, SIGTERM.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Backend, PgCluster, Service, TestStore, client, event, eventually};
use serde_json::Value;
use tokio::sync::Mutex;

#[derive(Default)]
struct Tally {
    /// Ids of single events answered 201.
    acked: Mutex<Vec<i64>>,
    /// Batches of 10 answered 201, by their client id.
    acked_batches: Mutex<Vec<String>>,
    unavailable: AtomicU64,
    unavailable_with_retry_after: AtomicU64,
    other_failures: AtomicU64,
}

/// `workers` clients posting as fast as they can until `stop`; every fourth post is a batch.
fn load(url: String, workers: usize, stop: Arc<AtomicBool>, tally: Arc<Tally>) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (url, stop, tally) = (url.clone(), stop.clone(), tally.clone());
        set.spawn(async move {
            let http = client();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let tag = format!("w{w}-{i}");
                let batch = i.is_multiple_of(4);
                let body: Value = if batch {
                    Value::Array((0..10).map(|k| event("/charging", k as f64, 200, &tag)).collect())
                } else {
                    event("/lock", 12.0, 200, &tag)
                };
                match http.post(&url).json(&body).timeout(Duration::from_secs(10)).send().await {
                    Ok(r) if r.status() == 201 => {
                        let v: Value = r.json().await.unwrap();
                        if batch {
                            tally.acked_batches.lock().await.push(tag);
                        } else {
                            tally.acked.lock().await.push(v["id"].as_i64().unwrap());
                        }
                    }
                    Ok(r) if r.status() == 503 => {
                        tally.unavailable.fetch_add(1, Ordering::Relaxed);
                        if r.headers().contains_key("retry-after") {
                            tally.unavailable_with_retry_after.fetch_add(1, Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    // Refused connections once the process is gone, or a 503 body cut off.
                    _ => {
                        tally.other_failures.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        });
    }
    set
}

async fn assert_every_ack_stored(store: &TestStore, tally: &Tally) {
    let stored = store.event_ids().await;
    let acked = tally.acked.lock().await;
    let lost: Vec<&i64> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(lost.is_empty(), "{} acknowledged events lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    for tag in tally.acked_batches.lock().await.iter() {
        assert_eq!(store.count(&format!("WHERE client_id = '{tag}'")).await, 10, "acknowledged batch {tag}");
    }
}

async fn kill_9_under_load_loses_no_acknowledged_event(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut svc = Service::start(&store, &[]).await;
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let workers = load(svc.url("/api/events"), 32, stop.clone(), tally.clone());
    eventually(Duration::from_secs(20), "500 acknowledged events", || async {
        (tally.acked.lock().await.len() >= 500).then_some(())
    })
    .await;
    svc.kill9().await;
    stop.store(true, Ordering::Relaxed);
    workers.join_all().await;
    assert_every_ack_stored(&store, &tally).await;
    // And the store opens cleanly again after the crash.
    let svc = Service::start(&store, &[]).await;
    let status: Value = client().get(svc.url("/api/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["database"], "ok");
}
both_stores!(kill_9_under_load_loses_no_acknowledged_event);

async fn sigterm_finishes_in_flight_requests_and_exits_0(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut svc = Service::start(&store, &[]).await;
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let workers = load(svc.url("/api/events"), 16, stop.clone(), tally.clone());
    eventually(Duration::from_secs(20), "200 acknowledged events", || async {
        (tally.acked.lock().await.len() >= 200).then_some(())
    })
    .await;
    let code = svc.terminate().await;
    stop.store(true, Ordering::Relaxed);
    workers.join_all().await;
    assert_eq!(code, Some(0), "log:\n{}", svc.log());
    assert!(svc.log().contains("shutting down: flushing the event queue"));
    assert!(!svc.log().contains("did not finish"), "the writers drained instead of timing out:\n{}", svc.log());
    assert_every_ack_stored(&store, &tally).await;
}
both_stores!(sigterm_finishes_in_flight_requests_and_exits_0);

/// PostgreSQL crashes under load: 503 with Retry-After, `/api/status` says so, and the
/// service recovers by itself when the database is back. No acknowledged event is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_answers_503_then_recovers() {
    let cluster = PgCluster::start_new();
    let store = TestStore::postgres_at(cluster.url());
    let svc = Service::start(&store, &[]).await;
    let http = client();
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let workers = load(svc.url("/api/events"), 16, stop.clone(), tally.clone());
    eventually(Duration::from_secs(20), "events before the outage", || async {
        (tally.acked.lock().await.len() >= 200).then_some(())
    })
    .await;

    cluster.stop();
    eventually(Duration::from_secs(20), "503s with Retry-After", || async {
        (tally.unavailable_with_retry_after.load(Ordering::Relaxed) >= 10).then_some(())
    })
    .await;
    // The store's health is probed once a second in the background (status_probe.rs).
    eventually(Duration::from_secs(5), "/api/status says the database is unavailable", || async {
        let r = http.get(svc.url("/api/status")).send().await.ok()?;
        let code = r.status();
        let body: Value = r.json().await.ok()?;
        (code == 503 && body["database"] == "unavailable").then_some(())
    })
    .await;
    // The client is told what to do, never the database's own words (logged instead).
    let r = http.post(svc.url("/api/events")).json(&event("/a", 1.0, 200, "c")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"],
        "the event store is unavailable, nothing was stored; retry later \
         (the database did not commit the events; the cause is in the service's log)"
    );
    assert!(svc.log().contains("group commit failed; answering 503"), "{}", svc.log());
    let acked_during_outage = tally.acked.lock().await.len();

    cluster.start();
    eventually(Duration::from_secs(30), "recovery", || async {
        let healthy = http.get(svc.url("/api/status")).send().await.ok()?.status() == 200;
        (healthy && tally.acked.lock().await.len() >= acked_during_outage + 200).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    workers.join_all().await;
    assert_every_ack_stored(&store, &tally).await;
    // The KPI loop, which retries every second, said it failed once (not every second) and
    // that it works again.
    let log = eventually(Duration::from_secs(10), "the KPI sync's recovery in the log", || async {
        let log = svc.log();
        log.contains("KPI sync with the fleet works again").then_some(log)
    })
    .await;
    assert_eq!(log.matches("KPI sync with the fleet failed").count(), 1, "{log}");
}

/// Migrations only add, so a release runs on the schema a newer release left (a rollback):
/// it says so in its log and serves.
async fn an_older_release_runs_on_a_newer_schema(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut svc = Service::start(&store, &[]).await;
    assert_eq!(svc.terminate().await, Some(0));
    let now = if backend == Backend::Postgres { "now()" } else { "0" };
    store.execute(&format!("INSERT INTO schema_migrations (version, applied_at) VALUES (999, {now})")).await;
    let svc = Service::start(&store, &[]).await;
    let r = client().post(svc.url("/api/events")).json(&common::event("/a", 1.0, 200, "c")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert!(svc.log().contains("newer than this release knows; running on it"), "{}", svc.log());
}
both_stores!(an_older_release_runs_on_a_newer_schema);

/// A schema that an older release cannot live with (its `schema_compat.min_release` past
/// the release's level) is refused at start, with the fix, before anything is served: a
/// rollback to that release fails its candidate check instead of failing requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_refuses_a_schema_that_needs_a_newer_one() {
    let store = TestStore::new(Backend::Postgres).await;
    let mut svc = Service::start(&store, &[]).await;
    assert_eq!(svc.terminate().await, Some(0));
    store
        .execute(
            "INSERT INTO schema_migrations (version) VALUES (999);
             UPDATE schema_compat SET value = 3 WHERE key = 'min_release'",
        )
        .await;
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_vehicleconnect"))
            .args(["--listen", "127.0.0.1:0"])
            .args(store.args())
            .env_remove("DATABASE_URL")
            .output(),
    )
    .await
    .expect("it exits instead of serving")
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the database schema (version 999) needs a newer release of vehicleconnect (compatibility level 3; this release has 2)")
            && err.contains("restore a dump taken before that upgrade"),
        "{err}"
    );
    assert!(!err.contains("listening"), "nothing was served: {err}");
}

/// An empty ingest token is refused at start, before anything is served: it would turn
/// authentication off while the log says it is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_ingest_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for token in ["", "  "] {
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            tokio::process::Command::new(env!("CARGO_BIN_EXE_vehicleconnect"))
                .args(["--listen", "127.0.0.1:0", "--data-dir"])
                .arg(dir.path())
                .env_remove("DATABASE_URL")
                .env("VC_INGEST_TOKEN", token)
                .output(),
        )
        .await
        .expect("it exits instead of serving")
        .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("the ingest token is empty") && err.contains("unset VC_INGEST_TOKEN"), "{err}");
        assert!(!err.contains("listening"), "nothing was served: {err}");
    }
}
