//! `vcctl logs` on a `scale:` stack: the log group's lines, every instance's merged by time
//! and prefixed with it (instances the group replaced included: their streams outlive
//! them), from CloudWatch Logs. `--instance` and `--since` narrow it, `-f` follows, and
//! `--json` prints one object per line (NDJSON).

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::cloud::aws::logs::{self, Line};
use crate::context::Ctx;
use crate::error::Failure;
use crate::providers::aws::connect;
use crate::stack::AwsSettings;
use crate::targets::LogOptions;

/// How often `-f` asks for new lines, and how far back each ask reaches: CloudWatch makes a
/// line readable a few seconds after it was written, so windows overlap and ids dedupe.
const POLL: Duration = Duration::from_secs(2);
const OVERLAP_MS: i64 = 30_000;
/// Where the last lines are looked for first, without `--since`: most are recent.
const WINDOWS: [Duration; 2] = [Duration::from_secs(3600), Duration::from_secs(86_400)];

pub async fn logs(ctx: &Ctx, a: &AwsSettings, args: &LogOptions) -> Result<u8> {
    let (aws, _) = connect(ctx, a).await?;
    let group = super::log_group::name(&ctx.settings.stack);
    if logs::find(&aws.logs, &group).await?.is_none() {
        return Err(Failure::invalid(
            format!("stack `{}` has no log group {group} in {}", ctx.settings.stack, aws.region),
            Some("`vcctl up` makes it; the instances ship their lines to it from their first boot".into()),
        )
        .into());
    }
    let instances: Vec<String> = args.instance.iter().cloned().collect();
    let lines = last_lines(&aws.logs, &group, &instances, args).await?;
    if lines.is_empty() && !args.follow {
        let whose = args.instance.as_deref().map_or(String::new(), |i| format!(" from instance {i}"));
        ctx.printer.info(format!("no lines{whose} in {group} in that time"));
    }
    print(ctx, &lines);
    if args.follow {
        follow(ctx, &aws.logs, &group, &instances, &lines).await?;
    }
    Ok(crate::error::OK)
}

/// The last `args.lines` lines (from `--since` on, when given), looked for in ever wider
/// windows: most are recent, and a quiet stack is then not read end to end.
async fn last_lines(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    instances: &[String],
    args: &LogOptions,
) -> Result<Vec<Line>> {
    let windows: Vec<Option<Duration>> = match args.since {
        Some(since) => vec![Some(since)],
        None => WINDOWS.iter().copied().map(Some).chain([None]).collect(),
    };
    let now = now_ms();
    let mut lines = Vec::new();
    for window in windows {
        let since_ms = window.map_or(0, |w| now - w.as_millis() as i64);
        lines = logs::read(client, &logs::Query { group, since_ms, instances, limit: args.lines }).await?;
        if lines.len() >= args.lines {
            break;
        }
    }
    Ok(lines)
}

/// `-f`: what came since the last line shown, every few seconds, until interrupted.
async fn follow(
    ctx: &Ctx,
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    instances: &[String],
    shown: &[Line],
) -> Result<()> {
    let mut seen: HashSet<String> = shown.iter().map(|l| l.id.clone()).collect();
    let mut last = shown.last().map_or_else(now_ms, |l| l.time_ms);
    loop {
        tokio::time::sleep(POLL).await;
        let q = logs::Query { group, since_ms: last - OVERLAP_MS, instances, limit: 10_000 };
        let fresh: Vec<Line> =
            logs::read(client, &q).await?.into_iter().filter(|l| seen.insert(l.id.clone())).collect();
        last = fresh.last().map_or(last, |l| l.time_ms.max(last));
        print(ctx, &fresh);
        // Bounded memory while following: ids older than the window are never seen again.
        if seen.len() > 100_000 {
            seen = fresh.iter().map(|l| l.id.clone()).collect();
        }
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `2026-12-07T14:52:43.123Z`: as CloudWatch holds it, to the millisecond.
fn stamp(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&f).unwrap_or_default()
}

fn print(ctx: &Ctx, lines: &[Line]) {
    for l in lines {
        ctx.printer.json_line(&json!({"time": stamp(l.time_ms), "instance": l.instance, "message": l.message}));
        ctx.printer.out(format!("{} [{}] {}", stamp(l.time_ms), l.instance, l.message));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_printed_to_the_millisecond_in_utc() {
        assert_eq!(super::stamp(1_796_655_163_123), "2026-12-07T14:52:43.123Z");
    }
}
