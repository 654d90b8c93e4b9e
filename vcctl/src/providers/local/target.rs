//! The local stack as a deploy target: one process on this machine (`local.rs`). It has no
//! room for a candidate beside the serving release (one port, one embedded store), so the
//! workflow switches and checks, and rolls back when the check fails.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use serde_json::{Value, json};

use crate::artifact::Artifact;
use crate::error::Failure;
use crate::health::{self, Look, Status, Unhealthy};
use crate::printer::Printer;
use crate::providers::local::process::{self, LocalStack, tail};
use crate::release::Receipt;
use crate::render::config;
use crate::settings::Settings;
use crate::targets::{Mark, Operations, Slot, Snapshot, StatusView, Target};

pub struct LocalTarget {
    stack: LocalStack,
    url: String,
    config: String,
    /// The log's length at the last start: its diagnosis shows only what that start wrote.
    log_mark: u64,
    lock: Option<File>,
    /// The process (and process group) this run started last.
    started: Option<u32>,
    /// A pid file was left by a service that had stopped (seen before anything removes it).
    stale: bool,
}

impl LocalTarget {
    pub fn new(settings: &Settings) -> LocalTarget {
        let stack = LocalStack::new(settings);
        let config = config::local_hash(settings, &stack.listen());
        let stale = stack.has_stale_pid_file();
        LocalTarget { url: stack.base_url(), stack, config, log_mark: 0, lock: None, started: None, stale }
    }

    fn stop(&self, p: &Printer) -> Result<()> {
        // `alive`, not the service's pid: a supervisor waiting to restart runs no service.
        if self.stack.alive() != Some(true) {
            return Ok(());
        }
        let step = p.step("stopping the running release");
        self.stack.stop(Duration::from_secs(30))?;
        step.done(self.stack.current().map(|r| r.name).unwrap_or_default());
        Ok(())
    }

    /// One look at the serving process: its answer, or why there is none.
    async fn look(&self, client: &reqwest::Client, want: Option<(&str, &str)>, timeout: Duration) -> Look {
        // A start whose service exited (the supervisor restarts it, and counts) is dead,
        // whatever answers on the port.
        if self.stack.alive() == Some(false) || self.stack.restarts().restarts > 0 {
            return Look::Dead(Unhealthy::Exited(self.stack.log_since(self.log_mark, 15)));
        }
        // The answer must come from the service the supervisor runs now (0: none runs).
        let expected = self.started.map(|_| self.stack.running_pid().unwrap_or(0));
        match health::status(client, &self.url).await {
            Ok((code, s)) if health::is_healthy(code, &s) => health::judge(s, want, expected, &self.url),
            Ok((code, s)) => {
                let last = format!("HTTP {code}, database {}", s.database);
                Look::NotYet(Unhealthy::Timeout { url: self.url.clone(), waited: timeout, last })
            }
            Err(last) => Look::NotYet(Unhealthy::Timeout { url: self.url.clone(), waited: timeout, last }),
        }
    }
}

#[async_trait(?Send)]
impl Target for LocalTarget {
    fn host(&self) -> Option<&str> {
        None
    }

    fn url(&self) -> &str {
        &self.url
    }

    fn has_candidate(&self) -> bool {
        false
    }

    async fn config_hash(&mut self) -> Result<String> {
        Ok(self.config.clone())
    }

    async fn arch(&mut self) -> Result<Option<String>> {
        Ok(None)
    }

    /// A file lock in the stack's directory: two deploys of one local stack take turns.
    async fn lock(&mut self, timeout: Duration, p: &Printer) -> Result<()> {
        std::fs::create_dir_all(&self.stack.dir)?;
        let path = self.stack.dir.join("deploy.lock");
        let file = File::options().create(true).truncate(false).write(true).open(&path)?;
        let started = Instant::now();
        let mut step = None;
        while file.try_lock().is_err() {
            if started.elapsed() >= timeout {
                let message =
                    format!("another deploy holds the lock of stack `{}` (`{}`)", self.stack.name(), path.display());
                return Err(Failure::Locked { message }.into());
            }
            step.get_or_insert_with(|| p.step(format!("waiting for the deploy lock `{}`", path.display())));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if let Some(s) = step {
            s.done("");
        }
        self.lock = Some(file);
        Ok(())
    }

    async fn unlock(&mut self) {
        self.lock = None;
    }

    async fn state(&mut self) -> Result<Snapshot> {
        std::fs::create_dir_all(&self.stack.dir)?;
        Ok(Snapshot {
            releases: self.stack.releases(),
            failed: Vec::new(),
            current: self.stack.current().map(|r| r.name),
            serving: self.stack.running_pid().is_some(),
            candidate: None,
        })
    }

    async fn clean_up(&mut self, unfinished: &[String]) -> Result<()> {
        self.remove(unfinished).await
    }

    async fn prepare(&mut self, p: &Printer) -> Result<()> {
        if self.stale {
            p.warn("found a stale pid file (the service had stopped); starting it again");
        }
        Ok(())
    }

    async fn install(&mut self, artifact: &Artifact, receipt: &Receipt, _p: &Printer) -> Result<()> {
        self.stack.install(artifact, receipt)
    }

    async fn start_candidate(&mut self, _release: &str) -> Result<Mark> {
        anyhow::bail!("the local stack checks releases in place, without a candidate")
    }

    async fn stop_candidate(&mut self) -> Result<()> {
        Ok(())
    }

    async fn switch(&mut self, release: &str, p: &Printer) -> Result<Mark> {
        if let Some(group) = self.started.take() {
            process::stop_group(group, Duration::from_secs(10));
        }
        self.stop(p)?;
        // Before the link moves: a busy port leaves `current` as it was.
        self.stack.check_port_free()?;
        self.stack.switch(release)?;
        self.log_mark = self.stack.log_len();
        self.started = Some(self.stack.start()?);
        Ok(self.log_mark as Mark)
    }

    async fn check(
        &mut self,
        _slot: Slot,
        want: Option<(&str, &str)>,
        _outside: bool,
        timeout: Duration,
    ) -> Result<Status, Unhealthy> {
        let client = crate::http_client::client();
        let this = &*self;
        let checked = health::wait(timeout, async || this.look(&client, want, timeout).await).await;
        // A start that died leaves nothing behind: not even a child holding the port.
        if let (Err(Unhealthy::Exited(_)), Some(group)) = (&checked, self.started) {
            process::stop_group(group, Duration::from_secs(5));
        }
        checked
    }

    async fn diagnose(&mut self, _slot: Slot, _since: Mark) -> String {
        // The check's own verdict has the log lines of the start already.
        String::new()
    }

    async fn record(&mut self, receipt: &Receipt) -> Result<()> {
        self.stack.write_receipt(receipt)
    }

    async fn set_aside(&mut self, _release: &str) -> Result<()> {
        // A failed release stays among the others, marked failed: nothing reuses it, and
        // the pruning policy removes it in its turn.
        Ok(())
    }

    async fn remove(&mut self, releases: &[String]) -> Result<()> {
        releases.iter().try_for_each(|r| self.stack.remove(r))
    }

    async fn audit(&mut self, entry: &crate::audit::Entry) -> Result<()> {
        use std::io::Write;
        let mut entry = entry.clone();
        entry.time = crate::audit::stamp(time::OffsetDateTime::now_utc());
        let path = audit_file(&self.stack.dir);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        writeln!(f, "{}", entry.line()).map_err(|e| anyhow::anyhow!("writing `{}`: {e}", path.display()))
    }

    async fn close(self: Box<Self>) {}
}

#[async_trait(?Send)]
impl Operations for LocalTarget {
    async fn status(&mut self) -> Result<StatusView> {
        status(&self.stack, self.stale).await
    }

    async fn db_dump(&mut self, out: &mut (dyn std::io::Write + Send), p: &Printer) -> Result<u64> {
        let step = p.step("copying the embedded store (one consistent snapshot; the service keeps serving)");
        let bytes = super::store::dump(&self.stack.data_dir(), out)?;
        step.done("");
        Ok(bytes)
    }

    fn check_dump(&self, file: &std::path::Path) -> Result<()> {
        super::store::check(file)
    }

    fn kept_database(&self) -> String {
        format!("as `{}.previous`", self.stack.data_dir().join(super::store::FILE).display())
    }

    async fn db_restore(&mut self, file: &std::path::Path, p: &Printer) -> Result<()> {
        self.stop(p)?;
        let step = p.step("swapping the store in");
        let previous = super::store::swap_in(&self.stack.data_dir(), file)?;
        step.done(format!("the replaced one kept as {}", previous.display()));
        if self.stack.current().is_some() {
            self.log_mark = self.stack.log_len();
            self.started = Some(self.stack.start()?);
        }
        Ok(())
    }

    async fn logs(&mut self, lines: usize, follow: bool, json: bool) -> Result<u8> {
        logs(&self.stack, lines, follow, json).await
    }

    async fn destroy(&mut self, keep_data: bool, p: &Printer) -> Result<Value> {
        destroy(&self.stack, keep_data, p)
    }

    async fn doomed(&mut self, keep_data: bool) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        if let Some(pid) = self.stack.running_pid() {
            lines.push(format!("the running service (pid {pid}, {})", self.url));
        }
        lines.push(format!(
            "{} release(s) in `{}`",
            self.stack.releases().len(),
            self.stack.dir.join("releases").display()
        ));
        if !keep_data {
            let bytes = dir_size(&self.stack.data_dir());
            lines.push(format!(
                "the stored events: the embedded store, {:.1} MiB in `{}`",
                bytes as f64 / 1_048_576.0,
                self.stack.data_dir().display()
            ));
        }
        Ok(lines)
    }

    async fn ingest_token(&mut self) -> Result<Option<String>> {
        self.stack.ingest_token()
    }

    async fn audit_log(&mut self, n: usize) -> Result<Vec<crate::audit::Entry>> {
        let text = std::fs::read_to_string(audit_file(&self.stack.dir)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        Ok(lines[lines.len().saturating_sub(n)..].iter().map(|l| crate::audit::Entry::parse(l)).collect())
    }
}

/// The local stack's audit trail: beside its directory, which `destroy` deletes.
fn audit_file(dir: &std::path::Path) -> std::path::PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.with_file_name(format!("{name}.audit.log"))
}

/// Is it running, healthy, which release, and how is traffic doing.
async fn status(stack: &LocalStack, stale: bool) -> Result<StatusView> {
    let pid = stack.running_pid();
    let base = stack.base_url();
    let client = crate::http_client::client();
    let health = match pid {
        Some(_) => health::status(&client, &base).await.ok(),
        None => None,
    };
    // 503 while the service rebuilds its KPIs after a start: "warming up", never zeros.
    let kpis = match &health {
        Some(_) => health::kpis_1h(&client, &base).await,
        None => health::Kpis::Unavailable,
    };
    let healthy = matches!(&health, Some((code, s)) if health::is_healthy(*code, s));
    let current = stack.current();
    let releases = stack.releases();
    let restarts = stack.restarts();
    let mut json = json!({
        "stack": stack.name(),
        "provider": "local",
        "running": pid.is_some(),
        "pid": pid,
        "healthy": healthy,
        "url": base,
        "dashboard": format!("{base}/dashboard"),
        "status": health.as_ref().map(|(_, s)| s),
        "restarts": restarts.restarts,
        "last_exit": restarts.last_exit,
        "release": current.as_ref().map(|r| &r.name),
        "releases": releases,
    });
    kpis.add_to(&mut json);
    let lines = status_lines(stack, stale, pid, health.as_ref(), &kpis, &restarts);
    let details = releases
        .iter()
        .rev()
        .map(|r| {
            let mark = if Some(&r.name) == current.as_ref().map(|c| &c.name) { "*" } else { " " };
            format!("{mark} {} {} v{}", r.name, r.verdict, r.version.as_deref().unwrap_or("?"))
        })
        .collect();
    Ok(StatusView { json, lines, details, healthy })
}

/// `vcctl status` of a local stack in words.
fn status_lines(
    stack: &LocalStack,
    stale: bool,
    pid: Option<u32>,
    health: Option<&(u16, health::Status)>,
    kpis: &health::Kpis,
    restarts: &crate::providers::local::supervise::Restarts,
) -> Vec<String> {
    let base = stack.base_url();
    let current = stack.current();
    let mut lines = Vec::new();
    match (&pid, health) {
        (None, _) => {
            lines.push(format!("service:  not running{}", if stale { " (stale pid file removed)" } else { "" }))
        }
        (Some(pid), None) => lines.push(format!("service:  running (pid {pid}) but not answering on {base}")),
        (Some(pid), Some((code, s))) => {
            lines.push(format!("service:  {} (HTTP {code}), pid {pid}, up {}s", s.status, s.uptime_s));
            lines.push(format!("version:  {} ({}), database {}", s.version, s.git_sha, s.database));
            lines.extend(health::replica_line(s));
        }
    }
    if restarts.restarts > 0 {
        lines.push(format!(
            "restarts: {} by the supervisor (last: {} at {})",
            restarts.restarts,
            restarts.last_exit.as_deref().unwrap_or("?"),
            restarts.at.as_deref().unwrap_or("?")
        ));
    }
    lines.push(format!("release:  {}", current.as_ref().map_or("none".to_string(), |r| r.name.clone())));
    lines.push(format!("url:      {base}/dashboard"));
    lines.extend(kpis.line());
    lines
}

/// The service log on stdout, the last `lines` of it, then (with `follow`) what comes;
/// with `json`, each line as `{"line": ...}` (NDJSON).
async fn logs(stack: &LocalStack, lines: usize, follow: bool, json: bool) -> Result<u8> {
    let emit = |bytes: &[u8]| crate::printer::say_out(as_json_lines(bytes, json));
    let path = stack.log_file();
    if !path.exists() {
        crate::printer::say(format!(
            "warning: no log yet at `{}`: the stack has not been started (`vcctl up`)",
            path.display()
        ));
        return Ok(1);
    }
    let text = tail(&path, lines).with_context(|| format!("reading `{}`", path.display()))?;
    // A reader that went away (`| head`) ends the command, like any Unix filter.
    if !text.is_empty() && !emit(format!("{text}\n").as_bytes()) {
        return Ok(0);
    }
    if !follow {
        return Ok(0);
    }
    let mut f = File::open(&path)?;
    let mut pos = f.seek(SeekFrom::End(0))?;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len < pos {
            // Truncated or replaced: start again from the top.
            f = File::open(&path)?;
            pos = 0;
        }
        if len > pos {
            f.seek(SeekFrom::Start(pos))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            pos += buf.len() as u64;
            if !emit(&buf) {
                return Ok(0);
            }
        }
    }
}

/// `bytes` as they are, or each of their lines as a JSON object.
fn as_json_lines(bytes: &[u8], json: bool) -> Vec<u8> {
    if !json {
        return bytes.to_vec();
    }
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| format!("{}\n", serde_json::json!({ "line": l })))
        .collect::<String>()
        .into_bytes()
}

/// The bytes of the files under `dir`.
fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Stops the service and deletes the stack's directory (all but its data with `keep_data`).
fn destroy(stack: &LocalStack, keep_data: bool, p: &Printer) -> Result<Value> {
    if !stack.dir.exists() {
        return Ok(json!({"stopped": false, "existed": false, "data": stack.data_dir()}));
    }
    let step = p.step("stopping the service");
    let stopped = stack.stop(Duration::from_secs(30))?;
    step.done(if stopped { "stopped" } else { "was not running" });
    if keep_data {
        for entry in std::fs::read_dir(&stack.dir)? {
            let path = entry?.path();
            if path == stack.data_dir() || path.ends_with("secrets") {
                continue;
            }
            if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path)?
            } else {
                std::fs::remove_file(&path)?
            }
        }
    } else {
        std::fs::remove_dir_all(&stack.dir)?;
    }
    Ok(json!({"stopped": stopped, "data": stack.data_dir()}))
}
