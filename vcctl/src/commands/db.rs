//! `vcctl db dump` and `vcctl db restore FILE`: backups of a stack's database. On a host,
//! its PostgreSQL database streamed over SSH (`pg_dump -Fc`): a restore goes into a new
//! database while the service serves; only a whole one is swapped in, with the service
//! stopped around the swap, then checked; the database it replaced is kept as
//! `vehicleconnect_previous`. On a local stack, a consistent copy of the embedded store
//! (providers/local/store.rs), swapped in the same way.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use super::Ctx;
use crate::cli::{DbCommand, DbRestoreArgs};
use crate::error::Failure;
use crate::targets::Operations;

pub async fn run(ctx: &Ctx, mut target: Box<dyn Operations>, command: &DbCommand) -> Result<u8> {
    let result = match command {
        DbCommand::Dump(_) => dump(ctx, target.as_mut()).await,
        DbCommand::Restore(args) => restore(ctx, target.as_mut(), args).await,
    };
    target.close().await;
    result
}

async fn dump(ctx: &Ctx, target: &mut dyn Operations) -> Result<u8> {
    if std::io::stdout().is_terminal() {
        return Err(Failure::invalid(
            "`vcctl db dump` writes a binary archive to stdout, which is a terminal",
            Some(format!("redirect it: vcctl db dump --stack {} > {}.dump", ctx.settings.stack, ctx.settings.stack)),
        )
        .into());
    }
    let started = Instant::now();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
    let bytes = target.db_dump(&mut out, &ctx.printer).await?;
    ctx.printer.info(format!(
        "dumped the database of stack `{}` {}: {} in {}",
        ctx.settings.stack,
        target.place(),
        indicatif::HumanBytes(bytes),
        crate::printer::format_duration(started.elapsed())
    ));
    Ok(0)
}

async fn restore(ctx: &Ctx, target: &mut dyn Operations, args: &DbRestoreArgs) -> Result<u8> {
    let size = std::fs::metadata(&args.file)
        .map_err(|e| Failure::invalid(format!("cannot read `{}`: {e}", args.file.display()), None))?
        .len();
    target.check_dump(&args.file)?;
    let place = target.place();
    ctx.printer.info(format!(
        "`vcctl db restore` replaces the database of stack `{}` {place} with `{}` ({}); the service stops while \
         it is swapped in, and the current database is kept ({})",
        ctx.settings.stack,
        args.file.display(),
        indicatif::HumanBytes(size),
        target.kept_database()
    ));
    ctx.confirm_destruction(&format!("replace the database of stack `{}` {place}", ctx.settings.stack))?;
    target.lock(Duration::from_secs(60), &ctx.printer).await?;
    let started = Instant::now();
    let done = restore_and_check(ctx, target, args).await;
    let result = match &done {
        Ok(()) => format!("restored from {}; healthy", args.file.display()),
        Err(e) => format!("failed: {e:#}"),
    };
    crate::deploy::audit(&ctx.printer, target, "restore", &("database".to_string(), result)).await;
    target.unlock().await;
    done?;
    let elapsed = started.elapsed();
    ctx.printer.json(
        &json!({"stack": ctx.settings.stack, "restored": args.file, "bytes": size, "elapsed_s": elapsed.as_secs_f64()}),
    );
    ctx.printer.info(format!("restored in {}; the service is healthy", crate::printer::format_duration(elapsed)));
    Ok(0)
}

async fn restore_and_check(ctx: &Ctx, target: &mut dyn Operations, args: &DbRestoreArgs) -> Result<()> {
    target.db_restore(&args.file, &ctx.printer).await?;
    crate::deploy::check_restored(&ctx.printer, target, "the restored database")
        .await
        .map_err(|why| anyhow::anyhow!("the service is unhealthy on the restored database: {why}"))
}
