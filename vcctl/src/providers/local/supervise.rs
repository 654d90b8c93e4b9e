//! The local stack's supervisor: `vcctl supervise` (hidden), started by `local.rs` in the
//! background in place of the service. It runs the release, restarts it when it exits
//! unasked, with back-off (1 s, doubling to 30 s; reset after a minute of running), and
//! counts the restarts in `supervisor.json` for `vcctl status`. SIGTERM stops both.
//!
//! ```text
//! .vcctl/local/<stack>/supervisor.pid   this process (its process group holds the service)
//! .vcctl/local/<stack>/service.pid      the service it runs now
//! .vcctl/local/<stack>/supervisor.json  {"restarts": N, "last_exit": "...", "at": "..."}
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

/// What the supervisor says about its service.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Restarts {
    pub restarts: u32,
    /// How the service last exited unasked (`exit status 1`, `signal 9`).
    pub last_exit: Option<String>,
    pub at: Option<String>,
}

/// The record in `dir`, or none yet.
pub fn record(dir: &Path) -> Restarts {
    std::fs::read_to_string(dir.join("supervisor.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// The back-off before restart number `n` (1-based): 1 s, doubling, at most 30 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

/// Runs `bin` from `dir` until SIGTERM (or SIGINT), restarting it when it exits.
pub async fn run(dir: &Path, bin: &Path) -> Result<u8> {
    // Its signals stop the child first (below), never drop it where it stands.
    let _guard = crate::signals::Guard::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    std::fs::write(dir.join("supervisor.pid"), format!("{}\n", std::process::id()))?;
    let mut rec = Restarts::default();
    let mut streak = 0;
    loop {
        let mut child =
            tokio::process::Command::new(bin).spawn().with_context(|| format!("starting `{}`", bin.display()))?;
        std::fs::write(dir.join("service.pid"), format!("{}\n", child.id().unwrap_or_default()))?;
        let started = Instant::now();
        let status = tokio::select! {
            status = child.wait() => status?,
            _ = term.recv() => return stop(dir, child).await,
            _ = int.recv() => return stop(dir, child).await,
        };
        if status.success() {
            // The service stops with 0 only when asked to: nothing to restart.
            let _ = std::fs::remove_file(dir.join("service.pid"));
            return Ok(0);
        }
        streak = if started.elapsed() > Duration::from_secs(60) { 1 } else { streak + 1 };
        rec.restarts += 1;
        rec.last_exit = Some(match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("signal {sig}"),
            _ => "unknown".into(),
        });
        rec.at = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).ok();
        std::fs::write(dir.join("supervisor.json"), serde_json::to_string(&rec)?)?;
        tokio::select! {
            () = tokio::time::sleep(backoff(streak)) => {}
            _ = term.recv() => return Ok(0),
            _ = int.recv() => return Ok(0),
        }
    }
}

/// Passes SIGTERM on and waits for the service to drain (30 s, then SIGKILL).
async fn stop(dir: &Path, mut child: tokio::process::Child) -> Result<u8> {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    }
    if tokio::time::timeout(Duration::from_secs(30), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
    let _ = std::fs::remove_file(dir.join("service.pid"));
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_back_off_doubles_up_to_thirty_seconds() {
        let secs: Vec<u64> = (1..=8).map(|n| super::backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
