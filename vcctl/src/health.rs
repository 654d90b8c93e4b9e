//! Health checks through the service's public API: `/api/status` until it is healthy and
//! reports the expected release, with a deadline; fail fast when the process is gone.

use std::time::{Duration, Instant};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Status {
    pub status: String,
    pub version: String,
    pub git_sha: String,
    pub uptime_s: u64,
    pub database: String,
    /// The answering process (releases before it was reported: none).
    #[serde(default)]
    pub pid: Option<u32>,
    /// The replica's id, whether it is the KPI leader, and how many replicas report
    /// (releases before replicas shared their KPIs: none).
    #[serde(default)]
    pub replica: Option<String>,
    #[serde(default)]
    pub kpi_leader: Option<bool>,
    #[serde(default)]
    pub replicas_reporting: Option<i64>,
}

/// `replica:  <id>, KPI leader, 3 replicas reporting`; nothing for a release before replicas.
pub fn replica_line(s: &Status) -> Option<String> {
    let id = s.replica.as_deref()?;
    let role = if s.kpi_leader == Some(true) { "KPI leader" } else { "not the KPI leader" };
    let n = s.replicas_reporting.unwrap_or(0);
    Some(format!("replica:  {id}, {role}, {n} {} reporting", if n == 1 { "replica" } else { "replicas" }))
}

/// Why a release is not healthy, in words an operator can act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unhealthy {
    #[error("the process exited during start-up{}", last_lines(.0))]
    Exited(String),
    #[error("no healthy answer from {url} within {waited:?}; last: {last}")]
    Timeout { url: String, waited: Duration, last: String },
    #[error("{}", crash(*.status, *.restarts))]
    CrashLoop { status: i32, restarts: u32 },
    #[error("nothing listens on port {port} on the host (connection refused): the socket unit is not active")]
    NotListening { port: u16 },
    #[error("{url} answers HTTP {code}: {detail}")]
    HttpError { url: String, code: u16, detail: String },
    #[error("the service is healthy on the host, but {url} cannot be reached from here ({error}): {}", unreachable_cause(.url, .error))]
    Unreachable { url: String, error: String },
    #[error("{url} answers, but reports version {got}, not {want}: an older process may still hold the port")]
    WrongVersion { url: String, got: String, want: String },
    #[error("{url} answers from process {got}, not from the one started ({want}): another process holds the port")]
    WrongProcess { url: String, got: u32, want: u32 },
}

/// What most likely stands between here and a service healthy on its host.
fn unreachable_cause(url: &str, error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("certificate") || e.contains("unknownissuer") || e.contains("tls") {
        "its certificate is not trusted yet (Caddy may still be obtaining it; a private ACME CA's root goes in tls.trust_ca)"
    } else if url.starts_with("https://") && e.starts_with("http ") {
        "Caddy answers, but not with the service's status (its log: `journalctl -u caddy`)"
    } else {
        "a firewall or security group blocks the port"
    }
}

fn crash(status: i32, restarts: u32) -> String {
    match restarts {
        0 => format!("the service exits at start (exit status {status})"),
        n => format!("the service keeps exiting (exit status {status}, restarted {n} times): a crash loop"),
    }
}

fn last_lines(log: &str) -> String {
    if log.trim().is_empty() { String::new() } else { format!("; its last log lines:\n{log}") }
}

/// A healthy answer: 200, and the service says `ok` (its store works).
pub fn is_healthy(code: u16, s: &Status) -> bool {
    code == 200 && s.status == "ok"
}

/// `(got, wanted)` when `s` is not the version and commit wanted.
pub fn version_mismatch(s: &Status, want: Option<(&str, &str)>) -> Option<(String, String)> {
    match want {
        Some((version, sha)) if s.version != version || s.git_sha != sha => {
            Some((format!("{} ({})", s.version, s.git_sha), format!("{version} ({sha})")))
        }
        _ => None,
    }
}

pub async fn status(client: &reqwest::Client, base: &str) -> Result<(u16, Status), String> {
    let r = client.get(format!("{base}/api/status")).send().await.map_err(|e| crate::error::chain(&e))?;
    let code = r.status().as_u16();
    let s: Status = r.json().await.map_err(|e| format!("HTTP {code} with a body that is not a status: {e}"))?;
    Ok((code, s))
}

/// One look at a release while it is checked.
pub enum Look {
    /// Healthy, with the version wanted.
    Healthy(Status),
    /// Not yet: why, should time run out.
    NotYet(Unhealthy),
    /// It will not be: the process exited, or keeps crashing.
    Dead(Unhealthy),
}

/// How often a check looks.
const POLL: Duration = Duration::from_millis(250);

/// Looks until healthy, dead, or `timeout` has passed (a zero timeout looks once). The one
/// polling loop of every target; each says what a look is.
pub async fn wait(timeout: Duration, mut look: impl AsyncFnMut() -> Look) -> Result<Status, Unhealthy> {
    let started = Instant::now();
    loop {
        match look().await {
            Look::Healthy(s) => return Ok(s),
            Look::Dead(why) => return Err(why),
            Look::NotYet(why) if started.elapsed() >= timeout => return Err(why),
            Look::NotYet(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// A healthy answer at `url` is a good look when it is the version wanted, from the process
/// started (`pid`, when the target knows it and the release reports its own).
pub fn judge(s: Status, want: Option<(&str, &str)>, pid: Option<u32>, url: &str) -> Look {
    if let (Some(got), Some(want)) = (s.pid, pid)
        && got != want
    {
        return Look::NotYet(Unhealthy::WrongProcess { url: url.to_string(), got, want });
    }
    match version_mismatch(&s, want) {
        Some((got, want)) => Look::NotYet(Unhealthy::WrongVersion { url: url.to_string(), got, want }),
        None => Look::Healthy(s),
    }
}

/// The last hour's overall KPIs at `base`, and whether they are ready: a 503 while the
/// service rebuilds them after a start is "warming up", never zeros.
pub async fn kpis_1h(client: &reqwest::Client, base: &str) -> (Option<serde_json::Value>, bool) {
    match client.get(format!("{base}/api/analytics/kpis?window=1h")).send().await {
        Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => (None, false),
        Ok(r) => (r.json::<serde_json::Value>().await.ok().map(|k| k["overall"].clone()), true),
        Err(_) => (None, true),
    }
}

/// `status`'s line for the last hour's KPIs.
pub fn kpi_line(kpis: Option<&serde_json::Value>, ready: bool) -> Option<String> {
    if !ready {
        return Some("last 1 h: warming up (the service is reading its KPIs after a start)".into());
    }
    let k = kpis?;
    let f = |key: &str| k[key].as_f64().map_or("-".to_string(), |v| format!("{v:.1}"));
    Some(format!(
        "last 1 h: {} events, {} req/min, avg {} ms, p95 {} ms, errors {} %",
        k["count"],
        f("requests_per_min"),
        f("avg_latency_ms"),
        f("p95_latency_ms"),
        f("error_rate_pct")
    ))
}
