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

/// The last hour's KPIs as `status` shows them.
pub enum Kpis {
    /// The overall figures, and when the service computed them.
    Read { overall: serde_json::Value, computed_at: Option<String> },
    /// A 503 while the service rebuilds them after a start: "warming up", never zeros.
    WarmingUp,
    /// Nothing answered (a stopped service, an unreachable one).
    Unavailable,
}

impl Kpis {
    /// `kpis_1h`, `kpis_ready` and `kpis_as_of` of `status --json`: ready only when read.
    pub fn add_to(&self, json: &mut serde_json::Value) {
        let (overall, ready, as_of) = match self {
            Kpis::Read { overall, computed_at } => (overall.clone(), true, computed_at.clone()),
            _ => (serde_json::Value::Null, false, None),
        };
        json["kpis_1h"] = overall;
        json["kpis_ready"] = ready.into();
        json["kpis_as_of"] = as_of.into();
    }

    /// `status`'s line for them. The service computes them every KPI interval: the figures
    /// lag the events by up to that, so the line says when they are from.
    pub fn line(&self) -> Option<String> {
        let (k, computed_at) = match self {
            Kpis::WarmingUp => {
                return Some("last 1 h: warming up (the service is reading its KPIs after a start)".into());
            }
            Kpis::Unavailable => return None,
            Kpis::Read { overall, computed_at } => (overall, computed_at),
        };
        let f = |key: &str| k[key].as_f64().map_or("-".to_string(), |v| format!("{v:.1}"));
        let as_of = computed_at.as_deref().map(as_of).unwrap_or_default();
        Some(format!(
            "last 1 h: {} events, {} req/min, avg {} ms, p95 {} ms, errors {} %{as_of}",
            k["count"],
            f("requests_per_min"),
            f("avg_latency_ms"),
            f("p95_latency_ms"),
            f("error_rate_pct")
        ))
    }
}

/// ` (as of 12:00:05 UTC, 4 s ago)` for an RFC 3339 time.
fn as_of(computed_at: &str) -> String {
    let Ok(at) = time::OffsetDateTime::parse(computed_at, &time::format_description::well_known::Rfc3339) else {
        return String::new();
    };
    let ago = (time::OffsetDateTime::now_utc() - at).whole_seconds().max(0);
    let clock = format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second());
    format!(" (as of {clock} UTC, {ago} s ago; computed every KPI interval)")
}

/// The last hour's KPIs at `base`.
pub async fn kpis_1h(client: &reqwest::Client, base: &str) -> Kpis {
    match client.get(format!("{base}/api/analytics/kpis?window=1h")).send().await {
        Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => Kpis::WarmingUp,
        Ok(r) => match r.json::<serde_json::Value>().await {
            Ok(report) => Kpis::Read {
                overall: report["overall"].clone(),
                computed_at: report["computed_at"].as_str().map(str::to_string),
            },
            Err(_) => Kpis::Unavailable,
        },
        Err(_) => Kpis::Unavailable,
    }
}
