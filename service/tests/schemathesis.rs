//! Schemathesis (PyPI) generates requests from `/openapi.json`, valid and invalid, and
//! checks every answer: no server error, and every status, content type, header and body as
//! the document says. On both stores. `scripts/test-services` installs it.
//!
//! One check is left out: `positive_data_acceptance` (a schema-valid event must get a 2xx).
//! An event's `timestamp` must fall between `--retention` ago and 5 minutes ahead of the
//! moment it arrives, which no JSON Schema can state; the generator sends 2000-01-01.

mod common;

use std::process::Command;

use common::{Backend, Service, TestStore};

async fn the_api_keeps_its_openapi_document(backend: Backend) {
    let store = TestStore::new(backend).await;
    // A read token, so that the aggregates answer (and are checked) too; schemathesis sends it.
    let token = "schemathesis-read-token";
    let svc = Service::start(&store, &["--read-token", token]).await;
    let exe = std::env::var("VC_SCHEMATHESIS").unwrap_or_else(|_| {
        panic!("VC_SCHEMATHESIS is not set: run the tests with scripts/test, which installs Schemathesis")
    });
    let dir = tempfile::tempdir().unwrap();
    // A batch over 10 000 events is refused with 413 (what it is: too large), which counts
    // as a rejection like 400 and 422.
    std::fs::write(
        dir.path().join("schemathesis.toml"),
        "[checks.negative_data_rejection]\nexpected-statuses = [\"400\", \"401\", \"413\", \"415\", \"422\"]\n",
    )
    .unwrap();
    let out = Command::new(&exe)
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .args(["run", &svc.url("/openapi.json"), "--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        // One worker: with two, hypothesis parses lambdas' sources on both threads at once,
        // and CPython 3.11's parser then fails its own recursion check now and then
        // ("AST constructor recursion depth mismatch", a SystemError inside the tool).
        .args(["--max-examples", "150", "--seed", "20261130", "--workers", "1", "--generation-database", "none"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--no-color", "--report-dir"])
        .arg(dir.path().join("report"))
        .output()
        .unwrap_or_else(|e| panic!("running {exe}: {e}"));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems ({:?}):\n{report}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = report.lines().find(|l| l.contains(" generated, ")).expect("a summary line");
    eprintln!("schemathesis ({backend:?}): {}", summary.trim());
    assert!(summary.contains("passed"), "{summary}");
    assert!(!svc.log().contains("panicked"), "{}", svc.log());
}
both_stores!(the_api_keeps_its_openapi_document);
