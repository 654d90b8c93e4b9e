//! `vcctl backup [--list]` and `vcctl restore SNAPSHOT` on an AWS stack: EBS snapshots of
//! the data volume. A restore makes a new volume from the snapshot, swaps it in for the
//! current one on the instance (the service stopped around the swap), checks health, and
//! keeps the replaced volume, tagged `vcctl:role=data-replaced`, until the user deletes it.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use crate::cloud::aws::backup::{self, RecoveryPoint};
use crate::cloud::aws::snapshot::{self, VolumeSnapshot};
use crate::cloud::aws::volume::{self, Volume};
use crate::cloud::aws::{Aws, ec2};
use crate::context::Ctx;
use crate::error::Failure;
use crate::providers::aws::connect;
use crate::providers::aws::single::remote_of;
use crate::stack::AwsSettings;
use crate::targets::Operations;

const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(3600);
const VOLUME_TIMEOUT: Duration = Duration::from_secs(600);

async fn data_volume(ctx: &Ctx, aws: &Aws) -> Result<Volume> {
    volume::find(&aws.ec2, &ctx.settings.stack, "data").await?.ok_or_else(|| {
        Failure::invalid(
            format!("stack `{}` has no data volume in {}", ctx.settings.stack, aws.region),
            Some("`vcctl up` creates it".into()),
        )
        .into()
    })
}

pub async fn backup(ctx: &Ctx, a: &AwsSettings, list: bool) -> Result<u8> {
    let (aws, _) = connect(ctx, a).await?;
    if list {
        let vault = crate::providers::aws::names::BoxNames::of(&ctx.settings.stack).backup_vault;
        let points = match backup::find_vault(&aws.backup, &vault).await? {
            Some(_) => backup::recovery_points(&aws.backup, &vault).await?,
            None => Vec::new(),
        };
        return print_list(ctx, &snapshot::list(&aws.ec2, &ctx.settings.stack).await?, &points);
    }
    let v = data_volume(ctx, &aws).await?;
    let origin = crate::release::Origin::here();
    let now = crate::audit::stamp(time::OffsetDateTime::now_utc());
    let description = format!("vcctl backup of stack {} by {} at {now}", ctx.settings.stack, origin.by);
    let name = crate::providers::aws::names::backup(&ctx.settings.stack);
    let id =
        snapshot::create(&aws.ec2, &v.id, &name, &description, &crate::providers::aws::stamp(&ctx.settings)).await?;
    let bar = ctx.printer.bar(100, "  snapshot {bar:30} {pos}% {elapsed} {msg}");
    bar.set_message(id.clone());
    let done = snapshot::wait(&aws.ec2, &id, SNAPSHOT_TIMEOUT, |p| {
        bar.set_position(p.trim_end_matches('%').parse().unwrap_or(0));
    })
    .await;
    bar.finish_and_clear();
    let s = done?;
    ctx.printer.json(&json!({"stack": ctx.settings.stack, "snapshot": s}));
    ctx.printer.out(&s.id);
    ctx.printer.info(format!(
        "snapshot {} of data volume {} ({} GB) is complete; `vcctl restore {}` restores it",
        s.id, v.id, s.size_gb, s.id
    ));
    Ok(0)
}

/// On-demand snapshots (`vcctl backup`) and the vault's recovery points (the plan's, and
/// any on-demand AWS Backup job's) in one list, oldest first: each restorable with
/// `vcctl restore SNAPSHOT`.
fn print_list(ctx: &Ctx, snapshots: &[VolumeSnapshot], points: &[RecoveryPoint]) -> Result<u8> {
    ctx.printer.json(&json!({"stack": ctx.settings.stack, "snapshots": snapshots, "recovery_points": points}));
    if snapshots.is_empty() && points.is_empty() {
        ctx.printer.info(format!(
            "stack `{}` has no backups yet: `vcctl backup` takes one now; the daily plan (`aws.backup`) makes one each night",
            ctx.settings.stack
        ));
    }
    let mut rows: Vec<(String, String)> = snapshots
        .iter()
        .map(|s| {
            let row = format!(
                "{}  {}  {} GB  {} {}  on demand: {}",
                s.id, s.started, s.size_gb, s.state, s.progress, s.description
            );
            (s.started.clone(), row)
        })
        .collect();
    rows.extend(points.iter().map(|p| {
        let kind = if p.plan_id.is_some() { "scheduled (AWS Backup plan)" } else { "on demand (AWS Backup job)" };
        let until = p.delete_at.as_deref().map(|d| format!(", kept until {d}")).unwrap_or_default();
        let row = format!(
            "{}  {}  {:.0} GB  {}  {kind}{until}",
            p.snapshot.as_deref().unwrap_or(&p.arn),
            p.created,
            p.size_gb,
            p.status.to_lowercase()
        );
        (p.created.clone(), row)
    }));
    rows.sort();
    for (_, row) in rows {
        ctx.printer.out(row);
    }
    Ok(0)
}

/// The snapshot, if it is this stack's and complete.
async fn checked_snapshot(ctx: &Ctx, aws: &Aws, id: &str) -> Result<VolumeSnapshot> {
    let stack = &ctx.settings.stack;
    let Some(s) = snapshot::find(&aws.ec2, id).await? else {
        return Err(Failure::invalid(
            format!("no snapshot {id} in {}", aws.region),
            Some("`vcctl backup --list` lists the stack's".into()),
        )
        .into());
    };
    crate::providers::aws::owners::ensure_ours(
        &s.owner,
        &format!("snapshot {id}"),
        stack,
        ctx.settings.stack_id.as_deref(),
    )?;
    if s.state != "completed" {
        return Err(
            Failure::invalid(format!("snapshot {id} is {} ({}), not complete yet", s.state, s.progress), None).into()
        );
    }
    Ok(s)
}

pub async fn restore(ctx: &Ctx, a: &AwsSettings, id: &str) -> Result<u8> {
    let (aws, _) = connect(ctx, a).await?;
    let s = checked_snapshot(ctx, &aws, id).await?;
    let old = data_volume(ctx, &aws).await?;
    let instance = old.instance_id.clone().context("the data volume is not attached to an instance: run `vcctl up`")?;
    ctx.printer.info(format!(
        "`vcctl restore` replaces data volume {} ({} GB) of stack `{}` with a new volume made from snapshot {} \
         (taken {}); the service stops while they are swapped; {} is kept, tagged vcctl:role=data-replaced, \
         until you delete it",
        old.id, old.size_gb, ctx.settings.stack, s.id, s.started, old.id
    ));
    ctx.confirm_destruction(&format!("replace the data of stack `{}` with snapshot {}", ctx.settings.stack, s.id))?;
    let step = ctx.printer.step(format!("making a volume from {}", s.id));
    let zone = ec2::availability_zone(&aws.ec2, &instance).await?;
    let name = crate::providers::aws::names::BoxNames::of(&ctx.settings.stack).data_volume;
    let new = snapshot::volume_from(
        &aws.ec2,
        &s.id,
        &zone,
        &name,
        "data-restoring",
        &crate::providers::aws::stamp(&ctx.settings),
    )
    .await?;
    volume::wait_state(&aws.ec2, &new, "available", VOLUME_TIMEOUT).await?;
    step.done(&new);
    let work = async {
        let remote = remote_of(ctx, a, &aws).await?;
        let mut target = crate::targets::remote::connect(ctx, remote, Duration::ZERO).await?;
        target.lock(Duration::from_secs(60), &ctx.printer).await?;
        let swapped = swap(ctx, &aws, target.as_mut(), &old.id, &new, &instance).await;
        let result = match &swapped {
            Ok(()) => format!("from {}: volume {new} serves, {} kept", s.id, old.id),
            Err(e) => format!("failed: {e:#}"),
        };
        crate::deploy::audit(&ctx.printer, target.as_mut(), "restore", &(s.id.clone(), result)).await;
        target.close().await;
        swapped
    };
    crate::providers::aws::on_demand::around(ctx, a, &aws, "vcctl restore", work).await?;
    ctx.printer.json(&json!({"stack": ctx.settings.stack, "snapshot": s.id, "volume": new, "replaced": old.id}));
    ctx.printer.info(format!("restored from {}: volume {new} serves; {} is kept (delete it when sure)", s.id, old.id));
    Ok(0)
}

/// Swaps `new` in for `old` on the instance, then checks the service; on a failure before
/// the new volume serves, puts `old` back.
async fn swap(ctx: &Ctx, aws: &Aws, target: &mut dyn Operations, old: &str, new: &str, instance: &str) -> Result<()> {
    let step = ctx.printer.step(format!("swapping {new} in for {old} on {instance}"));
    target.data_release().await?;
    let swapped = async {
        snapshot::detach(&aws.ec2, old, instance).await?;
        volume::wait_state(&aws.ec2, old, "available", VOLUME_TIMEOUT).await?;
        snapshot::set_role(&aws.ec2, old, "data-replaced").await?;
        snapshot::set_role(&aws.ec2, new, "data").await?;
        volume::attach(&aws.ec2, new, instance).await?;
        volume::wait_state(&aws.ec2, new, "in-use", VOLUME_TIMEOUT).await?;
        target.data_mount(new).await
    }
    .await;
    if let Err(e) = swapped {
        step.fail("putting the old volume back");
        put_back(aws, target, old, new, instance).await;
        return Err(e);
    }
    step.done("");
    crate::deploy::check_restored(&ctx.printer, target, "the restored data").await.map_err(|why| {
        anyhow::anyhow!("the service is unhealthy on the restored data: {why}; the old volume {old} is kept")
    })
}

/// Best effort: the old volume attached and serving again, the new one set aside.
async fn put_back(aws: &Aws, target: &mut dyn Operations, old: &str, new: &str, instance: &str) {
    let _ = target.data_release().await;
    let _ = snapshot::detach(&aws.ec2, new, instance).await;
    let _ = volume::wait_state(&aws.ec2, new, "available", VOLUME_TIMEOUT).await;
    let _ = snapshot::set_role(&aws.ec2, new, "data-restoring").await;
    let _ = snapshot::set_role(&aws.ec2, old, "data").await;
    let _ = volume::attach(&aws.ec2, old, instance).await;
    let _ = volume::wait_state(&aws.ec2, old, "in-use", VOLUME_TIMEOUT).await;
    let _ = target.data_mount(old).await;
}
