//! A host over SSH as a deploy target: the `ssh` provider's host, and an AWS stack's
//! instance. Every step is one `vc-host` call (`host`); a release is checked as a candidate
//! on loopback before the switch, and judged from the host and from here.

use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Mark, Operations, Slot, Snapshot, StatusView, Target};
use crate::artifact::Artifact;
use crate::context::Ctx;
use crate::health::{self, Look, Status, Unhealthy};
use crate::host::protocol::{Activity, Probe, Reply};
use crate::host::ssh;
use crate::host::{Host, HostLock};
use crate::printer::Printer;
use crate::release::Receipt;
use crate::render::config::HostConfig;
use crate::render::{CANDIDATE_PORT, CANDIDATE_UNIT, SERVING_UNIT};
use crate::settings::Settings;

/// A host and how its service is reached.
#[derive(Debug, Clone)]
pub struct Remote {
    pub target: ssh::Destination,
    /// The service as its users reach it (`http://<public address>:<port>`).
    pub public_url: String,
    /// Where Prometheus listens on the host.
    pub prometheus_listen: String,
    /// What `public_url`'s certificate is checked against, and the host's address for it.
    pub trust: crate::http_client::Trust,
    /// The EBS volume PostgreSQL's data lives on (an AWS instance's), by its id.
    pub data_volume: Option<String>,
    /// Whether the service is checked from here too, at `public_url`: not on a fleet's app
    /// host, whose port admits only the load balancer (checked through it instead).
    pub check_outside: bool,
}

/// The service as users reach it on `host`, and how to check it there: `https://<domain>`
/// (sent to this host, whatever DNS says yet) with `tls:`, else `http://<host>:<port>`.
pub fn public_endpoint(settings: &Settings, host: &str) -> (String, crate::http_client::Trust) {
    use std::net::ToSocketAddrs;
    match &settings.tls {
        None => {
            let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
            (format!("http://{host}:{}", settings.port), crate::http_client::Trust::default())
        }
        Some(tls) => {
            let pin = (host, 443).to_socket_addrs().ok().and_then(|mut a| a.next()).map(|a| (tls.domain.clone(), a));
            (format!("https://{}", tls.domain), crate::http_client::Trust { ca: tls.trust_ca.clone(), pin })
        }
    }
}

impl Remote {
    /// A host of an `ssh` stack.
    pub fn of_ssh(settings: &Settings, h: &crate::stack::HostSpec, expose_prometheus: bool) -> Remote {
        let mut target = Host::target(
            settings,
            &h.host,
            h.user.as_deref().unwrap_or("root"),
            h.port.unwrap_or(22),
            h.identity.as_deref(),
        );
        target.host_key = h.host_key.clone();
        let (public_url, trust) = public_endpoint(settings, &h.host);
        Remote {
            target,
            public_url,
            prometheus_listen: if expose_prometheus { "0.0.0.0:9090" } else { "127.0.0.1:9090" }.to_string(),
            trust,
            data_volume: None,
            check_outside: true,
        }
    }
}

pub struct HostTarget {
    host: Host,
    remote: Remote,
    port: u16,
    config: HostConfig,
    lock: Option<HostLock>,
    /// Checks the service from here (`remote.trust`).
    client: reqwest::Client,
}

impl HostTarget {
    /// The host itself, for what only a `scale:` instance does (restores beside the serving
    /// database).
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Connects, retrying for up to `patience` while the host does not answer yet (a new
    /// instance booting).
    pub async fn connect(settings: &Settings, remote: Remote, patience: Duration, p: &Printer) -> Result<HostTarget> {
        let config = HostConfig::of(settings, &remote.prometheus_listen)?;
        HostTarget::connect_with(settings, remote, config, patience, p).await
    }

    /// Connects to a host whose configuration is `config` (a fleet's app host).
    pub async fn connect_with(
        settings: &Settings,
        remote: Remote,
        config: HostConfig,
        patience: Duration,
        p: &Printer,
    ) -> Result<HostTarget> {
        let client = crate::http_client::client_for(&remote.trust)?;
        let host = Host::connect_within(remote.target.clone(), p, patience).await?;
        Ok(HostTarget { host, port: settings.port, config, remote, lock: None, client })
    }

    /// The port and unit of a slot.
    fn unit(&self, slot: Slot) -> (u16, &'static str) {
        match slot {
            Slot::Serving => (self.port, SERVING_UNIT),
            Slot::Candidate => (CANDIDATE_PORT, CANDIDATE_UNIT),
        }
    }

    /// One look at `unit` on `port`: from the host (over SSH), then from here at `outside`.
    /// `baseline` is the unit's restart count at the first look: more means a crash.
    async fn look(
        &self,
        port: u16,
        unit: &str,
        want: Option<(&str, &str)>,
        outside: Option<&str>,
        baseline: &mut Option<u32>,
        timeout: Duration,
    ) -> Look {
        let probe = match self.host.probe(port, unit).await {
            Ok(probe) => probe,
            Err(e) => {
                let url = format!("ssh://{}", self.host.name());
                return Look::Dead(Unhealthy::Timeout { url, waited: timeout, last: format!("{e:#}") });
            }
        };
        let before = *baseline.get_or_insert(probe.restarts);
        if probe.exited(before) {
            return Look::Dead(Unhealthy::CrashLoop { status: probe.exit_status, restarts: probe.restarts });
        }
        let url = format!("http://127.0.0.1:{port} on {}", self.host.name());
        let Some(status) = probe.healthy().cloned() else { return Look::NotYet(not_yet(&probe, url, port, timeout)) };
        match (health::judge(status, want, probe.main_pid, &url), outside) {
            (Look::Healthy(s), None) => Look::Healthy(s),
            (Look::Healthy(_), Some(public)) => match health::status(&self.client, public).await {
                Ok((code, s)) if health::is_healthy(code, &s) => Look::Healthy(s),
                Ok((code, _)) => {
                    Look::NotYet(Unhealthy::Unreachable { url: public.into(), error: format!("HTTP {code}") })
                }
                Err(error) => Look::NotYet(Unhealthy::Unreachable { url: public.into(), error }),
            },
            (other, _) => other,
        }
    }
}

/// Why a unit that does not answer healthy on the host is not healthy yet.
fn not_yet(probe: &Probe, url: String, port: u16, timeout: Duration) -> Unhealthy {
    match &probe.reply {
        Reply::Refused => Unhealthy::NotListening { port },
        Reply::Http(code) => Unhealthy::HttpError {
            url,
            code: *code,
            detail: probe
                .status
                .as_ref()
                .map_or("no status in the body".into(), |s| format!("status {}, database {}", s.status, s.database)),
        },
        _ => Unhealthy::Timeout { url, waited: timeout, last: probe.describe() },
    }
}

#[async_trait(?Send)]
impl Target for HostTarget {
    fn host(&self) -> Option<&str> {
        Some(self.host.name())
    }

    fn url(&self) -> &str {
        &self.remote.public_url
    }

    fn trust(&self) -> crate::http_client::Trust {
        self.remote.trust.clone()
    }

    async fn audit(&mut self, entry: &crate::audit::Entry) -> Result<()> {
        self.host.audit(entry).await
    }

    fn has_candidate(&self) -> bool {
        true
    }

    async fn config_hash(&mut self) -> Result<String> {
        // The secrets' names and times are part of the configuration: a changed secret makes
        // the next deploy check the release with it before it serves.
        // A group's instance takes the bucket's secrets (written by `prepare`): those are
        // what it will run with.
        if let Some(text) = &self.config.instance_secrets {
            return Ok(self.config.hash_with_secrets(&crate::secrets_file::list(text)));
        }
        Ok(self.config.hash_with_secrets(&self.host.secret_list().await?))
    }

    async fn arch(&mut self) -> Result<Option<String>> {
        Ok(Some(self.host.state().await?.arch).filter(|a| !a.is_empty()))
    }

    async fn lock(&mut self, timeout: Duration, p: &Printer) -> Result<()> {
        self.lock = Some(self.host.lock(timeout, p).await?);
        Ok(())
    }

    async fn unlock(&mut self) {
        if let Some(lock) = self.lock.take() {
            lock.release().await;
        }
    }

    async fn state(&mut self) -> Result<Snapshot> {
        let s = self.host.state().await?;
        Ok(Snapshot {
            releases: s.releases,
            failed: s.failed,
            current: s.current,
            serving: s.active == Activity::Active,
            candidate: s.candidate,
        })
    }

    async fn clean_up(&mut self, unfinished: &[String]) -> Result<()> {
        self.host.candidate_stop().await?;
        self.host.remove(unfinished).await
    }

    async fn prepare(&mut self, _p: &Printer) -> Result<()> {
        self.host.prepare(&self.config, self.remote.data_volume.as_deref()).await
    }

    async fn install(&mut self, artifact: &Artifact, receipt: &Receipt, p: &Printer) -> Result<()> {
        self.host.receive(artifact, receipt, p).await
    }

    async fn start_candidate(&mut self, release: &str) -> Result<Mark> {
        self.host.candidate(release).await
    }

    async fn stop_candidate(&mut self) -> Result<()> {
        self.host.candidate_stop().await
    }

    async fn switch(&mut self, release: &str, _p: &Printer) -> Result<Mark> {
        self.host.switch(release).await
    }

    async fn check(
        &mut self,
        slot: Slot,
        want: Option<(&str, &str)>,
        outside: bool,
        timeout: Duration,
    ) -> Result<Status, Unhealthy> {
        let (port, unit) = self.unit(slot);
        let public = self.remote.public_url.clone();
        let outside = (outside && self.remote.check_outside).then_some(public.as_str());
        let mut baseline = None;
        let this = &*self;
        health::wait(timeout, async || this.look(port, unit, want, outside, &mut baseline, timeout).await).await
    }

    async fn diagnose(&mut self, slot: Slot, since: Mark) -> String {
        self.host.diagnose(since, self.unit(slot).1).await
    }

    async fn record(&mut self, receipt: &Receipt) -> Result<()> {
        self.host.finish(receipt).await
    }

    async fn set_aside(&mut self, release: &str) -> Result<()> {
        self.host.set_aside(release).await
    }

    async fn remove(&mut self, releases: &[String]) -> Result<()> {
        self.host.remove(releases).await
    }

    async fn close(mut self: Box<Self>) {
        self.unlock().await;
        self.host.close().await;
    }
}

#[async_trait(?Send)]
impl Operations for HostTarget {
    async fn data_release(&mut self) -> Result<()> {
        self.host.data_release().await
    }

    async fn data_mount(&mut self, volume: &str) -> Result<()> {
        self.host.data_mount(volume).await
    }

    async fn db_dump(&mut self, out: &mut (dyn std::io::Write + Send), p: &Printer) -> Result<u64> {
        self.host.db_dump(out, p).await
    }

    async fn db_restore(&mut self, file: &std::path::Path, p: &Printer) -> Result<()> {
        self.host.db_restore(file, p).await
    }

    async fn secret_set(&mut self, name: &str, value: &str) -> Result<()> {
        self.host.secret_set(name, value).await
    }

    async fn secret_unset(&mut self, name: &str) -> Result<()> {
        self.host.secret_unset(name).await
    }

    async fn secret_list(&mut self) -> Result<Vec<(String, String)>> {
        self.host.secret_list().await
    }

    async fn audit_log(&mut self, n: usize) -> Result<Vec<crate::audit::Entry>> {
        self.host.audit_log(n).await
    }

    async fn exec(&mut self, argv: &[String]) -> Result<u8> {
        self.host.exec(argv).await
    }

    async fn shell(&mut self) -> Result<u8> {
        let status = self.host.shell().await?;
        Ok(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1))
    }

    async fn forward(&mut self, local: std::net::SocketAddr, remote_port: u16) -> Result<()> {
        self.host.forward(local, remote_port).await
    }

    async fn alive(&mut self) -> bool {
        self.host.alive().await
    }

    async fn status(&mut self) -> Result<StatusView> {
        status(&self.host, &self.remote, self.port, &self.client).await
    }

    async fn logs(&mut self, lines: usize, follow: bool, json: bool) -> Result<u8> {
        let status = self.host.logs(lines, follow, json).await?;
        Ok(if status.success() { 0 } else { 1 })
    }

    async fn destroy(&mut self, keep_data: bool, p: &Printer) -> Result<Value> {
        self.lock(Duration::from_secs(60), p).await?;
        let step = p.step(format!("removing the service from {}", self.host.name()));
        let result = self.host.destroy(keep_data).await;
        self.unlock().await;
        result?;
        step.done(if keep_data { "data kept" } else { "data deleted" });
        Ok(json!({"host": self.remote.target.host}))
    }

    async fn doomed(&mut self, keep_data: bool) -> Result<Vec<String>> {
        let state = self.host.state().await?;
        let mut lines = vec![
            format!("the service's units on {} ({})", self.host.name(), state.active.as_str()),
            format!(
                "{} release(s) and {} failed one(s) in /opt/vehicleconnect",
                state.releases.len(),
                state.failed.len()
            ),
        ];
        if !keep_data {
            lines.push("the PostgreSQL database `vehicleconnect` (every stored event) and its role".into());
        }
        Ok(lines)
    }

    async fn ingest_token(&mut self) -> Result<Option<String>> {
        self.host.ingest_token().await
    }
}

/// Releases, the unit, and health from both sides.
async fn status(host: &Host, remote: &Remote, port: u16, client: &reqwest::Client) -> Result<StatusView> {
    let state = host.state().await?;
    let probe = host.probe(port, SERVING_UNIT).await?;
    let outside = health::status(client, &remote.public_url).await;
    let healthy = probe.healthy().is_some() && matches!(&outside, Ok((code, s)) if health::is_healthy(*code, s));
    let kpis = match &outside {
        Ok(_) => health::kpis_1h(client, &remote.public_url).await,
        Err(_) => health::Kpis::Unavailable,
    };
    let usage = host.data_usage().await?;
    // What `vcctl rollback` would go back to.
    let rollback_to = crate::release::previous_good(&state.releases, state.current.as_deref()).map(|r| r.name.clone());
    let mut json = json!({
        "host": remote.target.host,
        "healthy": healthy,
        "unit": {"active": probe.active.as_str(), "sub": probe.sub_state, "restarts": probe.restarts, "socket": probe.socket.as_str()},
        "status": probe.status,
        "reachable_from_here": outside.is_ok(),
        "url": remote.public_url,
        "release": state.current,
        "releases": state.releases,
        "rollback_to": rollback_to,
        "data_volume_usage": usage.map(|(size, used)| json!({"size_bytes": size, "used_bytes": used})),
    });
    let mut lines = vec![format!("service:  {}", probe.describe())];
    if let Some(s) = &probe.status {
        lines.push(format!("version:  {} ({}), database {}, up {}s", s.version, s.git_sha, s.database, s.uptime_s));
        lines.extend(health::replica_line(s));
    }
    lines.push(match &outside {
        Ok((code, _)) => format!("outside:  HTTP {code} at {}", remote.public_url),
        Err(e) => format!("outside:  unreachable at {}: {e}", remote.public_url),
    });
    lines.push(format!("release:  {}", state.current.as_deref().unwrap_or("none")));
    for r in state.releases.iter().rev() {
        let mark = if Some(&r.name) == state.current.as_ref() { "*" } else { " " };
        lines.push(format!("  {mark} {} {} v{} by {}", r.name, r.verdict, r.version.as_deref().unwrap_or("?"), r.by));
    }
    lines.push(format!("rollback: {}", rollback_to.as_deref().unwrap_or("no earlier good release")));
    if let Some((size, used)) = usage {
        let pct = if size > 0 { used as f64 * 100.0 / size as f64 } else { 0.0 };
        lines.push(format!(
            "data:     {} of {} used ({pct:.0} %), PostgreSQL on its own volume",
            indicatif::HumanBytes(used),
            indicatif::HumanBytes(size)
        ));
    }
    kpis.add_to(&mut json);
    lines.extend(kpis.line());
    Ok(StatusView { json, lines, details: Vec::new(), healthy })
}

/// A host's target, connected (waiting up to `patience` for it to answer on SSH).
pub async fn connect(ctx: &Ctx, remote: Remote, patience: Duration) -> Result<Box<dyn Operations>> {
    Ok(Box::new(HostTarget::connect(&ctx.settings, remote, patience, &ctx.printer).await?))
}
