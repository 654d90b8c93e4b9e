//! A VehicleConnect host reached over SSH (the `ssh` provider, and the AWS stack's instance):
//! typed steps over `vc-host` (templates/host/vc-host.sh), the host side of vcctl.
//!
//! ```text
//! /opt/vehicleconnect/releases/<UTC time>-<sha12>/{vehicleconnect,release.json}
//! /opt/vehicleconnect/current -> releases/...        (one rename)
//! /opt/vehicleconnect/failed/<release>/              (failed releases, moved aside)
//! /etc/vehicleconnect/env                            (0600, made on the host)
//! /etc/systemd/system/vehicleconnect.{socket,service}
//! ```

use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::artifact::Artifact;
use crate::error::Failure;
use crate::health::Status;
use crate::printer::Printer;
use crate::release::{KEEP_RELEASES, Origin, Receipt};
use crate::settings::Settings;
use crate::ssh::{Ssh, Target};
use crate::templates;

pub struct Host {
    pub ssh: Ssh,
}

/// What is installed on the host.
#[derive(Debug, Default)]
pub struct State {
    /// Oldest first.
    pub releases: Vec<Receipt>,
    pub current: Option<String>,
    /// `systemctl is-active vehicleconnect.service`.
    pub active: String,
    /// A release under check: left by a deploy that was killed, when no deploy runs.
    pub candidate: Option<String>,
    /// `uname -m` of the host.
    pub arch: String,
}

impl State {
    pub fn current(&self) -> Option<&Receipt> {
        self.releases.iter().find(|r| Some(&r.name) == self.current.as_ref())
    }

    /// The newest good release that is not `current`: where a rollback goes.
    pub fn previous_good(&self) -> Option<&Receipt> {
        crate::release::previous_good(&self.releases, self.current.as_deref())
    }
}

/// One look at the service from the host itself.
#[derive(Debug, Clone)]
pub struct Probe {
    /// curl's exit code: 0 answered, 7 refused, 28 timed out.
    pub curl: i32,
    pub http: Option<u16>,
    pub status: Option<Status>,
    pub active_state: String,
    pub sub_state: String,
    pub restarts: u32,
    pub exit_status: i32,
    pub socket: String,
}

impl Probe {
    fn parse(text: &str) -> Probe {
        let mut p = Probe {
            curl: -1,
            http: None,
            status: None,
            active_state: String::new(),
            sub_state: String::new(),
            restarts: 0,
            exit_status: 0,
            socket: String::new(),
        };
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("curl ") {
                p.curl = v.trim().parse().unwrap_or(-1);
            } else if let Some(v) = line.strip_prefix("http ") {
                p.http = v.trim().parse().ok().filter(|c| *c != 0);
            } else if let Some(v) = line.strip_prefix("body ") {
                p.status = serde_json::from_str(v).ok();
            } else if let Some((k, v)) = line.split_once('=') {
                match k {
                    "ActiveState" => p.active_state = v.into(),
                    "SubState" => p.sub_state = v.into(),
                    "NRestarts" => p.restarts = v.parse().unwrap_or(0),
                    "ExecMainStatus" => p.exit_status = v.parse().unwrap_or(0),
                    "SocketState" => p.socket = v.into(),
                    _ => {}
                }
            }
        }
        p
    }

    /// The unit is not running and will not be, or keeps being restarted.
    pub fn exited(&self, restarts_before: u32) -> bool {
        self.active_state == "failed" || self.sub_state == "auto-restart" || self.restarts > restarts_before
    }

    pub fn healthy(&self) -> Option<&Status> {
        match (&self.http, &self.status) {
            (Some(code), Some(s)) if crate::health::is_healthy(*code, s) => Some(s),
            _ => None,
        }
    }

    /// How the service looks from the host, in a few words.
    pub fn describe(&self) -> String {
        let http = match (self.curl, self.http) {
            (0, Some(code)) => format!("HTTP {code}"),
            (7, _) => "connection refused".into(),
            (28, _) => "no answer within 2 s".into(),
            (c, _) => format!("curl exit {c}"),
        };
        format!(
            "{http}; unit {}/{} (restarts {}), socket {}",
            self.active_state, self.sub_state, self.restarts, self.socket
        )
    }
}

/// The lock of one deploy on a host, held by a `vc-host lock` on this run's SSH connection:
/// released when dropped, and by the host when this process dies however it dies.
pub struct Lock<'a> {
    child: Option<openssh::Child<&'a openssh::Session>>,
}

impl Lock<'_> {
    pub async fn release(mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin().take());
            let _ = child.wait().await;
        }
    }
}

impl Host {
    /// The SSH target of a stack's host.
    pub fn target(settings: &Settings, host: &str, user: &str, port: u16, identity: Option<&str>) -> Target {
        Target {
            host: host.to_string(),
            port,
            user: user.to_string(),
            identity: identity.map(crate::settings::expand_home),
            known_hosts: settings.state_dir.join("known_hosts"),
            host_key: None,
        }
    }

    /// Connects, retrying for up to `patience` while the host does not answer yet (a new
    /// instance booting); refused logins and host keys fail at once.
    pub async fn connect_within(target: Target, printer: &Printer, patience: Duration) -> Result<Host> {
        let started = std::time::Instant::now();
        loop {
            match Host::connect(target.clone(), printer).await {
                Ok(host) => return Ok(host),
                Err(e) if started.elapsed() < patience && e.downcast_ref::<Failure>().is_none() => {
                    printer.detail(format!("{} does not answer yet ({e:#}); retrying", target.host));
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn connect(target: Target, printer: &Printer) -> Result<Host> {
        let step = printer.step(format!("connecting to {}", target.display()));
        match Ssh::connect(target, printer).await {
            Ok(ssh) => {
                step.done("");
                Ok(Host { ssh })
            }
            Err(e) => {
                step.fail("");
                Err(e)
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.ssh.target.host
    }

    /// Takes the host's deploy lock, waiting up to `timeout` for another deploy to finish.
    pub async fn lock(&self, timeout: Duration, printer: &Printer) -> Result<Lock<'_>> {
        let origin = Origin::here();
        let holder = serde_json::json!({
            "by": origin.by,
            "from": origin.from,
            "since": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).expect("formats"),
            "pid": std::process::id(),
        })
        .to_string();
        let secs = timeout.as_secs().to_string();
        let mut child = self.ssh.spawn(&["lock", &secs, &holder]).await?;
        let stdout = child.stdout().take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut step: Option<crate::printer::Step> = None;
        while let Some(line) = lines.next_line().await? {
            if line == "LOCKED" {
                if let Some(s) = step.take() {
                    s.done("");
                }
                return Ok(Lock { child: Some(child) });
            }
            if let Some(h) = line.strip_prefix("WAITING ") {
                step = Some(printer.step(format!(
                    "waiting up to {} for the deploy lock on {}, held by {}",
                    humantime::format_duration(timeout),
                    self.name(),
                    describe_holder(h)
                )));
            }
            if let Some(h) = line.strip_prefix("BUSY ") {
                if let Some(s) = step.take() {
                    s.fail("still held");
                }
                return Err(Failure::Locked {
                    message: format!("another deploy holds the lock on {}: {}", self.name(), describe_holder(h)),
                }
                .into());
            }
        }
        let out = child.wait_with_output().await?;
        anyhow::bail!(
            "could not take the deploy lock on {}: {}",
            self.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }

    /// The state under the lock, cleaned of what a killed deploy left: its candidate still
    /// running, its unfinished (pending) releases.
    pub async fn settled_state(&self, printer: &Printer) -> Result<State> {
        let state = self.state().await?;
        let pending = state.releases.iter().any(|r| r.verdict == "pending" && Some(&r.name) != state.current.as_ref());
        if state.candidate.is_none() && !pending {
            return Ok(state);
        }
        printer.warn(format!("cleaning up after an interrupted deploy on {}", self.name()));
        for pruned in self.ssh.run(&["cleanup"]).await?.lines().filter_map(|l| l.strip_prefix("pruned ")) {
            printer.detail(format!("removed unfinished release {pruned}"));
        }
        self.state().await
    }

    pub async fn state(&self) -> Result<State> {
        let text = self.ssh.run(&["state"]).await?;
        let mut state = State::default();
        for line in text.lines() {
            if let Some(json) = line.strip_prefix("receipt ") {
                match serde_json::from_str::<Receipt>(json) {
                    Ok(r) => state.releases.push(r),
                    Err(e) => eprintln!("warning: unreadable release receipt on {}: {e}", self.name()),
                }
            } else if let Some(c) = line.strip_prefix("candidate") {
                state.candidate = Some(c.trim().to_string()).filter(|c| !c.is_empty());
            } else if let Some(c) = line.strip_prefix("current") {
                state.current = Some(c.trim().to_string()).filter(|c| !c.is_empty());
            } else if let Some(a) = line.strip_prefix("arch ") {
                state.arch = a.trim().to_string();
            } else if let Some(a) = line.strip_prefix("active ") {
                state.active = a.trim().to_string();
            }
        }
        state.releases.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(state)
    }

    /// Writes `content` to `path` on the host when it differs; true when it changed.
    async fn put(&self, path: &str, mode: &str, content: &str) -> Result<bool> {
        Ok(self.ssh.run_with_input(&["put", path, mode], content.as_bytes()).await?.trim() == "changed")
    }

    /// Everything but the release: packages, user, database, secrets, Prometheus, units.
    /// Idempotent; restarts only what changed.
    pub async fn prepare(&self, settings: &Settings, prometheus_listen: &str) -> Result<()> {
        let port = settings.port.to_string();
        let prometheus =
            templates::render(templates::PROMETHEUS, &[("stack", &settings.stack), ("service_port", &port)])?;
        let prometheus_changed = self.put("/etc/prometheus/prometheus.yml", "644", &prometheus).await?
            | self
                .put(
                    "/etc/default/prometheus",
                    "644",
                    &format!(
                        "# Written by vcctl (stack {}).\nARGS=\"--web.listen-address={prometheus_listen}\"\n",
                        settings.stack
                    ),
                )
                .await?;
        let mut units_changed = false;
        for (path, text) in templates::units(settings)? {
            units_changed |= self.put(&path, "644", &text).await?;
        }
        let yes = |b: bool| if b { "yes" } else { "no" };
        self.ssh.run(&["prepare", yes(settings.ingest_token), yes(prometheus_changed), yes(units_changed)]).await?;
        Ok(())
    }

    /// Sends the artifact as a new release (to a temporary name, checked by hash, renamed).
    pub async fn receive(&self, artifact: &Artifact, receipt: &Receipt, printer: &Printer) -> Result<()> {
        let size = std::fs::metadata(&artifact.path)?.len();
        let bar = printer.bar(size, "  uploading {bar:30} {bytes}/{total_bytes} {bytes_per_sec}");
        let json = serde_json::to_string(receipt)?;
        self.ssh.run_with_file(&["receive", &artifact.sha256, &receipt.name, &json], &artifact.path, &bar).await?;
        bar.finish_and_clear();
        Ok(())
    }

    /// Points `current` at `release` and restarts the service; returns the host's clock at
    /// the switch (for the journal lines of this start only).
    pub async fn switch(&self, release: &str) -> Result<i64> {
        Ok(since(&self.ssh.run(&["switch", release]).await?))
    }

    /// Starts `release` as the candidate, beside the serving one (loopback only); returns the
    /// host's clock at the start.
    pub async fn candidate(&self, release: &str) -> Result<i64> {
        Ok(since(&self.ssh.run(&["candidate", release]).await?))
    }

    pub async fn candidate_stop(&self) -> Result<()> {
        self.ssh.run(&["candidate-stop"]).await.map(|_| ())
    }

    /// The service `unit` (without `.service`) answering on `port`, seen from the host.
    pub async fn probe(&self, port: u16, unit: &str) -> Result<Probe> {
        Ok(Probe::parse(&self.ssh.run(&["probe", &port.to_string(), unit]).await?))
    }

    /// `systemctl status` of `unit` and its journal since `since`.
    pub async fn diagnose(&self, since: i64, unit: &str) -> String {
        match self.ssh.run(&["diagnose", &since.to_string(), unit]).await {
            Ok(text) => text,
            Err(e) => format!("(could not read the journal: {e:#})"),
        }
    }

    /// Records the release's final receipt, moves it aside when it failed, prunes old ones.
    pub async fn finish(&self, receipt: &Receipt) -> Result<Vec<String>> {
        let json = serde_json::to_string_pretty(receipt)?;
        let keep = KEEP_RELEASES.to_string();
        let out = self.ssh.run_with_input(&["finish", &receipt.name, &receipt.verdict, &keep], json.as_bytes()).await?;
        Ok(out.lines().filter_map(|l| l.strip_prefix("pruned ")).map(str::to_string).collect())
    }

    /// The ingest token the host generated, when the stack asks for one.
    pub async fn ingest_token(&self) -> Result<Option<String>> {
        let t = self.ssh.run(&["token"]).await?;
        Ok(Some(t.trim().to_string()).filter(|t| !t.is_empty()))
    }

    pub async fn logs(&self, lines: usize, follow: bool) -> Result<std::process::ExitStatus> {
        let n = lines.to_string();
        let mut args = vec!["logs", n.as_str()];
        if follow {
            args.push("follow");
        }
        self.ssh.stream(&args).await
    }

    pub async fn destroy(&self, keep_data: bool) -> Result<()> {
        self.ssh.run(&["destroy", if keep_data { "keep-data" } else { "delete-data" }]).await.map(|_| ())
    }

    pub async fn close(self) {
        self.ssh.close().await;
    }
}

/// The `since <epoch>` line vc-host prints when it starts a unit.
fn since(out: &str) -> i64 {
    out.lines().find_map(|l| l.strip_prefix("since ")).and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

fn describe_holder(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    let from = s("from");
    let from = if from == "laptop" || from == "?" { String::new() } else { format!(", {from}") };
    format!("{} since {}{from}", s("by"), s("since"))
}

/// `ssh-ed25519 AAAA...` host keys in an EC2 console output (cloud-init prints them between
/// `-----BEGIN SSH HOST KEY KEYS-----` and `-----END SSH HOST KEY KEYS-----`).
pub fn host_keys_from_console(console: &str) -> Vec<String> {
    let Some(start) = console.find("-----BEGIN SSH HOST KEY KEYS-----") else { return Vec::new() };
    let rest = &console[start..];
    let end = rest.find("-----END SSH HOST KEY KEYS-----").unwrap_or(rest.len());
    rest[..end]
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (kind, key) = (w.next()?, w.next()?);
            kind.starts_with("ssh-")
                .then(|| format!("{kind} {key}"))
                .or_else(|| kind.starts_with("ecdsa-").then(|| format!("{kind} {key}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_is_read() {
        let p = Probe::parse(
            "curl 0\nbody {\"status\":\"ok\",\"version\":\"0.1.0\",\"git_sha\":\"abc\",\"database\":\"ok\",\"uptime_s\":3}\nhttp 200\nActiveState=active\nSubState=running\nResult=success\nNRestarts=0\nExecMainStatus=0\nSocketState=active\n",
        );
        assert_eq!(p.http, Some(200));
        assert_eq!(p.healthy().map(|s| s.version.as_str()), Some("0.1.0"));
        assert!(!p.exited(0));
        let p = Probe::parse(
            "curl 7\nhttp 000\nActiveState=activating\nSubState=auto-restart\nNRestarts=2\nExecMainStatus=1\n",
        );
        assert_eq!(p.http, None);
        assert!(p.exited(0));
        assert_eq!(p.describe(), "connection refused; unit activating/auto-restart (restarts 2), socket ");
    }

    #[test]
    fn host_keys_are_read_from_the_console() {
        let console = "boot...\n-----BEGIN SSH HOST KEY KEYS-----\necdsa-sha2-nistp256 AAAAE2 root@ip\nssh-ed25519 AAAAC3 root@ip\n-----END SSH HOST KEY KEYS-----\n";
        assert_eq!(host_keys_from_console(console), vec!["ecdsa-sha2-nistp256 AAAAE2", "ssh-ed25519 AAAAC3"]);
        assert!(host_keys_from_console("nothing yet").is_empty());
    }
}
