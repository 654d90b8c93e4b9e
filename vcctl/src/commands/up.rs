//! `vcctl up`: bring the stack to what its file says: the service running, healthy, with
//! this checkout's (or `--artifact`'s) release. Changes nothing when that is already so.

use std::time::Instant;

use anyhow::Result;

use super::Ctx;
use crate::artifact;
use crate::cli::ReleaseArgs;

pub async fn run(ctx: &Ctx, args: &ReleaseArgs) -> Result<u8> {
    let started = Instant::now();
    let stack = ctx.local()?;
    std::fs::create_dir_all(&stack.dir)?;
    if stack.has_stale_pid_file() {
        ctx.printer.warn("found a stale pid file (the service had stopped); starting it again");
    }
    let artifact = artifact::resolve(&ctx.root, args.artifact.as_deref(), &ctx.printer).await?;
    let deployed = super::deploy::deploy(ctx, &stack, &artifact, args.health_timeout).await?;
    super::deploy::report(ctx, &stack, &deployed, started.elapsed());
    Ok(0)
}
