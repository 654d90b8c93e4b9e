//! Ingest over HTTP against both stores: counts, all-or-nothing batches, every error case.

mod common;

use std::collections::HashSet;

use common::{Backend, Service, TestStore, client, event};
use serde_json::{Value, json};

/// N concurrent single-event POSTs store exactly N rows, each with the id it was given.
async fn concurrent_single_posts_store_exactly_n_rows(backend: Backend) {
    let store = TestStore::new(backend).await;
    let svc = Service::start(&store, &[]).await;
    let http = client();
    let n = 600;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (http, url) = (http.clone(), svc.url("/api/events"));
        tasks.spawn(async move {
            let r =
                http.post(url).json(&event("/lock", 10.0 + i as f64, 200, &format!("car-{i}"))).send().await.unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
        });
    }
    let ids: HashSet<i64> = tasks.join_all().await.into_iter().collect();
    assert_eq!(ids.len(), n, "every event got its own id");
    assert_eq!(store.count("").await, n as i64);
    assert_eq!(store.event_ids().await, ids);
}
both_stores!(concurrent_single_posts_store_exactly_n_rows);

/// A large batch (on PostgreSQL it goes by COPY, with ids drawn beforehand) answers each
/// event with the id of its own row, in order.
async fn a_large_batch_answers_each_events_own_id(backend: Backend) {
    let store = TestStore::new(backend).await;
    let svc = Service::start(&store, &[]).await;
    let body: Vec<Value> = (0..3000).map(|i| event("/bulk", i as f64, 200, "c")).collect();
    let r = client().post(svc.url("/api/events")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let answer: Value = r.json().await.unwrap();
    let ids: Vec<i64> = answer["ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let times = store.times_by_id().await;
    assert_eq!(times.len(), 3000);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(times.get(id), Some(&(i as f64)), "event {i} answered with id {id}");
    }
}
both_stores!(a_large_batch_answers_each_events_own_id);

/// Arrays and NDJSON are stored whole, or not at all.
async fn batches_are_all_or_nothing(backend: Backend) {
    let store = TestStore::new(backend).await;
    let svc = Service::start(&store, &[]).await;
    let http = client();
    let batch: Vec<Value> = (0..100).map(|i| event("/status", i as f64, 200, "c")).collect();
    let r = http.post(svc.url("/api/events")).json(&batch).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let answer: Value = r.json().await.unwrap();
    assert_eq!((answer["accepted"].clone(), answer["duplicates"].clone()), (json!(100), json!(0)));
    assert_eq!(answer["ids"].as_array().unwrap().len(), 100);

    let ndjson: String = (0..50).map(|i| format!("{}\n", event("/climate", i as f64, 503, "c"))).collect();
    let r = http
        .post(svc.url("/api/events"))
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let answer: Value = r.json().await.unwrap();
    assert_eq!((answer["accepted"].clone(), answer["duplicates"].clone()), (json!(50), json!(0)));
    assert_eq!(store.count("").await, 150);

    let mut bad = batch.clone();
    bad[37] = json!({"endpoint": "/x", "response_time_ms": 1, "status_code": 1000, "client_id": "c"});
    bad[64] = json!({"endpoint": "/x", "response_time_ms": 1, "status_code": 200});
    let r = http.post(svc.url("/api/events")).json(&bad).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["details"],
        json!([
            {"index": 37, "field": "status_code", "reason": "must be an integer between 100 and 599, got 1000"},
            {"index": 64, "field": "client_id", "reason": "is required"},
        ])
    );
    assert!(body["error"].as_str().unwrap().contains("events[37].status_code"), "{body}");
    assert_eq!(store.count("").await, 150, "nothing of the bad batch is stored");
}
both_stores!(batches_are_all_or_nothing);

/// Every kind of bad request gets its status and a message naming the problem; nothing is stored.
async fn bad_requests_are_refused_clearly(backend: Backend) {
    let store = TestStore::new(backend).await;
    let svc = Service::start(&store, &[]).await;
    let http = client();
    let url = svc.url("/api/events");
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("malformed JSON", "application/json", "{\"endpoint\":".into(), 400, "malformed JSON"),
        ("empty body", "application/json", "".into(), 400, "request body is empty"),
        ("not an object", "application/json", "42".into(), 422, "body must be an event object"),
        ("empty batch", "application/json", "[]".into(), 422, "batch is empty"),
        (
            "bad field",
            "application/json",
            event("/a", -3.0, 200, "c").to_string(),
            422,
            "response_time_ms: must be between 0 and 3600000",
        ),
        (
            "unknown field",
            "application/json",
            json!({"endpoint": "/a", "response_time_ms": 1, "status_code": 200, "client_id": "c", "vin": "x"})
                .to_string(),
            422,
            "vin: unknown field",
        ),
        (
            "bad NDJSON line",
            "application/x-ndjson",
            format!("{}\nnope\n", event("/a", 1.0, 200, "c")),
            400,
            "malformed JSON at NDJSON line 2 column",
        ),
        ("wrong content type", "text/csv", "a,b".into(), 415, "unsupported Content-Type"),
        (
            "a number out of range (valid JSON)",
            "application/json",
            r#"{"endpoint":"/a","response_time_ms":1e309,"status_code":200,"client_id":"c"}"#.into(),
            422,
            "response_time_ms: the number at line 1 column 41 is out of range",
        ),
    ];
    for (what, ct, body, status, message) in cases {
        let r = http.post(&url).header("content-type", ct).body(body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        let body: Value = r.json().await.unwrap_or_else(|e| panic!("{what}: error body is not JSON: {e}"));
        let error = body["error"].as_str().unwrap_or_else(|| panic!("{what}: no `error` in {body}"));
        assert!(error.contains(message), "{what}: {error:?} does not contain {message:?}");
        // Every 422 says which field, in `details`.
        if status == 422 && what != "not an object" && what != "empty batch" {
            assert!(body["details"][0]["field"].is_string(), "{what}: no details in {body}");
        }
    }
    // No Content-Type at all is JSON, as docs/api.md and the OpenAPI document say.
    let r = http.post(&url).body(event("/a", 1.0, 200, "c").to_string()).send().await.unwrap();
    assert_eq!(r.status(), 201, "no Content-Type");
    let spec: Value = http.get(svc.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let said = spec["paths"]["/api/events"]["post"]["responses"]["415"]["description"].as_str().unwrap().to_string();
    assert!(said.contains("none at all is read as JSON"), "{said}");
    let (status, body) = post_headers_only(&svc, 8 * 1024 * 1024 + 1).await;
    assert_eq!(status, 413);
    assert!(body["error"].as_str().unwrap().contains("larger than 8 MiB"), "{body}");
    let r = http.get(svc.url("/api/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("/api/nothing"));
    let r = http.delete(svc.url("/api/events")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = http.get(svc.url("/api/analytics/kpis?window=2h")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.json::<Value>().await.unwrap()["error"].as_str().unwrap().starts_with("window: must be one of 15m, 1h, 24h")
    );
    let r = http.get(svc.url("/api/analytics/kpis?window=1h&window=15m")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let said = r.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_string();
    assert_eq!(said, "window: given more than once; give each query parameter once");
    assert_eq!(store.count("").await, 1, "only the event sent without a Content-Type");
}
both_stores!(bad_requests_are_refused_clearly);

#[tokio::test]
async fn ingest_token_is_required_when_set() {
    let store = TestStore::new(Backend::Embedded).await;
    let svc = Service::start(&store, &["--ingest-token", "s3cret-token"]).await;
    let http = client();
    let e = event("/lock", 5.0, 200, "c");
    for (auth, status) in [
        (None, 401),
        (Some("Bearer wrong"), 401),
        (Some("Basic s3cret-token"), 401),
        (Some("Bearer s3cret-token"), 201),
        // The scheme is case-insensitive (RFC 7235).
        (Some("bearer s3cret-token"), 201),
        (Some("BEARER s3cret-token"), 201),
    ] {
        let mut req = http.post(svc.url("/api/events")).json(&e);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{auth:?}");
        if status == 401 {
            assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"vehicleconnect\"");
            assert!(r.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("token"));
        }
    }
    assert_eq!(store.count("").await, 3);
    assert!(!svc.log().contains("s3cret-token"), "the token must never be logged");
    // Reads stay open: the dashboard and monitoring need no token.
    assert_eq!(http.get(svc.url("/api/status")).send().await.unwrap().status(), 200);
}

/// Behind a CDN: nothing but the status answers without the distribution's secret header,
/// whatever the path, the method or the near miss; the secret never reaches the log.
#[tokio::test]
async fn origin_secret_is_required_when_set() {
    let store = TestStore::new(Backend::Embedded).await;
    let secret = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let svc = Service::start_with_env(&store, &[], &[("VC_ORIGIN_SECRET", secret)]).await;
    let http = client();
    let e = event("/lock", 5.0, 200, "c");
    for (path, header) in [
        ("/api/events", None),
        ("/api/events", Some("0f1e2d3c4b5a69788796a5b4c3d2e1f")),
        ("/api/events", Some("0F1E2D3C4B5A69788796A5B4C3D2E1F0")),
        ("/api/events", Some(secret)),
    ] {
        let mut req = http.post(svc.url(path)).json(&e);
        if let Some(h) = header {
            req = req.header("x-vc-origin-secret", h);
        }
        let r = req.send().await.unwrap();
        let want = if header == Some(secret) { 201 } else { 403 };
        assert_eq!(r.status().as_u16(), want, "{header:?}");
        if want == 403 {
            assert!(r.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("CDN"));
        }
    }
    assert_eq!(store.count("").await, 1, "only the event that came with the secret");
    for path in ["/api/analytics/kpis?window=1h", "/dashboard", "/metrics", "/docs", "/no-such-page"] {
        let r = http.get(svc.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path} without the secret");
    }
    let r = http.get(svc.url("/api/analytics/kpis?window=1h")).header("x-vc-origin-secret", secret).send().await;
    assert_eq!(r.unwrap().status(), 200);
    // The health checks of the load balancer and of Route 53 come around the CDN.
    assert_eq!(http.get(svc.url("/api/status")).send().await.unwrap().status(), 200);
    assert!(!svc.log().contains(secret), "the secret must never be logged");
}

/// Events keep their own timestamp, method and fields exactly.
#[tokio::test]
async fn stored_rows_keep_every_field() {
    let store = TestStore::new(Backend::Postgres).await;
    let svc = Service::start(&store, &[]).await;
    let yesterday = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let ts = yesterday.replace_millisecond(678).unwrap().to_offset(time::macros::offset!(+2));
    let stamp = ts.format(&time::format_description::well_known::Rfc3339).unwrap();
    let utc = ts.to_offset(time::UtcOffset::UTC).format(&time::format_description::well_known::Rfc3339).unwrap();
    let e = json!({"endpoint": "/vehicles/unlock", "response_time_ms": 182.25, "status_code": 504,
                   "client_id": "vin-1", "method": "POST", "timestamp": stamp});
    let r = client().post(svc.url("/api/events")).json(&e).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let n = store
        .count(&format!(
            "WHERE id = {id} AND endpoint = '/vehicles/unlock' AND response_time_ms = 182.25 AND status_code = 504
             AND client_id = 'vin-1' AND method = 'POST' AND ts = '{utc}'"
        ))
        .await;
    assert_eq!(n, 1, "id {id}; rows: {:?}", store.event_ids().await);
}

/// Announces a body of `len` bytes without sending it, and reads the answer: a client that
/// kept writing 8 MiB would race the server's early 413 and see a broken pipe instead.
async fn post_headers_only(svc: &Service, len: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = svc.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}")))
}

/// A batch retried with client-chosen `event_id`s (after a 503 or a lost answer) stores
/// each event once, answers with the ids stored the first time, and counts each event once
/// in the KPIs; a repeat inside one batch is stored once too.
async fn retries_with_event_ids_store_each_event_once(backend: Backend) {
    let store = TestStore::new(backend).await;
    let svc = Service::start(&store, &["--kpi-interval", "200ms"]).await;
    let http = client();
    let with_id = |i: usize| {
        let mut e = event("/retry", 10.0, 200, "car-1");
        e["event_id"] = json!(format!("5f0c1d2e-0000-4000-8000-{i:012}"));
        e
    };
    let batch: Vec<Value> = (0..20).map(with_id).collect();
    let first: Value = http.post(svc.url("/api/events")).json(&batch).send().await.unwrap().json().await.unwrap();
    assert_eq!(first["duplicates"], 0);

    // The retry overlaps the first batch, adds new events, and repeats one of them.
    let mut retry: Vec<Value> = (10..30).map(with_id).collect();
    retry.push(with_id(25));
    retry.push(event("/retry", 10.0, 200, "no-id"));
    let r = http.post(svc.url("/api/events")).json(&retry).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let second: Value = r.json().await.unwrap();
    assert_eq!(second["accepted"], 22);
    assert_eq!(second["duplicates"], 11, "10 stored before + 1 repeated in the batch: {second}");
    let ids = |v: &Value| v["ids"].as_array().unwrap().iter().map(|i| i.as_i64().unwrap()).collect::<Vec<_>>();
    assert_eq!(ids(&second)[..10], ids(&first)[10..], "a retried event answers the id stored the first time");
    assert_eq!(ids(&second)[20], ids(&second)[15], "a repeat in one batch answers the first one's id");

    let single = with_id(3);
    let r: Value = http.post(svc.url("/api/events")).json(&single).send().await.unwrap().json().await.unwrap();
    assert_eq!(r, json!({"id": ids(&first)[3], "duplicate": true}));

    assert_eq!(store.count("").await, 31);
    common::eventually(std::time::Duration::from_secs(10), "KPIs counting each event once", || async {
        let kpis: Value = http.get(svc.url("/api/analytics/kpis?window=15m")).send().await.ok()?.json().await.ok()?;
        (kpis["overall"]["count"] == 31).then_some(())
    })
    .await;
}
both_stores!(retries_with_event_ids_store_each_event_once);
