//! What operators and tools read: `/metrics` (checked by promtool), `/openapi.json`, `/docs`, `/api/status`.

mod common;

use std::process::Stdio;

use common::{Backend, Service, TestStore, client, event};
use serde_json::Value;

#[tokio::test]
async fn metrics_pass_promtool_and_count_what_happened() {
    let store = TestStore::new(Backend::Embedded).await;
    let svc = Service::start(&store, &[]).await;
    let http = client();
    let batch: Vec<Value> = (0..30).map(|i| event(&format!("/e{}", i % 3), 250.0, 200 + (i % 2) * 300, "c")).collect();
    assert_eq!(http.post(svc.url("/api/events")).json(&batch).send().await.unwrap().status(), 201);
    assert_eq!(http.post(svc.url("/api/events")).body("{").send().await.unwrap().status(), 400);
    http.get(svc.url("/api/status")).send().await.unwrap();
    assert_eq!(http.delete(svc.url("/api/events")).send().await.unwrap().status(), 405);
    assert_eq!(http.put(svc.url("/dashboard/app.js")).send().await.unwrap().status(), 405);

    let r = http.get(svc.url("/metrics")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = r.text().await.unwrap();
    common::promtool_check(&text);
    for line in [
        r#"api_requests_total{method="POST",endpoint="/api/events",status="201"} 1"#,
        r#"api_requests_total{method="POST",endpoint="/api/events",status="400"} 1"#,
        r#"api_requests_total{method="DELETE",endpoint="/api/events",status="405"} 1"#,
        r#"api_requests_total{method="PUT",endpoint="/dashboard/{file}",status="405"} 1"#,
        r#"vehicle_events_total{endpoint="/e0",status_class="2xx"} 5"#,
        r#"vehicle_events_total{endpoint="/e0",status_class="5xx"} 5"#,
        r#"vehicle_event_response_time_seconds_count{endpoint="/e1"} 10"#,
        r#"vehicle_event_response_time_seconds_bucket{le="0.32",endpoint="/e2"} 10"#,
        r#"vehicle_event_response_time_seconds_bucket{le="0.16",endpoint="/e2"} 0"#,
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
    assert!(text.contains("# TYPE api_request_duration_seconds histogram"));
    assert!(text.contains(&format!("vehicleconnect_build_info{{version=\"{}\"", env!("CARGO_PKG_VERSION"))));
}

/// `--metrics-listen`: a second port with the metrics and the status only, for a scraper that
/// may not reach the API's port; the API's port serves everything as before.
#[tokio::test]
async fn a_metrics_port_serves_the_metrics_and_the_status_only() {
    let store = TestStore::new(Backend::Embedded).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics = format!("127.0.0.1:{port}");
    let svc = Service::start(&store, &["--metrics-listen", &metrics]).await;
    let http = client();
    let at = |path: &str| format!("http://{metrics}{path}");
    assert_eq!(http.post(svc.url("/api/events")).json(&event("/m", 5.0, 200, "c")).send().await.unwrap().status(), 201);
    let text = http.get(at("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"vehicle_events_total{endpoint="/m",status_class="2xx"} 1"#), "{text}");
    assert_eq!(http.get(at("/api/status")).send().await.unwrap().status(), 200);
    assert_eq!(http.post(at("/api/events")).json(&event("/m", 5.0, 200, "c")).send().await.unwrap().status(), 404);
    for path in ["/api/analytics/kpis", "/dashboard", "/docs"] {
        assert_eq!(http.get(at(path)).send().await.unwrap().status(), 404, "{path}");
    }
    assert!(svc.log().contains(&format!("serving /metrics and /api/status only addr={metrics}")), "{}", svc.log());
}

#[tokio::test]
async fn status_openapi_and_docs() {
    let store = TestStore::new(Backend::Embedded).await;
    let svc = Service::start(&store, &[]).await;
    let http = client();
    let status: Value = http.get(svc.url("/api/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["status"], "ok");
    assert_eq!(status["database"], "ok");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert!(status["git_sha"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(status["uptime_s"].is_u64());

    let spec: Value = http.get(svc.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    assert!(spec["paths"]["/api/events"]["post"]["responses"]["422"].is_object());
    assert!(spec["components"]["schemas"]["KpiReport"].is_object());
    // The document says exactly what the server takes.
    let schemas = &spec["components"]["schemas"];
    let post = &spec["paths"]["/api/events"]["post"];
    assert_eq!(post["requestBody"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/EventsBody");
    let one_of = schemas["EventsBody"]["oneOf"].as_array().unwrap();
    assert_eq!(one_of[0]["$ref"], "#/components/schemas/EventInput", "a single object is the main case");
    assert_eq!(
        (one_of[1]["type"].as_str(), one_of[1]["minItems"].as_u64(), one_of[1]["maxItems"].as_u64()),
        (Some("array"), Some(1), Some(10_000))
    );
    let event = &schemas["EventInput"];
    assert_eq!(event["additionalProperties"], false);
    assert_eq!(
        (
            event["properties"]["status_code"]["minimum"].as_u64(),
            event["properties"]["status_code"]["maximum"].as_u64()
        ),
        (Some(100), Some(599))
    );
    assert_eq!(schemas["HttpMethod"]["enum"].as_array().map(Vec::len), Some(9));
    assert_eq!(spec["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(post["responses"]["401"].is_object());
    let window = spec["paths"]["/api/analytics/kpis"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "window")
        .cloned()
        .unwrap();
    assert_eq!(window["schema"]["$ref"], "#/components/schemas/Window");
    let text = spec.to_string();
    assert!(!text.contains("serde") && !text.contains("raw value"), "the document describes the API, not its code");

    let r = http.get(svc.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = r.text().await.unwrap();
    assert!(page.contains("/api/analytics/kpis") && page.contains("response_time_ms"));

    // With a trailing slash too.
    let r = http.get(svc.url("/docs/")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.url().path()), (200, "/docs"), "/docs/ leads to the docs");
    // A query parameter the endpoint does not take is refused, like an unknown field.
    let r = http.get(svc.url("/api/analytics/kpis?windw=1h")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("unknown query parameter `windw`")
            && body["error"].as_str().unwrap().contains("did you mean `window`"),
        "{body}"
    );
    assert!(status["pid"].is_u64(), "the process answering: {status}");

    // The docs page is compressed for clients that ask.
    let r = http.get(svc.url("/docs")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
}

/// Under systemd socket activation the service serves every socket it is handed
/// (`LISTEN_FDS`) and ignores `--listen`; `systemd-socket-activate` plays systemd here.
#[tokio::test]
async fn serves_the_sockets_systemd_hands_over() {
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (api, http) = (free(), free());
    let dir = tempfile::tempdir().unwrap();
    let child = tokio::process::Command::new("systemd-socket-activate")
        .args(["-l", &format!("127.0.0.1:{api}"), "-l", &format!("127.0.0.1:{http}"), "-E", "NO_COLOR=1"])
        .arg(env!("CARGO_BIN_EXE_vehicleconnect"))
        .args(["--listen", "127.0.0.1:1", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("systemd-socket-activate is needed (Debian package `systemd`)");
    // It binds before it starts the service: wait for the ports, then the first connection starts it.
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(started.elapsed().as_secs() < 10, "systemd-socket-activate did not listen");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let client = client();
    let r = client
        .post(format!("http://127.0.0.1:{api}/api/events"))
        .json(&event("/lock", 1.0, 200, "c"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client.get(format!("http://127.0.0.1:{http}/api/status")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the second socket serves the same service");
    drop(client);
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = child.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("using sockets from systemd socket activation sockets=2"), "{log}");
    assert!(!log.contains("did not finish"), "{log}");
    assert!(!log.contains("listening addr=127.0.0.1:1 "), "--listen is ignored: {log}");
}
