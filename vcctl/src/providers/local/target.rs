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
    /// The supervisors (and process groups) this run started last, one per replica.
    started: Vec<u32>,
    /// A pid file was left by a service that had stopped (seen before anything removes it).
    stale: bool,
}

impl LocalTarget {
    pub fn new(settings: &Settings) -> LocalTarget {
        let stack = LocalStack::new(settings);
        let config = config::local_hash(settings, &stack.listen());
        let stale = stack.has_stale_pid_file();
        LocalTarget { url: stack.base_url(), stack, config, log_mark: 0, lock: None, started: Vec::new(), stale }
    }

    fn stop(&self, p: &Printer) -> Result<()> {
        // Supervisors, not the service's pid: a supervisor waiting to restart runs no service.
        if !self.stack.any_alive() {
            return Ok(());
        }
        let step = p.step("stopping the running release");
        self.stack.stop(Duration::from_secs(30))?;
        step.done(self.stack.current().map(|r| r.name).unwrap_or_default());
        Ok(())
    }

    /// `db restore` on PostgreSQL: an archive restored beside the serving database, then
    /// swapped in with the service stopped around the swap; an embedded store's events moved
    /// in through the API.
    async fn pg_restore(&mut self, c: &super::deps::Cluster, file: &std::path::Path, p: &Printer) -> Result<()> {
        let password = self.stack.db_password()?;
        if let super::pg_store::Archive::Embedded = super::pg_store::kind(file)? {
            return self.move_in(c, &password, file, p).await;
        }
        let step = p.step("restoring the archive into a new database (the service keeps serving)");
        super::pg_store::restore_beside(c, &password, file)?;
        step.done("");
        self.stop(p)?;
        let step = p.step("swapping the restored database in");
        super::pg_store::swap(c, &password)?;
        step.done("the replaced one kept as vehicleconnect_previous");
        if self.stack.current().is_some() {
            self.log_mark = self.stack.log_len();
            self.started = self.stack.start()?;
        }
        Ok(())
    }

    /// An embedded store's events into an empty PostgreSQL database, through the running
    /// service's API (it stores, partitions and counts them as it does any event).
    async fn move_in(
        &mut self,
        c: &super::deps::Cluster,
        password: &str,
        file: &std::path::Path,
        p: &Printer,
    ) -> Result<()> {
        let held = super::pg_store::events(c, password)?;
        if held > 0 {
            return Err(Failure::invalid(
                format!("the stack's PostgreSQL holds {held} events already; moving an embedded store's events in would mix them"),
                Some("move them into a new stack (`vcctl up` of a stack file with `database: postgres`), whose database is empty".into()),
            )
            .into());
        }
        let client = crate::http_client::client();
        let url = format!("{}/api/events", self.url);
        let token = self.stack.ingest_token()?;
        // Five minutes inside the retention: the service refuses what is past it.
        let keep = self.stack.retention().saturating_sub(Duration::from_secs(300));
        let cutoff = (time::OffsetDateTime::now_utc() - keep).unix_timestamp_nanos() / 1000;
        let bar = p.bar(0, "  moving events {pos} {per_sec} {elapsed}");
        let send = |lines: String, n: usize| -> Result<()> {
            let mut req = client.post(&url).header("content-type", "application/x-ndjson").body(lines);
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            let handle = tokio::runtime::Handle::current();
            let answer = tokio::task::block_in_place(|| handle.block_on(req.send()))?;
            let status = answer.status();
            if status.as_u16() != 201 {
                let body = tokio::task::block_in_place(|| handle.block_on(answer.text())).unwrap_or_default();
                anyhow::bail!("the service answered {status} to a batch: {body:.300}");
            }
            bar.inc(n as u64);
            Ok(())
        };
        let (moved, skipped) = super::pg_store::each_batch(file, self.stack.name(), cutoff as i64, 10_000, send)?;
        bar.finish_and_clear();
        p.info(format!("moved {moved} events in through the service's API ({skipped} past the retention left out)"));
        Ok(())
    }

    /// One look at the serving process: its answer, or why there is none.
    async fn look(&self, client: &reqwest::Client, want: Option<(&str, &str)>, timeout: Duration) -> Look {
        // A start whose service exited (the supervisor restarts it, and counts) is dead,
        // whatever answers on the port.
        if self.stack.alive() == Some(false) || self.stack.restarts().restarts > 0 {
            return Look::Dead(Unhealthy::Exited(self.stack.log_since(self.log_mark, 15)));
        }
        // Every replica answers healthy with the release wanted, each from the process its
        // supervisor runs now (0: none runs); the first one's answer is the look's.
        let mut first = None;
        for (name, port) in self.stack.replicas() {
            let url = self.stack.url_of(port);
            let pid = if name == "service" { self.stack.running_pid() } else { self.stack.pid_of(&name) };
            let expected = (!self.started.is_empty()).then(|| pid.unwrap_or(0));
            let look = match health::status(client, &url).await {
                Ok((code, s)) if health::is_healthy(code, &s) => health::judge(s, want, expected, &url),
                Ok((code, s)) => {
                    let last = format!("{name}: HTTP {code}, database {}", s.database);
                    Look::NotYet(Unhealthy::Timeout { url, waited: timeout, last })
                }
                Err(last) => Look::NotYet(Unhealthy::Timeout { url, waited: timeout, last }),
            };
            match look {
                Look::Healthy(_) if first.is_none() => first = Some(look),
                Look::Healthy(_) => {}
                other => return other,
            }
        }
        first.expect("a stack runs one replica at least")
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
        check_no_switch(&self.stack)?;
        self.stack.ensure_deps(p).await
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
        for group in std::mem::take(&mut self.started) {
            process::stop_group(group, Duration::from_secs(10));
        }
        self.stop(p)?;
        // Before the link moves: a busy port leaves `current` as it was.
        self.stack.check_port_free()?;
        self.stack.switch(release)?;
        self.log_mark = self.stack.log_len();
        self.started = self.stack.start()?;
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
        if let Err(Unhealthy::Exited(_)) = &checked {
            for group in &self.started {
                process::stop_group(*group, Duration::from_secs(5));
            }
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
        if let Some(c) = self.stack.cluster()? {
            let step = p.step("pg_dump of the stack's PostgreSQL (the service keeps serving)");
            let bytes = super::pg_store::dump(&c, &self.stack.db_password()?, out)?;
            step.done("");
            return Ok(bytes);
        }
        let step = p.step("copying the embedded store (one consistent snapshot; the service keeps serving)");
        let bytes = super::store::dump(&self.stack.data_dir(), out)?;
        step.done("");
        Ok(bytes)
    }

    fn check_dump(&self, file: &std::path::Path) -> Result<()> {
        match self.stack.local.database {
            crate::stack::LocalDatabase::Postgres { .. } => super::pg_store::kind(file).map(|_| ()),
            crate::stack::LocalDatabase::Embedded => super::store::check(file),
        }
    }

    fn kept_database(&self) -> String {
        match self.stack.local.database {
            crate::stack::LocalDatabase::Postgres { .. } => "as database `vehicleconnect_previous`".into(),
            crate::stack::LocalDatabase::Embedded => {
                format!("as `{}.previous`", self.stack.data_dir().join(super::store::FILE).display())
            }
        }
    }

    async fn db_restore(&mut self, file: &std::path::Path, p: &Printer) -> Result<()> {
        if let Some(c) = self.stack.cluster()? {
            return self.pg_restore(&c, file, p).await;
        }
        self.stop(p)?;
        let step = p.step("swapping the store in");
        let previous = super::store::swap_in(&self.stack.data_dir(), file)?;
        step.done(format!("the replaced one kept as {}", previous.display()));
        if self.stack.current().is_some() {
            self.log_mark = self.stack.log_len();
            self.started = self.stack.start()?;
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
        let pg = self.stack.dir.join("pg");
        if !keep_data && pg.join("data").is_dir() {
            lines.push(format!(
                "the stored events: the stack's PostgreSQL cluster, {:.1} MiB in `{}` (stopped first)",
                dir_size(&pg) as f64 / 1_048_576.0,
                pg.display()
            ));
        } else if !keep_data {
            let bytes = dir_size(&self.stack.data_dir());
            lines.push(format!(
                "the stored events: the embedded store, {:.1} MiB in `{}`",
                bytes as f64 / 1_048_576.0,
                self.stack.data_dir().display()
            ));
        }
        let prometheus = self.stack.dir.join("prometheus");
        if prometheus.is_dir() {
            lines.push(format!("the stack's Prometheus and its samples in `{}`", prometheus.display()));
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

/// A local stack does not change its database in place: the events in the one it has would
/// be left behind. Refused, with the way to move them.
fn check_no_switch(stack: &LocalStack) -> Result<()> {
    let embedded = stack.data_dir().join(super::store::FILE);
    let cluster = stack.dir.join("pg/data/PG_VERSION");
    let (has, says) = match stack.local.database {
        crate::stack::LocalDatabase::Postgres { .. } if embedded.is_file() => ("the embedded store", "postgres"),
        crate::stack::LocalDatabase::Embedded if cluster.is_file() => ("a PostgreSQL cluster", "embedded"),
        _ => return Ok(()),
    };
    let name = stack.name();
    Err(Failure::invalid(
        format!(
            "stack `{name}` keeps its events in {has} (under `{}`), and its file now says \
             `local.database: {says}`: a stack does not change its database in place",
            stack.dir.display()
        ),
        Some(format!(
            "put `local.database` back, then move the events to a new stack with the other database: \
             `vcctl db dump --stack {name} > {name}.dump`, `vcctl up --stack NEW`, `vcctl db restore {name}.dump --stack NEW`"
        )),
    )
    .into())
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
    let mut lines = status_lines(stack, stale, pid, health.as_ref(), &kpis, &restarts);
    let processes = process_views(stack, &client).await;
    if processes.len() > 1 {
        lines.push("processes:".into());
        for p in &processes {
            let pid = p.pid.map_or_else(|| "not running".to_string(), |pid| format!("pid {pid}"));
            let restarts = if p.restarts > 0 { format!(", {} restart(s)", p.restarts) } else { String::new() };
            lines.push(format!("  {:<12} {pid:<12} 127.0.0.1:{:<6} {}{restarts}", p.name, p.port, p.health));
        }
    }
    json["processes"] = serde_json::to_value(&processes)?;
    let healthy = healthy && processes.iter().all(|p| p.health == "healthy");
    json["healthy"] = healthy.into();
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

/// A process of the stack with its health, as `status` shows it.
#[derive(serde::Serialize)]
struct ProcessHealth {
    #[serde(flatten)]
    process: process::ProcessView,
    /// `healthy`, `unhealthy` or `not running`.
    health: String,
}

impl std::ops::Deref for ProcessHealth {
    type Target = process::ProcessView;
    fn deref(&self) -> &process::ProcessView {
        &self.process
    }
}

/// Each process and whether it answers: a service's `/api/status`, PostgreSQL's
/// `pg_isready`, Prometheus's `/-/ready`.
async fn process_views(stack: &LocalStack, client: &reqwest::Client) -> Vec<ProcessHealth> {
    let mut out = Vec::new();
    for view in stack.processes() {
        let up = match (view.pid, view.name.as_str()) {
            (None, _) => None,
            (Some(_), "db") => Some(stack.cluster().ok().flatten().is_some_and(|c| c.is_ready())),
            (Some(_), "prometheus") => Some(
                client
                    .get(format!("http://127.0.0.1:{}/-/ready", view.port))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
            ),
            (Some(_), _) => Some(matches!(
                health::status(client, &stack.url_of(view.port)).await,
                Ok((code, s)) if health::is_healthy(code, &s)
            )),
        };
        let health = match up {
            None => "not running",
            Some(true) => "healthy",
            Some(false) => "unhealthy",
        };
        out.push(ProcessHealth { process: view, health: health.into() });
    }
    out
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

/// `logs --process NAME`: that process's log, as `logs` shows the service's.
pub async fn process_logs(stack: &LocalStack, name: &str, lines: usize, follow: bool, json: bool) -> Result<u8> {
    let known = stack.processes().iter().any(|p| p.name == name);
    if !known {
        let names: Vec<String> = stack.processes().into_iter().map(|p| p.name).collect();
        return Err(Failure::invalid(
            format!("stack `{}` runs no process `{name}` (it runs: {})", stack.name(), names.join(", ")),
            Some("`local.database: postgres` runs `db`, `local.prometheus: true` runs `prometheus`".into()),
        )
        .into());
    }
    let path = if name == "service" { stack.log_file() } else { stack.log_of(name) };
    log_file(&path, lines, follow, json).await
}

/// The service log on stdout, the last `lines` of it, then (with `follow`) what comes;
/// with `json`, each line as `{"line": ...}` (NDJSON).
async fn logs(stack: &LocalStack, lines: usize, follow: bool, json: bool) -> Result<u8> {
    log_file(&stack.log_file(), lines, follow, json).await
}

async fn log_file(path: &std::path::Path, lines: usize, follow: bool, json: bool) -> Result<u8> {
    let emit = |bytes: &[u8]| crate::printer::say_out(as_json_lines(bytes, json));
    let path = path.to_path_buf();
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
    // After the service, which drains into the database.
    if stack.stop_deps(Duration::from_secs(30)) {
        p.detail("stopped the stack's PostgreSQL and Prometheus");
    }
    if keep_data {
        for entry in std::fs::read_dir(&stack.dir)? {
            let path = entry?.path();
            if path == stack.data_dir() || path.ends_with("secrets") || path.ends_with("pg") {
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
