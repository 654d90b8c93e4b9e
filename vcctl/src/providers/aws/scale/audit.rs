//! A `scale:` stack's audit trail: its instances are replaced at will, so what was done to
//! the group is kept in its bucket, not on them. Every `up`, `deploy`, `rollback`, `restore`
//! and `db restore` appends one entry (`audit/<UTC time>-<action>-<random>.json`, one object
//! each, so two writers never overwrite each other), whatever its outcome; `vcctl audit`
//! reads the newest back. Destroyed with the bucket.

use anyhow::Result;

use crate::audit::Entry;
use crate::cloud::aws::s3;
use crate::context::Ctx;
use crate::providers::aws::names::{AUDIT, TierNames};
use crate::stack::AwsSettings;

/// The most entries vcctl lists (their keys; it reads only the newest asked for).
const MOST: usize = 100_000;
/// The largest entry vcctl reads back (it writes well under 2 KiB).
const LARGEST: usize = 8 * 1024;

/// The entry's key: sorted by time, then unique.
pub fn key(at: time::OffsetDateTime, action: &str, nonce: u32) -> String {
    let stamp =
        at.format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z")).expect("formats");
    let action: String = action.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("{AUDIT}{stamp}-{action}-{nonce:08x}.json")
}

/// The entry of `command`'s run (`vcctl deploy` → `deploy`) and how it ended.
pub fn entry(command: &str, release: Option<&str>, outcome: &Result<u8, String>, at: time::OffsetDateTime) -> Entry {
    let result = match outcome {
        Ok(0) => "succeeded".to_string(),
        Ok(code) => format!("exit {code}"),
        Err(e) => format!("failed: {e}"),
    };
    let action = command.strip_prefix("vcctl ").unwrap_or(command);
    let mut e = Entry::now(action, release.unwrap_or("-"), &result);
    e.time = at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    e
}

/// Appends the entry of `command` to the stack's trail; one that cannot be written is a
/// warning, never the command's failure.
pub async fn record(ctx: &Ctx, a: &AwsSettings, command: &str, outcome: &Result<u8, String>) {
    let stamp = crate::providers::aws::stamp(&ctx.settings);
    if stamp.id.is_empty() {
        return;
    }
    let bucket = TierNames::of(&ctx.settings.stack, &stamp.id).bucket;
    let report = crate::report::last();
    let now = time::OffsetDateTime::now_utc();
    let e = entry(command, report.as_ref().and_then(|r| r["release"].as_str()), outcome, now);
    let written = async {
        let aws = crate::cloud::aws::Aws::connect(&a.region()).await;
        s3::put(&aws.s3, &bucket, &key(now, &e.action, rand::random()), e.line().into_bytes()).await
    };
    if let Err(err) = written.await {
        ctx.printer.warn(format!("could not write the audit trail in s3://{bucket}/{AUDIT}: {err:#}"));
    }
}

/// `vcctl audit -n N` of a `scale:` stack: its newest `n` entries, oldest first.
pub async fn show(ctx: &Ctx, a: &AwsSettings, n: usize) -> Result<u8> {
    let (cloud, _) = crate::providers::aws::connect(ctx, a).await?;
    let stamp = crate::providers::aws::stamp(&ctx.settings);
    let bucket = TierNames::of(&ctx.settings.stack, &stamp.id).bucket;
    let keys = if stamp.id.is_empty() { Vec::new() } else { s3::list_keys(&cloud.s3, &bucket, AUDIT, MOST).await? };
    let mut entries = Vec::new();
    for k in &keys[keys.len().saturating_sub(n)..] {
        if let Some(bytes) = s3::get_small(&cloud.s3, &bucket, k, LARGEST).await? {
            entries.push(Entry::parse(String::from_utf8_lossy(&bytes).trim()));
        }
    }
    crate::audit::print(&ctx.printer, &ctx.settings.stack, &entries);
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn entries_sort_by_time_and_say_what_ended_how() {
        let at = time::macros::datetime!(2026-12-07 10:15:00 UTC);
        let k = super::key(at, "db restore", 0xab);
        assert_eq!(k, "audit/20261207T101500Z-dbrestore-000000ab.json");
        assert!(super::key(at + time::Duration::SECOND, "deploy", 0) > k);
        let e = super::entry("vcctl rollback", Some("r1"), &Err("unhealthy".into()), at);
        assert_eq!((e.action.as_str(), e.subject.as_str(), e.result.as_str()), ("rollback", "r1", "failed: unhealthy"));
        assert_eq!(e.time, "2026-12-07T10:15:00Z");
    }
}
