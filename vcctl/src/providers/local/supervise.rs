//! The local stack's supervisor: `vcctl supervise` (hidden), started by `process.rs` in the
//! background, one per process of the stack (the service and its replicas, and with
//! `local.database: postgres` and `local.prometheus`, PostgreSQL and Prometheus). It runs its
//! program, restarts it when it exits unasked, with back-off (1 s, doubling to 30 s; reset
//! after a minute of running), and counts the restarts for `vcctl status`. SIGTERM (or
//! SIGINT) stops both: the program gets its own stop signal (PostgreSQL's fast shutdown is
//! SIGINT), then SIGKILL after 30 s.
//!
//! ```text
//! .vcctl/local/<stack>/supervisor.pid, service.pid, supervisor.json    the service
//! .vcctl/local/<stack>/<name>.supervisor.pid, <name>.pid, <name>.supervisor.json
//!                                                      the others (service-2, db, prometheus)
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

/// What the supervisor says about its process.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Restarts {
    pub restarts: u32,
    /// How the process last exited unasked (`exit status 1`, `signal 9`).
    pub last_exit: Option<String>,
    pub at: Option<String>,
}

/// The files of process `name` in the stack's directory.
pub struct Files {
    /// The program's pid, while it runs.
    pub pid: PathBuf,
    /// The supervisor's pid (its process group holds the program).
    pub supervisor: PathBuf,
    /// Its restarts (`Restarts`).
    pub record: PathBuf,
}

/// The first service keeps the names it has always had.
pub fn files(dir: &Path, name: &str) -> Files {
    if name == "service" {
        return Files {
            pid: dir.join("service.pid"),
            supervisor: dir.join("supervisor.pid"),
            record: dir.join("supervisor.json"),
        };
    }
    Files {
        pid: dir.join(format!("{name}.pid")),
        supervisor: dir.join(format!("{name}.supervisor.pid")),
        record: dir.join(format!("{name}.supervisor.json")),
    }
}

/// The record of process `name` in `dir`, or none yet.
pub fn record(dir: &Path, name: &str) -> Restarts {
    std::fs::read_to_string(files(dir, name).record)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// The back-off before restart number `n` (1-based): 1 s, doubling, at most 30 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

/// The uid and gid of `user`, as `id` says (NSS included).
fn ids_of(user: &str) -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = std::process::Command::new("id").args([flag, user]).output()?;
        anyhow::ensure!(out.status.success(), "there is no user `{user}` on this machine");
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok((id("-u")?, id("-g")?))
}

/// What one supervisor runs (`vcctl supervise`'s arguments).
pub struct Spec {
    /// The stack's directory.
    pub dir: PathBuf,
    pub name: String,
    /// Run as this user.
    pub user: Option<String>,
    /// The signal that stops the program cleanly.
    pub stop_signal: String,
    /// The program and its arguments.
    pub command: Vec<std::ffi::OsString>,
}

/// Runs the program until SIGTERM (or SIGINT), restarting it when it exits.
pub async fn run(args: &Spec) -> Result<u8> {
    // Its signals stop the child first (below), never drop it where it stands.
    let _guard = crate::signals::Guard::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let f = files(&args.dir, &args.name);
    std::fs::write(&f.supervisor, format!("{}\n", std::process::id()))?;
    let user = args.user.as_deref().map(ids_of).transpose()?;
    let (program, rest) = args.command.split_first().context("no program to supervise")?;
    let mut rec = Restarts::default();
    let mut streak = 0;
    loop {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(rest);
        if let Some((uid, gid)) = user {
            cmd.uid(uid).gid(gid);
        }
        let mut child = cmd.spawn().with_context(|| format!("starting `{}`", Path::new(program).display()))?;
        std::fs::write(&f.pid, format!("{}\n", child.id().unwrap_or_default()))?;
        let started = Instant::now();
        let status = tokio::select! {
            status = child.wait() => status?,
            _ = term.recv() => return stop(&f, child, &args.stop_signal).await,
            _ = int.recv() => return stop(&f, child, &args.stop_signal).await,
        };
        if status.success() {
            // The program stops with 0 only when asked to: nothing to restart.
            let _ = std::fs::remove_file(&f.pid);
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
        std::fs::write(&f.record, serde_json::to_string(&rec)?)?;
        tokio::select! {
            () = tokio::time::sleep(backoff(streak)) => {}
            _ = term.recv() => return Ok(0),
            _ = int.recv() => return Ok(0),
        }
    }
}

/// Passes the stop signal on and waits for the program to end (30 s, then SIGKILL).
async fn stop(f: &Files, mut child: tokio::process::Child, sig: &str) -> Result<u8> {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status();
    }
    if tokio::time::timeout(Duration::from_secs(30), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
    let _ = std::fs::remove_file(&f.pid);
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_back_off_doubles_up_to_thirty_seconds() {
        let secs: Vec<u64> = (1..=8).map(|n| super::backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn the_first_service_keeps_its_files_and_the_others_are_named() {
        let dir = std::path::Path::new("/s");
        assert_eq!(super::files(dir, "service").supervisor, dir.join("supervisor.pid"));
        assert_eq!(super::files(dir, "db").pid, dir.join("db.pid"));
        assert_eq!(super::files(dir, "service-2").record, dir.join("service-2.supervisor.json"));
    }
}
