//! `vcctl destroy`: stop the service and delete the stack's state, data included unless
//! `--keep-data`. Asks first; `--yes` for scripts. Idempotent.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::Ctx;
use crate::cli::DestroyArgs;

pub async fn run(ctx: &Ctx, args: &DestroyArgs) -> Result<u8> {
    let stack = ctx.local()?;
    if !stack.dir.exists() {
        ctx.printer.json(&json!({"stack": ctx.settings.stack, "stopped": false, "deleted": false}));
        ctx.printer.info(format!("stack `{}` has nothing to destroy", ctx.settings.stack));
        return Ok(0);
    }
    if !args.keep_data {
        ctx.confirm_destruction(&format!("stop stack `{}` and delete its stored events", ctx.settings.stack))?;
    }
    let step = ctx.printer.step("stopping the service");
    let stopped = stack.stop(Duration::from_secs(30))?;
    step.done(if stopped { "stopped" } else { "was not running" });
    if args.keep_data {
        for entry in std::fs::read_dir(&stack.dir)? {
            let path = entry?.path();
            if path == stack.data_dir() || path.ends_with("secrets") {
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
    ctx.printer
        .json(&json!({"stack": ctx.settings.stack, "stopped": stopped, "deleted": true, "kept_data": args.keep_data}));
    ctx.printer.info(format!(
        "stack `{}` destroyed{}",
        ctx.settings.stack,
        if args.keep_data { format!("; events kept in `{}`", stack.data_dir().display()) } else { String::new() }
    ));
    Ok(0)
}
