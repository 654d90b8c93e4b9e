//! `vcctl logs [-f] [-n N]`: the service's log (stdout: it is the data asked for).

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::{Context, Result};

use super::Ctx;
use crate::cli::LogsArgs;
use crate::local::tail;

pub async fn run(ctx: &Ctx, args: &LogsArgs) -> Result<u8> {
    let stack = ctx.local()?;
    let path = stack.log_file();
    if !path.exists() {
        ctx.printer.warn(format!("no log yet at `{}`: the stack has not been started (`vcctl up`)", path.display()));
        return Ok(1);
    }
    let text = tail(&path, args.lines).with_context(|| format!("reading `{}`", path.display()))?;
    let mut out = std::io::stdout().lock();
    if !text.is_empty() {
        writeln!(out, "{text}")?;
    }
    out.flush()?;
    drop(out);
    if !args.follow {
        return Ok(0);
    }
    let mut f = std::fs::File::open(&path)?;
    let mut pos = f.seek(SeekFrom::End(0))?;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len < pos {
            // Truncated or replaced: start again from the top.
            f = std::fs::File::open(&path)?;
            pos = 0;
        }
        if len > pos {
            f.seek(SeekFrom::Start(pos))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            pos += buf.len() as u64;
            let mut out = std::io::stdout().lock();
            out.write_all(&buf)?;
            out.flush()?;
        }
    }
}
