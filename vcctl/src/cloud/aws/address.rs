//! The stack's Elastic IP: one stable public address, found by the stack's tag, associated
//! with its instance. It outlives the instance (`destroy --keep-data` keeps it), so the
//! address a DNS record or a vehicle's configuration names does not change with a stop and
//! start, or with a new instance.

use anyhow::{Context, Result};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{DomainType, ResourceType};
use serde::Serialize;

use super::ec2::{stack_filter, tags};
use super::{Owner, Stamp, error};

#[derive(Debug, Clone, Serialize)]
pub struct Address {
    pub allocation_id: String,
    pub public_ip: String,
    /// The instance it is associated with, if any.
    pub instance_id: Option<String>,
    #[serde(skip)]
    pub owner: Owner,
}

pub async fn find(ec2: &Client, stack: &str) -> Result<Option<Address>> {
    let out = ec2
        .describe_addresses()
        .filters(stack_filter(stack))
        .send()
        .await
        .map_err(|e| error("ec2:DescribeAddresses", &format!("looking up the Elastic IP of stack `{stack}`"), e))?;
    Ok(out.addresses().first().map(|a| Address {
        allocation_id: a.allocation_id().unwrap_or_default().to_string(),
        public_ip: a.public_ip().unwrap_or_default().to_string(),
        instance_id: a.instance_id().filter(|i| !i.is_empty()).map(str::to_string),
        owner: Owner::from_tags(a.tags().iter().map(|t| (t.key(), t.value()))),
    }))
}

pub async fn allocate(ec2: &Client, name: &str, stamp: &Stamp) -> Result<String> {
    let out = ec2
        .allocate_address()
        .domain(DomainType::Vpc)
        .tag_specifications(tags(ResourceType::ElasticIp, stamp, name, &[]))
        .send()
        .await
        .map_err(|e| error("ec2:AllocateAddress", &format!("allocating Elastic IP `{name}`"), e))?;
    out.allocation_id().map(str::to_string).context("AllocateAddress returned no allocation id")
}

/// Associates the address with `instance` (which must be running or stopped), taking it
/// from whatever it was associated with: only ever the stack's own address for the stack's
/// own instance (both found by the stack's tags and id).
pub async fn associate(ec2: &Client, allocation_id: &str, instance: &str) -> Result<()> {
    ec2.associate_address()
        .allocation_id(allocation_id)
        .instance_id(instance)
        .allow_reassociation(true)
        .send()
        .await
        .map_err(|e| error("ec2:AssociateAddress", &format!("associating {allocation_id} with {instance}"), e))?;
    Ok(())
}

pub async fn release(ec2: &Client, allocation_id: &str) -> Result<()> {
    ec2.release_address()
        .allocation_id(allocation_id)
        .send()
        .await
        .map_err(|e| error("ec2:ReleaseAddress", &format!("releasing Elastic IP {allocation_id}"), e))?;
    Ok(())
}
