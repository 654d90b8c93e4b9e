//! A VehicleConnect host reached over SSH (the `ssh` provider, and the AWS stack's instance):
//! typed steps over `vc-host` (templates/host/vc-host.sh), the host side of vcctl, whose
//! answers `protocol` reads. The host does what it is told; `deploy` decides.
//!
//! ```text
//! /opt/vehicleconnect/bin/vc-host                    (installed at every connection)
//! /opt/vehicleconnect/releases/<UTC time>-<sha12>/{vehicleconnect,release.json}
//! /opt/vehicleconnect/current -> releases/...        (one rename)
//! /opt/vehicleconnect/failed/<release>/              (failed releases, set aside)
//! /etc/vehicleconnect/env                            (0600, made on the host)
//! /etc/systemd/system/vehicleconnect{,-candidate}.{socket,service}
//! ```

pub mod protocol;
pub mod ssh;

use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::artifact::Artifact;
use crate::error::Failure;
use crate::host::ssh::{Destination, Ssh};
use crate::printer::Printer;
use crate::release::{Origin, Receipt};
use crate::render::config::HostConfig;
use crate::settings::Settings;
use protocol::{LockLine, Probe, State};

/// Where the host side of vcctl is installed on every host.
const HELPER: &str = "/opt/vehicleconnect/bin/vc-host";
pub const HELPER_SCRIPT: &str = include_str!("../../../templates/host/vc-host.sh");

pub struct Host {
    ssh: Ssh,
}

/// The lock of one deploy on a host, held by a `vc-host lock` on this run's SSH connection:
/// released when dropped, and by the host when this process dies however it dies.
pub struct HostLock {
    child: Option<crate::host::ssh::Child>,
}

impl HostLock {
    pub async fn release(mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin().take());
            let _ = child.wait().await;
        }
    }
}

impl Host {
    /// The SSH target of a stack's host.
    pub fn target(settings: &Settings, host: &str, user: &str, port: u16, identity: Option<&str>) -> Destination {
        Destination {
            host: host.to_string(),
            port,
            user: user.to_string(),
            identity: identity.map(crate::stack::expand_home),
            known_hosts: settings.state_dir.join("known_hosts"),
            host_key: None,
        }
    }

    /// Connects, retrying for up to `patience` while the host does not answer yet (a new
    /// instance booting); refused logins and host keys fail at once.
    pub async fn connect_within(target: Destination, printer: &Printer, patience: Duration) -> Result<Host> {
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

    pub async fn connect(target: Destination, printer: &Printer) -> Result<Host> {
        let step = printer.step(format!("connecting to {}", target.display()));
        let connected = match Ssh::connect(target, printer).await {
            Ok(ssh) => Host::install_helper(Host { ssh }).await,
            Err(e) => Err(e),
        };
        match &connected {
            Ok(_) => step.done(""),
            Err(_) => step.fail(""),
        }
        connected
    }

    /// Installs (refreshes) vc-host: one round trip, so the host always runs the helper of
    /// this vcctl.
    async fn install_helper(host: Host) -> Result<Host> {
        let script = format!(
            "install -d -m 755 /opt/vehicleconnect/bin && cat > {HELPER}.new && chmod 755 {HELPER}.new && mv -f {HELPER}.new {HELPER}"
        );
        let installed = host.ssh.run_with_input(&["sh", "-c", &script], HELPER_SCRIPT.as_bytes()).await;
        match installed {
            Ok(_) => Ok(host),
            Err(e) if host.ssh.target.user != "root" => {
                Err(e.context(format!("`{}` needs passwordless sudo on the host", host.ssh.target.user)))
            }
            Err(e) => Err(e),
        }
    }

    pub fn name(&self) -> &str {
        &self.ssh.target.host
    }

    /// `vc-host ARGS...`.
    async fn run(&self, args: &[&str]) -> Result<String> {
        self.ssh.run(&helper(args)).await
    }

    async fn run_with_input(&self, args: &[&str], input: &[u8]) -> Result<String> {
        self.ssh.run_with_input(&helper(args), input).await
    }

    /// Takes the host's deploy lock, waiting up to `timeout` for another deploy to finish.
    pub async fn lock(&self, timeout: Duration, printer: &Printer) -> Result<HostLock> {
        let origin = Origin::here();
        let holder = serde_json::json!({
            "by": origin.by,
            "from": origin.from,
            "since": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).expect("formats"),
            "pid": std::process::id(),
        })
        .to_string();
        let secs = timeout.as_secs().to_string();
        let mut child = self.ssh.spawn(&helper(&["lock", &secs, &holder])).await?;
        let stdout = child.stdout().take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut step: Option<crate::printer::Step> = None;
        while let Some(line) = lines.next_line().await? {
            match protocol::lock_line(&line) {
                LockLine::Locked => {
                    if let Some(s) = step.take() {
                        s.done("");
                    }
                    return Ok(HostLock { child: Some(child) });
                }
                LockLine::Waiting(h) => {
                    step = Some(printer.step(format!(
                        "waiting up to {} for the deploy lock on {}, held by {}",
                        humantime::format_duration(timeout),
                        self.name(),
                        protocol::describe_holder(h)
                    )))
                }
                LockLine::Busy(h) => {
                    if let Some(s) = step.take() {
                        s.fail("still held");
                    }
                    let message =
                        format!("another deploy holds the lock on {}: {}", self.name(), protocol::describe_holder(h));
                    return Err(Failure::Locked { message }.into());
                }
                LockLine::Other => {}
            }
        }
        let out = child.wait_with_output().await?;
        anyhow::bail!(
            "could not take the deploy lock on {}: {}",
            self.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }

    pub async fn state(&self) -> Result<State> {
        let state = protocol::state(&self.run(&["state"]).await?);
        for warning in &state.unreadable {
            crate::printer::say(format!("warning: {} on {}", warning, self.name()));
        }
        Ok(state)
    }

    /// Writes `content` to `path` on the host when it differs; true when it changed.
    async fn put(&self, path: &str, mode: &str, content: &str) -> Result<bool> {
        Ok(protocol::changed(&self.run_with_input(&["put", path, mode], content.as_bytes()).await?))
    }

    /// Everything but the release, one step each: packages, account, files, secrets,
    /// database, Prometheus, units. Idempotent; restarts only what changed.
    pub async fn prepare(&self, config: &HostConfig, data_volume: Option<&str>) -> Result<()> {
        use crate::render::config::FileKind;
        if let Some(env) = &config.fleet_env {
            return self.prepare_app(config, env).await;
        }
        if config.group_instance {
            return self.prepare_instance(config).await;
        }
        self.packages(&config.packages).await?;
        self.run(&["account"]).await?;
        // PostgreSQL's data on its own volume before anything writes to the database.
        if let Some(volume) = data_volume {
            self.run(&["data", volume]).await?;
        }
        let (mut prometheus_changed, mut units_changed, mut caddy_changed) = (false, false, false);
        for f in &config.files {
            let changed = self.put(&f.path, f.mode, &f.text).await?;
            match f.kind {
                FileKind::Prometheus => prometheus_changed |= changed,
                FileKind::Unit => units_changed |= changed,
                FileKind::Caddy => caddy_changed |= changed,
                FileKind::Firewall => {}
            }
        }
        self.run(&["env", yes(config.ingest_token)]).await?;
        self.run(&["database"]).await?;
        self.run(&["prometheus", yes(prometheus_changed)]).await?;
        // Port 80 passes between the service's socket and Caddy: whoever lets go goes first.
        if config.tls {
            self.run(&["units", yes(units_changed)]).await?;
            self.run(&["caddy", "on", yes(caddy_changed)]).await?;
        } else {
            self.run(&["caddy", "off"]).await?;
            self.run(&["units", yes(units_changed)]).await?;
        }
        Ok(())
    }

    pub async fn packages(&self, packages: &[&str]) -> Result<()> {
        let argv: Vec<&str> = std::iter::once("packages").chain(packages.iter().copied()).collect();
        self.run(&argv).await.map(|_| ())
    }

    /// An instance of a `scale:` stack's group: the service's units only (its env file is
    /// its boot's).
    async fn prepare_instance(&self, config: &HostConfig) -> Result<()> {
        self.run(&["account"]).await?;
        let mut units_changed = false;
        for f in &config.files {
            units_changed |= self.put(&f.path, f.mode, &f.text).await?;
        }
        // The token as the stack wants it now (on, off), beside what the boot wrote.
        let token = config.instance_token.as_deref().unwrap_or_default();
        self.run_with_input(&["instance-token"], token.as_bytes()).await?;
        if let Some(secrets) = &config.instance_secrets {
            units_changed |= self.put("/etc/vehicleconnect/secrets", "0600", secrets).await?;
        }
        self.run(&["units", yes(units_changed)]).await.map(|_| ())
    }

    /// An app host of a fleet: the service's units, its env file (from vcctl: the database
    /// is on the db host) and its firewall; no database, Prometheus or Caddy of its own.
    async fn prepare_app(&self, config: &HostConfig, env: &str) -> Result<()> {
        use crate::render::config::FileKind;
        self.packages(&config.packages).await?;
        self.run(&["account"]).await?;
        let (mut units_changed, mut firewall_changed) = (false, false);
        for f in &config.files {
            let changed = self.put(&f.path, f.mode, &f.text).await?;
            match f.kind {
                FileKind::Firewall => firewall_changed |= changed,
                _ => units_changed |= changed,
            }
        }
        let argv: Vec<&str> = ["app-env"].into_iter().chain(config.database_url_secret.as_deref()).collect();
        self.run_with_input(&argv, env.as_bytes()).await?;
        self.run(&["firewall", yes(firewall_changed)]).await?;
        self.run(&["caddy", "off"]).await?;
        self.run(&["units", yes(units_changed)]).await.map(|_| ())
    }

    /// A fleet's db host: PostgreSQL with the service's role and database (the password and
    /// the ingest token made here and kept in its env file), serving `apps` over TLS.
    /// It listens on `address` (and loopback).
    pub async fn serve_database(&self, address: &str, ingest_token: bool, apps: &[&str]) -> Result<()> {
        self.packages(&["postgresql"]).await?;
        self.run(&["account"]).await?;
        self.run(&["env", yes(ingest_token)]).await?;
        self.run(&["database"]).await?;
        let argv: Vec<&str> = ["db-serve", address].into_iter().chain(apps.iter().copied()).collect();
        self.run(&argv).await.map(|_| ())
    }

    /// The fleet's secrets kept on its db host: (database password, ingest token). Read to
    /// be written to the app hosts' env files; never printed.
    pub async fn fleet_secrets(&self) -> Result<(String, Option<String>)> {
        let out = self.run(&["fleet-secrets"]).await?;
        let mut w = out.split_whitespace();
        let password = w.next().ok_or_else(|| anyhow::anyhow!("{} keeps no database password", self.name()))?;
        Ok((password.to_string(), w.next().map(str::to_string)))
    }

    /// The fleet's ingest token, kept on this host (the db host, else the lb host).
    pub async fn fleet_token(&self) -> Result<String> {
        Ok(self.run(&["fleet-token"]).await?.trim().to_string())
    }

    /// The certificate the db host's PostgreSQL presents (PEM), for the app hosts to pin.
    pub async fn db_cert(&self) -> Result<String> {
        self.run(&["db-cert"]).await
    }

    /// A fleet's lb host: Caddy with `caddyfile` (written when it differs, then reloaded),
    /// trusting `acme_roots` for a private ACME CA.
    pub async fn serve_lb(&self, caddyfile: &str, acme_roots: Option<&str>) -> Result<()> {
        self.packages(&["caddy"]).await?;
        if let Some(roots) = acme_roots {
            self.put(crate::render::ACME_ROOTS, "644", roots).await?;
        }
        self.put("/etc/caddy/Caddyfile", "644", caddyfile).await?;
        self.run(&["lb-reload"]).await.map(|_| ())
    }

    /// A host removed from a fleet: its service stopped and disabled, its firewall lifted;
    /// its releases stay (`vcctl destroy` is for the whole stack).
    pub async fn retire(&self) -> Result<()> {
        self.run(&["retire"]).await.map(|_| ())
    }

    /// The upstreams the lb host's Caddy sends requests to now (`host:port`), from its admin API.
    pub async fn lb_upstreams(&self) -> Result<Vec<String>> {
        let out = self.run(&["lb-upstreams"]).await?;
        let v: serde_json::Value = serde_json::from_str(out.trim())
            .map_err(|e| anyhow::anyhow!("Caddy's admin API on {} answered no JSON ({e}): {out:.200}", self.name()))?;
        Ok(v.as_array().into_iter().flatten().filter_map(|u| u["address"].as_str().map(str::to_string)).collect())
    }

    /// A fleet's monitoring host: Prometheus with `config` and `defaults` (its
    /// `/etc/default` file), restarted when either changed.
    pub async fn serve_prometheus(&self, config: &str, defaults: &str) -> Result<()> {
        self.packages(&["prometheus"]).await?;
        let rules = self.put(crate::render::PROMETHEUS_RULES_PATH, "644", crate::render::PROMETHEUS_RULES).await?;
        let a = self.put("/etc/prometheus/prometheus.yml", "644", config).await?;
        let b = self.put("/etc/default/prometheus", "644", defaults).await?;
        self.run(&["prometheus", yes(a || b || rules)]).await.map(|_| ())
    }

    /// Sends the artifact as a new release (to a temporary name, checked by hash, renamed).
    pub async fn receive(&self, artifact: &Artifact, receipt: &Receipt, printer: &Printer) -> Result<()> {
        let size = std::fs::metadata(&artifact.path)?.len();
        let bar = printer.bar(size, "  uploading {bar:30} {bytes}/{total_bytes} {bytes_per_sec}");
        let json = serde_json::to_string(receipt)?;
        let argv = helper(&["receive", &artifact.sha256, &receipt.name, &json]);
        self.ssh.run_with_file(&argv, &artifact.path, &bar).await?;
        bar.finish_and_clear();
        Ok(())
    }

    /// Points `current` at `release` and restarts the service; returns the host's clock at
    /// the switch (for the journal lines of this start only).
    pub async fn switch(&self, release: &str) -> Result<i64> {
        Ok(protocol::since(&self.run(&["switch", release]).await?))
    }

    /// Starts `release` as the candidate, beside the serving one (loopback only); returns the
    /// host's clock at the start.
    pub async fn candidate(&self, release: &str) -> Result<i64> {
        Ok(protocol::since(&self.run(&["candidate", release]).await?))
    }

    pub async fn candidate_stop(&self) -> Result<()> {
        self.run(&["candidate-stop"]).await.map(|_| ())
    }

    /// The service `unit` (without `.service`) answering on `port`, seen from the host.
    pub async fn probe(&self, port: u16, unit: &str) -> Result<Probe> {
        Ok(protocol::probe(&self.run(&["probe", &port.to_string(), unit]).await?))
    }

    /// `systemctl status` of `unit` and its journal since `since`.
    pub async fn diagnose(&self, since: i64, unit: &str) -> String {
        match self.run(&["diagnose", &since.to_string(), unit]).await {
            Ok(text) => text,
            Err(e) => format!("(could not read the journal: {e:#})"),
        }
    }

    /// Records the release's final receipt.
    pub async fn finish(&self, receipt: &Receipt) -> Result<()> {
        let json = serde_json::to_string_pretty(receipt)?;
        self.run_with_input(&["finish", &receipt.name], json.as_bytes()).await.map(|_| ())
    }

    /// Moves a failed release out of `releases/`, into `failed/`.
    pub async fn set_aside(&self, release: &str) -> Result<()> {
        self.run(&["set-aside", release]).await.map(|_| ())
    }

    /// Deletes releases (never the current one).
    pub async fn remove(&self, releases: &[String]) -> Result<()> {
        if releases.is_empty() {
            return Ok(());
        }
        let mut args = vec!["remove"];
        args.extend(releases.iter().map(String::as_str));
        self.run(&args).await.map(|_| ())
    }

    /// The ingest token the host generated, when the stack asks for one.
    pub async fn ingest_token(&self) -> Result<Option<String>> {
        let t = self.run(&["token"]).await?;
        Ok(Some(t.trim().to_string()).filter(|t| !t.is_empty()))
    }

    /// The journal on our stdout; `json`: journald's own JSON, one object per line.
    pub async fn logs(&self, lines: usize, follow: bool, json: bool) -> Result<std::process::ExitStatus> {
        let n = lines.to_string();
        let args = vec!["logs", n.as_str(), if follow { "follow" } else { "once" }, if json { "json" } else { "text" }];
        self.ssh.stream(&helper(&args)).await
    }

    pub async fn destroy(&self, keep_data: bool) -> Result<()> {
        self.run(&["destroy", if keep_data { "keep-data" } else { "delete-data" }]).await.map(|_| ())
    }

    /// Stops the service and PostgreSQL and unmounts the data volume, so it can be detached.
    pub async fn data_release(&self) -> Result<()> {
        self.run(&["data-release"]).await.map(|_| ())
    }

    /// Mounts the data volume `volume` (attached now) and starts PostgreSQL and the service.
    pub async fn data_mount(&self, volume: &str) -> Result<()> {
        self.run(&["data", volume]).await?;
        self.run(&["start"]).await.map(|_| ())
    }

    /// The data volume's size and use in bytes, when PostgreSQL's data is on one.
    pub async fn data_usage(&self) -> Result<Option<(u64, u64)>> {
        let out = self.run(&["data-usage"]).await?;
        let mut w = out.split_whitespace().map(str::parse::<u64>);
        Ok(match (w.next(), w.next()) {
            (Some(Ok(size)), Some(Ok(used))) => Some((size, used)),
            _ => None,
        })
    }

    /// The database as a pg_dump custom-format archive, written to `out`; its size.
    pub async fn db_dump(&self, out: &mut (dyn std::io::Write + Send), printer: &Printer) -> Result<u64> {
        let bar = printer.bar(0, "  dumping {bytes} {bytes_per_sec} {elapsed}");
        let n = self.ssh.run_to(&helper(&["db-dump"]), out, &bar).await;
        bar.finish_and_clear();
        n
    }

    /// Restores the archive at `file` into a new database and swaps it in (the service stopped
    /// around the swap only).
    pub async fn db_restore(&self, file: &std::path::Path, printer: &Printer) -> Result<()> {
        let size = std::fs::metadata(file)?.len();
        let bar = printer.bar(size, "  restoring {bar:30} {bytes}/{total_bytes} {bytes_per_sec}");
        let done = self.ssh.run_with_file(&helper(&["db-restore"]), file, &bar).await;
        bar.finish_and_clear();
        done.map(|_| ())
    }

    /// A `scale:` instance: restores the archive at `file` into a new database `name` beside
    /// the serving one, on RDS, as the service's own role; the serving database is untouched.
    pub async fn db_restore_into(&self, file: &std::path::Path, name: &str, printer: &Printer) -> Result<()> {
        let size = std::fs::metadata(file)?.len();
        let bar = printer.bar(size, "  restoring {bar:30} {bytes}/{total_bytes} {bytes_per_sec}");
        let done = self.ssh.run_with_file(&helper(&["db-restore-into", name]), file, &bar).await;
        bar.finish_and_clear();
        done.map(|_| ())
    }

    /// A `scale:` instance: drops the database `name` on RDS, never the one it serves from.
    pub async fn db_drop(&self, name: &str) -> Result<()> {
        self.run(&["db-drop", name]).await.map(|_| ())
    }

    /// Stores a secret on the host (the value goes over the connection's stdin, never argv).
    pub async fn secret_set(&self, name: &str, value: &str) -> Result<()> {
        self.run_with_input(&["secret-set", name], value.as_bytes()).await.map(|_| ())
    }

    pub async fn secret_unset(&self, name: &str) -> Result<()> {
        self.run(&["secret-unset", name]).await.map(|_| ())
    }

    /// The secrets' names and when each was set (never their values).
    pub async fn secret_list(&self) -> Result<Vec<(String, String)>> {
        let out = self.run(&["secret-list"]).await?;
        Ok(out.lines().filter_map(|l| l.split_once(' ')).map(|(n, t)| (n.to_string(), t.to_string())).collect())
    }

    /// Appends an entry to the host's audit trail (the host stamps the time).
    pub async fn audit(&self, entry: &crate::audit::Entry) -> Result<()> {
        self.run_with_input(&["audit-append"], entry.line().as_bytes()).await.map(|_| ())
    }

    /// The last `n` entries of the host's audit trail, oldest first.
    pub async fn audit_log(&self, n: usize) -> Result<Vec<crate::audit::Entry>> {
        let out = self.run(&["audit-show", &n.to_string()]).await?;
        Ok(out.lines().filter(|l| !l.trim().is_empty()).map(crate::audit::Entry::parse).collect())
    }

    pub async fn exec(&self, argv: &[String]) -> Result<u8> {
        self.ssh.exec_as_login(argv).await
    }

    pub async fn shell(&self) -> Result<std::process::ExitStatus> {
        self.ssh.shell().await
    }

    /// Forwards `local` here to `remote_port` on the host's loopback (`vcctl tunnel`).
    pub async fn forward(&self, local: std::net::SocketAddr, remote_port: u16) -> Result<()> {
        self.ssh.forward(local, remote_port).await
    }

    pub async fn alive(&self) -> bool {
        self.ssh.alive().await
    }

    pub async fn close(self) {
        self.ssh.close().await;
    }
}

/// `vc-host` with `args`.
fn helper<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(HELPER);
    argv.extend_from_slice(args);
    argv
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
