//! `vcctl backup` of a `scale:` stack: a manual RDS snapshot of its database, tagged as the
//! stack's and waited for until it is available; `backup --list`: every snapshot RDS keeps
//! of it, the automated ones of its backup window and the manual ones, oldest first.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::cloud::aws::rds::{self, DbSnapshot};
use crate::context::Ctx;
use crate::error::Failure;
use crate::providers::aws::{self, names};
use crate::stack::AwsSettings;

/// How long a snapshot may take before vcctl stops waiting (RDS goes on).
const SNAPSHOT_PATIENCE: Duration = Duration::from_secs(45 * 60);

pub async fn backup(ctx: &Ctx, a: &AwsSettings, list: bool) -> Result<u8> {
    let stack = &ctx.settings.stack;
    let (cloud, _) = aws::connect(ctx, a).await?;
    let stamp = aws::stamp(&ctx.settings);
    let names = names::TierNames::of(stack, &stamp.id);
    let db_id = super::database::read(&cloud.s3, &names.bucket, &names.db).await?.serving.instance;
    let Some(db) = rds::find(&cloud.rds, &db_id).await? else {
        return Err(Failure::invalid(
            format!("stack `{stack}` has no DB instance {db_id}: nothing to back up"),
            Some("`vcctl up` makes it".into()),
        )
        .into());
    };
    aws::owners::owned(&format!("DB instance {db_id}"), db.owner.stack_id.as_deref(), &stamp)?;
    if list {
        // Every DB instance of the stack: one restored from, or kept after a restore, too.
        let mut all = rds::snapshots(&cloud.rds, &db_id).await?;
        for other in rds::owned(&cloud.rds, &stamp.id).await?.iter().filter(|o| **o != db_id) {
            all.extend(rds::snapshots(&cloud.rds, other).await?);
        }
        all.sort_by(|a, b| a.taken_at.cmp(&b.taken_at));
        return print_list(ctx, &all);
    }
    let now = time::OffsetDateTime::now_utc();
    let snapshot = snapshot_name(stack, now);
    rds::create_snapshot(&cloud.rds, &db_id, &snapshot, &stamp).await?;
    let wait = rds::wait_snapshot(&cloud.rds, &db_id, &snapshot, SNAPSHOT_PATIENCE);
    let s = ctx.printer.doing(&format!("snapshot {snapshot} of DB instance {db_id}"), wait).await?;
    ctx.printer.json(&json!({"stack": stack, "snapshot": s, "db_instance": db_id}));
    ctx.printer.out(&s.id);
    ctx.printer.info(format!(
        "snapshot {} of DB instance {db_id} is available; RDS keeps it until it is deleted (`destroy` keeps it too)",
        s.id
    ));
    Ok(0)
}

/// `vcctl-<stack>-<UTC time>`: RDS takes letters, digits and single hyphens, first a letter.
fn snapshot_name(stack: &str, at: time::OffsetDateTime) -> String {
    let stamp =
        at.format(time::macros::format_description!("[year][month][day]t[hour][minute][second]z")).expect("formats");
    format!("vcctl-{stack}-{stamp}")
}

fn print_list(ctx: &Ctx, snapshots: &[DbSnapshot]) -> Result<u8> {
    ctx.printer.json(&json!({"stack": ctx.settings.stack, "snapshots": snapshots}));
    if snapshots.is_empty() {
        ctx.printer.info(format!("stack `{}` has no snapshots yet: `vcctl backup` takes one", ctx.settings.stack));
    }
    for s in snapshots {
        ctx.printer.out(format!("{}  {}  {}  {}", s.id, s.taken_at, s.kind, s.status));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_snapshot_is_named_as_rds_allows() {
        let at = time::macros::datetime!(2026-12-07 13:05:09 UTC);
        let name = super::snapshot_name("frankfurt-scale", at);
        assert_eq!(name, "vcctl-frankfurt-scale-20261207t130509z");
        assert!(!name.contains("--") && name.len() <= 255);
    }
}
