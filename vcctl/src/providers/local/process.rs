//! The local provider: the service as a background process on this machine, with its
//! releases, pid file, log and embedded store under `.vcctl/local/<stack>/`.
//!
//! ```text
//! .vcctl/local/<stack>/
//!   releases/<UTC time>-<sha12>/vehicleconnect, release.json   (kept: deploy::prune)
//!   current -> releases/...                                      (switched atomically)
//!   service.pid, service.log, data/, secrets/ingest_token (0600)
//!   supervisor.pid, supervisor.json                             (supervise.rs: restarts a crash)
//!   service-N.*, db.*, prometheus.*                              (replicas, PostgreSQL, Prometheus:
//!                                                                 deps.rs; each its own supervisor)
//! ```

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::artifact::Artifact;
use crate::error::Failure;
use crate::release::Receipt;
use crate::settings::Settings;
use crate::stack::{LocalDatabase, LocalSettings, Provider};

use super::deps;
use super::supervise;

pub struct LocalStack {
    pub dir: PathBuf,
    pub address: String,
    pub port: u16,
    pub local: LocalSettings,
    settings: Settings,
    /// The cluster, once found: its binaries looked for and its port chosen once a run.
    cluster: std::sync::OnceLock<deps::Cluster>,
}

/// One of the stack's processes as `status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessView {
    pub name: String,
    pub pid: Option<u32>,
    pub port: u16,
    pub restarts: u32,
    pub last_exit: Option<String>,
}

impl LocalStack {
    pub fn new(settings: &Settings) -> LocalStack {
        let Provider::Local(local) = &settings.provider else { unreachable!("LocalStack for a non-local stack") };
        LocalStack {
            dir: settings.state_dir.clone(),
            address: local.listen_address.clone().unwrap_or_else(|| "127.0.0.1".into()),
            port: settings.port,
            local: local.clone(),
            settings: settings.clone(),
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// The service's processes: `service` on the stack's port, then `service-2`... on the
    /// ports after it.
    pub fn replicas(&self) -> Vec<(String, u16)> {
        (0..self.local.replicas)
            .map(|i| {
                let name = if i == 0 { "service".to_string() } else { format!("service-{}", i + 1) };
                (name, self.port + u16::from(i))
            })
            .collect()
    }

    /// The log of process `name`.
    pub fn log_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// The stack's PostgreSQL, when it runs one.
    pub fn cluster(&self) -> Result<Option<deps::Cluster>> {
        let LocalDatabase::Postgres { port } = self.local.database else { return Ok(None) };
        if let Some(c) = self.cluster.get() {
            return Ok(Some(c.clone()));
        }
        let found = deps::Cluster::of(&self.dir, port)?;
        Ok(Some(self.cluster.get_or_init(|| found).clone()))
    }

    /// The service's database login (0600 under `secrets/`), made at first use.
    pub fn db_password(&self) -> Result<String> {
        let path = self.dir.join("secrets/db_password");
        if let Ok(t) = fs::read_to_string(&path) {
            return Ok(t.trim().to_string());
        }
        fs::create_dir_all(path.parent().unwrap())?;
        let pw = random_word(40);
        deps::write_private(&path, &pw)?;
        Ok(pw)
    }

    /// The service's `DATABASE_URL` with PostgreSQL; `None` with the embedded store.
    pub fn database_url(&self) -> Result<Option<String>> {
        let Some(c) = self.cluster()? else { return Ok(None) };
        Ok(Some(c.url(&self.db_password()?)))
    }

    /// The stack's name.
    pub fn name(&self) -> &str {
        &self.settings.stack
    }

    /// How long the service keeps events.
    pub fn retention(&self) -> Duration {
        self.settings.retention
    }

    pub fn base_url(&self) -> String {
        self.url_of(self.port)
    }

    /// Where a service process on `port` answers from this machine: the listen address
    /// (`0.0.0.0` is reached on 127.0.0.1).
    pub fn url_of(&self, port: u16) -> String {
        let host = if self.address == "0.0.0.0" { "127.0.0.1" } else { &self.address };
        format!("http://{host}:{port}")
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("service.pid")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("service.log")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn releases_dir(&self) -> PathBuf {
        self.dir.join("releases")
    }

    fn current_link(&self) -> PathBuf {
        self.dir.join("current")
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir.join("secrets/ingest_token")
    }

    /// The ingest token, created at first use (0600) when the stack asks for one.
    pub fn ingest_token(&self) -> Result<Option<String>> {
        if !self.settings.ingest_token {
            return Ok(None);
        }
        let path = self.token_file();
        if let Ok(t) = fs::read_to_string(&path) {
            return Ok(Some(t.trim().to_string()));
        }
        fs::create_dir_all(path.parent().unwrap())?;
        let token = random_word(40);
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        std::io::Write::write_all(&mut f, token.as_bytes())?;
        Ok(Some(token))
    }

    /// The running service's pid. A pid file whose process is gone (or is another program)
    /// is stale: it is removed, and `None` returned.
    pub fn running_pid(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.pid_file()).ok()?.trim().parse().ok()?;
        if process_is_ours(pid, &self.dir) {
            return Some(pid);
        }
        let _ = fs::remove_file(self.pid_file());
        None
    }

    pub fn has_stale_pid_file(&self) -> bool {
        self.pid_file().exists() && self.running_pid().is_none()
    }

    /// Releases, oldest first.
    pub fn releases(&self) -> Vec<Receipt> {
        let Ok(entries) = fs::read_dir(self.releases_dir()) else {
            return Vec::new();
        };
        let mut out: Vec<Receipt> = entries
            .filter_map(|e| {
                let path = e.ok()?.path().join("release.json");
                serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn current(&self) -> Option<Receipt> {
        let target = fs::read_link(self.current_link()).ok()?;
        let name = target.file_name()?.to_str()?.to_string();
        self.releases().into_iter().find(|r| r.name == name)
    }

    pub fn write_receipt(&self, r: &Receipt) -> Result<()> {
        let path = self.releases_dir().join(&r.name).join("release.json");
        fs::write(&path, serde_json::to_string_pretty(r)?).with_context(|| format!("writing `{}`", path.display()))
    }

    /// Copies the artifact in as the release `receipt` names: to a temporary name, checked,
    /// then renamed, so a half-copied binary never looks installed.
    pub fn install(&self, artifact: &Artifact, receipt: &Receipt) -> Result<()> {
        let dir = self.releases_dir().join(&receipt.name);
        fs::create_dir_all(&dir).with_context(|| format!("creating `{}`", dir.display()))?;
        let tmp = dir.join("vehicleconnect.tmp");
        fs::copy(&artifact.path, &tmp).with_context(|| format!("copying `{}`", artifact.path.display()))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
        let copied = {
            use sha2::Digest;
            format!("{:x}", sha2::Sha256::digest(fs::read(&tmp)?))
        };
        if copied != artifact.sha256 {
            bail!(
                "the copy of `{}` does not match its hash; the artifact changed while copying",
                artifact.path.display()
            );
        }
        fs::rename(&tmp, dir.join("vehicleconnect"))?;
        self.write_receipt(receipt)
    }

    /// Deletes a release (never the current one: the caller's policy keeps it).
    pub fn remove(&self, release: &str) -> Result<()> {
        if self.current().is_some_and(|c| c.name == release) {
            bail!("release {release} serves: it cannot be removed");
        }
        let dir = self.releases_dir().join(release);
        fs::remove_dir_all(&dir).with_context(|| format!("removing `{}`", dir.display()))
    }

    /// Points `current` at `release`, atomically (a new link renamed over the old one).
    pub fn switch(&self, release: &str) -> Result<()> {
        let tmp = self.dir.join("current.tmp");
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(Path::new("releases").join(release), &tmp)?;
        fs::rename(&tmp, self.current_link()).context("switching the `current` link")?;
        Ok(())
    }

    /// Refuses a port another program holds (call it with the service stopped): each
    /// replica's.
    pub fn check_port_free(&self) -> Result<()> {
        for (_, port) in self.replicas() {
            if std::net::TcpListener::bind((self.address.as_str(), port)).is_err() {
                return Err(Failure::invalid(
                    format!("port {port} on {} is already in use by another program", self.address),
                    Some("stop it, or pick another port with --port or `service.port` in the stack file".to_string()),
                )
                .into());
            }
        }
        Ok(())
    }

    /// The address the (first) service listens on.
    pub fn listen(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }

    /// Starts `command` as process `name` in the background, detached from this terminal,
    /// under vcctl's supervisor (`supervise.rs`), which restarts it when it crashes; its
    /// output goes to `log`. vcctl's own `VC_*` and `DATABASE_URL` are not passed on: the
    /// process gets `env` only. Returns the supervisor's pid: its process group holds it.
    fn spawn(&self, name: &str, how: &Supervised, env: &[(String, String)], log: &Path) -> Result<u32> {
        let f = supervise::files(&self.dir, name);
        let _ = fs::remove_file(&f.pid);
        let _ = fs::remove_file(&f.record);
        let log = OpenOptions::new().create(true).append(true).open(log)?;
        let mut cmd = std::process::Command::new(std::env::current_exe().context("finding vcctl itself")?);
        cmd.arg("supervise").arg("--dir").arg(&self.dir).args(["--name", name, "--stop-signal", how.stop_signal]);
        if let Some(user) = &how.user {
            cmd.args(["--user", user]);
        }
        cmd.arg("--").args(&how.command);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("VC_") || k.starts_with("VCCTL_") || k == "DATABASE_URL" {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: Ctrl-C in this terminal does not reach it.
            .process_group(0);
        let child = cmd.spawn().with_context(|| format!("starting {name} under vcctl's supervisor"))?;
        let pid = child.id();
        fs::write(&f.supervisor, format!("{pid}\n"))?;
        // The supervisor writes the program's pid as it starts it.
        let started = Instant::now();
        while !f.pid.exists() && process_alive(pid) && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(pid)
    }

    /// Starts `current` in the background, one process per replica, each under vcctl's
    /// supervisor. Returns the supervisors' pids: their process groups hold the service.
    pub fn start(&self) -> Result<Vec<u32>> {
        let bin = self.current_link().join("vehicleconnect");
        self.check_port_free()?;
        fs::create_dir_all(self.data_dir())?;
        let database = self.database_url()?;
        let mut env = vec![
            ("VC_KPI_INTERVAL".to_string(), humantime::format_duration(self.settings.kpi_interval).to_string()),
            ("VC_RETENTION".to_string(), humantime::format_duration(self.settings.retention).to_string()),
        ];
        if let Some(token) = self.ingest_token()? {
            env.push(("VC_INGEST_TOKEN".into(), token));
        }
        if let Some(url) = database {
            env.push(("DATABASE_URL".into(), url));
        }
        env.extend(self.settings.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let how = Supervised { command: vec![bin.into()], user: None, stop_signal: "TERM" };
        let mut pids = Vec::new();
        for (i, (name, port)) in self.replicas().into_iter().enumerate() {
            let data = if i == 0 { self.data_dir() } else { self.dir.join(format!("data-{}", i + 1)) };
            fs::create_dir_all(&data)?;
            let mut env = env.clone();
            env.push(("VC_LISTEN".into(), format!("{}:{port}", self.address)));
            env.push(("VC_DATA_DIR".into(), data.display().to_string()));
            let log = if i == 0 { self.log_file() } else { self.log_of(&name) };
            pids.push(self.spawn(&name, &how, &env, &log)?);
        }
        Ok(pids)
    }

    /// The supervisor of process `name`, when one runs.
    fn supervisor_of(&self, name: &str) -> Option<u32> {
        let pid: u32 = fs::read_to_string(supervise::files(&self.dir, name).supervisor).ok()?.trim().parse().ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let ours = cmdline.split(|b| *b == 0).any(|a| Path::new(std::ffi::OsStr::from_bytes(a)).starts_with(&self.dir));
        (process_alive(pid) && ours).then_some(pid)
    }

    /// The pid of process `name`, while its supervisor runs it.
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        let pid: u32 = fs::read_to_string(supervise::files(&self.dir, name).pid).ok()?.trim().parse().ok()?;
        (self.supervisor_of(name).is_some() && process_alive(pid)).then_some(pid)
    }

    /// How many times the supervisors restarted the service's replicas since they started
    /// them (the last exit is the latest of theirs).
    pub fn restarts(&self) -> supervise::Restarts {
        let mut all = supervise::Restarts::default();
        for (name, _) in self.replicas() {
            let r = supervise::record(&self.dir, &name);
            all.restarts += r.restarts;
            if r.at > all.at {
                (all.last_exit, all.at) = (r.last_exit, r.at);
            }
        }
        all
    }

    /// The service's replicas that have supervisors, the wanted ones and any left by a
    /// stack file that asked for more.
    fn replica_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.replicas().into_iter().map(|(n, _)| n).collect();
        for entry in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file.strip_suffix(".supervisor.pid").filter(|n| n.starts_with("service-"))
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_string());
            }
        }
        names
    }

    /// Stops the running service (every replica) and everything it started: SIGTERM to each
    /// supervisor's process group, then SIGKILL after `grace`.
    pub fn stop(&self, grace: Duration) -> Result<bool> {
        let mut stopped = false;
        for name in self.replica_names() {
            // A service started before the supervisor existed is a group of its own.
            let group = self.supervisor_of(&name).or_else(|| (name == "service").then(|| self.running_pid()).flatten());
            stopped |= self.end(&name, group, grace);
        }
        Ok(stopped)
    }

    /// Ends process `name`'s process group `group` (when it runs) and forgets its pid files;
    /// whether it ran.
    fn end(&self, name: &str, group: Option<u32>, grace: Duration) -> bool {
        if let Some(group) = group {
            stop_group(group, grace);
        }
        let f = supervise::files(&self.dir, name);
        let _ = fs::remove_file(f.pid);
        let _ = fs::remove_file(f.supervisor);
        group.is_some()
    }

    /// Whether every replica's supervisor runs.
    pub fn alive(&self) -> Option<bool> {
        let all = self
            .replicas()
            .iter()
            .all(|(n, _)| self.supervisor_of(n).is_some() || (n == "service" && self.running_pid().is_some()));
        Some(all)
    }

    /// Whether any replica's supervisor runs.
    pub fn any_alive(&self) -> bool {
        self.replica_names().iter().any(|n| self.supervisor_of(n).is_some()) || self.running_pid().is_some()
    }

    /// Starts what the service needs and is not running: PostgreSQL (made at first use,
    /// waited for until it takes connections, its database made) and Prometheus.
    pub async fn ensure_deps(&self, p: &crate::printer::Printer) -> Result<()> {
        if let Some(c) = self.cluster()? {
            let password = self.db_password()?;
            if c.ensure(&password)? {
                p.detail(format!("made a PostgreSQL cluster in {}", c.data().display()));
            }
            if self.supervisor_of("db").is_none() {
                c.prepare_run()?;
                let how = Supervised { command: c.command(), user: c.user.clone(), stop_signal: "INT" };
                self.spawn("db", &how, &[], &self.log_of("db"))?;
            }
            let ready = c.wait_ready(Duration::from_secs(60));
            p.doing(&format!("PostgreSQL on 127.0.0.1:{}", c.port), ready).await?;
            c.ensure_database(&password)?;
        }
        if let Some(port) = self.local.prometheus {
            self.ensure_prometheus(port, p).await?;
        }
        Ok(())
    }

    /// Prometheus on 127.0.0.1:`port`, scraping every replica with production's rules; a
    /// changed configuration restarts it.
    async fn ensure_prometheus(&self, port: u16, p: &crate::printer::Printer) -> Result<()> {
        let bin = deps::prometheus_bin()?;
        let dir = self.dir.join("prometheus");
        fs::create_dir_all(dir.join("data"))?;
        let rules = dir.join("rules.yml");
        let targets: Vec<String> = self
            .replicas()
            .iter()
            .map(|(_, port)| self.url_of(*port).trim_start_matches("http://").to_string())
            .collect();
        let config = deps::prometheus_config(self.name(), &targets, &rules, port);
        let changed = fs::read_to_string(dir.join("prometheus.yml")).ok().as_deref() != Some(config.as_str())
            || fs::read_to_string(&rules).ok().as_deref() != Some(deps::RULES);
        fs::write(&rules, deps::RULES)?;
        fs::write(dir.join("prometheus.yml"), &config)?;
        match self.supervisor_of("prometheus") {
            Some(group) if changed => stop_group(group, Duration::from_secs(10)),
            Some(_) => return Ok(()),
            None => {}
        }
        let command: Vec<std::ffi::OsString> = vec![
            bin.into(),
            format!("--config.file={}", dir.join("prometheus.yml").display()).into(),
            format!("--storage.tsdb.path={}", dir.join("data").display()).into(),
            format!("--web.listen-address=127.0.0.1:{port}").into(),
            "--storage.tsdb.retention.time=7d".into(),
        ];
        let how = Supervised { command, user: None, stop_signal: "TERM" };
        self.spawn("prometheus", &how, &[], &self.log_of("prometheus"))?;
        let ready = wait_http(format!("http://127.0.0.1:{port}/-/ready"), Duration::from_secs(60));
        p.doing(&format!("Prometheus on 127.0.0.1:{port}"), ready).await
    }

    /// Stops Prometheus, then PostgreSQL (after the service: it drains into the database).
    pub fn stop_deps(&self, grace: Duration) -> bool {
        let mut stopped = false;
        for name in ["prometheus", "db"] {
            stopped |= self.end(name, self.supervisor_of(name), grace);
        }
        stopped
    }

    /// Every process of the stack, as `status` shows them.
    pub fn processes(&self) -> Vec<ProcessView> {
        let mut out: Vec<(String, u16)> = self.replicas();
        if let Ok(Some(c)) = self.cluster() {
            out.push(("db".into(), c.port));
        }
        if let Some(port) = self.local.prometheus {
            out.push(("prometheus".into(), port));
        }
        out.into_iter()
            .map(|(name, port)| {
                let r = supervise::record(&self.dir, &name);
                let pid = if name == "service" { self.running_pid() } else { self.pid_of(&name) };
                ProcessView { pid, port, restarts: r.restarts, last_exit: r.last_exit, name }
            })
            .collect()
    }

    /// The log's length now: pass it to `log_since` to see only what a start wrote.
    pub fn log_len(&self) -> u64 {
        fs::metadata(self.log_file()).map(|m| m.len()).unwrap_or(0)
    }

    /// The last `n` lines written to the service log after `offset`.
    pub fn log_since(&self, offset: u64, n: usize) -> String {
        tail_after(&self.log_file(), offset, n).unwrap_or_default()
    }
}

/// How a supervisor runs its program.
struct Supervised {
    command: Vec<std::ffi::OsString>,
    user: Option<String>,
    stop_signal: &'static str,
}

/// Waits until `url` answers 200, for at most `patience`.
async fn wait_http(url: String, patience: Duration) -> Result<()> {
    let client = crate::http_client::client();
    let started = Instant::now();
    loop {
        if client.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        if started.elapsed() > patience {
            bail!("{url} did not answer within {patience:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `n` random lower-case letters and digits.
fn random_word(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])).collect()
}

/// Ends process group `pgid` (a start of ours: `start` makes each its own group): SIGTERM to
/// every member, SIGKILL after `grace` to what is left. A release whose own process exited
/// leaves nothing behind this way, not even a child that holds the port.
pub fn stop_group(pgid: u32, grace: Duration) {
    signal_group(pgid, "TERM");
    let started = Instant::now();
    while !group_members(pgid).is_empty() {
        if started.elapsed() > grace {
            signal_group(pgid, "KILL");
            std::thread::sleep(Duration::from_millis(200));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal_group(pgid: u32, sig: &str) {
    let group = format!("-{pgid}");
    let _ = std::process::Command::new("kill")
        .args([&format!("-{sig}"), "--", &group])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The live (not zombie) processes of process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            // After the command's `)`: state, ppid, pgrp, ...
            let fields: Vec<&str> =
                stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
            fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str())
        })
        .collect()
}

/// Alive and not a zombie.
fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Alive, and running a program from this stack's directory (a reused pid is not ours).
/// The command line, not `/proc/PID/exe`, says which: for a script the executable is the
/// interpreter, while its path is still an argument.
fn process_is_ours(pid: u32, dir: &Path) -> bool {
    if !process_alive(pid) {
        return false;
    }
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let canonical = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    cmdline
        .split(|b| *b == 0)
        .take(2)
        .map(|arg| Path::new(std::ffi::OsStr::from_bytes(arg)))
        .any(|arg| arg.starts_with(dir) || arg.starts_with(&canonical))
}

/// The last `n` lines of a file, reading at most the last 256 KiB.
pub fn tail(path: &Path, n: usize) -> Result<String> {
    tail_after(path, 0, n)
}

/// The last `n` lines of what a file holds after `offset`, reading at most its last 256 KiB.
fn tail_after(path: &Path, offset: u64, n: usize) -> Result<String> {
    let mut f = fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(offset.max(len.saturating_sub(256 * 1024))))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    // The window may start inside a multi-byte character: decode lossily.
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines[lines.len().saturating_sub(n)..].join("\n"))
}
