//! The stack's data volume: an encrypted gp3 EBS volume for PostgreSQL's data, tagged with
//! the stack, its id and the role `data`, attached to the instance but never deleted with it
//! (an attached volume's `DeleteOnTermination` is false). Found by tag, so a later `up`
//! attaches the one `destroy --keep-data` kept.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{ResourceType, VolumeType};
use serde::Serialize;

use super::ec2::{filter, stack_filter, tags};
use super::{Owner, Stamp, error};

/// The tag that says what a volume is for.
pub const TAG_ROLE: &str = "vcctl:role";
/// The device name it is attached as; the host finds it by id or label, not by this name.
pub const DEVICE: &str = "/dev/sdf";

#[derive(Debug, Clone, Serialize)]
pub struct Volume {
    pub id: String,
    pub size_gb: i32,
    pub availability_zone: String,
    pub state: String,
    pub encrypted: bool,
    pub volume_type: String,
    /// The instance it is attached to, if any.
    pub instance_id: Option<String>,
    #[serde(skip)]
    pub owner: Owner,
}

/// The stack's volume with role `role` (`data`), if any.
pub async fn find(ec2: &Client, stack: &str, role: &str) -> Result<Option<Volume>> {
    let out = ec2
        .describe_volumes()
        .filters(stack_filter(stack))
        .filters(filter(&format!("tag:{TAG_ROLE}"), role))
        .send()
        .await
        .map_err(|e| error("ec2:DescribeVolumes", &format!("looking up the {role} volume of stack `{stack}`"), e))?;
    let live = out.volumes().iter().filter(|v| v.state().is_none_or(|s| s.as_str() != "deleting"));
    Ok(live.map(volume).next())
}

fn volume(v: &aws_sdk_ec2::types::Volume) -> Volume {
    Volume {
        id: v.volume_id().unwrap_or_default().to_string(),
        size_gb: v.size().unwrap_or_default(),
        availability_zone: v.availability_zone().unwrap_or_default().to_string(),
        state: v.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
        encrypted: v.encrypted().unwrap_or(false),
        volume_type: v.volume_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        instance_id: v
            .attachments()
            .iter()
            .find(|a| a.state().is_some_and(|s| matches!(s.as_str(), "attached" | "attaching")))
            .and_then(|a| a.instance_id())
            .map(str::to_string),
        owner: Owner::from_tags(v.tags().iter().map(|t| (t.key(), t.value()))),
    }
}

pub async fn create(ec2: &Client, name: &str, zone: &str, size_gb: i32, stamp: &Stamp) -> Result<String> {
    let out = ec2
        .create_volume()
        .availability_zone(zone)
        .size(size_gb)
        .volume_type(VolumeType::Gp3)
        .encrypted(true)
        .tag_specifications(tags(ResourceType::Volume, stamp, name, &[(TAG_ROLE, "data")]))
        .send()
        .await
        .map_err(|e| error("ec2:CreateVolume", &format!("creating volume `{name}` in {zone}"), e))?;
    let id = out.volume_id().context("CreateVolume returned no volume id")?.to_string();
    wait_state(ec2, &id, "available", Duration::from_secs(300)).await?;
    Ok(id)
}

pub async fn attach(ec2: &Client, volume_id: &str, instance: &str) -> Result<()> {
    ec2.attach_volume()
        .volume_id(volume_id)
        .instance_id(instance)
        .device(DEVICE)
        .send()
        .await
        .map_err(|e| error("ec2:AttachVolume", &format!("attaching {volume_id} to {instance}"), e))?;
    Ok(())
}

/// Grows a volume (online; the host grows its filesystem at the next deploy).
pub async fn grow(ec2: &Client, volume_id: &str, size_gb: i32) -> Result<()> {
    ec2.modify_volume()
        .volume_id(volume_id)
        .size(size_gb)
        .send()
        .await
        .map_err(|e| error("ec2:ModifyVolume", &format!("growing {volume_id} to {size_gb} GB"), e))?;
    Ok(())
}

/// Deletes a volume once nothing holds it (an instance being terminated lets go of it).
pub async fn delete(ec2: &Client, volume_id: &str) -> Result<()> {
    wait_state(ec2, volume_id, "available", Duration::from_secs(300)).await?;
    ec2.delete_volume()
        .volume_id(volume_id)
        .send()
        .await
        .map_err(|e| error("ec2:DeleteVolume", &format!("deleting volume {volume_id}"), e))?;
    Ok(())
}

pub async fn wait_state(ec2: &Client, volume_id: &str, want: &str, timeout: Duration) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        let out = ec2
            .describe_volumes()
            .volume_ids(volume_id)
            .send()
            .await
            .map_err(|e| error("ec2:DescribeVolumes", &format!("reading the state of {volume_id}"), e))?;
        let state = out.volumes().first().and_then(|v| v.state()).map(|s| s.as_str().to_string()).unwrap_or_default();
        if state == want {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            anyhow::bail!("volume {volume_id} is {state}, not {want}, after {}", humantime::format_duration(timeout));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
