//! `vcctl restore` and `vcctl db restore` of a `scale:` stack. Nothing is restored in place:
//! a restore makes a new database while the group serves from the old one (a new DB instance
//! from an RDS snapshot or a point in time, or, for an archive, a new database beside the
//! serving one, restored through one instance), then moves the bucket's `database` pointer
//! (`database.rs`) and converges as `up` does: the launch template now names the new
//! database, so the instance refresh replaces the instances one at a time, each healthy
//! behind the load balancer before an old one is drained. No request fails on the way, and
//! the old database is kept: `restore --database` goes back to it, `restore --delete-old`
//! (or `destroy`) deletes it. A refresh that fails moves the pointer back and converges
//! again, so the group serves from the old database as before (exit 6).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::database::{self, DbPointer, DbRef};
use super::{Survey, converge, survey, tiers};
use crate::cloud::aws::rds::{self, RestoreFrom, RestoreSpec};
use crate::context::Ctx;
use crate::error::Failure;
use crate::stack::AwsSettings;
use crate::stack::scale::ScaleSettings;

/// What a restore makes the group serve from, as asked.
pub enum Source {
    /// An RDS snapshot of the stack's.
    Snapshot(String),
    /// The serving instance as it was at this time (RFC 3339).
    Time(String),
    /// A database the stack kept (`ID` or `ID/NAME`).
    Kept(String),
    /// None: the kept ones deleted.
    DeleteOld,
}

/// `vcctl restore` of a `scale:` stack.
pub async fn restore(ctx: &Ctx, a: &AwsSettings, scale: &ScaleSettings, source: &Source) -> Result<u8> {
    let s = serving_survey(ctx, a).await?;
    let started = Instant::now();
    let (to, from) = match source {
        Source::DeleteOld => return delete_old(ctx, a, &s).await,
        Source::Kept(id) => {
            let to = kept(&s.data.pointer, &s.data.others, id)?;
            confirm(ctx, &s, &format!("the database it kept, {to}"))?;
            (to, format!("database {id}, kept before"))
        }
        Source::Snapshot(id) => {
            check_snapshot(&s, id).await?;
            let from = format!("RDS snapshot {id}");
            (new_instance(ctx, scale, &s, &from, RestoreFrom::Snapshot(id)).await?, from)
        }
        Source::Time(t) => {
            let time = aws_smithy_types::DateTime::from_str(t, aws_smithy_types::date_time::Format::DateTime).map_err(
                |_| {
                    Failure::invalid(
                        format!("--time {t:?} is not an RFC 3339 UTC time"),
                        Some("e.g. --time 2026-12-07T09:55:00Z".into()),
                    )
                },
            )?;
            let from = format!("DB instance {} as it was at {t}", s.data.pointer.serving.instance);
            let source = s.data.pointer.serving.instance.clone();
            (new_instance(ctx, scale, &s, &from, RestoreFrom::PointInTime { source: &source, time }).await?, from)
        }
    };
    repoint(ctx, a, scale, &s, to, &from, started).await
}

/// `vcctl db restore FILE` of a `scale:` stack: the archive restored through one instance into
/// a new database beside the serving one, on the same DB instance; then the group moves to it.
pub async fn db_restore(ctx: &Ctx, a: &AwsSettings, scale: &ScaleSettings, file: &std::path::Path) -> Result<u8> {
    let size = std::fs::metadata(file)
        .map_err(|e| Failure::invalid(format!("cannot read `{}`: {e}", file.display()), None))?
        .len();
    check_archive(file)?;
    let s = serving_survey(ctx, a).await?;
    let name = database::restored_name(rds::DATABASE, '_', time::OffsetDateTime::now_utc());
    let to = DbRef { instance: s.data.pointer.serving.instance.clone(), database: name.clone() };
    confirm(
        ctx,
        &s,
        &format!("a new database {to} restored from `{}` ({})", file.display(), indicatif::HumanBytes(size)),
    )?;
    let started = Instant::now();
    through_an_instance(ctx, a, "vcctl db restore", async |host: &crate::host::Host| {
        ctx.printer.info(format!("restoring `{}` into database {name} through an instance in service", file.display()));
        host.db_restore_into(file, &name, &ctx.printer).await
    })
    .await?;
    ctx.printer.info(format!("restored in {}", crate::printer::format_duration(started.elapsed())));
    repoint(ctx, a, scale, &s, to, &format!("archive {}", file.display()), started).await
}

/// The stack as it is, which must be up: a restore replaces the database of a serving stack.
async fn serving_survey(ctx: &Ctx, a: &AwsSettings) -> Result<Survey> {
    let stamp = crate::providers::aws::stamp(&ctx.settings);
    let s = survey(ctx, a, stamp).await?;
    if s.data.bucket.is_none() || s.data.db.is_none() || s.instances.group.is_none() {
        return Err(Failure::invalid(
            format!("stack `{}` is not up: there is no database to restore over", ctx.settings.stack),
            Some("`vcctl up` makes it".into()),
        )
        .into());
    }
    Ok(s)
}

fn confirm(ctx: &Ctx, s: &Survey, what: &str) -> Result<()> {
    let serving = &s.data.pointer.serving;
    ctx.printer.info(format!(
        "the group of stack `{}` serves from {serving}; it will serve from {what}, instance by instance \
         (each new one healthy before an old one is drained); {serving} is kept, with whatever is written to \
         it until the last old instance goes",
        ctx.settings.stack
    ));
    ctx.confirm_destruction(&format!("point stack `{}` at {what}", ctx.settings.stack))
}

/// `--database ID` (or `ID/NAME`): one the stack kept, or one of its other instances.
fn kept(pointer: &DbPointer, others: &[String], asked: &str) -> Result<DbRef> {
    let (instance, name) = asked.split_once('/').map_or((asked, None), |(i, n)| (i, Some(n)));
    let found = pointer.kept.iter().rev().find(|k| k.instance == instance && name.is_none_or(|n| k.database == n));
    if let Some(k) = found {
        return Ok(k.clone());
    }
    if others.iter().any(|o| o == instance) {
        let database = name.unwrap_or(rds::DATABASE);
        // It goes into the bucket's pointer, then into the boot script and psql: checked.
        if !database::database_name(database) {
            return Err(Failure::invalid(
                format!("{database:?} in `--database {asked}` is not a database name"),
                Some("lower-case letters, digits and `_`, a letter first (`vcctl status` lists the kept ones)".into()),
            )
            .into());
        }
        return Ok(DbRef { instance: instance.to_string(), database: database.to_string() });
    }
    let listed: Vec<String> = pointer.kept.iter().map(ToString::to_string).chain(others.iter().cloned()).collect();
    Err(Failure::invalid(
        format!(
            "{asked} is not a database the stack kept (kept: {})",
            if listed.is_empty() { "none".to_string() } else { listed.join(", ") }
        ),
        Some("`vcctl status` lists them".into()),
    )
    .into())
}

/// A snapshot of one of the stack's own DB instances, by its tag or its instance's name.
async fn check_snapshot(s: &Survey, id: &str) -> Result<()> {
    let Some((instance, stack_id)) = rds::snapshot_source(&s.cloud.rds, id).await? else {
        return Err(Failure::invalid(
            format!("there is no RDS snapshot {id}"),
            Some("`vcctl backup --list` lists the stack's".into()),
        )
        .into());
    };
    let ours = match stack_id {
        Some(tagged) => tagged == s.stamp.id,
        None => instance == s.names.db || instance.starts_with(&format!("{}-r", s.names.db)),
    };
    if !ours {
        return Err(Failure::invalid(
            format!("RDS snapshot {id} is of DB instance {instance}, not of stack `{}`", s.stamp.stack),
            Some("`vcctl backup --list` lists the stack's".into()),
        )
        .into());
    }
    Ok(())
}

/// A new DB instance of the stack's size and safety from `from`, waited for until RDS gives
/// it an address.
async fn new_instance(
    ctx: &Ctx,
    scale: &ScaleSettings,
    s: &Survey,
    what: &str,
    from: RestoreFrom<'_>,
) -> Result<DbRef> {
    let id = database::restored_name(&s.names.db, '-', time::OffsetDateTime::now_utc());
    confirm(ctx, s, &format!("a new DB instance {id} made from {what}"))?;
    let group =
        s.data.group(tiers::Tier::Db).map(|g| g.id.clone()).context("the stack has no database security group")?;
    let size = tiers::size(&scale.database);
    let spec =
        RestoreSpec { id: &id, settings: &size, subnet_group: &s.names.db, security_group: &group, stamp: &s.stamp };
    ctx.printer.doing(&format!("DB instance {id} from {what}"), rds::restore(&s.cloud.rds, &spec, &from)).await?;
    super::instances::database_ready(&s.cloud, &id, &ctx.printer).await?;
    Ok(DbRef { instance: id, database: rds::DATABASE.into() })
}

/// Points the group at `to` and converges; a failed refresh points it back and converges
/// again (exit 6, the old database serving as before).
async fn repoint(
    ctx: &Ctx,
    a: &AwsSettings,
    scale: &ScaleSettings,
    s: &Survey,
    to: DbRef,
    from: &str,
    started: Instant,
) -> Result<u8> {
    let bucket = &s.names.bucket;
    let old = s.data.pointer.clone();
    let moved = old.moved_to(to.clone())?;
    database::write(&s.cloud.s3, bucket, &moved).await?;
    let options = crate::deploy::Options {
        artifact: None,
        health_timeout: Duration::from_secs(900),
        lock_timeout: Duration::ZERO,
        skip_unreachable: false,
        parallel: 1,
    };
    let converged = converge(ctx, a, scale, &options).await;
    if let Err(e) = converged {
        ctx.printer.warn(format!("the group did not move to {to}: {e:#}; pointing it back at {}", old.serving));
        let back = moved.moved_to(old.serving.clone())?;
        database::write(&s.cloud.s3, bucket, &back).await?;
        converge(ctx, a, scale, &options).await.context("pointing the group back at the database it served from")?;
        return Err(e.context(format!("the group serves from {} as before; {to} is kept", old.serving)));
    }
    let elapsed = started.elapsed();
    ctx.printer.json(&json!({
        "stack": ctx.settings.stack, "restored_from": from, "database": moved.serving, "kept": moved.kept,
        "elapsed_s": elapsed.as_secs_f64(),
    }));
    ctx.printer.info(format!(
        "stack `{}` serves from {to} (restored from {from}) in {}; kept: {}",
        ctx.settings.stack,
        crate::printer::format_duration(elapsed),
        moved.kept.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    ));
    Ok(0)
}

/// `restore --delete-old`: the stack's databases it no longer serves from, after confirmation;
/// an instance after a final snapshot, a database beside the serving one dropped through an
/// instance.
async fn delete_old(ctx: &Ctx, a: &AwsSettings, s: &Survey) -> Result<u8> {
    let serving = s.data.pointer.serving.clone();
    let beside: Vec<&DbRef> = s.data.pointer.kept.iter().filter(|k| k.instance == serving.instance).collect();
    let p = &ctx.printer;
    if s.data.others.is_empty() && beside.is_empty() {
        p.info(format!("stack `{}` keeps no database but {serving}: nothing to delete", ctx.settings.stack));
        p.json(&json!({"stack": ctx.settings.stack, "deleted": [], "final_snapshots": []}));
        return Ok(0);
    }
    p.info(format!(
        "`vcctl restore --delete-old` deletes, of stack `{}` (it serves from {serving}):",
        ctx.settings.stack
    ));
    for id in &s.data.others {
        p.info(format!("  - DB instance {id} and every event in it, after a final snapshot (kept)"));
    }
    for k in &beside {
        p.info(format!("  - database {k} and every event in it (no snapshot: `vcctl db dump` first to keep it)"));
    }
    ctx.confirm_destruction(&format!("delete the databases stack `{}` kept", ctx.settings.stack))?;
    if !beside.is_empty() {
        drop_beside(ctx, a, &beside).await?;
    }
    let mut snapshots = Vec::new();
    for id in &s.data.others {
        snapshots.push(tiers::delete_db(&s.cloud, id, p).await?);
    }
    let left = DbPointer { serving: serving.clone(), kept: vec![] };
    database::write(&s.cloud.s3, &s.names.bucket, &left).await?;
    let deleted: Vec<String> = s.data.others.iter().cloned().chain(beside.iter().map(|k| k.to_string())).collect();
    p.json(&json!({"stack": ctx.settings.stack, "deleted": deleted, "final_snapshots": snapshots}));
    p.info(format!("deleted {}; final snapshots kept: {}", deleted.join(", "), snapshots.join(", ")));
    Ok(0)
}

/// Drops databases on the serving DB instance, through one instance in service.
async fn drop_beside(ctx: &Ctx, a: &AwsSettings, beside: &[&DbRef]) -> Result<()> {
    through_an_instance(ctx, a, "vcctl restore --delete-old", async |host: &crate::host::Host| {
        for k in beside {
            ctx.printer.doing(&format!("dropping database {k}"), host.db_drop(&k.database)).await?;
        }
        Ok(())
    })
    .await
}

/// Runs `work` on the first instance of the group in service, over on-demand SSH (opened for
/// `command` and closed after, as `exec` does): the database is the group's, so any instance
/// in service reaches it.
async fn through_an_instance(
    ctx: &Ctx,
    a: &AwsSettings,
    command: &str,
    work: impl AsyncFnOnce(&crate::host::Host) -> Result<()>,
) -> Result<()> {
    let (cloud, ids, app_group) = super::in_service(ctx, a).await?;
    let Some(id) = ids.first() else { bail!("stack `{}`'s group has no instance in service", ctx.settings.stack) };
    let run = async {
        let mut on = super::operations_on(ctx, a, &cloud, std::slice::from_ref(id)).await?;
        let (_, target) = on.pop().context("no instance in service to work through")?;
        let done = work(target.host()).await;
        crate::targets::Target::close(Box::new(target)).await;
        done
    };
    crate::providers::aws::on_demand::around_on(ctx, a, &cloud, app_group.as_ref(), command, run).await
}

/// A pg_dump custom-format archive starts with `PGDMP`: anything else is refused before the
/// stack is touched.
fn check_archive(file: &std::path::Path) -> Result<()> {
    let mut head = [0u8; 5];
    let read = std::fs::File::open(file).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
    if read.is_err() || &head != b"PGDMP" {
        return Err(Failure::invalid(
            format!("`{}` is not a pg_dump custom-format archive", file.display()),
            Some("`vcctl db dump > FILE` makes one".into()),
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_way_back_names_a_kept_database_or_another_instance_of_the_stack() {
        let p = DbPointer::first("vcctl-fra")
            .moved_to(DbRef { instance: "vcctl-fra".into(), database: "vehicleconnect_r1".into() })
            .unwrap();
        let others = ["vcctl-fra-r2".to_string()];
        assert_eq!(kept(&p, &others, "vcctl-fra").unwrap().database, "vehicleconnect");
        assert_eq!(kept(&p, &others, "vcctl-fra-r2").unwrap().database, "vehicleconnect");
        let hostile = kept(&p, &others, "vcctl-fra-r2/x; DROP TABLE api_events").unwrap_err().to_string();
        assert!(hostile.contains("is not a database name"), "{hostile}");
        let err = kept(&p, &others, "vcctl-other").unwrap_err().to_string();
        assert!(err.contains("kept: vcctl-fra/vehicleconnect, vcctl-fra-r2"), "{err}");
    }
}
