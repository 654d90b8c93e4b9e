//! EBS snapshots of the stack's data volume (`vcctl backup`), tagged with the stack, and the
//! volumes `vcctl restore` makes from them.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{ResourceType, Tag, VolumeType};
use serde::Serialize;

use super::ec2::{filter, stack_filter, tags};
use super::volume::TAG_ROLE;
use super::{Owner, Stamp, error};

/// The role tag of a snapshot `vcctl backup` took.
pub const ROLE: &str = "data-snapshot";

#[derive(Debug, Clone, Serialize)]
pub struct VolumeSnapshot {
    pub id: String,
    pub volume_id: String,
    pub state: String,
    /// `100%` when complete.
    pub progress: String,
    pub started: String,
    pub size_gb: i32,
    pub description: String,
    #[serde(skip)]
    pub owner: Owner,
}

fn snapshot(s: &aws_sdk_ec2::types::Snapshot) -> VolumeSnapshot {
    VolumeSnapshot {
        id: s.snapshot_id().unwrap_or_default().to_string(),
        volume_id: s.volume_id().unwrap_or_default().to_string(),
        state: s.state().map(|x| x.as_str().to_string()).unwrap_or_default(),
        progress: s.progress().unwrap_or_default().to_string(),
        started: s.start_time().map(|t| t.to_string()).unwrap_or_default(),
        size_gb: s.volume_size().unwrap_or_default(),
        description: s.description().unwrap_or_default().to_string(),
        owner: Owner::from_tags(s.tags().iter().map(|t| (t.key(), t.value()))),
    }
}

/// The stack's snapshots, oldest first.
pub async fn list(ec2: &Client, stack: &str) -> Result<Vec<VolumeSnapshot>> {
    let out = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(stack_filter(stack))
        .filters(filter(&format!("tag:{TAG_ROLE}"), ROLE))
        .send()
        .await
        .map_err(|e| error("ec2:DescribeSnapshots", &format!("listing the snapshots of stack `{stack}`"), e))?;
    let mut all: Vec<VolumeSnapshot> = out.snapshots().iter().map(snapshot).collect();
    all.sort_by(|a, b| a.started.cmp(&b.started));
    Ok(all)
}

pub async fn find(ec2: &Client, id: &str) -> Result<Option<VolumeSnapshot>> {
    let out = ec2.describe_snapshots().snapshot_ids(id).send().await;
    match out {
        Ok(out) => Ok(out.snapshots().first().map(snapshot)),
        Err(e) if super::code_of(&e).is_some_and(|c| c.starts_with("InvalidSnapshot")) => Ok(None),
        Err(e) => Err(error("ec2:DescribeSnapshots", &format!("reading snapshot {id}"), e)),
    }
}

pub async fn create(ec2: &Client, volume_id: &str, name: &str, description: &str, stamp: &Stamp) -> Result<String> {
    let out = ec2
        .create_snapshot()
        .volume_id(volume_id)
        .description(description)
        .tag_specifications(tags(ResourceType::Snapshot, stamp, name, &[(TAG_ROLE, ROLE)]))
        .send()
        .await
        .map_err(|e| error("ec2:CreateSnapshot", &format!("snapshotting {volume_id}"), e))?;
    out.snapshot_id().map(str::to_string).context("CreateSnapshot returned no snapshot id")
}

/// Waits until the snapshot is complete, telling `progress` how far it is; fails if AWS
/// says it failed.
pub async fn wait(ec2: &Client, id: &str, timeout: Duration, progress: impl Fn(&str)) -> Result<VolumeSnapshot> {
    let started = std::time::Instant::now();
    loop {
        let s = find(ec2, id).await?.with_context(|| format!("snapshot {id} is gone"))?;
        progress(&s.progress);
        match s.state.as_str() {
            "completed" => return Ok(s),
            "error" => anyhow::bail!("AWS failed snapshot {id}"),
            _ if started.elapsed() >= timeout => anyhow::bail!(
                "snapshot {id} is {} ({}) after {}; it goes on: `vcctl backup --list` shows it",
                s.state,
                s.progress,
                humantime::format_duration(timeout)
            ),
            _ => tokio::time::sleep(Duration::from_secs(3)).await,
        }
    }
}

/// A new encrypted gp3 volume from `snapshot` in `zone`, tagged with `role`.
pub async fn volume_from(
    ec2: &Client,
    snapshot: &str,
    zone: &str,
    name: &str,
    role: &str,
    stamp: &Stamp,
) -> Result<String> {
    let out = ec2
        .create_volume()
        .snapshot_id(snapshot)
        .availability_zone(zone)
        .volume_type(VolumeType::Gp3)
        .encrypted(true)
        .tag_specifications(tags(ResourceType::Volume, stamp, name, &[(TAG_ROLE, role)]))
        .send()
        .await
        .map_err(|e| error("ec2:CreateVolume", &format!("making a volume from {snapshot}"), e))?;
    out.volume_id().map(str::to_string).context("CreateVolume returned no volume id")
}

/// Sets a volume's role tag (`data`, `data-replaced`).
pub async fn set_role(ec2: &Client, volume_id: &str, role: &str) -> Result<()> {
    ec2.create_tags()
        .resources(volume_id)
        .tags(Tag::builder().key(TAG_ROLE).value(role).build())
        .send()
        .await
        .map_err(|e| error("ec2:CreateTags", &format!("tagging {volume_id} as {role}"), e))?;
    Ok(())
}

pub async fn detach(ec2: &Client, volume_id: &str, instance: &str) -> Result<()> {
    ec2.detach_volume()
        .volume_id(volume_id)
        .instance_id(instance)
        .device(super::volume::DEVICE)
        .send()
        .await
        .map_err(|e| error("ec2:DetachVolume", &format!("detaching {volume_id}"), e))?;
    Ok(())
}
