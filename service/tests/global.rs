//! Global KPIs without moving events: two services, each on its own PostgreSQL database
//! (two regions), one reading the other's aggregates. The merged KPIs must equal the KPIs
//! of the union of both tables: counts and error rates exactly, the mean to rounding, the
//! quantiles within the sketch's 1 %.

mod common;

use std::time::Duration;

use common::{Backend, Service, TestStore, client, eventually};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const TOKEN: &str = "read-token-for-the-test-0123456789";

/// `n` events with a long tail, `share` of them failing, spread over the last 50 minutes.
fn events(n: usize, seed: u64, fail: f64) -> Vec<Value> {
    let endpoints = ["/vehicles/lock", "/vehicles/unlock", "/vehicles/status"];
    let mut seed = seed;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let now = OffsetDateTime::now_utc();
    (0..n)
        .map(|i| {
            let ms = (((next() + next()) * 2.5).exp() * 10.0 * 1000.0).round() / 1000.0;
            let status = if next() < fail { 503 } else { 200 };
            let ts = (now - time::Duration::seconds(60 + (next() * 2_940.0) as i64)).format(&Rfc3339).unwrap();
            json!({"endpoint": endpoints[i % 3], "response_time_ms": ms, "status_code": status,
                   "client_id": "car", "timestamp": ts})
        })
        .collect()
}

async fn post_all(svc: &Service, events: &[Value]) {
    for chunk in events.chunks(2_000) {
        let r = client().post(svc.url("/api/events")).json(&chunk).send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
}

/// Latency and status of every event of the last hour, from the table itself.
async fn table(store: &TestStore, endpoint: Option<&str>) -> Vec<(f64, i32)> {
    let client = common::pg_connect(store.pg_url.as_ref().unwrap()).await;
    let filter = endpoint.map(|e| format!(" AND endpoint = '{e}'")).unwrap_or_default();
    let sql = format!(
        "SELECT response_time_ms::float8, status_code::int FROM api_events \
         WHERE ts > date_trunc('minute', now()) - interval '59 minutes'{filter}"
    );
    client.query(&sql, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// The merged figures against the union of both tables' rows.
fn check_against_union(got: &Value, rows: &[(f64, i32)], what: &str) {
    let mut lat: Vec<f64> = rows.iter().map(|r| r.0).collect();
    lat.sort_by(f64::total_cmp);
    let n = lat.len() as f64;
    assert_eq!(got["count"].as_u64().unwrap(), rows.len() as u64, "{what}: count");
    let errors = rows.iter().filter(|r| r.1 >= 500).count() as f64;
    let want_rate = ((100.0 * errors / n) * 1000.0).round() / 1000.0;
    assert_eq!(got["error_rate_pct"].as_f64().unwrap(), want_rate, "{what}: error rate");
    let avg = lat.iter().sum::<f64>() / n;
    assert!(
        (got["avg_latency_ms"].as_f64().unwrap() - avg).abs() <= 0.001,
        "{what}: avg {} vs {avg}",
        got["avg_latency_ms"]
    );
    // PostgreSQL's percentile_disc: the first value whose cumulative share reaches q.
    let disc = |q: f64| lat[((q * n).ceil() as usize).max(1) - 1];
    for (field, q) in [("p50_latency_ms", 0.5), ("p95_latency_ms", 0.95), ("p99_latency_ms", 0.99)] {
        let served = got[field].as_f64().unwrap();
        let exact = disc(q);
        assert!((served - exact).abs() / exact <= 0.01, "{what}: {field} {served} vs the union's {exact}");
        println!("{what}: {field} merged {served} union {exact} error {:.3} %", 100.0 * (served - exact).abs() / exact);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn merged_kpis_of_two_regions_equal_the_kpis_of_the_union_of_their_tables() {
    let (eu_store, us_store) = (TestStore::new(Backend::Postgres).await, TestStore::new(Backend::Postgres).await);
    let us = Service::start(&us_store, &["--read-token", TOKEN, "--kpi-interval", "500ms"]).await;
    let peers = format!("us={}", us.base);
    let eu = Service::start(
        &eu_store,
        &["--read-token", TOKEN, "--peers", &peers, "--region-name", "eu", "--kpi-interval", "500ms"],
    )
    .await;
    let (eu_events, us_events) = (events(6_000, 7, 0.02), events(9_000, 11, 0.06));
    post_all(&eu, &eu_events).await;
    post_all(&us, &us_events).await;

    let http = client();
    let report: Value = eventually(Duration::from_secs(30), "the global view to count 15 000 events", || async {
        let v: Value =
            http.get(eu.url("/api/analytics/kpis?scope=global&window=1h")).send().await.ok()?.json().await.ok()?;
        (v["overall"]["count"].as_u64()? == 15_000).then_some(v)
    })
    .await;
    let mut union = table(&eu_store, None).await;
    union.extend(table(&us_store, None).await);
    check_against_union(&report["overall"], &union, "global");
    assert_eq!(
        report["regions"],
        json!([
            {"region": "eu", "count": 6000, "error": null},
            {"region": "us", "count": 9000, "error": null},
        ])
    );
    for endpoint in ["/vehicles/lock", "/vehicles/status"] {
        let mut rows = table(&eu_store, Some(endpoint)).await;
        rows.extend(table(&us_store, Some(endpoint)).await);
        let listed = report["endpoints"].as_array().unwrap().iter().find(|e| e["endpoint"] == endpoint).unwrap();
        check_against_union(listed, &rows, endpoint);
        let url = eu.url(&format!("/api/analytics/kpis?scope=global&window=1h&endpoint={endpoint}"));
        let filtered: Value = http.get(url).send().await.unwrap().json().await.unwrap();
        check_against_union(&filtered["overall"], &rows, &format!("{endpoint}, filtered"));
    }
    // A region's own view is its own events only, and says nothing of regions.
    let own: Value = http.get(eu.url("/api/analytics/kpis?window=1h")).send().await.unwrap().json().await.unwrap();
    assert_eq!(own["overall"]["count"], 6_000);
    assert!(own.get("regions").is_none(), "{own}");
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregates_are_served_to_the_read_token_only_and_a_missing_region_is_named() {
    let store = TestStore::new(Backend::Postgres).await;
    let plain = Service::start(&TestStore::new(Backend::Embedded).await, &["--kpi-interval", "1s"]).await;
    let us = Service::start(&store, &["--read-token", TOKEN, "--kpi-interval", "1s"]).await;
    let http = client();
    let aggregates = |svc: &Service| svc.url("/api/analytics/aggregates?window=15m");
    let r = http.get(aggregates(&plain)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("VC_READ_TOKEN"));
    assert_eq!(http.get(aggregates(&us)).send().await.unwrap().status(), 401);
    assert_eq!(http.get(aggregates(&plain)).send().await.unwrap().status(), 401, "no credentials: 401 first");
    let wrong = http.get(aggregates(&us)).bearer_auth("not-the-token").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("not the read token"));
    let bad = http.get(us.url("/api/analytics/aggregates?windw=1h")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("did you mean `window`"));
    let ok = eventually(Duration::from_secs(30), "the aggregates", || async {
        let r = http.get(aggregates(&us)).bearer_auth(TOKEN).send().await.ok()?;
        (r.status() == 200).then_some(r)
    })
    .await;
    assert_eq!(ok.headers()["content-type"], "application/vnd.vehicleconnect.kpi-frame");
    assert_eq!(ok.headers()["cache-control"], "no-store");
    assert!(ok.bytes().await.unwrap().starts_with(b"VCKM"));

    // scope=global needs peers; a peer that is down or answers junk is named, and the
    // report is of the regions that answered.
    let r = http.get(plain.url("/api/analytics/kpis?scope=global")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("VC_PEERS"));
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let peers = format!("us={},gone=http://{dead},junk={}/dashboard", us.base, us.base);
    let eu_store = TestStore::new(Backend::Embedded).await;
    let eu = Service::start(&eu_store, &["--read-token", TOKEN, "--peers", &peers, "--kpi-interval", "1s"]).await;
    post_all(&us, &events(300, 3, 0.1)).await;
    post_all(&eu, &events(200, 5, 0.1)).await;
    let report: Value = eventually(Duration::from_secs(30), "the global view of the regions that answer", || async {
        let r = http.get(eu.url("/api/analytics/kpis?scope=global&window=1h")).send().await.ok()?;
        let v: Value = r.json().await.ok()?;
        (v["overall"]["count"].as_u64()? == 500).then_some(v)
    })
    .await;
    let regions = report["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 4, "{report}");
    assert_eq!((regions[0]["region"].as_str(), regions[0]["count"].as_u64()), (Some("this region"), Some(200)));
    assert_eq!(regions[1]["count"], 300);
    assert!(regions[2]["error"].as_str().unwrap().contains("connect"), "{}", regions[2]);
    assert!(regions[3]["error"].as_str().unwrap().contains("HTTP 404"), "{}", regions[3]);
    let r = http.get(eu.url("/api/analytics/kpis?scope=global")).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "public, max-age=0, s-maxage=1");
    let r = http.get(eu.url("/api/analytics/kpis?scope=world")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // Peers without a read token: the region serves, and the global view says what is missing.
    let tokenless = Service::start(&TestStore::new(Backend::Embedded).await, &["--peers", &peers]).await;
    let r = http.get(tokenless.url("/api/analytics/kpis?scope=global")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("VC_READ_TOKEN is not"));
    assert!(tokenless.log().contains("no global view until it is"), "{}", tokenless.log());
}
