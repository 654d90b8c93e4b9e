//! `vcctl deploy` (and the deploy step of `up`): install the artifact as a release, switch
//! to it, health-check it, and put the previous release back when it is unhealthy.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use super::Ctx;
use crate::artifact::{self, Artifact};
use crate::cli::{ReleaseArgs, RollbackArgs};
use crate::error::Failure;
use crate::health;
use crate::local::LocalStack;
use crate::release;

/// How a deploy ended when it did not fail.
pub struct Deployed {
    pub release: String,
    pub changed: bool,
    pub status: health::Status,
}

pub async fn run(ctx: &Ctx, args: &ReleaseArgs) -> Result<u8> {
    let started = Instant::now();
    let stack = ctx.local()?;
    let artifact = artifact::resolve(&ctx.root, args.artifact.as_deref(), &ctx.printer).await?;
    let d = deploy(ctx, &stack, &artifact, args.health_timeout).await?;
    report(ctx, &stack, &d, started.elapsed());
    Ok(0)
}

pub fn report(ctx: &Ctx, stack: &LocalStack, d: &Deployed, elapsed: Duration) {
    let url = stack.base_url();
    ctx.printer.json(&json!({
        "stack": ctx.settings.stack,
        "changed": d.changed,
        "release": d.release,
        "version": d.status.version,
        "git_sha": d.status.git_sha,
        "url": url,
        "dashboard": format!("{url}/dashboard"),
        "elapsed_s": elapsed.as_secs_f64(),
    }));
    let what = if d.changed { "deployed" } else { "already running, nothing changed:" };
    ctx.printer.info(format!(
        "\nstack `{}` {what} release {} (v{} {}) in {}\n  dashboard: {url}/dashboard\n  API:       {url}/docs",
        ctx.settings.stack,
        d.release,
        d.status.version,
        d.status.git_sha,
        crate::printer::format_duration(elapsed)
    ));
    ctx.printer.out(format!("{url}/dashboard"));
}

/// Makes `artifact` the running, healthy release, or restores the previous one.
pub async fn deploy(ctx: &Ctx, stack: &LocalStack, artifact: &Artifact, timeout: Duration) -> Result<Deployed> {
    let p = &ctx.printer;
    let previous = stack.current();
    let running = stack.running_pid().is_some();
    if running && previous.as_ref().is_some_and(|r| r.sha256 == artifact.sha256) {
        let client = health::client();
        if let Ok((code, s)) = health::status(&client, &stack.base_url()).await
            && health::is_healthy(code, &s)
        {
            return Ok(Deployed { release: previous.unwrap().name, changed: false, status: s });
        }
    }
    let release = stack.install(artifact)?;
    p.detail(format!("release {} from `{}`", release.name, artifact.path.display()));
    if running {
        let step = p.step("stopping the running release");
        stack.stop(Duration::from_secs(30))?;
        step.done(previous.as_ref().map_or("", |r| r.name.as_str()));
    }
    stack.switch(&release.name)?;
    let step = p.step(format!("starting release {}", release.name));
    let want = artifact.want();
    match start_and_check(stack, want, timeout).await? {
        Ok(status) => {
            step.done("healthy");
            stack.set_verdict(&release.name, "healthy")?;
            stack.prune()?;
            Ok(Deployed { release: release.name, changed: true, status })
        }
        Err(unhealthy) => {
            step.fail("unhealthy");
            stack.set_verdict(&release.name, "failed")?;
            stack.stop(Duration::from_secs(10))?;
            let diagnosis = unhealthy.to_string();
            p.warn(format!("release {} is unhealthy: {diagnosis}", release.name));
            let Some(prev) = previous.filter(|r| r.name != release.name) else {
                anyhow::bail!(
                    "release {} is unhealthy and there is no previous release to go back to: {diagnosis}",
                    release.name
                );
            };
            let step = p.step(format!("rolling back to {}", prev.name));
            stack.switch(&prev.name)?;
            let back = match start_and_check(stack, None, timeout).await {
                Ok(health) => health.map_err(|e| e.to_string()),
                Err(e) => Err(format!("{e:#}")),
            };
            match back {
                Ok(_) => {
                    step.done("healthy again");
                    Err(Failure::RolledBack { release: release.name, previous: prev.name, diagnosis }.into())
                }
                Err(rollback) => {
                    step.fail("unhealthy");
                    Err(Failure::RollbackFailed { release: release.name, diagnosis, rollback }.into())
                }
            }
        }
    }
}

/// Starts `current` and waits for it to be healthy (reporting `want`, when given). The outer
/// error is a failure to start at all; the inner one says why it did not become healthy,
/// with only the log lines this start wrote.
async fn start_and_check(
    stack: &LocalStack,
    want: Option<(&str, &str)>,
    timeout: Duration,
) -> Result<Result<health::Status, health::Unhealthy>> {
    let log_start = stack.log_len();
    stack.start()?;
    Ok(health::wait(&stack.base_url(), want, timeout, || stack.alive(), || stack.log_since(log_start, 15)).await)
}

/// `vcctl rollback [--to RELEASE]`.
pub async fn rollback(ctx: &Ctx, args: &RollbackArgs) -> Result<u8> {
    let stack = ctx.local()?;
    let current = stack.current();
    let target = release::rollback_target(
        &stack.releases(),
        current.as_ref().map(|r| r.name.as_str()),
        args.to.as_deref(),
        "in this stack",
    )?;
    let step = ctx.printer.step(format!("switching to release {}", target.name));
    stack.stop(Duration::from_secs(30))?;
    stack.switch(&target.name)?;
    let want = target.want();
    match start_and_check(&stack, want, args.health_timeout).await? {
        Ok(s) => {
            step.done("healthy");
            stack.set_verdict(&target.name, "healthy")?;
            ctx.printer.json(&json!({"stack": ctx.settings.stack, "release": target.name, "previous": current.map(|r| r.name), "version": s.version}));
            ctx.printer.info(format!("stack `{}` now runs release {}", ctx.settings.stack, target.name));
            Ok(0)
        }
        Err(e) => {
            step.fail("unhealthy");
            Err(release::requested_rollback_failed(target.name, e))
        }
    }
}
