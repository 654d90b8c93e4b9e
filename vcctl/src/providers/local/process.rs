//! The local provider: the service as a background process on this machine, with its
//! releases, pid file, log and embedded store under `.vcctl/local/<stack>/`.
//!
//! ```text
//! .vcctl/local/<stack>/
//!   releases/<UTC time>-<sha12>/vehicleconnect, release.json   (kept: deploy::prune)
//!   current -> releases/...                                      (switched atomically)
//!   service.pid, service.log, data/, secrets/ingest_token (0600)
//!   supervisor.pid, supervisor.json                             (supervise.rs: restarts a crash)
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
use crate::stack::Provider;

pub struct LocalStack {
    pub dir: PathBuf,
    pub address: String,
    pub port: u16,
    settings: Settings,
}

impl LocalStack {
    pub fn new(settings: &Settings) -> LocalStack {
        let Provider::Local(local) = &settings.provider else { unreachable!("LocalStack for a non-local stack") };
        LocalStack {
            dir: settings.state_dir.clone(),
            address: local.listen_address.clone().unwrap_or_else(|| "127.0.0.1".into()),
            port: settings.port,
            settings: settings.clone(),
        }
    }

    /// The stack's name.
    pub fn name(&self) -> &str {
        &self.settings.stack
    }

    pub fn base_url(&self) -> String {
        let host = if self.address == "0.0.0.0" { "127.0.0.1" } else { &self.address };
        format!("http://{host}:{}", self.port)
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
        let token: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..40).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])).collect()
        };
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

    /// Refuses a port another program holds (call it with the service stopped).
    pub fn check_port_free(&self) -> Result<()> {
        if std::net::TcpListener::bind((self.address.as_str(), self.port)).is_err() {
            return Err(Failure::invalid(
                format!("port {} on {} is already in use by another program", self.port, self.address),
                Some("stop it, or pick another port with --port or `service.port` in the stack file".to_string()),
            )
            .into());
        }
        Ok(())
    }

    /// The address the service listens on.
    pub fn listen(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }

    /// Starts `current` in the background, detached from this terminal, under vcctl's
    /// supervisor (`supervise.rs`), which restarts it when it crashes. Returns the
    /// supervisor's pid: its process group holds the service.
    pub fn start(&self) -> Result<u32> {
        let bin = self.current_link().join("vehicleconnect");
        self.check_port_free()?;
        let addr = self.listen();
        fs::create_dir_all(self.data_dir())?;
        let _ = fs::remove_file(self.pid_file());
        let _ = fs::remove_file(self.dir.join("supervisor.json"));
        let log = OpenOptions::new().create(true).append(true).open(self.log_file())?;
        let mut cmd = std::process::Command::new(std::env::current_exe().context("finding vcctl itself")?);
        cmd.arg("supervise").arg("--dir").arg(&self.dir).arg(&bin);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("VC_") || k.starts_with("VCCTL_") || k == "DATABASE_URL" {
                cmd.env_remove(k);
            }
        }
        cmd.env("VC_LISTEN", &addr)
            .env("VC_DATA_DIR", self.data_dir())
            .env("VC_KPI_INTERVAL", humantime::format_duration(self.settings.kpi_interval).to_string())
            .env("VC_RETENTION", humantime::format_duration(self.settings.retention).to_string())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: Ctrl-C in this terminal does not reach it.
            .process_group(0);
        if let Some(token) = self.ingest_token()? {
            cmd.env("VC_INGEST_TOKEN", token);
        }
        cmd.envs(self.settings.env.iter().map(|(k, v)| (k, v)));
        let child = cmd.spawn().with_context(|| format!("starting `{}` under vcctl's supervisor", bin.display()))?;
        let pid = child.id();
        fs::write(self.dir.join("supervisor.pid"), format!("{pid}\n"))?;
        // The supervisor writes the service's pid as it starts it.
        let started = Instant::now();
        while !self.pid_file().exists() && process_alive(pid) && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(pid)
    }

    /// The supervisor of this stack, when one runs.
    fn supervisor_pid(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.dir.join("supervisor.pid")).ok()?.trim().parse().ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let ours = cmdline.split(|b| *b == 0).any(|a| Path::new(std::ffi::OsStr::from_bytes(a)).starts_with(&self.dir));
        (process_alive(pid) && ours).then_some(pid)
    }

    /// How many times the supervisor restarted the service since it started it.
    pub fn restarts(&self) -> crate::providers::local::supervise::Restarts {
        crate::providers::local::supervise::record(&self.dir)
    }

    /// Stops the running service and everything it started: SIGTERM to its process group,
    /// then SIGKILL after `grace`.
    pub fn stop(&self, grace: Duration) -> Result<bool> {
        // The supervisor's group holds it and the service; a service started before the
        // supervisor existed is a group of its own.
        let Some(group) = self.supervisor_pid().or_else(|| self.running_pid()) else {
            return Ok(false);
        };
        stop_group(group, grace);
        let _ = fs::remove_file(self.pid_file());
        let _ = fs::remove_file(self.dir.join("supervisor.pid"));
        Ok(true)
    }

    pub fn alive(&self) -> Option<bool> {
        Some(self.supervisor_pid().is_some() || self.running_pid().is_some())
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
