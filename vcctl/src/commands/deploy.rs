//! `vcctl up` (after provisioning, on AWS), `vcctl deploy` and `vcctl rollback` on any
//! target: the workflow is `deploy`'s; this file resolves the artifact, holds the lock and
//! prints the outcome (text, `--json`, and the GitHub step summary).

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use super::Ctx;
use crate::artifact::{self, Artifact};
use crate::cli::{ReleaseArgs, RollbackArgs};
use crate::deploy::{self, Ending, Outcome};
use crate::error::Failure;
use crate::targets::Operations;

/// Ships the artifact to `target` (once reached); its GitHub step summary whatever ends it:
/// the report of a release that was checked (healthy or not), or the error that stopped the
/// deploy first, reaching the target included.
pub async fn run(ctx: &Ctx, target: Result<Box<dyn Operations>>, args: &ReleaseArgs) -> Result<u8> {
    let started = Instant::now();
    let mut target = match target {
        Ok(target) => target,
        Err(e) => {
            summary_of_error(ctx, None, &e);
            return Err(e);
        }
    };
    let result = steps(ctx, target.as_mut(), args).await;
    crate::deploy::audit(&ctx.printer, target.as_mut(), "deploy", &deploy_entry(&result)).await;
    let host = target.host().map(str::to_string);
    let url = target.url().to_string();
    target.close().await;
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            summary_of_error(ctx, host.as_deref(), &e);
            return Err(e);
        }
    };
    summary(ctx, host.as_deref(), &url, &outcome, started.elapsed());
    report(ctx, host.as_deref(), &url, &outcome, started.elapsed());
    match outcome.error() {
        Some(e) => Err(e),
        None => Ok(0),
    }
}

async fn steps(ctx: &Ctx, target: &mut dyn Operations, args: &ReleaseArgs) -> Result<Outcome> {
    // The target first: an unreachable host or a foreign architecture is said before a build.
    let arch = target.arch().await?;
    let artifact = artifact::resolve(&ctx.root, args.artifact.as_deref(), &ctx.printer).await?;
    check_arch(&artifact, arch.as_deref(), target.host().unwrap_or("this machine"))?;
    target.lock(args.lock_timeout, &ctx.printer).await?;
    let shipped = deploy::ship(target, &artifact, args.health_timeout, &ctx.printer).await;
    target.unlock().await;
    shipped
}

/// What a deploy's audit line says: (the release, how it ended).
fn deploy_entry(result: &Result<Outcome>) -> (String, String) {
    match result {
        Ok(o) => {
            let how = match &o.ending {
                Ending::Unchanged => "unchanged (already serving)".to_string(),
                Ending::Deployed { .. } => "healthy, serving".to_string(),
                Ending::Refused { serving, .. } => format!("refused before taking traffic; {serving} serves"),
                Ending::RolledBack { to, .. } => format!("unhealthy, rolled back to {to}"),
            };
            (o.release.name.clone(), how)
        }
        Err(e) => (String::new(), format!("failed: {e:#}")),
    }
}

fn check_arch(artifact: &Artifact, arch: Option<&str>, host: &str) -> Result<()> {
    match (artifact::elf_machine(&artifact.path), arch) {
        (Some(built), Some(arch)) if built != arch => Err(Failure::invalid(
            format!("`{}` is built for {built}, but {host} runs {arch}", artifact.path.display()),
            Some(format!("build for the host (e.g. `cargo build --release --target {arch}-unknown-linux-gnu`) and pass it with --artifact")),
        )
        .into()),
        _ => Ok(()),
    }
}

fn report(ctx: &Ctx, host: Option<&str>, url: &str, o: &Outcome, elapsed: Duration) {
    let status = o.status.as_ref();
    let places = [(host.unwrap_or("this machine").to_string(), o.ending.describe())];
    let shipment = crate::report::Shipment {
        stack: &ctx.settings.stack,
        shape: ctx.settings.provider.shape(),
        release: &o.release.name,
        ok: o.diagnosis().is_none(),
        places: &places,
        url: Some(url),
        elapsed,
    };
    let extra = json!({
        "host": host,
        "changed": o.changed(),
        "verdict": o.release.verdict,
        "previous": o.previous(),
        "version": status.map(|s| &s.version),
        "git_sha": status.map(|s| &s.git_sha),
        "dashboard": format!("{url}/dashboard"),
        "timings_s": o.release.timings,
        "diagnosis": o.diagnosis(),
    });
    let version = status.map(|s| format!("  version:   v{} ({})", s.version, s.git_sha));
    crate::report::print(&ctx.printer, &shipment, crate::plan::extra(extra), &Vec::from_iter(version));
}

/// When run by GitHub Actions: the deploy as Markdown in the run's summary page.
fn summary(ctx: &Ctx, host: Option<&str>, url: &str, o: &Outcome, elapsed: Duration) {
    let verdict = match &o.ending {
        Ending::RolledBack { to, .. } => format!("❌ unhealthy, rolled back to `{to}`"),
        Ending::Refused { serving, .. } => {
            format!("❌ unhealthy, refused before taking traffic; `{serving}` serves as before")
        }
        Ending::Deployed { .. } => "✅ healthy".to_string(),
        Ending::Unchanged => "✅ already running, nothing changed".to_string(),
    };
    let mut md = format!(
        "### VehicleConnect deploy: stack `{}`\n\n| | |\n|---|---|\n| Host | `{}` |\n| Release | `{}` |\n| Version | {} |\n| Artifact sha256 | `{}` |\n| Verdict | {verdict} |\n| Service | {url} |\n| Total | {} |\n",
        ctx.settings.stack,
        host.unwrap_or("this machine"),
        o.release.name,
        o.release.version.as_deref().unwrap_or("?"),
        o.release.sha256,
        crate::printer::format_duration(elapsed),
    );
    if !o.release.timings.is_empty() {
        md.push_str("\n| Step | Seconds |\n|---|---|\n");
        for (step, secs) in &o.release.timings {
            md.push_str(&format!("| {step} | {secs:.1} |\n"));
        }
    }
    if let Some(f) = o.diagnosis() {
        md.push_str(&format!("\n<details><summary>Diagnosis</summary>\n\n```\n{f}\n```\n</details>\n"));
    }
    ctx.printer.step_summary(&md);
}

/// When run by GitHub Actions: a deploy that ended in an error, as Markdown.
fn summary_of_error(ctx: &Ctx, host: Option<&str>, e: &anyhow::Error) {
    let md = format!(
        "### VehicleConnect deploy: stack `{}`\n\n❌ **failed** on `{}` (exit {})\n\n```\n{e:#}\n```\n",
        ctx.settings.stack,
        host.unwrap_or(&ctx.settings.stack),
        crate::error::classify(e).0
    );
    ctx.printer.step_summary(&md);
}

/// `vcctl rollback [--to RELEASE]`, under the target's lock.
pub async fn rollback(ctx: &Ctx, mut target: Box<dyn Operations>, args: &RollbackArgs) -> Result<u8> {
    let p = &ctx.printer;
    let locked = target.lock(args.lock_timeout, p).await;
    let result = match locked {
        Ok(()) => deploy::rollback(target.as_mut(), args.to.as_deref(), args.health_timeout, p).await,
        Err(e) => Err(e),
    };
    let entry = match &result {
        Ok((release, previous, _)) => {
            (release.name.clone(), format!("healthy, serving (was {})", previous.as_deref().unwrap_or("nothing")))
        }
        Err(e) => (args.to.clone().unwrap_or_default(), format!("failed: {e:#}")),
    };
    crate::deploy::audit(&ctx.printer, target.as_mut(), "rollback", &entry).await;
    let on = target.host().map(|h| format!(" on {h}")).unwrap_or_default();
    target.close().await;
    let (release, previous, status) = result?;
    p.json(
        &json!({"stack": ctx.settings.stack, "release": release.name, "previous": previous, "version": status.version}),
    );
    p.info(format!("stack `{}`{on} now runs release {}", ctx.settings.stack, release.name));
    Ok(0)
}
