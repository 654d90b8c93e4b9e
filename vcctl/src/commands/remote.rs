//! The commands on a host reached over SSH (the `ssh` provider, and an AWS stack's instance):
//! `up`/`deploy`, `rollback`, `status`, `logs`, `destroy`. Each takes the host's deploy lock
//! where it changes something, and every change is a step of `host.rs`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use super::Ctx;
use crate::artifact::{self, Artifact};
use crate::cli::{Command, LogsArgs, ReleaseArgs, RollbackArgs};
use crate::error::Failure;
use crate::health::{self, Status, Unhealthy};
use crate::host::{Host, State};
use crate::release::{self, Receipt};
use crate::ssh::Target;
use crate::templates::{CANDIDATE_PORT, CANDIDATE_UNIT as CANDIDATE, SERVING_UNIT as SERVING};

/// A host and how its service is reached.
pub struct Remote {
    pub target: Target,
    /// The service as its users reach it (`http://<public address>:<port>`).
    pub public_url: String,
    /// Where Prometheus listens on the host.
    pub prometheus_listen: String,
}

impl Remote {
    /// The host of an `ssh` stack.
    pub fn of_ssh(settings: &crate::settings::Settings, s: &crate::stack::SshSettings) -> Remote {
        let mut target = Host::target(
            settings,
            &s.host,
            s.user.as_deref().unwrap_or("root"),
            s.port.unwrap_or(22),
            s.identity.as_deref(),
        );
        target.host_key = s.host_key.clone();
        let host = if s.host.contains(':') { format!("[{}]", s.host) } else { s.host.clone() };
        Remote {
            target,
            public_url: format!("http://{host}:{}", settings.port),
            prometheus_listen: if s.expose_prometheus { "0.0.0.0:9090" } else { "127.0.0.1:9090" }.to_string(),
        }
    }
}

/// A command on a host: every command of an `ssh` stack, and those of an AWS stack that go
/// to its instance.
pub async fn run(ctx: &Ctx, remote: &Remote, command: &Command) -> Result<u8> {
    match command {
        Command::Up(a) | Command::Deploy(a) => deploy(ctx, remote, a).await,
        Command::Status(_) => status(ctx, remote).await,
        Command::Logs(a) => logs(ctx, remote, a).await,
        Command::Rollback(a) => rollback(ctx, remote, a).await,
        Command::Destroy(a) => destroy(ctx, remote, a.keep_data).await,
        Command::Simulate(a) => {
            let token = ingest_token(ctx, remote).await?;
            super::simulate::run(&ctx.printer, a, remote.public_url.clone(), token).await
        }
        Command::Plan(_) => Err(Failure::invalid(
            "`plan` compares cloud resources; an `ssh` stack has none (its host exists already)",
            Some("`vcctl status` shows the host, `vcctl deploy` ships a release".to_string()),
        )
        .into()),
        Command::Completions { .. } => unreachable!("handled before any stack is read"),
    }
}

/// How a deploy went, for the report, `--json` (printed on failure too) and the GitHub step summary.
struct Outcome {
    release: Receipt,
    changed: bool,
    status: Option<Status>,
    previous: Option<String>,
    failure: Option<String>,
}

/// `vcctl deploy` (and the deploy part of `up`).
pub async fn deploy(ctx: &Ctx, remote: &Remote, args: &ReleaseArgs) -> Result<u8> {
    deploy_after(ctx, remote, args, Duration::ZERO).await
}

/// `deploy` to a host that may still be booting: SSH is retried for up to 5 minutes.
pub async fn deploy_when_reachable(ctx: &Ctx, remote: &Remote, args: &ReleaseArgs) -> Result<u8> {
    deploy_after(ctx, remote, args, Duration::from_secs(300)).await
}

/// A deploy, and its GitHub step summary whatever ends it: the report of a release that was
/// checked (healthy or not), or the error that stopped the deploy before that.
async fn deploy_after(ctx: &Ctx, remote: &Remote, args: &ReleaseArgs, patience: Duration) -> Result<u8> {
    let result = deploy_steps(ctx, remote, args, patience).await;
    if let Err(e) = &result
        && !matches!(e.downcast_ref::<Failure>(), Some(Failure::Refused { .. } | Failure::RolledBack { .. }))
    {
        summary_of_error(ctx, remote, e);
    }
    result
}

async fn deploy_steps(ctx: &Ctx, remote: &Remote, args: &ReleaseArgs, patience: Duration) -> Result<u8> {
    let started = Instant::now();
    // The host first: an unreachable host or a foreign architecture is said before a build.
    let host = Host::connect_within(remote.target.clone(), &ctx.printer, patience).await?;
    let arch = host.state().await?.arch;
    let artifact = artifact::resolve(&ctx.root, args.artifact.as_deref(), &ctx.printer).await?;
    if let Some(built) = artifact::elf_machine(&artifact.path)
        && !arch.is_empty()
        && built != arch
    {
        host.close().await;
        return Err(Failure::invalid(
            format!("`{}` is built for {built}, but {} runs {arch}", artifact.path.display(), remote.target.host),
            Some(format!("build for the host (e.g. `cargo build --release --target {arch}-unknown-linux-gnu`) and pass it with --artifact")),
        )
        .into());
    }
    let lock = host.lock(args.lock_timeout, &ctx.printer).await?;
    let result = ship(ctx, &host, remote, &artifact, args.health_timeout).await;
    lock.release().await;
    host.close().await;
    let outcome = result?;
    summary(ctx, remote, &outcome, started.elapsed());
    report(ctx, remote, &outcome, started.elapsed());
    match &outcome.failure {
        Some(failure) => Err(failure_error(&outcome, failure.clone())),
        None => Ok(0),
    }
}

/// The steps of a deploy, under the lock.
async fn ship(ctx: &Ctx, host: &Host, remote: &Remote, artifact: &Artifact, timeout: Duration) -> Result<Outcome> {
    let p = &ctx.printer;
    let port = ctx.settings.port;
    let mut timings = BTreeMap::new();
    let mut timed = |name: &str, since: Instant| {
        timings.insert(name.to_string(), (since.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
    };
    let state = host.settled_state(p).await?;
    let want = artifact.want();

    // Nothing to do when the host runs this very artifact, healthy.
    if let Some(current) = state.current()
        && current.sha256 == artifact.sha256
        && current.is_good()
        && state.active == "active"
        && let Ok(status) = check(host, Some(&remote.public_url), port, SERVING, want, Duration::ZERO).await
    {
        return Ok(Outcome {
            release: current.clone(),
            changed: false,
            status: Some(status),
            previous: None,
            failure: None,
        });
    }

    let t = Instant::now();
    let step = p.step(format!("preparing {} (packages, database, secrets, Prometheus, units)", host.name()));
    host.prepare(&ctx.settings, &remote.prometheus_listen).await?;
    step.done("");
    timed("prepare", t);

    // Where a failure goes back to: what serves now, if it was good.
    let back_to: Option<Receipt> =
        state.current().filter(|r| r.is_good() && r.sha256 != artifact.sha256).or(state.previous_good()).cloned();

    let t = Instant::now();
    let mut release = match state.releases.iter().rev().find(|r| r.sha256 == artifact.sha256) {
        Some(r) => {
            p.detail(format!("the host has this artifact already as {}: no upload", r.name));
            r.clone()
        }
        None => {
            let receipt = Receipt::new(artifact);
            let step = p.step(format!("uploading release {} ({})", receipt.name, size(artifact)));
            host.receive(artifact, &receipt, p).await?;
            step.done("sha256 verified on the host");
            receipt
        }
    };
    timed("upload", t);

    // The new release runs beside the serving one first, on loopback: a release that cannot
    // start or answers badly is refused before it takes a single request.
    let t = Instant::now();
    let step = p.step(format!("checking {} beside the serving release", release.name));
    let since = host.candidate(&release.name).await?;
    let checked = check(host, None, CANDIDATE_PORT, CANDIDATE, want, timeout).await;
    let diagnosis = match &checked {
        Ok(_) => None,
        Err(unhealthy) => Some(format!("{unhealthy}\n{}", host.diagnose(since, CANDIDATE).await.trim_end())),
    };
    host.candidate_stop().await?;
    timed("check", t);
    if let Some(diagnosis) = diagnosis {
        step.fail("unhealthy");
        release.verdict = "failed".into();
        release.diagnosis = checked.err().map(|e| e.to_string());
        release.timings = timings;
        host.finish(&release).await?;
        let Some(serving) = state.current.clone().filter(|_| state.active == "active") else {
            anyhow::bail!("release {} is unhealthy, and nothing was serving before it: {diagnosis}", release.name);
        };
        return Ok(Outcome {
            release,
            changed: false,
            status: None,
            previous: Some(serving),
            failure: Some(diagnosis),
        });
    }
    step.done("healthy");

    // Whether the serving release can be reached from here now: if not (a firewall, a
    // security group), a rollback can be judged only on the host.
    let reachable_before = state.active == "active"
        && matches!(health::status(&health::client(), &remote.public_url).await, Ok((code, s)) if health::is_healthy(code, &s));

    let t = Instant::now();
    let step = p.step(format!("switching to {}", release.name));
    let since = host.switch(&release.name).await?;
    let health = check(host, Some(&remote.public_url), port, SERVING, want, timeout).await;
    timed("switch", t);
    match health {
        Ok(status) => {
            step.done(format!("healthy, v{} ({})", status.version, status.git_sha));
            release.verdict = "healthy".into();
            release.diagnosis = None;
            release.timings = timings;
            for pruned in host.finish(&release).await? {
                p.detail(format!("removed old release {pruned}"));
            }
            Ok(Outcome { release, changed: true, status: Some(status), previous: state.current.clone(), failure: None })
        }
        Err(unhealthy) => {
            // Healthy as a candidate, unhealthy in place (a port, a firewall): go back.
            step.fail("unhealthy");
            let diagnosis = format!("{unhealthy}\n{}", host.diagnose(since, SERVING).await.trim_end());
            p.warn(format!("release {} is unhealthy: {diagnosis}", release.name));
            release.verdict = "failed".into();
            release.diagnosis = Some(unhealthy.to_string());
            release.timings = timings;
            let Some(back) = back_to else {
                host.finish(&release).await?;
                anyhow::bail!(
                    "release {} is unhealthy and the host has no previous good release to go back to: {diagnosis}",
                    release.name
                );
            };
            let step = p.step(format!("rolling back to {}", back.name));
            host.switch(&back.name).await?;
            let outside = if reachable_before {
                Some(remote.public_url.as_str())
            } else {
                p.warn(format!(
                    "{} was not reachable from here before this deploy either: the rollback is checked on the host only",
                    remote.public_url
                ));
                None
            };
            let rollback = check(host, outside, port, SERVING, back.want(), timeout).await;
            host.finish(&release).await?;
            match rollback {
                Ok(_) => {
                    step.done("healthy again");
                    Ok(Outcome {
                        release,
                        changed: true,
                        status: None,
                        previous: Some(back.name),
                        failure: Some(diagnosis),
                    })
                }
                Err(e) => {
                    step.fail("unhealthy");
                    Err(Failure::RollbackFailed { release: release.name, diagnosis, rollback: e.to_string() }.into())
                }
            }
        }
    }
}

/// Exit 6 in words: refused as a candidate (nothing changed), or rolled back after the switch.
fn failure_error(o: &Outcome, diagnosis: String) -> anyhow::Error {
    let (release, previous) = (o.release.name.clone(), o.previous.clone().unwrap_or_default());
    if o.changed {
        Failure::RolledBack { release, previous, diagnosis }.into()
    } else {
        Failure::Refused { release, serving: previous, diagnosis }.into()
    }
}

/// Polls `unit` on the host (over SSH) and, when given, at `public_url` from here, until
/// both say healthy with the wanted version, the unit dies, or `timeout` passes. A zero
/// timeout looks once.
async fn check(
    host: &Host,
    public_url: Option<&str>,
    port: u16,
    unit: &str,
    want: Option<(&str, &str)>,
    timeout: Duration,
) -> Result<Status, Unhealthy> {
    let client = health::client();
    let started = Instant::now();
    let mut baseline = None;
    loop {
        let probe = host.probe(port, unit).await.map_err(|e| Unhealthy::Timeout {
            url: format!("ssh://{}", host.name()),
            waited: started.elapsed(),
            last: format!("{e:#}"),
        })?;
        let restarts_before = *baseline.get_or_insert(probe.restarts);
        if probe.exited(restarts_before) {
            return Err(Unhealthy::CrashLoop { status: probe.exit_status, restarts: probe.restarts });
        }
        let mut outside = None;
        let wrong_version = match probe.healthy() {
            Some(s) => match health::version_mismatch(s, want) {
                Some(mismatch) => Some(mismatch),
                None => {
                    let Some(url) = public_url else { return Ok(s.clone()) };
                    match health::status(&client, url).await {
                        Ok((code, s)) if health::is_healthy(code, &s) => return Ok(s),
                        Ok((code, _)) => outside = Some(format!("HTTP {code}")),
                        Err(e) => outside = Some(e),
                    }
                    None
                }
            },
            None => None,
        };
        if started.elapsed() >= timeout {
            let url = format!("http://127.0.0.1:{port} on {}", host.name());
            return Err(match (probe.curl, probe.http, wrong_version, outside) {
                (_, _, Some((got, want)), _) => Unhealthy::WrongVersion { url, got, want },
                (_, _, None, Some(error)) => {
                    Unhealthy::Unreachable { url: public_url.unwrap_or_default().to_string(), error }
                }
                (7, _, _, _) => Unhealthy::NotListening { port },
                (0, Some(code), _, _) => Unhealthy::HttpError {
                    url,
                    code,
                    detail: probe.status.map_or("no status in the body".into(), |s| {
                        format!("status {}, database {}", s.status, s.database)
                    }),
                },
                _ => Unhealthy::Timeout { url, waited: timeout, last: probe.describe() },
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn size(a: &Artifact) -> String {
    let bytes = std::fs::metadata(&a.path).map(|m| m.len()).unwrap_or(0);
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

fn report(ctx: &Ctx, remote: &Remote, o: &Outcome, elapsed: Duration) {
    let url = &remote.public_url;
    let status = o.status.as_ref();
    ctx.printer.json(&json!({
        "stack": ctx.settings.stack,
        "host": remote.target.host,
        "changed": o.changed,
        "release": o.release.name,
        "verdict": o.release.verdict,
        "previous": o.previous,
        "version": status.map(|s| &s.version),
        "git_sha": status.map(|s| &s.git_sha),
        "url": url,
        "dashboard": format!("{url}/dashboard"),
        "timings_s": o.release.timings,
        "diagnosis": o.failure,
        "elapsed_s": elapsed.as_secs_f64(),
    }));
    if o.failure.is_some() {
        return;
    }
    let what = if o.changed { "deployed" } else { "already runs, nothing changed:" };
    ctx.printer.info(format!(
        "\nstack `{}` on {} {what} release {} in {}\n  dashboard: {url}/dashboard\n  API:       {url}/docs",
        ctx.settings.stack,
        remote.target.host,
        o.release.name,
        crate::printer::format_duration(elapsed)
    ));
    ctx.printer.out(format!("{url}/dashboard"));
}

/// When run by GitHub Actions: the deploy as Markdown in the run's summary page.
fn summary(ctx: &Ctx, remote: &Remote, o: &Outcome, elapsed: Duration) {
    let verdict = match (&o.failure, o.changed) {
        (Some(_), true) => format!("❌ unhealthy, rolled back to `{}`", o.previous.as_deref().unwrap_or("?")),
        (Some(_), false) => {
            format!(
                "❌ unhealthy, refused before taking traffic; `{}` serves as before",
                o.previous.as_deref().unwrap_or("?")
            )
        }
        (None, true) => "✅ healthy".to_string(),
        (None, false) => "✅ already running, nothing changed".to_string(),
    };
    let mut md = format!(
        "### VehicleConnect deploy: stack `{}`\n\n| | |\n|---|---|\n| Host | `{}` |\n| Release | `{}` |\n| Version | {} |\n| Artifact sha256 | `{}` |\n| Verdict | {verdict} |\n| Service | {} |\n| Total | {} |\n",
        ctx.settings.stack,
        remote.target.host,
        o.release.name,
        o.release.version.as_deref().unwrap_or("?"),
        o.release.sha256,
        remote.public_url,
        crate::printer::format_duration(elapsed),
    );
    if !o.release.timings.is_empty() {
        md.push_str("\n| Step | Seconds |\n|---|---|\n");
        for (step, secs) in &o.release.timings {
            md.push_str(&format!("| {step} | {secs:.1} |\n"));
        }
    }
    if let Some(f) = &o.failure {
        md.push_str(&format!("\n<details><summary>Diagnosis</summary>\n\n```\n{f}\n```\n</details>\n"));
    }
    append_summary(ctx, &md);
}

/// When run by GitHub Actions: a deploy that ended in an error, as Markdown.
fn summary_of_error(ctx: &Ctx, remote: &Remote, e: &anyhow::Error) {
    let md = format!(
        "### VehicleConnect deploy: stack `{}`\n\n❌ **failed** on `{}` (exit {})\n\n```\n{e:#}\n```\n",
        ctx.settings.stack,
        remote.target.host,
        crate::error::classify(e).0
    );
    append_summary(ctx, &md);
}

fn append_summary(ctx: &Ctx, md: &str) {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else { return };
    let written =
        std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| f.write_all(md.as_bytes()));
    if let Err(e) = written {
        ctx.printer.warn(format!("could not write the GitHub step summary: {e}"));
    }
}

/// `vcctl rollback [--to RELEASE]` on a host.
pub async fn rollback(ctx: &Ctx, remote: &Remote, args: &RollbackArgs) -> Result<u8> {
    let host = Host::connect(remote.target.clone(), &ctx.printer).await?;
    let lock = host.lock(args.lock_timeout, &ctx.printer).await?;
    let result = switch_back(ctx, &host, remote, args).await;
    lock.release().await;
    host.close().await;
    result
}

async fn switch_back(ctx: &Ctx, host: &Host, remote: &Remote, args: &RollbackArgs) -> Result<u8> {
    let state = host.settled_state(&ctx.printer).await?;
    let place = format!("on {}", host.name());
    let target = release::rollback_target(&state.releases, state.current.as_deref(), args.to.as_deref(), &place)?;
    let step = ctx.printer.step(format!("switching to release {}", target.name));
    host.switch(&target.name).await?;
    match check(host, Some(&remote.public_url), ctx.settings.port, SERVING, target.want(), args.health_timeout).await {
        Ok(s) => {
            step.done("healthy");
            let mut r = target.clone();
            r.verdict = "healthy".into();
            host.finish(&r).await?;
            ctx.printer.json(&json!({"stack": ctx.settings.stack, "release": target.name, "previous": state.current, "version": s.version}));
            ctx.printer.info(format!(
                "stack `{}` on {} now runs release {}",
                ctx.settings.stack,
                host.name(),
                target.name
            ));
            Ok(0)
        }
        Err(e) => {
            step.fail("unhealthy");
            Err(release::requested_rollback_failed(target.name, e))
        }
    }
}

/// `vcctl status` of a host: releases, the unit, and health from both sides.
pub async fn status(ctx: &Ctx, remote: &Remote) -> Result<u8> {
    let host = Host::connect(remote.target.clone(), &ctx.printer).await?;
    let state: State = host.state().await?;
    let probe = host.probe(ctx.settings.port, SERVING).await?;
    host.close().await;
    let outside = health::status(&health::client(), &remote.public_url).await;
    let healthy = probe.healthy().is_some() && matches!(&outside, Ok((code, s)) if health::is_healthy(*code, s));
    ctx.printer.json(&json!({
        "stack": ctx.settings.stack,
        "provider": ctx.settings.provider_name,
        "host": remote.target.host,
        "healthy": healthy,
        "unit": {"active": probe.active_state, "sub": probe.sub_state, "restarts": probe.restarts, "socket": probe.socket},
        "status": probe.status,
        "reachable_from_here": outside.is_ok(),
        "url": remote.public_url,
        "release": state.current,
        "releases": state.releases,
    }));
    let p = &ctx.printer;
    p.out(format!("stack:    {} ({} on {})", ctx.settings.stack, ctx.settings.provider_name, remote.target.host));
    p.out(format!("service:  {}", probe.describe()));
    if let Some(s) = &probe.status {
        p.out(format!("version:  {} ({}), database {}, up {}s", s.version, s.git_sha, s.database, s.uptime_s));
    }
    match &outside {
        Ok((code, _)) => p.out(format!("outside:  HTTP {code} at {}", remote.public_url)),
        Err(e) => p.out(format!("outside:  unreachable at {}: {e}", remote.public_url)),
    }
    p.out(format!("release:  {}", state.current.as_deref().unwrap_or("none")));
    for r in state.releases.iter().rev() {
        let mark = if Some(&r.name) == state.current.as_ref() { "*" } else { " " };
        p.out(format!("  {mark} {} {} v{} by {}", r.name, r.verdict, r.version.as_deref().unwrap_or("?"), r.by));
    }
    Ok(if healthy { 0 } else { 1 })
}

/// `vcctl logs [-f] [-n N]`: the service's journal on the host.
pub async fn logs(ctx: &Ctx, remote: &Remote, args: &LogsArgs) -> Result<u8> {
    let host = Host::connect(remote.target.clone(), &ctx.printer).await?;
    let status = host.logs(args.lines, args.follow).await?;
    host.close().await;
    Ok(if status.success() { 0 } else { 1 })
}

/// `vcctl destroy` of a host: the service, its releases and (unless `--keep-data`) its
/// database; PostgreSQL and Prometheus themselves stay installed.
pub async fn destroy(ctx: &Ctx, remote: &Remote, keep_data: bool) -> Result<u8> {
    let what = if keep_data { "remove the service from" } else { "remove the service and its data from" };
    ctx.confirm_destruction(&format!("{what} {}", remote.target.host))?;
    let host = Host::connect(remote.target.clone(), &ctx.printer).await?;
    let lock = host.lock(Duration::from_secs(60), &ctx.printer).await?;
    let step = ctx.printer.step(format!("removing the service from {}", host.name()));
    let result = host.destroy(keep_data).await;
    lock.release().await;
    host.close().await;
    result?;
    step.done(if keep_data { "data kept" } else { "data deleted" });
    ctx.printer.json(
        &json!({"stack": ctx.settings.stack, "host": remote.target.host, "destroyed": true, "kept_data": keep_data}),
    );
    Ok(0)
}

/// The ingest token of the host's service, for `vcctl simulate`.
async fn ingest_token(ctx: &Ctx, remote: &Remote) -> Result<Option<String>> {
    if !ctx.settings.ingest_token {
        return Ok(None);
    }
    let host = Host::connect(remote.target.clone(), &ctx.printer).await?;
    let token = host.ingest_token().await;
    host.close().await;
    token
}
