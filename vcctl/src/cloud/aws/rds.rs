//! RDS for PostgreSQL of a `scale:` stack: one DB instance and its subnet group, tagged with
//! the stack. Encrypted, not public, automated backups, deletion protection; the master
//! password made by RDS and kept in Secrets Manager (`ManageMasterUserPassword`), so it is
//! in no request, answer or output of vcctl. Destroyed with a final snapshot.

use anyhow::Result;
use aws_sdk_rds::Client;
use aws_sdk_rds::types::Tag;
use serde::Serialize;

use super::{Owner, Stamp, code_of, error};

/// The engine and its major version: what the service is tested on (Debian 12's PostgreSQL
/// is 15; RDS keeps 15 in standard support).
pub const ENGINE: &str = "postgres";
pub const ENGINE_VERSION: &str = "15";
/// The master user and the database the service uses.
pub const MASTER_USER: &str = "vehicleconnect";
pub const DATABASE: &str = "vehicleconnect";

/// A DB instance as vcctl compares it with the stack file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Db {
    pub id: String,
    pub status: String,
    pub instance_class: String,
    pub storage_gb: i32,
    pub multi_az: bool,
    pub backup_retention_days: i32,
    pub encrypted: bool,
    pub public: bool,
    pub deletion_protection: bool,
    pub security_groups: Vec<String>,
    /// `host:port`, once RDS has made it.
    pub endpoint: Option<String>,
    /// The Secrets Manager secret holding the master password (RDS made both).
    pub secret_arn: Option<String>,
    #[serde(skip)]
    pub owner: Owner,
}

fn tags(stamp: &Stamp, name: &str) -> Vec<Tag> {
    let mut out = vec![Tag::builder().key("Name").value(name).build()];
    out.extend(stamp.pairs().iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()));
    out
}

/// The DB instance `id`, if it exists.
pub async fn find(rds: &Client, id: &str) -> Result<Option<Db>> {
    let out = match rds.describe_db_instances().db_instance_identifier(id).send().await {
        Ok(out) => out,
        Err(e) if code_of(&e) == Some("DBInstanceNotFound") => return Ok(None),
        Err(e) => return Err(error("rds:DescribeDBInstances", &format!("looking up DB instance {id}"), e)),
    };
    let Some(d) = out.db_instances().first() else { return Ok(None) };
    Ok(Some(Db {
        id: id.to_string(),
        status: d.db_instance_status().unwrap_or_default().to_string(),
        instance_class: d.db_instance_class().unwrap_or_default().to_string(),
        storage_gb: d.allocated_storage().unwrap_or(0),
        multi_az: d.multi_az().unwrap_or(false),
        backup_retention_days: d.backup_retention_period().unwrap_or(0),
        encrypted: d.storage_encrypted().unwrap_or(false),
        public: d.publicly_accessible().unwrap_or(false),
        deletion_protection: d.deletion_protection().unwrap_or(false),
        security_groups: d
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id())
            .map(str::to_string)
            .collect(),
        endpoint: d.endpoint().and_then(|e| Some(format!("{}:{}", e.address()?, e.port().unwrap_or(5432)))),
        secret_arn: d.master_user_secret().and_then(|s| s.secret_arn()).map(str::to_string),
        owner: Owner::from_tags(d.tag_list().iter().map(|t| (t.key(), t.value()))),
    }))
}

/// Whether the subnet group `name` exists.
pub async fn subnet_group_exists(rds: &Client, name: &str) -> Result<bool> {
    match rds.describe_db_subnet_groups().db_subnet_group_name(name).send().await {
        Ok(out) => Ok(!out.db_subnet_groups().is_empty()),
        Err(e) if code_of(&e) == Some("DBSubnetGroupNotFoundFault") => Ok(false),
        Err(e) => Err(error("rds:DescribeDBSubnetGroups", &format!("looking up DB subnet group {name}"), e)),
    }
}

/// The subnet group `name` over `subnets` (the default VPC's, in two zones or more).
pub async fn create_subnet_group(rds: &Client, name: &str, subnets: &[String], stamp: &Stamp) -> Result<()> {
    rds.create_db_subnet_group()
        .db_subnet_group_name(name)
        .db_subnet_group_description(format!("VehicleConnect stack {}, managed by vcctl", stamp.stack))
        .set_subnet_ids(Some(subnets.to_vec()))
        .set_tags(Some(tags(stamp, name)))
        .send()
        .await
        .map_err(|e| error("rds:CreateDBSubnetGroup", &format!("creating DB subnet group {name}"), e))?;
    Ok(())
}

pub async fn delete_subnet_group(rds: &Client, name: &str) -> Result<()> {
    match rds.delete_db_subnet_group().db_subnet_group_name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if code_of(&e) == Some("DBSubnetGroupNotFoundFault") => Ok(()),
        Err(e) => Err(error("rds:DeleteDBSubnetGroup", &format!("deleting DB subnet group {name}"), e)),
    }
}

/// A DB instance's class, storage, zones and backups.
pub struct DbSize<'a> {
    pub instance_class: &'a str,
    pub storage_gb: u32,
    pub multi_az: bool,
    pub backup_retention_days: u8,
}

/// What a new DB instance is made of.
pub struct DbSpec<'a> {
    pub id: &'a str,
    pub settings: &'a DbSize<'a>,
    pub subnet_group: &'a str,
    pub security_group: &'a str,
    pub stamp: &'a Stamp,
}

pub async fn create(rds: &Client, spec: &DbSpec<'_>) -> Result<()> {
    let s = spec.settings;
    rds.create_db_instance()
        .db_instance_identifier(spec.id)
        .engine(ENGINE)
        .engine_version(ENGINE_VERSION)
        .db_instance_class(s.instance_class)
        .allocated_storage(s.storage_gb as i32)
        .storage_type("gp3")
        .storage_encrypted(true)
        .publicly_accessible(false)
        .multi_az(s.multi_az)
        .backup_retention_period(i32::from(s.backup_retention_days))
        .deletion_protection(true)
        .copy_tags_to_snapshot(true)
        .master_username(MASTER_USER)
        .manage_master_user_password(true)
        .db_name(DATABASE)
        .db_subnet_group_name(spec.subnet_group)
        .vpc_security_group_ids(spec.security_group)
        .set_tags(Some(tags(spec.stamp, spec.id)))
        .send()
        .await
        .map_err(|e| error("rds:CreateDBInstance", &format!("creating DB instance {}", spec.id), e))?;
    Ok(())
}

/// Brings an existing instance to the stack file's class, size, zones and backups, and back
/// to its safety settings, at once (`ApplyImmediately`). RDS cannot shrink storage.
pub async fn modify(rds: &Client, id: &str, s: &DbSize<'_>, security_group: &str) -> Result<()> {
    rds.modify_db_instance()
        .db_instance_identifier(id)
        .db_instance_class(s.instance_class)
        .allocated_storage(s.storage_gb as i32)
        .multi_az(s.multi_az)
        .backup_retention_period(i32::from(s.backup_retention_days))
        .deletion_protection(true)
        .publicly_accessible(false)
        .vpc_security_group_ids(security_group)
        .apply_immediately(true)
        .send()
        .await
        .map_err(|e| error("rds:ModifyDBInstance", &format!("changing DB instance {id}"), e))?;
    Ok(())
}

/// Deletes the instance after a final snapshot named `snapshot`; deletion protection is
/// lifted first (`destroy` asked for confirmation before).
pub async fn delete(rds: &Client, id: &str, snapshot: &str) -> Result<()> {
    rds.modify_db_instance()
        .db_instance_identifier(id)
        .deletion_protection(false)
        .apply_immediately(true)
        .send()
        .await
        .map_err(|e| error("rds:ModifyDBInstance", &format!("lifting the deletion protection of {id}"), e))?;
    rds.delete_db_instance()
        .db_instance_identifier(id)
        .skip_final_snapshot(false)
        .final_db_snapshot_identifier(snapshot)
        .send()
        .await
        .map_err(|e| error("rds:DeleteDBInstance", &format!("deleting DB instance {id}"), e))?;
    Ok(())
}

/// A snapshot of the DB instance, automated or manual.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbSnapshot {
    pub id: String,
    /// RFC 3339.
    pub taken_at: String,
    /// `automated` or `manual`.
    pub kind: String,
    /// `creating`, `available`, ...
    pub status: String,
}

fn snapshot_of(s: &aws_sdk_rds::types::DbSnapshot) -> DbSnapshot {
    DbSnapshot {
        id: s.db_snapshot_identifier().unwrap_or_default().to_string(),
        taken_at: s
            .snapshot_create_time()
            .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
            .unwrap_or_default(),
        kind: s.snapshot_type().unwrap_or_default().to_string(),
        status: s.status().unwrap_or_default().to_string(),
    }
}

/// The snapshots of the DB instance `id` (automated and manual), oldest first.
pub async fn snapshots(rds: &Client, id: &str) -> Result<Vec<DbSnapshot>> {
    let out = rds
        .describe_db_snapshots()
        .db_instance_identifier(id)
        .send()
        .await
        .map_err(|e| error("rds:DescribeDBSnapshots", &format!("listing the snapshots of {id}"), e))?;
    let mut all: Vec<DbSnapshot> = out.db_snapshots().iter().map(snapshot_of).collect();
    // RFC 3339 times of one format sort as times.
    all.sort_by(|a, b| a.taken_at.cmp(&b.taken_at));
    Ok(all)
}

/// The newest snapshot of the DB instance `id`, if it has one.
pub async fn latest_snapshot(rds: &Client, id: &str) -> Result<Option<DbSnapshot>> {
    Ok(snapshots(rds, id).await?.into_iter().rfind(|s| !s.taken_at.is_empty()))
}

/// Takes a manual snapshot `snapshot` of the DB instance `id`, tagged as the stack's.
pub async fn create_snapshot(rds: &Client, id: &str, snapshot: &str, stamp: &Stamp) -> Result<()> {
    rds.create_db_snapshot()
        .db_instance_identifier(id)
        .db_snapshot_identifier(snapshot)
        .set_tags(Some(tags(stamp, snapshot)))
        .send()
        .await
        .map_err(|e| error("rds:CreateDBSnapshot", &format!("taking a snapshot of {id}"), e))?;
    Ok(())
}

/// Waits until the snapshot `snapshot` of `id` is available (or `patience` is over).
pub async fn wait_snapshot(
    rds: &Client,
    id: &str,
    snapshot: &str,
    patience: std::time::Duration,
) -> Result<DbSnapshot> {
    let started = std::time::Instant::now();
    loop {
        let found = snapshots(rds, id).await?.into_iter().find(|s| s.id == snapshot);
        match found {
            Some(s) if s.status == "available" => return Ok(s),
            Some(s) if s.status == "failed" => anyhow::bail!("snapshot {snapshot} of {id} failed"),
            _ if started.elapsed() > patience => {
                anyhow::bail!(
                    "snapshot {snapshot} of {id} is not available after {}s; it may still finish",
                    patience.as_secs()
                )
            }
            _ => tokio::time::sleep(std::time::Duration::from_secs(5)).await,
        }
    }
}

/// What a restored DB instance is: the stack's size and safety settings, in its subnet group
/// and security group, its master password made anew by RDS and kept in Secrets Manager.
pub struct RestoreSpec<'a> {
    pub id: &'a str,
    pub settings: &'a DbSize<'a>,
    pub subnet_group: &'a str,
    pub security_group: &'a str,
    pub stamp: &'a Stamp,
}

/// Where a restored instance's data comes from.
pub enum RestoreFrom<'a> {
    /// A snapshot of one of the stack's instances.
    Snapshot(&'a str),
    /// The instance `source` as it was at `time` (RFC 3339), from its automated backups.
    PointInTime { source: &'a str, time: aws_smithy_types::DateTime },
}

/// A new DB instance `spec.id` from `from`; RDS makes it in minutes (`find` says when it is
/// `available`). The snapshot's encryption key carries over.
pub async fn restore(rds: &Client, spec: &RestoreSpec<'_>, from: &RestoreFrom<'_>) -> Result<()> {
    // The two calls' builders are different types with the same setters: one list of them.
    macro_rules! restored {
        ($builder:expr) => {
            $builder
                .db_instance_class(spec.settings.instance_class)
                .allocated_storage(spec.settings.storage_gb as i32)
                .storage_type("gp3")
                .multi_az(spec.settings.multi_az)
                .backup_retention_period(i32::from(spec.settings.backup_retention_days))
                .publicly_accessible(false)
                .deletion_protection(true)
                .copy_tags_to_snapshot(true)
                .manage_master_user_password(true)
                .db_subnet_group_name(spec.subnet_group)
                .vpc_security_group_ids(spec.security_group)
                .set_tags(Some(tags(spec.stamp, spec.id)))
                .send()
                .await
                .map(|_| ())
        };
    }
    match from {
        RestoreFrom::Snapshot(snapshot) => restored!(
            rds.restore_db_instance_from_db_snapshot()
                .db_snapshot_identifier(*snapshot)
                .db_instance_identifier(spec.id)
        )
        .map_err(|e| error("rds:RestoreDBInstanceFromDBSnapshot", &format!("restoring {snapshot} as {}", spec.id), e)),
        RestoreFrom::PointInTime { source, time } => restored!(
            rds.restore_db_instance_to_point_in_time()
                .source_db_instance_identifier(*source)
                .restore_time(*time)
                .target_db_instance_identifier(spec.id)
        )
        .map_err(|e| error("rds:RestoreDBInstanceToPointInTime", &format!("restoring {source} as {}", spec.id), e)),
    }
}

/// The ids of the DB instances tagged with the stack id `stack_id` (RDS filters by no tag:
/// every page is read, at most 100 instances each, and 50 pages at most).
pub async fn owned(rds: &Client, stack_id: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut marker = None;
    for _ in 0..50 {
        let page = rds
            .describe_db_instances()
            .set_marker(marker.take())
            .max_records(100)
            .send()
            .await
            .map_err(|e| error("rds:DescribeDBInstances", "listing the DB instances", e))?;
        for d in page.db_instances() {
            let owner = Owner::from_tags(d.tag_list().iter().map(|t| (t.key(), t.value())));
            if owner.stack_id.as_deref() == Some(stack_id)
                && let Some(id) = d.db_instance_identifier()
            {
                out.push(id.to_string());
            }
        }
        marker = page.marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    out.sort();
    Ok(out)
}

/// The instance a snapshot was taken of, and the stack id it is tagged with, if it exists.
pub async fn snapshot_source(rds: &Client, snapshot: &str) -> Result<Option<(String, Option<String>)>> {
    let out = match rds.describe_db_snapshots().db_snapshot_identifier(snapshot).send().await {
        Ok(out) => out,
        Err(e) if code_of(&e) == Some("DBSnapshotNotFound") => return Ok(None),
        Err(e) => return Err(error("rds:DescribeDBSnapshots", &format!("looking up snapshot {snapshot}"), e)),
    };
    Ok(out.db_snapshots().first().map(|s| {
        let owner = Owner::from_tags(s.tag_list().iter().map(|t| (t.key(), t.value())));
        (s.db_instance_identifier().unwrap_or_default().to_string(), owner.stack_id)
    }))
}
