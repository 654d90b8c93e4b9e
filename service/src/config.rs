//! Command-line flags, each also read from an environment variable.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "vehicleconnect",
    version = crate::build::LONG_VERSION,
    about = "Stores connected-vehicle API events and serves their KPIs, Prometheus metrics and API docs",
    after_help = "Examples:\n  vehicleconnect                                   # embedded store in ./data, http://127.0.0.1:8000\n  DATABASE_URL=postgres://vc@localhost/vc vehicleconnect --listen 0.0.0.0:8000\n\nSecrets (DATABASE_URL, VC_INGEST_TOKEN) belong in the environment, not on the command line."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "VC_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// A second address that serves only `/metrics` and `/api/status`, for Prometheus where
    /// the API's port is for the load balancer only (an Auto Scaling group's instances).
    #[arg(long, env = "VC_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// PostgreSQL URL (postgres://user:password@host:port/db). Without it, an embedded store in --data-dir.
    #[arg(long = "database", env = "DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,

    /// The PostgreSQL server's certificate (PEM): connect over TLS and accept exactly this
    /// certificate (pinned; a fleet's db host has a self-signed one, which vcctl copies).
    #[arg(long, env = "VC_DATABASE_CERT")]
    pub database_cert: Option<PathBuf>,

    /// The certificate authorities (PEM bundle) the PostgreSQL server's certificate must
    /// chain to, for the host name or address in the URL: connect over TLS and verify it (an
    /// external database, such as RDS with its region's bundle).
    #[arg(long, env = "VC_DATABASE_CA", conflicts_with = "database_cert")]
    pub database_ca: Option<PathBuf>,

    /// Directory of the embedded store (used when no --database is given).
    #[arg(long, env = "VC_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// How often the KPI engine writes a snapshot (e.g. 60s, 500ms).
    #[arg(long, env = "VC_KPI_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub kpi_interval: Duration,

    /// How long raw events and KPI snapshots are kept (e.g. 30days, 12h). PostgreSQL drops
    /// events by whole UTC days, so it keeps them up to a day longer.
    #[arg(long, env = "VC_RETENTION", default_value = "30days", value_parser = parse_duration)]
    pub retention: Duration,

    /// When set, POST /api/events requires `Authorization: Bearer <token>`. Prefer the environment variable.
    #[arg(long, env = "VC_INGEST_TOKEN", hide_env_values = true, value_parser = non_empty_token)]
    pub ingest_token: Option<String>,

    /// When set, GET /api/analytics/aggregates serves this region's KPI aggregates (their
    /// mergeable form) to `Authorization: Bearer <token>`, and the token reads the `--peers`:
    /// one token for every region of a global stack. Prefer the environment variable.
    #[arg(long, env = "VC_READ_TOKEN", hide_env_values = true, value_parser = non_empty_read_token)]
    pub read_token: Option<String>,

    /// Behind a CDN: every request but GET /api/status must carry this value in the
    /// `X-VC-Origin-Secret` header (the distribution adds it), else 403. Prefer the
    /// environment variable.
    #[arg(long, env = "VC_ORIGIN_SECRET", hide_env_values = true, value_parser = non_empty_origin_secret)]
    pub origin_secret: Option<String>,

    /// The other regions of a global stack, NAME=URL,... (us=https://us.vc.example.com):
    /// `scope=global` on the KPI API and the dashboard merges their aggregates with this one's.
    #[arg(long, env = "VC_PEERS", value_parser = crate::peers::parse_peers)]
    pub peers: Option<crate::peers::PeerList>,

    /// Authorities (PEM) for the peers' HTTPS certificates; the system's roots by default.
    #[arg(long, env = "VC_PEER_CA")]
    pub peer_ca: Option<PathBuf>,

    /// This region's name in the global view.
    #[arg(long, env = "VC_REGION_NAME", default_value = "this region")]
    pub region_name: String,

    /// Dashboard colours: KPI=WARN:CRIT pairs; amber from WARN, red from CRIT.
    #[arg(long, env = "VC_THRESHOLDS", default_value = crate::dashboard::DEFAULT_THRESHOLDS,
          value_parser = crate::dashboard::parse_thresholds)]
    pub thresholds: crate::dashboard::Thresholds,

    /// How long to wait for PostgreSQL at start-up before giving up.
    #[arg(long, env = "VC_DB_CONNECT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub db_connect_timeout: Duration,

    /// Connections served at once, over all listeners; past it, new ones wait in the listen queue.
    #[arg(long, env = "VC_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Time a client has to send a whole request head once it has started one.
    #[arg(long, env = "VC_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// Time a client has to send a whole request body (8 MiB at most).
    #[arg(long, env = "VC_BODY_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,

    /// A connection with no request (or whose client reads none of its answer) for this long is closed.
    #[arg(long, env = "VC_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Memory the KPI aggregates may hold (e.g. 64MiB, 256MiB); past it the oldest minutes lose their per-endpoint detail.
    #[arg(long, env = "VC_KPI_MEMORY", default_value = "64MiB", value_parser = parse_size)]
    pub kpi_memory: usize,

    /// On PostgreSQL: how long after its end a minute's KPIs are computed again from the raw
    /// events, which covers a replica that died before sharing its last second. Events for a
    /// minute over for two thirds of this are late (counted when the minute is computed
    /// again). Every replica of a fleet must use the same.
    #[arg(long, env = "VC_KPI_CLOSE_AFTER", default_value = "90s", value_parser = parse_close_after)]
    pub kpi_close_after: Duration,

    /// Run as a release under check beside the serving one: serve and store as usual, but
    /// write no KPI snapshots and delete nothing for retention (the serving release does).
    #[arg(long, env = "VC_CANDIDATE")]
    pub candidate: bool,

    /// Log format: text for people, json for log shippers.
    #[arg(long, env = "VC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Checks the value of one environment variable the service reads (`VC_THRESHOLDS`,
/// `VC_KPI_MEMORY`, …) with the very parser the service starts with, so that vcctl refuses
/// a bad `service.env` when it reads the stack file, not at the start on a host. `Ok(false)`
/// for a name the service does not read; the error is the parser's own words.
pub fn check_env(name: &str, value: &str) -> Result<bool, String> {
    use clap::CommandFactory;
    let cmd = Config::command();
    let Some(arg) = cmd.get_arguments().find(|a| a.get_env().is_some_and(|e| e == name)) else {
        return Ok(false);
    };
    let Some(long) = arg.get_long().map(str::to_string) else { return Ok(true) };
    if !arg.get_action().takes_values() {
        // A switch: clap reads its variable as a boolean.
        let boolish = ["true", "false", "yes", "no", "on", "off", "1", "0"].contains(&value.to_lowercase().as_str());
        return if boolish { Ok(true) } else { Err(format!("expected true or false, got {value:?}")) };
    }
    // The flag's own parser, through clap, with no variable of this process read beside it.
    let cmd = cmd.mut_args(|a| a.env(None::<&str>));
    // `--flag=value`: a value that starts with `-` is still the value.
    match cmd.try_get_matches_from([OsString::from("vehicleconnect"), format!("--{long}={value}").into()]) {
        Ok(_) => Ok(true),
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ");
            // "invalid value 'x' for '--flag <FLAG>': why" → "why": the value is the user's.
            Err(first.split_once("': ").map_or(first, |(_, why)| why).to_string())
        }
    }
}

/// At least 3 s: a third of it is the margin for an insert in flight and clock skew.
fn parse_close_after(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(3) {
        return Err(format!("must be at least 3s, got {s}"));
    }
    Ok(d)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    pub fn limits(&self) -> crate::serve::Limits {
        crate::serve::Limits {
            max_connections: self.max_connections as usize,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
        }
    }
}

/// `64MiB`, `1GiB`, `512KiB` or a number of bytes; at least 1 MiB.
fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let number: usize = number.parse().map_err(|_| format!("{s:?} is not a size (examples: 64MiB, 1GiB)"))?;
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("unknown unit {other:?}; use KiB, MiB or GiB (e.g. 64MiB)")),
    };
    let bytes = number.checked_mul(scale).ok_or_else(|| format!("{s:?} is too large"))?;
    if bytes < 1 << 20 {
        return Err("must be at least 1MiB".to_string());
    }
    Ok(bytes)
}

fn non_empty_token(s: &str) -> Result<String, String> {
    non_empty(s, "the ingest token is empty: set a token, or unset VC_INGEST_TOKEN to accept events without one")
}

fn non_empty_read_token(s: &str) -> Result<String, String> {
    non_empty(s, "the read token is empty: set a token, or unset VC_READ_TOKEN to serve no aggregates")
}

fn non_empty_origin_secret(s: &str) -> Result<String, String> {
    non_empty(s, "the origin secret is empty: set one, or unset VC_ORIGIN_SECRET to answer without it")
}

/// A set token that is empty would turn authentication off while the log says it is on;
/// the error never shows the value (it is a secret; an empty one shows as '').
fn non_empty(s: &str, empty: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err(empty.into());
    }
    Ok(s.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 60s, 5m, 30days)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".to_string());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_durations() {
        let c = Config::try_parse_from(["vehicleconnect", "--kpi-interval", "500ms", "--retention", "12h"]).unwrap();
        assert_eq!(c.kpi_interval, Duration::from_millis(500));
        assert_eq!(c.retention, Duration::from_secs(12 * 3600));
        let err = Config::try_parse_from(["vehicleconnect", "--kpi-interval", "0s"]).unwrap_err().to_string();
        assert!(err.contains("must be greater than zero"), "{err}");
        assert_eq!(c.kpi_memory, 64 << 20);
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2097152"), Ok(2 << 20));
        assert_eq!(parse_size("64MB"), Err("unknown unit \"MB\"; use KiB, MiB or GiB (e.g. 64MiB)".to_string()));
        assert_eq!(parse_size("12KiB"), Err("must be at least 1MiB".to_string()));
        assert!(!c.candidate);
    }

    #[test]
    fn an_environment_value_is_checked_by_the_flags_own_parser() {
        assert_eq!(check_env("VC_KPI_MEMORY", "128MiB"), Ok(true));
        assert_eq!(
            check_env("VC_KPI_MEMORY", "64MB"),
            Err("unknown unit \"MB\"; use KiB, MiB or GiB (e.g. 64MiB)".into())
        );
        assert!(check_env("VC_THRESHOLDS", "error_rate_pct=5:1").unwrap_err().contains("must not be above CRIT"));
        assert_eq!(check_env("VC_MAX_CONNECTIONS", "0").map_err(|e| e.contains("0 is not in 1..")), Err(true));
        assert_eq!(check_env("VC_LOG_FORMAT", "json"), Ok(true));
        assert!(check_env("VC_RETENTION", "-5").is_err());
        assert_eq!(check_env("RUST_LOG", "debug"), Ok(false), "not the service's: anything goes");
    }

    #[test]
    fn kpi_close_after_is_at_least_three_seconds() {
        let c = Config::try_parse_from(["vehicleconnect"]).unwrap();
        assert_eq!(c.kpi_close_after, Duration::from_secs(90));
        let c = Config::try_parse_from(["vehicleconnect", "--kpi-close-after", "6s"]).unwrap();
        assert_eq!(c.kpi_close_after, Duration::from_secs(6));
        for (bad, says) in [("2s", "must be at least 3s, got 2s"), ("soon", "soon"), ("", "")] {
            let err = Config::try_parse_from(["vehicleconnect", "--kpi-close-after", bad]).unwrap_err().to_string();
            assert!(err.contains("--kpi-close-after") && err.contains(says), "{bad:?}: {err}");
        }
    }
}
