//! The commands of a global stack. Its own pieces (health checks, routed records,
//! certificates) are `providers/aws/global`; `deploy` and `rollback` run each region's own
//! command, with its own rolling engine, region by region: the canary first, and the first
//! region that fails stops the rest (it rolled itself back: its old release serves).

use anyhow::Result;
use serde_json::json;

use crate::cli::Command;
use crate::context::Ctx;
use crate::error::Failure;
use crate::providers::aws::global;
use crate::stack::global::GlobalSettings;

pub async fn run(ctx: &Ctx, g: &GlobalSettings, command: &Command) -> Result<u8> {
    match command {
        Command::Plan(_) => global::plan(ctx, g).await,
        Command::Up(_) => global::up(ctx, g).await,
        Command::Status(_) => global::status(ctx, g).await,
        Command::Deploy(_) => across(ctx, g, command, false).await,
        Command::Rollback(_) => across(ctx, g, command, true).await,
        Command::Destroy(d) => destroy(ctx, g, d.regions).await,
        Command::IamPolicy(_) => {
            ctx.printer.out(serde_json::to_string_pretty(&crate::providers::aws::operator::global_policy(
                &ctx.settings.stack,
            ))?);
            Ok(crate::error::OK)
        }
        other => Err(Failure::invalid(
            format!(
                "`{}` works on one region's stack; stack `{}` is a global stack of {}",
                other.name(),
                ctx.settings.stack,
                g.regions.iter().map(|r| format!("{} (stack {})", r.name, r.stack)).collect::<Vec<_>>().join(", ")
            ),
            Some(format!("run it with --stack {}", g.regions[0].stack)),
        )
        .into()),
    }
}

/// Runs `command` on every region in order; stops at the first that does not end well.
async fn across(ctx: &Ctx, g: &GlobalSettings, command: &Command, reverse: bool) -> Result<u8> {
    // The canary first; a rollback the other way round.
    let mut regions = global::regions_in(ctx, g.deploy_order())?;
    if reverse {
        regions.reverse();
    }
    let names: Vec<&str> = regions.iter().map(|r| r.region.name.as_str()).collect();
    ctx.printer.info(format!("{}: region by region, {}", command.name(), names.join(" → ")));
    let mut done: Vec<&str> = Vec::new();
    for r in &regions {
        let name = r.region.name.as_str();
        ctx.printer.info(format!("region {name} (stack {}, {})", r.ctx.settings.stack, r.aws().region()));
        // Boxed: `dispatch` is what called this (a region is never a global stack).
        let outcome = Box::pin(super::dispatch(&r.ctx, command)).await;
        let code = match &outcome {
            Ok(code) => *code,
            Err(e) => crate::error::classify(e).0,
        };
        if code != crate::error::OK {
            let left: Vec<&str> = names.iter().copied().skip(done.len() + 1).collect();
            summary(ctx, command, &done, Some(name), &left);
            return outcome.map_err(|e| e.context(format!("region {name} (stack {})", r.ctx.settings.stack)));
        }
        done.push(name);
    }
    summary(ctx, command, &done, None, &[]);
    Ok(crate::error::OK)
}

fn summary(ctx: &Ctx, command: &Command, done: &[&str], failed: Option<&str>, left: &[&str]) {
    ctx.printer.json(&json!({
        "stack": ctx.settings.stack, "shape": "global", "command": command.name(),
        "regions_done": done, "region_failed": failed, "regions_not_reached": left,
    }));
    let list = |l: &[&str]| if l.is_empty() { "none".to_string() } else { l.join(", ") };
    match failed {
        None => ctx.printer.out(format!("{}: every region done ({})", command.name(), list(done))),
        Some(f) => {
            ctx.printer.out(format!(
                "{}: stopped at region {f}, which serves its earlier release; done: {}; not reached: {}",
                command.name(),
                list(done),
                list(left)
            ));
            if !done.is_empty() && matches!(command, Command::Deploy(_)) {
                ctx.printer.out(format!(
                    "  the regions done serve the new release; `vcctl rollback --stack {}` takes them back",
                    ctx.settings.stack
                ));
            }
        }
    }
}

/// The global pieces, and with `--regions` every region's stack too, after one confirmation.
async fn destroy(ctx: &Ctx, g: &GlobalSettings, with_regions: bool) -> Result<u8> {
    let regions = if with_regions { global::regions(ctx, g)? } else { Vec::new() };
    let owned = global::owned(ctx, g).await?;
    ctx.printer.info(format!("`vcctl destroy` deletes, of global stack `{}`:", ctx.settings.stack));
    for p in owned.as_ref().map(global::Owned::names).unwrap_or_default() {
        ctx.printer.info(format!("  - {p}"));
    }
    for r in &regions {
        ctx.printer.info(format!(
            "  - region {}: the whole stack `{}` (its own destroy lists it)",
            r.region.name, r.ctx.settings.stack
        ));
    }
    if !with_regions {
        ctx.printer.info("  (the regions' stacks stay: `--regions` destroys them too)");
    }
    let what = if with_regions {
        "delete the global stack and every region's stack"
    } else {
        "delete the global stack's records, health checks and certificates"
    };
    ctx.confirm_destruction(what)?;
    let deleted = match owned {
        Some(owned) => global::destroy(ctx, owned).await?,
        None => Vec::new(),
    };
    for r in &regions {
        ctx.printer.info(format!("region {}: destroying stack `{}`", r.region.name, r.ctx.settings.stack));
        // Confirmed once, above, for all of them.
        let region_ctx = Ctx { yes: true, ..r.ctx.clone() };
        Box::pin(super::dispatch(&region_ctx, &Command::Destroy(crate::cli::DestroyArgs::all_of_it()))).await?;
    }
    let kept: Vec<String> = match with_regions {
        true => Vec::new(),
        false => g.regions.iter().map(|r| format!("region {} (stack {})", r.name, r.stack)).collect(),
    };
    let removal = crate::report::Removal {
        stack: &ctx.settings.stack,
        shape: "global",
        deleted: &deleted,
        kept: &kept,
        failed: &[],
    };
    crate::report::print_removal(&ctx.printer, &removal, serde_json::Map::new());
    Ok(crate::error::OK)
}
